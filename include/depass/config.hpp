// config.hpp -- the architecture as data.
//
// One Config describes every supported model; the forward pass branches on its
// flags (norm kind, MLP kind, biases, RoPE style, learned positions, tied
// embeddings). There is no class per model.
#pragma once

#include <string>
#include <vector>

#include "depass/ops.hpp"  // NormKind, Activation, RopeStyle

namespace depass {

enum class MlpKind { SwiGLU, GeluMLP };  // gated (LLaMA) / ungated (GPT-2)

struct Config {
    std::string model_type;  // "llama", "mistral", "qwen2", "gpt2", "llama2c"
    std::string source;      // file the config was read from (for error messages)

    int D = 0;              // hidden size
    int I = 0;              // MLP width
    int L = 0;              // layers
    int H = 0;              // query heads
    int Hkv = 0;            // key/value heads (GQA when Hkv < H)
    int Dh = 0;             // head dimension
    int V = 0;              // vocabulary size
    int max_positions = 0;  // longest sequence the model supports

    double norm_eps = 1e-5;
    double rope_theta = 10000.0;

    NormKind norm = NormKind::RMSNorm;
    MlpKind mlp = MlpKind::SwiGLU;
    Activation act = Activation::SiLU;
    RopeStyle rope = RopeStyle::Half;
    RopeScaling rope_scaling;               // none unless the config asks for it
    std::vector<double> rope_freq_factors;  // GGUF `rope_freqs.weight`: per-pair divisor of the
                                            // frequency ([Dh/2]); empty = none
    bool learned_positions = false;         // GPT-2 adds wpe[n]
    bool tied_embeddings = false;           // unembedding reuses the token embedding
    bool qkv_bias = false;                  // Qwen2, GPT-2
    bool o_bias = false;                    // GPT-2
    bool mlp_bias = false;                  // GPT-2 (b_1 and b_2)

    int bos_id = 1;
    int eos_id = 2;

    int kv_group() const { return H / Hkv; }  // query heads per KV head
};

// The model families. preset() gives a family's architecture flags (norm, MLP and
// activation kind, RoPE layout, biases, learned positions, the usual tied-embedding
// setting) with every size left 0 for a reader to fill; readers then apply what their
// file says beyond the family (e.g. a Llama's attention_bias, a GGUF's RoPE layout).
//   llama, mistral  RMSNorm, SwiGLU/SiLU, rotate-half RoPE, no biases, untied
//   qwen2           as llama, plus q/k/v biases
//   gpt2            LayerNorm, GELU (tanh) MLP, learned positions, every bias, tied
//   llama2c         as llama with llama2.c's interleaved RoPE pairs, tied
enum class Arch { Llama, Mistral, Qwen2, Gpt2, Llama2c };
Config preset(Arch arch);
// "llama", "mistral", "qwen2", "gpt2", "llama2c" -> Arch; throws naming the value.
Arch parse_arch(const std::string& model_type);

// The RoPE table of a config: its theta and scaling, each pair then divided by
// cfg.rope_freq_factors[i] when given (GGUF `rope_freqs.weight`).
std::vector<double> rope_inv_freq(const Config& cfg);

// Bounds that every reader checks before it allocates anything from a file's sizes:
// each dimension (D, I, L, H, Hkv, Dh, V, max_positions) at most kMaxDim, each weight
// matrix (and H * Dh) at most kMaxElements values.
constexpr int kMaxDim = 1 << 24;
constexpr long long kMaxElements = (1LL << 31) - 1;  // fits an int

// Checks the internal consistency of a config (sizes in 1..kMaxDim, H % Hkv == 0,
// D == H * Dh for models that require it, ...). Throws depass::Error.
void validate_config(const Config& cfg);

std::string describe(const Config& cfg);  // one line for logs and --help output

}  // namespace depass
