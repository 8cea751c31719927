// ops.hpp -- every transformer operation as one free function, templated on the
// scalar type. The decomposed twin of each op lives in decompose.hpp and, in the
// source, directly below the op it mirrors (src/ops/*.cpp).
//
// Shapes are given with the letters of types.hpp. Each op checks the shapes of
// its arguments on entry and throws depass::Error on a mismatch.
#pragma once

#include "depass/config.hpp"
#include "depass/forward.hpp"
#include "depass/types.hpp"

#include <vector>

namespace depass {

// ---- embedding ---------------------------------------------------------------
// x[n] = E[ids[n]] (+ P[n] with learned positions).        E [V, D], P [>=N, D] -> [N, D]
template <class T>
Mat<T> embed(const Mat<T>& tok_emb, const Mat<T>& pos_emb, const std::vector<int>& ids);

// ---- norms ---------------------------------------------------------------------
// RMSNorm: y[n] = g * x[n] / sqrt(mean(x[n]^2) + eps).      x [N, D], g [D] -> [N, D]
template <class T>
Mat<T> rms_norm(const Mat<T>& x, const Vec<T>& g, double eps, NormFactors<T>* factors = nullptr);

// LayerNorm: y[n] = g * (x[n] - mean) / sqrt(var + eps) + b  (population variance).
template <class T>
Mat<T> layer_norm(const Mat<T>& x, const Vec<T>& g, const Vec<T>& b, double eps,
                  NormFactors<T>* factors = nullptr);

// The norm the config names (RMSNorm or LayerNorm).
template <class T>
Mat<T> apply_norm(const Config& cfg, const Mat<T>& x, const Vec<T>& g, const Vec<T>& b,
                  NormFactors<T>* factors = nullptr);

// ---- linear --------------------------------------------------------------------
// y = x W^T + b.                       x [N, in], W [out, in], b [out] or empty -> [N, out]
template <class T>
Mat<T> linear(const Mat<T>& x, const Mat<T>& W, const Vec<T>& b);

// ---- rotary position embedding ---------------------------------------------------
// Rotates each head of x [N, nheads*Dh] in place by angle pos * theta^(-2i/Dh) for
// pair i. Interleaved (llama2.c) pairs are (2i, 2i+1); Half (Hugging Face) pairs
// are (i, i + Dh/2). Positions start at `pos0`.
template <class T>
void rope(Mat<T>& x, int nheads, int Dh, RopeStyle style, double theta, int pos0 = 0);

// ---- attention -----------------------------------------------------------------
// Causal softmax attention with grouped KV heads: query head h reads KV head
// h / (H / Hkv).  q [N, H*Dh], k, v [N, Hkv*Dh] -> context [N, H*Dh].
// A_h = softmax(q_h k_g^T / sqrt(Dh) + causal mask); context_h = A_h v_g.
// The probabilities are returned in `probs` (H matrices [N, N]) when non-null.
template <class T>
Mat<T> attention(const Mat<T>& q, const Mat<T>& k, const Mat<T>& v, int H, int Hkv, int Dh,
                 std::vector<Mat<T>>* probs = nullptr);

// ---- MLP activations -------------------------------------------------------------
template <class T>
T silu(T x);        // x * sigmoid(x)
template <class T>
T gelu_tanh(T x);   // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))   (GPT-2 "gelu_new")
// act(x) / x written without the division (sigmoid(x) for SiLU, 0.5(1+tanh(..)) for
// GELU), used by the Taylor rule.
template <class T>
T act_over_x(Activation act, T x);

// SwiGLU: a = silu(x W_g^T) * (x W_u^T); out = a W_d^T.   x [N, D] -> out [N, D]
// The gate pre-activation, up projection and activation are returned when asked.
template <class T>
Mat<T> swiglu_mlp(const Mat<T>& x, const Mat<T>& w_gate, const Mat<T>& w_up, const Mat<T>& w_down,
                  Mat<T>* pre = nullptr, Mat<T>* up = nullptr, Mat<T>* act = nullptr);

// GELU MLP (GPT-2): a = gelu(x W_1^T + b_1); out = a W_2^T + b_2.
template <class T>
Mat<T> gelu_mlp(const Mat<T>& x, const Mat<T>& w1, const Vec<T>& b1, const Mat<T>& w2,
                const Vec<T>& b2, Mat<T>* pre = nullptr, Mat<T>* act = nullptr);

// ---- unembedding ---------------------------------------------------------------
// logits = x W_U^T.                            x [N, D], W_U [V, D] -> [N, V]
template <class T>
Mat<T> unembed(const Mat<T>& x, const Mat<T>& W_U);

}  // namespace depass
