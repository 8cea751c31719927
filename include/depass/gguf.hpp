// gguf.hpp -- GGUF, the single-file model format of llama.cpp / ggml (versions 2 and 3).
//
// Layout (all little-endian):
//   u32 magic "GGUF" | u32 version | u64 tensor_count | u64 metadata_kv_count
//   metadata_kv_count x { string key | u32 value type | value }
//   tensor_count x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml type | u64 offset }
//   zero padding up to a multiple of the alignment (general.alignment, default 32)
//   data section: each tensor at data_start + offset (offset a multiple of the alignment)
// A string is u64 byte length + bytes (no terminator). An array value is u32 element
// type + u64 count + the elements (arrays may nest).
//
// ggml lists the dimensions fastest-varying first: ne = [in, out] stores a row-major
// [out, in] matrix. shape() / read() use the row-major (numpy) order, ne reversed.
//
// Everything is validated on open against the file size before it is trusted
// (counts, string and array lengths, tensor extents, overlaps, alignment); each
// failure is a depass::Error naming the file, the key or tensor and the bad value.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "depass/io.hpp"  // WeightMode
#include "depass/tokenizer.hpp"
#include "depass/types.hpp"
#include "depass/weights.hpp"

namespace depass {

namespace detail {
class MappedFile;
}

// Metadata value types (gguf_type).
enum class GgufType : uint32_t {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
};
const char* gguf_type_name(GgufType t);  // "uint32", "string", "array", ...

// ggml tensor element types by number (ggml_type): "F32", "F16", "Q4_K", "BF16", ...;
// an unknown number gives "unknown ggml type <n>".
std::string ggml_type_name(uint32_t type);

// One metadata value. Scalars live in i (signed integers), u (unsigned integers and
// bool), f (float32 / float64) or s (string); an array keeps its element type and
// count and fills exactly one of the element vectors.
struct GgufValue {
    GgufType type = GgufType::U8;
    int64_t i = 0;
    uint64_t u = 0;
    double f = 0;
    std::string s;

    GgufType elem = GgufType::U8;      // arrays: element type
    uint64_t count = 0;                // arrays: number of elements
    std::vector<int64_t> ints;         // signed integer elements
    std::vector<uint64_t> uints;       // unsigned integer and bool elements
    std::vector<double> floats;        // float elements
    std::vector<std::string> strings;  // string elements
    std::vector<GgufValue> arrays;     // nested array elements

    std::string type_str() const;  // "uint32", "array of string", ...
};

struct GgufTensorInfo {
    std::string name;
    std::vector<uint64_t> ne;  // ggml order: fastest-varying dimension first
    uint32_t type = 0;         // ggml type number
    uint64_t offset = 0;       // byte offset relative to the data section
    uint64_t nbytes = 0;       // byte length implied by ne and type

    std::vector<int64_t> shape() const;  // row-major order (ne reversed)
};

class GgufFile {
public:
    // Parses and validates the header, metadata and tensor infos. Tensor data is
    // read on demand by read(), from a read-only map of the file (mapped_file.hpp).
    static GgufFile open(const std::string& path);

    const std::string& path() const { return path_; }
    uint32_t version() const { return version_; }
    uint64_t alignment() const { return alignment_; }
    uint64_t data_start() const { return data_start_; }  // absolute byte offset
    uint64_t file_size() const { return file_size_; }

    // ---- metadata ----
    bool has(const std::string& key) const { return index_.count(key) != 0; }
    const GgufValue& value(const std::string& key) const;           // throws when absent
    const std::vector<std::string>& keys() const { return keys_; }  // file order

    // Typed getters. Each throws a depass::Error naming the file and key when the key
    // is absent (versions without a fallback), has another type, or its value does not
    // fit. Integer getters accept every integer type; float getters also integers.
    std::string get_string(const std::string& key) const;
    std::string get_string(const std::string& key, const std::string& fallback) const;
    uint64_t get_uint(const std::string& key) const;
    uint64_t get_uint(const std::string& key, uint64_t fallback) const;
    int64_t get_int(const std::string& key) const;
    double get_float(const std::string& key) const;
    double get_float(const std::string& key, double fallback) const;
    bool get_bool(const std::string& key) const;
    bool get_bool(const std::string& key, bool fallback) const;
    const std::vector<std::string>& get_string_array(const std::string& key) const;
    std::vector<double> get_float_array(const std::string& key) const;  // any numeric elements
    std::vector<int64_t> get_int_array(const std::string& key) const;   // any integer elements

    // ---- tensors ----
    bool has_tensor(const std::string& name) const { return tensor_index_.count(name) != 0; }
    const GgufTensorInfo& tensor(const std::string& name) const;             // throws when absent
    const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }  // file order

    // Reads a tensor converted to T, in row-major shape. F32, F16 and BF16 are
    // supported; any other ggml type throws "unsupported tensor type <type> for tensor
    // '<name>' in <file> (only F32, F16, BF16 are supported)". With a non-empty
    // `expected_shape` (row-major) a different shape is an error.
    template <class T>
    Tensor<T> read(const std::string& name, const std::vector<int64_t>& expected_shape = {}) const;

private:
    std::string path_;
    uint32_t version_ = 0;
    uint64_t file_size_ = 0;
    uint64_t alignment_ = 32;
    uint64_t data_start_ = 0;
    std::vector<std::string> keys_;
    std::map<std::string, GgufValue> values_;
    std::map<std::string, size_t> index_;  // key -> position in keys_
    std::vector<GgufTensorInfo> tensors_;
    std::unordered_map<std::string, size_t> tensor_index_;
    std::shared_ptr<const detail::MappedFile> map_;  // the whole file, read-only
};

// Loads a llama-architecture GGUF model (general.architecture "llama": LLaMA, Mistral
// and their fine-tunes) with F32 / F16 / BF16 tensors, converting weights to T.
//
// Config: llama.embedding_length (D), llama.feed_forward_length (I), llama.block_count
// (L), llama.attention.head_count (H), .head_count_kv (Hkv, default H),
// .layer_norm_rms_epsilon, llama.rope.freq_base (default 10000), llama.context_length,
// llama.vocab_size (or the rows of token_embd.weight).
// Tensors: token_embd, blk.{l}.{attn_norm, attn_q, attn_k, attn_v, attn_output,
// ffn_norm, ffn_gate, ffn_up, ffn_down}, output_norm, output (absent = tied), each
// ".weight".
//
// RoPE: llama.cpp's converter permutes the q / k rows of a Hugging Face checkpoint back
// to the original interleaved-pair layout (within each head, HF row j*Dh/2 + i becomes
// row 2i + j) and llama.cpp rotates adjacent pairs (2i, 2i+1) for this architecture, so
// a GGUF llama model uses RopeStyle::Interleaved with the weights as stored.
// Any other architecture is an error naming general.architecture.
// `mode`: see io.hpp (WeightMode).
template <class T>
Model<T> read_gguf_model(const std::string& path, WeightMode mode = WeightMode::Resident);

// The Config read_gguf_model() derives from a parsed file: the metadata above, the vocabulary
// size (llama.vocab_size or the rows of token_embd.weight), tied = no output.weight, and the
// per-pair RoPE factors of rope_freqs.weight (the one tensor whose data it reads: [Dh/2] F32).
// No weight is read. Throws depass::Error naming the file and the key.
Config gguf_config(const GgufFile& file);

// The vocabulary of a GGUF file (tokenizer.ggml.*), as returned by load_gguf_tokenizer().
//   "llama": SentencePiece-style. The text gets a dummy-prefix space, spaces become
//            U+2581, then adjacent pieces merge by highest score (leftmost on ties) into
//            normal / user-defined pieces; code points that are not pieces fall back to
//            the byte pieces <0xXX>.
//   "gpt2":  byte-level BPE. The GPT-2 pre-tokenizer splits the text; each chunk's bytes
//            map to the GPT-2 byte alphabet and merge by rank (tokenizer.ggml.merges).
// encode(text, bos, eos) adds BOS / EOS when asked and the vocabulary defines them;
// add_bos() reports what the file recommends (tokenizer.ggml.add_bos_token).
class GgufTokenizer : public Tokenizer {
public:
    enum class Kind { Spm, Bpe };

    static GgufTokenizer load(const std::string& path);
    static GgufTokenizer from_file(const GgufFile& file);

    std::vector<int> encode(const std::string& text, bool bos = true, bool eos = false) const override;
    // SPM: the leading space of the first piece (after BOS or at the start) is dropped,
    // byte pieces become their byte; BPE: the piece's bytes. Control tokens give "".
    std::string decode_piece(int prev_id, int id) const override;
    const std::string& piece(int id) const override;
    int vocab_size() const override { return static_cast<int>(tokens_.size()); }
    std::string kind() const override { return kind_ == Kind::Spm ? "gguf-spm" : "gguf-bpe"; }

    int bos_id() const { return bos_id_; }  // -1 when the vocabulary has none
    int eos_id() const { return eos_id_; }
    bool add_bos() const { return add_bos_; }
    int token_type(int id) const;                // 1 normal, 2 unknown, 3 control, 4 user, 5 unused, 6 byte
    int lookup(const std::string& piece) const;  // id of a piece, or -1

private:
    void check_id(int id) const;
    std::vector<int> encode_spm(const std::string& text) const;
    std::vector<int> encode_bpe(const std::string& text) const;

    std::string path_;
    Kind kind_ = Kind::Spm;
    std::vector<std::string> tokens_;
    std::vector<float> scores_;
    std::vector<int> types_;
    std::unordered_map<std::string, int> index_;
    std::unordered_map<std::string, int> merge_rank_;  // "left right" -> rank (BPE)
    int byte_ids_[256] = {};  // SPM: id of <0xXX>; BPE: id of the byte's alphabet character (-1: none)
    int bos_id_ = -1, eos_id_ = -1, unk_id_ = -1;
    bool add_bos_ = false;
    bool add_space_prefix_ = true;
    int pre_ = 0;                 // BPE pre-tokenizer: 0 GPT-2, 1 Llama 3, 2 Qwen2 (tokenizer.ggml.pre)
    bool ignore_merges_ = false;  // BPE: a pre-token that is a token is taken whole (Llama 3)
};

}  // namespace depass
