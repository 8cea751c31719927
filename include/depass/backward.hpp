// backward.hpp -- gradients of one scalar of the recorded forward pass, for the gradient
// baselines (integrated gradients, input x gradient, gradient norm, attribution patching).
//
// The scalar is the log-probability of a target token at a position:
//     f = log softmax(logits[pos])[target]
// backward() walks the blocks of forward() in reverse, calling the `<op>_backward` written
// beside every forward op (src/ops/*.cpp), and returns df/dh[0] (the input embeddings) and
// df/d of the recorded activations DePass attributes through: each layer's per-head
// attention context (before W_O) and each layer's MLP activation (the input of W_down).
//
// Input of the gradient methods. The "input" x of integrated gradients and input x gradient
// is the TOKEN embedding E[ids[n]]; GPT-2's learned position embedding P[n] is kept fixed
// (h[0] = alpha E[ids] + P on the integration path). Positions are not something a token
// deletion can remove, so they are not attributed. Since h[0] = E[ids] + P, the gradient
// with respect to the per-position input x[n] = E[ids[n]] equals df/dh[0][n]. (That is not
// the gradient of the weight matrix E: a token occurring twice sums its rows, and with tied
// embeddings the unembedding adds its own term; no gradient method here needs it.)
#pragma once

#include <vector>

#include "depass/forward.hpp"
#include "depass/types.hpp"
#include "depass/weights.hpp"

namespace depass {

template <class T>
struct Gradients {
    int pos = -1, target = -1;
    double f = 0;                  // log softmax(logits[pos])[target] at the traced point
    Mat<T> h0;                     // [N, D] df/dh[0]
    std::vector<Mat<T>> attn_ctx;  // L x [N, H*Dh] df/d attn_ctx (head h: columns h*Dh .. h*Dh+Dh-1)
    std::vector<Mat<T>> mlp_act;   // L x [N, I]    df/d mlp_act
};

// f = log softmax(trace.logits[pos])[target], in double (max-shifted log-sum-exp).
template <class T>
double target_log_prob(const Trace<T>& trace, int pos, int target);

// The gradient of f with respect to the logits row `pos`: e_target - softmax(logits[pos]).
template <class T>
Vec<T> log_softmax_backward(const Mat<T>& logits, int pos, int target);

// Reverse pass through the trace of forward() / forward_from_embeddings() (which may have
// unembedded row `pos` only). Queries, keys and values are recomputed from the recorded h[l]
// (the trace does not store them). Throws
// depass::Error naming pos / target when out of range.
template <class T>
Gradients<T> backward(const Model<T>& model, const Trace<T>& trace, int pos, int target);

// The same for the target's logit itself, f = logits[pos][target] (Gradients::f is that logit).
template <class T>
Gradients<T> logit_backward(const Model<T>& model, const Trace<T>& trace, int pos, int target);

// f evaluated from input embeddings h0 [N, D] (ids fix N): forward_from_embeddings (logits of
// row `pos` only) + target_log_prob.
template <class T>
double log_prob_from_embeddings(const Model<T>& model, const Mat<T>& h0, const std::vector<int>& ids, int pos,
                                int target);

// The token-embedding part of h[0]: x[n] = E[ids[n]] (without learned positions). [N, D]
template <class T>
Mat<T> token_embeddings(const Model<T>& model, const std::vector<int>& ids);

}  // namespace depass
