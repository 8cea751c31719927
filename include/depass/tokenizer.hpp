// tokenizer.hpp -- the llama2.c tokenizer (.bin export of a SentencePiece vocabulary).
//
// File format (little-endian):
//   int32 max_token_length
//   then, for each of V pieces: float32 score, int32 byte length, `length` raw bytes.
//
// Encoding follows the original llama2.c program:
//   1. a dummy-prefix piece " " is placed first when the text is non-empty;
//   2. each UTF-8 code point (at most 4 bytes) is looked up as a piece; a code point
//      that is not a piece becomes its bytes, each as the byte piece id = byte + 3;
//   3. the adjacent pair whose concatenation is a piece with the highest score is
//      merged, repeatedly, until no pair merges (ties go to the leftmost pair);
//   4. BOS (id 1) in front and EOS (id 2) at the end when asked.
// Ids 0, 1, 2 are <unk>, BOS, EOS; the Llama 2 export stores BOS / EOS as
// "\n<s>\n" and "\n</s>\n", which never take part in a merge.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "depass/types.hpp"

namespace depass {

// What every tokenizer offers (llama2.c .bin, SentencePiece .model, GGUF vocabularies).
class Tokenizer {
public:
    virtual ~Tokenizer() = default;
    // Token ids of `text` (BOS in front / EOS at the end when asked and the vocabulary has them).
    virtual std::vector<int> encode(const std::string& text, bool bos = true, bool eos = false) const = 0;
    // Text of token `id` following `prev_id` (-1 at the start).
    virtual std::string decode_piece(int prev_id, int id) const = 0;
    // The text of a sequence of ids (special tokens skipped); by default decode_piece of each
    // id after the one before it, concatenated.
    virtual std::string decode(const std::vector<int>& ids) const;
    // The raw piece of an id as stored in the vocabulary.
    virtual const std::string& piece(int id) const = 0;
    virtual int vocab_size() const = 0;
    // "llama2.c", "sentencepiece", "gguf-spm", "gguf-bpe", ...
    virtual std::string kind() const = 0;
};

class Llama2cTokenizer : public Tokenizer {
public:
    static constexpr int kUnkId = 0;
    static constexpr int kBosId = 1;
    static constexpr int kEosId = 2;
    static constexpr int kByteOffset = 3;  // byte piece <0xXX> has id XX + 3

    // Reads and validates a tokenizer .bin. With expected_vocab > 0 exactly that many
    // pieces are read and the file must end there; with -1 pieces are read until the
    // end of the file. Throws depass::Error naming the file and the offending piece.
    static Llama2cTokenizer load(const std::string& path, int expected_vocab = -1);

    // Token ids of `text`, as llama2.c's encode().
    std::vector<int> encode(const std::string& text, bool bos = true, bool eos = false) const override;

    // Text of token `id` following `prev_id`, as llama2.c's decode(): after BOS a
    // leading space is dropped; a raw byte piece "<0xXX>" becomes that single byte.
    std::string decode_piece(int prev_id, int id) const override;
    // Concatenation of decode_piece over `ids`, skipping BOS and EOS.
    std::string decode(const std::vector<int>& ids) const override;

    const std::string& piece(int id) const override;
    float score(int id) const;
    int vocab_size() const override { return static_cast<int>(pieces_.size()); }
    std::string kind() const override { return "llama2.c"; }
    int max_token_length() const { return max_token_length_; }
    const std::string& path() const { return path_; }
    // Id of the piece spelled exactly `s`, or -1.
    int lookup(const std::string& s) const;

private:
    void check_id(int id) const;

    std::string path_;
    int max_token_length_ = 0;
    std::vector<std::string> pieces_;
    std::vector<float> scores_;
    std::unordered_map<std::string, int> index_;  // first id holding each spelling
};

// ---- other vocabulary formats and the factory ------------------------------------------

// Opens a tokenizer by file type: a llama2.c .bin, a SentencePiece .model, or the
// vocabulary embedded in a GGUF file. Throws depass::Error naming the file.
std::unique_ptr<Tokenizer> open_tokenizer(const std::string& path);

// A SentencePiece model file (tokenizer.model, protobuf), through libsentencepiece.
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path);

// The vocabulary stored in a GGUF file's metadata (tokenizer.ggml.*): the llama
// SentencePiece-style vocabulary ("llama") or GPT-2 byte-level BPE with merges ("gpt2").
std::unique_ptr<Tokenizer> load_gguf_tokenizer(const std::string& path);

// The tokenizer of a model.
//   `tokenizer` given: opened by file type (open_tokenizer); its vocabulary must not be
//   larger than the model's V (V <= 0: no check).
//   Otherwise a GGUF model's own vocabulary, then, inside the model directory and then next
//   to the model file, in this order: tokenizer.json (Hugging Face, what HF itself prefers),
//   tokenizer.model (SentencePiece), vocab.json + merges.txt (GPT-2), tokenizer.bin,
//   tok<V>.bin (llama2.c); the first whose vocabulary size equals V wins (the two .json
//   kinds may also be smaller than V: models often pad their embedding matrix).
// Returns nullptr when nothing fits and !required; else throws depass::Error listing every
// candidate tried and why it was passed over, ending with `how_to_name` (how the caller
// names a tokenizer explicitly, e.g. "pass --tokenizer FILE").
std::unique_ptr<Tokenizer> find_tokenizer(const std::string& model, const std::string& tokenizer, int V,
                                          bool required,
                                          const std::string& how_to_name = "pass --tokenizer FILE");

// A piece for display: SentencePiece's U+2581 shown as a space, llama2.c's "\n<s>\n" as
// "<s>", newlines / tabs / carriage returns escaped; "#id" without a tokenizer or for an id
// outside its vocabulary.
std::string show_piece(const Tokenizer* tok, int id);

}  // namespace depass
