// model_info.hpp -- what a model file holds, read from its headers only.
//
//   ModelFileInfo info = describe_model_file("Qwen2.5-0.5B/");
//
// gives the format, the Config (read_config), every stored tensor with its dtype, shape and
// byte length, the total bytes of the weight files, and the tokenizer files that the command
// line would look at, in its order. No tensor data is read (a GGUF file's rope_freqs.weight,
// [Dh/2] floats, is configuration and is read with the config).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "depass/config.hpp"

namespace depass {

struct StoredTensor {
    std::string name;
    std::string dtype;           // "F32", "BF16", "F16", "Q4_K", ... as the file names it
    std::vector<int64_t> shape;  // row-major
    uint64_t bytes = 0;          // as stored
    std::string file;            // which file holds it (sharded checkpoints)
};

struct ModelFileInfo {
    std::string path;
    std::string format;  // "huggingface", "gguf" or "llama2c"
    Config cfg;
    std::vector<StoredTensor> tensors;      // file order (GGUF, llama2.c) or sorted by name (safetensors)
    std::vector<std::string> weight_files;  // the files holding the tensors
    uint64_t file_bytes = 0;                // total size of weight_files
    uint64_t tensor_bytes = 0;              // sum of the tensors' bytes
    // Tokenizers present, in the order the command line tries them: "embedded (<file>)" for a
    // GGUF vocabulary, then tokenizer.json, tokenizer.model, vocab.json (+ merges.txt),
    // tokenizer.bin, tok<V>.bin inside / next to the model. Empty: none.
    std::vector<std::string> tokenizers;
    // A Hugging Face directory may hold config.json alone (before the weights are
    // downloaded): it is described, with no tensors, and config_dtype says how the weights
    // will be stored ("bfloat16", ...; "" when the config does not say).
    bool weights_present = true;
    std::string config_dtype;
};

// Reads the headers of the model at PATH (a Hugging Face directory or its config.json /
// .safetensors / index, a .gguf file, a llama2.c .bin). Throws depass::Error naming the file.
ModelFileInfo describe_model_file(const std::string& path);

// What today's loader holds besides the widened weights while it loads (to scalar_bytes per
// value): a llama2.c file is read whole; a GGUF / safetensors tensor is read raw and converted
// one at a time, so the largest tensor twice (raw + converted).
uint64_t load_transient_bytes(const ModelFileInfo& info, int scalar_bytes);

// Tensors grouped for display: every "layers.<l>." / "blk.<l>." / "h.<l>." index replaced by
// "*", with the count, the dtypes and the total bytes of each group (first-seen order).
struct TensorGroup {
    std::string pattern;  // e.g. "model.layers.*.mlp.up_proj.weight"
    int count = 0;
    std::string dtypes;          // "BF16" or "F16,F32"
    std::vector<int64_t> shape;  // of the first member
    uint64_t bytes = 0;
};
std::vector<TensorGroup> group_tensors(const std::vector<StoredTensor>& tensors);

}  // namespace depass
