// weights.hpp -- one weights struct for every architecture and file format.
//
// Shapes use the dimension letters of types.hpp. All linear weights are
// (out, in) and applied as x * W^T. Optional tensors (biases, LayerNorm beta,
// learned positions, separate lm_head) are empty (size 0) when the model has none.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "depass/config.hpp"
#include "depass/types.hpp"

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
    Mat<T> tok_emb;                       // [V, D]
    Mat<T> pos_emb;                       // [max_positions, D] (GPT-2 learned positions) or empty
    std::vector<LayerWeights<T>> layers;  // L entries
    Vec<T> normf_g, normf_b;              // [D] final norm
    Mat<T> lm_head;                       // [V, D]; empty when tied (use tok_emb)

    const Mat<T>& unembedding() const { return lm_head.size() ? lm_head : tok_emb; }
};

// Where the blocks of a streamed model stay: in the file as stored (F32 / F16 / BF16,
// memory-mapped, see io.hpp: WeightMode). load(l, out) widens block l into `out` with the
// same conversion a resident load uses, so a streamed model computes bit for bit what the
// resident one does. Implemented by the file readers (src/io).
template <class T>
class LayerSource {
public:
    virtual ~LayerSource() = default;
    virtual void load(int l, LayerWeights<T>& out) const = 0;
};

template <class T>
struct Model {
    Config cfg;
    Weights<T> w;                                    // w.layers is empty when the blocks are streamed
    std::shared_ptr<const LayerSource<T>> streamed;  // set: blocks are widened when a pass reaches them

    // Block l's weights. Every block loop (forward, decomposed pass, backward) reads them
    // through here: the resident block, or block l widened into `scratch` (which the caller
    // keeps for as long as it uses the result, and reuses for the next block).
    const LayerWeights<T>& layer(int l, LayerWeights<T>& scratch) const {
        if (!streamed) return w.layers[static_cast<size_t>(l)];
        streamed->load(l, scratch);
        return scratch;
    }
};

// Checks every tensor of `w` has the shape `cfg` requires (used by the loaders,
// and by tests that build models in memory). Throws depass::Error naming the tensor.
// With `layers_streamed`, w.layers must be empty (the blocks are checked by
// check_layer_weights as they are widened).
template <class T>
void check_weights(const Config& cfg, const Weights<T>& w, bool layers_streamed = false);
template <class T>
void check_layer_weights(const Config& cfg, int l, const LayerWeights<T>& ly);

// A randomly initialised model (fixed seed) for tests and benchmarks. Weights
// are drawn N(0, std^2); norm gains around 1.
template <class T>
Model<T> random_model(const Config& cfg, uint64_t seed, double std = 0.3);

// The shapes of the llama2.c "stories" checkpoints, for random models in benchmarks
// and evaluations: "stories15M" (D 288, L 6, H 6, I 768) and "stories110M" (D 768,
// L 12, H 12, I 2048); both LLaMA (RMSNorm, SwiGLU, RoPE in llama2.c's interleaved layout), V 32000, tied
// unembedding. Throws depass::Error naming an unknown shape.
Config stories_shape(const std::string& name);

// Converts the scalar type of a model (float <-> double). A streamed model cannot be
// converted (load it again in the other type): throws depass::Error.
template <class To, class From>
Model<To> cast_model(const Model<From>& m);

}  // namespace depass
