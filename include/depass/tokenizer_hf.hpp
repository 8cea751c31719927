// tokenizer_hf.hpp -- Hugging Face byte-level BPE tokenizers: a `tokenizer.json` (GPT-2,
// Llama 3, Qwen2/2.5 and others built the same way) or GPT-2's older pair `vocab.json` +
// `merges.txt`.
//
// Encoding follows the `tokenizers` library:
//   1. added tokens (special ones such as <|endoftext|>) are cut out of the text first:
//      leftmost-longest match, those with normalized = false on the raw text, the others
//      after normalisation; lstrip / rstrip swallow the whitespace beside a match, and a
//      single_word token only matches between non-word characters;
//   2. the normalizer (NFC, NFD, NFKC, NFKD or a Sequence of them; utf8proc);
//   3. the pre-tokenizer: Split (a PCRE2 regex or a plain string; behaviour Isolated or
//      Removed, optionally inverted), Digits (each digit or each run of digits apart),
//      ByteLevel (optional prefix space, optional GPT-2 regex split, then every byte becomes
//      its character of the GPT-2 byte alphabet), or a Sequence of them; a ByteLevel step is
//      required (SentencePiece-style tokenizer.json files, Metaspace, are refused);
//   4. BPE on each pre-token: with ignore_merges a pre-token that is a vocabulary entry is
//      that token; otherwise its characters start as symbols and the adjacent pair with
//      the lowest merge rank merges (leftmost first) until no pair is in the merges;
//   5. the post-processor: a TemplateProcessing's special tokens before / after $A are
//      added when BOS / EOS are asked for (ByteLevel and absent post-processors add none).
//      Without a template, tokenizer_config.json next to the file may set add_bos_token.
// Results per pre-token are cached, so a long text costs one BPE per distinct word.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "depass/tokenizer.hpp"

namespace depass {

class HfTokenizer : public Tokenizer {
public:
    // A tokenizer.json. Throws depass::Error naming the file and the offending field.
    static HfTokenizer load(const std::string& tokenizer_json);
    // GPT-2's vocab.json + merges.txt (GPT-2's pre-tokenizer; the bos/eos/unk/pad tokens
    // named in tokenizer_config.json or special_tokens_map.json beside them are special).
    static HfTokenizer load_vocab_merges(const std::string& vocab_json, const std::string& merges_txt);

    std::vector<int> encode(const std::string& text, bool bos = true, bool eos = false) const override;
    // The bytes of a byte-level piece; an added token's text; "" for special tokens.
    std::string decode_piece(int prev_id, int id) const override;
    const std::string& piece(int id) const override;
    int vocab_size() const override;
    std::string kind() const override { return "hf-bpe"; }

    const std::vector<int>& bos_ids() const;     // put in front when encode(bos = true)
    const std::vector<int>& eos_ids() const;     // appended when encode(eos = true)
    int lookup(const std::string& piece) const;  // id of a vocabulary entry or added token, or -1
    bool is_special(int id) const;
    const std::string& path() const;

    struct Impl;

private:
    std::shared_ptr<const Impl> impl_;
};

// Opens a tokenizer.json (or, for a file named other than tokenizer.json with merges.txt
// next to it, the vocab.json + merges.txt pair).
std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& path);

}  // namespace depass
