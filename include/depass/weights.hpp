// weights.hpp -- one weights struct for every architecture and file format.
//
// Shapes use the dimension letters of types.hpp. All linear weights are
// (out, in) and applied as x * W^T. Optional tensors (biases, LayerNorm beta,
// learned positions, separate lm_head) are empty (size 0) when the model has none.
#pragma once

#include "depass/config.hpp"
#include "depass/types.hpp"

#include <string>
#include <vector>

namespace depass {

template <class T>
struct LayerWeights {
    Vec<T> norm1_g, norm1_b;  // [D] pre-attention norm gain (and LayerNorm beta)
    Mat<T> wq;                // [H*Dh, D]
    Mat<T> wk;                // [Hkv*Dh, D]
    Mat<T> wv;                // [Hkv*Dh, D]
    Mat<T> wo;                // [D, H*Dh]
    Vec<T> bq, bk, bv;        // [H*Dh], [Hkv*Dh], [Hkv*Dh] (Qwen2, GPT-2)
    Vec<T> bo;                // [D] (GPT-2)
    Vec<T> norm2_g, norm2_b;  // [D] pre-MLP norm
    Mat<T> w_gate;            // [I, D] SwiGLU gate; empty for GeluMLP
    Mat<T> w_up;              // [I, D] SwiGLU up / GPT-2 c_fc (W_1)
    Mat<T> w_down;            // [D, I] SwiGLU down / GPT-2 c_proj (W_2)
    Vec<T> b_up, b_down;      // [I], [D] (GPT-2)
};

template <class T>
struct Weights {
    Mat<T> tok_emb;        // [V, D]
    Mat<T> pos_emb;        // [max_positions, D] (GPT-2 learned positions) or empty
    std::vector<LayerWeights<T>> layers;  // L entries
    Vec<T> normf_g, normf_b;  // [D] final norm
    Mat<T> lm_head;        // [V, D]; empty when tied (use tok_emb)

    const Mat<T>& unembedding() const { return lm_head.size() ? lm_head : tok_emb; }
};

template <class T>
struct Model {
    Config cfg;
    Weights<T> w;
};

// Checks every tensor of `w` has the shape `cfg` requires (used by the loaders,
// and by tests that build models in memory). Throws depass::Error naming the tensor.
template <class T>
void check_weights(const Config& cfg, const Weights<T>& w);

// A randomly initialised model (fixed seed) for tests and benchmarks. Weights
// are drawn N(0, std^2); norm gains around 1.
template <class T>
Model<T> random_model(const Config& cfg, uint64_t seed, double std = 0.3);

// The shapes of the llama2.c "stories" checkpoints, for random models in benchmarks
// and evaluations: "stories15M" (D 288, L 6, H 6, I 768) and "stories110M" (D 768,
// L 12, H 12, I 2048); both LLaMA (RMSNorm, SwiGLU, RoPE in llama2.c's interleaved layout), V 32000, tied
// unembedding. Throws depass::Error naming an unknown shape.
Config stories_shape(const std::string& name);

// Converts the scalar type of a model (float <-> double).
template <class To, class From>
Model<To> cast_model(const Model<From>& m);

}  // namespace depass
