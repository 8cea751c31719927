// io.hpp -- reading and writing tensor files.
//
//   safetensors: 8-byte little-endian header length, a JSON header
//                {name: {dtype, shape, data_offsets}, "__metadata__": {...}},
//                then raw little-endian data. F32 / F16 / BF16 / F64 are read
//                (from a read-only map of the file, converted to the compute type);
//                F32 / F64 / I32 / I64 written.
//   .npy:        numpy arrays: float16 / float32 / float64 / int32 / int64 read in
//                either byte order and C or Fortran order; written via xtensor.
//   llama2.c:    the v0 .bin checkpoint (7 int32 header + float32 arrays).
//
// Every reader validates before it trusts: sizes, offsets, dtypes, shapes.
// Errors are depass::Error with the file name and the offending field.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "depass/config.hpp"
#include "depass/types.hpp"
#include "depass/weights.hpp"

namespace depass {

namespace detail {
class MappedFile;
}

// ---- safetensors -----------------------------------------------------------

enum class DType { F16, BF16, F32, F64, I32, I64 };
const char* dtype_name(DType t);  // "F32", ...
size_t dtype_size(DType t);

struct TensorInfo {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    uint64_t begin = 0, end = 0;  // byte offsets relative to the data section
    std::string file;             // which file holds it (sharded checkpoints)
};

// A parsed and validated safetensors file (or a set of shards). The header is
// checked on open: JSON well formed, every tensor's offsets inside the file,
// no overlaps, shape x dtype size == byte length.
class SafeTensors {
public:
    // PATH: a .safetensors file, or a model.safetensors.index.json (shards).
    static SafeTensors open(const std::string& path);

    bool has(const std::string& name) const;
    const TensorInfo& info(const std::string& name) const;  // throws if absent
    std::vector<std::string> names() const;                 // sorted
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    const std::string& path() const { return path_; }

    // Reads a tensor, converting to T. Throws if the dtype is not a float type
    // (for T floating) or if `expected_shape` (when non-empty) differs.
    template <class T>
    Tensor<T> read(const std::string& name, const std::vector<int64_t>& expected_shape = {}) const;

private:
    std::string path_;
    std::map<std::string, TensorInfo> tensors_;
    std::map<std::string, std::string> metadata_;
    std::map<std::string, uint64_t> data_start_;  // per file: byte offset of the data section
    std::map<std::string, std::shared_ptr<const detail::MappedFile>> maps_;  // per file: its read-only map
    void map_files();
};

// Writes tensors (in the given order) to PATH atomically: the file is written
// under a temporary name next to PATH and renamed on success, so a failure
// never leaves a partial file. Float tensors are stored as `float_dtype`
// (F32 or F64); int tensors as I64.
struct NamedTensor {
    std::string name;
    std::vector<int64_t> shape;
    std::vector<double> values;  // exact for float and double sources
    bool is_int = false;
};
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors, DType float_dtype,
                       const std::map<std::string, std::string>& metadata = {});

// ---- .npy ------------------------------------------------------------------

// Reads a float16/32/64 (or int32/int64) .npy as T, row-major (a Fortran-order file is
// reordered, a big-endian one byte-swapped); rejects non-finite values when
// `require_finite`, integer dtypes when `floats_only`. Throws depass::Error naming the file.
template <class T>
Tensor<T> read_npy(const std::string& path, bool require_finite = true, bool floats_only = false);

// Writes a .npy atomically (temporary name + rename).
template <class T>
void write_npy(const std::string& path, const Tensor<T>& t);

// ---- llama2.c --------------------------------------------------------------

// Reads a llama2.c v0 checkpoint. The file size must equal exactly what the
// header implies (shared or separate classifier). RoPE style = Interleaved.
template <class T>
Model<T> read_llama2c(const std::string& path);

// The Config of a llama2.c checkpoint from its 28-byte header alone, checked against the
// file size as read_llama2c() checks it. No weight is read.
Config read_llama2c_config(const std::string& path);

// ---- Hugging Face directory -----------------------------------------------
// Reads a Hugging Face config.json (model_type llama, mistral, qwen2, gpt2).
// Throws depass::Error naming the file and the missing / invalid field.
Config read_hf_config(const std::string& path);

// How a loaded model holds its weights.
//   Resident: every tensor is widened to T when the model is loaded.
//   Streamed: the embeddings, final norm and unembedding are widened when the model is
//             loaded; the tensors of the blocks stay in the file as stored (F32 / F16 /
//             BF16, memory-mapped), and each pass widens one block at a time when it
//             reaches it (Model::layer). Memory: the file's pages are released after each
//             widening, so what stays resident is the widened outer tensors plus one
//             widened block. Results are bit-identical to Resident (the same conversion).
//             For safetensors and GGUF files; a llama2.c file (float32, small) is always
//             loaded resident.
enum class WeightMode { Resident, Streamed };

// config.json + model.safetensors (or the sharded index). Every expected tensor
// must be present with the expected shape; unexpected tensors are an error
// (except the known-harmless buffers such as rotary inv_freq / attn.bias masks).
template <class T>
Model<T> read_hf_model(const std::string& dir, WeightMode mode = WeightMode::Resident);

// ---- any model file ----------------------------------------------------------
// The Config of the model at PATH (the same paths as load_model) without reading any weight:
// a Hugging Face directory's config.json, a GGUF file's metadata (gguf_config), a llama2.c
// .bin's header. Throws depass::Error naming the file and the field.
Config read_config(const std::string& path);

// Loads a model from PATH: a Hugging Face directory (config.json + model.safetensors
// or model.safetensors.index.json with shards), a llama2.c v0 .bin checkpoint or a GGUF
// file. Weights are converted to T. Throws depass::Error naming the file, tensor or field.
template <class T>
Model<T> load_model(const std::string& path, WeightMode mode = WeightMode::Resident);

// ---- small file helpers ----------------------------------------------------

std::string read_text_file(const std::string& path);  // throws naming the file
bool is_directory(const std::string& path);
bool file_exists(const std::string& path);

// Writes `bytes` to PATH via PATH.tmp-XXXX + rename. Throws naming PATH.
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace depass
