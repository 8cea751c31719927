// forward.hpp -- the recorded forward pass.
//
// forward<T>() runs the model once and returns a Trace: every residual state and
// every quantity DePass freezes (attention probabilities, per-token norm factors,
// MLP activations), plus the logits. The decomposed pass (decompose.hpp) reads
// the trace; it never recomputes queries, keys, softmax or norm statistics.
#pragma once

#include <functional>
#include <vector>

#include "depass/ops.hpp"  // NormFactors
#include "depass/types.hpp"
#include "depass/weights.hpp"

namespace depass {

template <class T>
struct LayerTrace {
    NormFactors<T> norm1;       // pre-attention norm of h[l]
    std::vector<Mat<T>> probs;  // H x [N, N] attention probabilities (query, key)
    Mat<T> attn_ctx;            // [N, H*Dh] sum_k A[q,k] v[k] per head, before W_O (includes b_V)
    Mat<T> attn_out;            // [N, D] attention block output (after W_O, incl. b_O)
    Mat<T> m;                   // [N, D] post-attention residual h[l] + attn_out
    NormFactors<T> norm2;       // pre-MLP norm of m[l]
    Mat<T> mlp_pre;             // [N, I] SwiGLU: x W_gate^T; GELU MLP: x W_1^T + b_1
    Mat<T> mlp_up;              // [N, I] SwiGLU: x W_up^T (empty for GELU MLP)
    Mat<T> mlp_act;             // [N, I] input of the down projection
    Mat<T> mlp_out;             // [N, D] MLP block output (incl. b_2)
};

template <class T>
struct Trace {
    std::vector<int> ids;               // [N]
    std::vector<Mat<T>> h;              // L+1 x [N, D]: h[0] embeddings, h[l+1] output of block l
    std::vector<LayerTrace<T>> layers;  // L
    NormFactors<T> normf;               // final norm of h[L]
    Mat<T> final_norm_out;              // [N, D]
    Mat<T> logits;                      // [N, V]

    int N() const { return static_cast<int>(ids.size()); }
};

// Queries, keys and values of one block from its normed input x [N, D]:
//   q = x W_q^T + b_q,  k = x W_k^T + b_k,  v = x W_v^T + b_v,  then RoPE on q and k.
// (The backward pass recomputes them with the same function.)
template <class T>
struct AttentionInputs {
    Mat<T> q;  // [N, H*Dh]
    Mat<T> k;  // [N, Hkv*Dh]
    Mat<T> v;  // [N, Hkv*Dh]
};
template <class T>
AttentionInputs<T> attention_inputs(const Config& c, const LayerWeights<T>& lw, const Mat<T>& x,
                                    const std::vector<double>& inv_freq);

// One transformer block, h[l] [N, D] -> h[l+1]: the one block loop body of every
// forward pass. With `rec` it records the block's frozen quantities (norm factors,
// attention probabilities, MLP activations) and intermediate states into *rec.
template <class T>
Mat<T> block_forward(const Config& c, const LayerWeights<T>& lw, const std::vector<double>& inv_freq,
                     const Mat<T>& h, LayerTrace<T>* rec);

// The blocks `layer` .. L-1 applied to a state h (entering block `layer`), recording
// nothing: returns h[L]. Used to re-run the network from an edited residual state.
template <class T>
Mat<T> forward_blocks(const Model<T>& model, Mat<T> h, int layer);

// The same from the post-attention residual m[layer] [N, D]: the MLP half of block `layer`,
// then blocks layer+1 .. L-1, recording nothing: returns h[L]. Used to re-run the network
// after an edit of one block's attention output.
template <class T>
Mat<T> forward_blocks_from_mid(const Model<T>& model, const Mat<T>& m, int layer);

// Checks ids (non-empty, each in [0, V), N <= max_positions). Throws depass::Error
// naming the offending value.
void check_ids(const Config& cfg, const std::vector<int>& ids);

// Called by a recorded pass after each block with the block's index: for progress, or to
// stop a long pass (an exception thrown from it ends the pass and propagates).
using BlockObserver = std::function<void(int layer)>;

// The recorded forward pass.
template <class T>
Trace<T> forward(const Model<T>& model, const std::vector<int>& ids, const BlockObserver& after_block = {});

// The same recorded pass from given input embeddings h0 [N, D] (instead of embed(ids)):
// used by the gradient methods, which evaluate the model at scaled embeddings (integrated
// gradients) and at perturbed ones (finite differences). `ids` only fixes N and is stored
// in the trace; forward(model, ids) == forward_from_embeddings(model, embed(ids), ids).
// `logits_row` >= 0 unembeds that position only (the other rows of `logits` are left 0):
// a gradient of one position's log-probability needs no other logits, and for a large
// vocabulary the unembedding is a good part of the pass.
template <class T>
Trace<T> forward_from_embeddings(const Model<T>& model, Mat<T> h0, const std::vector<int>& ids,
                                 int logits_row = -1, const BlockObserver& after_block = {});

// Greedy decoding: extends `ids` by up to n_new tokens (stops at EOS or at the
// model's context length). Returns the new ids only.
template <class T>
std::vector<int> generate_greedy(const Model<T>& model, std::vector<int> ids, int n_new);

}  // namespace depass
