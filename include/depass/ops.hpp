// ops.hpp -- every transformer operation as one free function, templated on the
// scalar type. The decomposed twin of each op lives in decompose.hpp and, in the
// source, directly below the op it mirrors (src/ops/*.cpp). So does each op's backward
// (`<op>_backward`): the gradient of a scalar f with respect to the op's input, given
// the gradient with respect to its output (chain rule; see docs/gradients.md).
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
// Backward of embed (the part of a scalar f's weight gradient that flows through the
// embedding lookup): with dx = df/dx [N, D],
//   df/dE[v] = sum_{n : ids[n] = v} dx[n]   ([V, D], rows of unused tokens zero);
// with tied embeddings the full df/dE also has the unembedding's term (unembed_backward).
//   df/dP[n] = dx[n] (learned positions: the same matrix, not repeated here).
template <class T>
Mat<T> embed_backward(const Mat<T>& dx, const std::vector<int>& ids, long V);

// ---- norms ---------------------------------------------------------------------
// RMSNorm: y[n] = g * x[n] / sqrt(mean(x[n]^2) + eps).      x [N, D], g [D] -> [N, D]
template <class T>
Mat<T> rms_norm(const Mat<T>& x, const Vec<T>& g, double eps, NormFactors<T>* factors = nullptr);
// Backward of rms_norm: dx = df/dx from dy = df/dy (the factor r recomputed from x).   -> [N, D]
template <class T>
Mat<T> rms_norm_backward(const Mat<T>& x, const Vec<T>& g, double eps, const Mat<T>& dy);

// LayerNorm: y[n] = g * (x[n] - mean) / sqrt(var + eps) + b  (population variance).
template <class T>
Mat<T> layer_norm(const Mat<T>& x, const Vec<T>& g, const Vec<T>& b, double eps,
                  NormFactors<T>* factors = nullptr);
// Backward of layer_norm with respect to x (beta does not enter it).               -> [N, D]
template <class T>
Mat<T> layer_norm_backward(const Mat<T>& x, const Vec<T>& g, double eps, const Mat<T>& dy);

// The norm the config names (RMSNorm or LayerNorm).
template <class T>
Mat<T> apply_norm(const Config& cfg, const Mat<T>& x, const Vec<T>& g, const Vec<T>& b,
                  NormFactors<T>* factors = nullptr);
// Backward of apply_norm with respect to x.
template <class T>
Mat<T> apply_norm_backward(const Config& cfg, const Mat<T>& x, const Vec<T>& g, const Mat<T>& dy);

// ---- linear --------------------------------------------------------------------
// y = x W^T + b.                       x [N, in], W [out, in], b [out] or empty -> [N, out]
template <class T>
Mat<T> linear(const Mat<T>& x, const Mat<T>& W, const Vec<T>& b);
// Backward of linear: dx = dy W ([N, in]); when asked, dW = dy^T x ([out, in]) and
// db = sum_n dy[n] ([out]).
template <class T>
Mat<T> linear_backward(const Mat<T>& x, const Mat<T>& W, const Mat<T>& dy, Mat<T>* dW = nullptr,
                       Vec<T>* db = nullptr);

// ---- rotary position embedding ---------------------------------------------------
// The inverse frequency of every pair, [Dh/2]: f_i = theta^(-2i/Dh), then scaled as
// `scaling` says (see RopeScaling in config.hpp). Computed in double.
std::vector<double> rope_inv_freq(int Dh, double theta, const RopeScaling& scaling = {});
// The table of a config: its theta and scaling, each pair then divided by
// cfg.rope_freq_factors[i] when given (GGUF `rope_freqs.weight`).
std::vector<double> rope_inv_freq(const Config& cfg);

// Rotates each head of x [N, nheads*Dh] in place by angle pos * inv_freq[i] for pair i
// (inv_freq [Dh/2], from rope_inv_freq). Interleaved (llama2.c) pairs are (2i, 2i+1);
// Half (Hugging Face) pairs are (i, i + Dh/2). Positions start at `pos0`.
template <class T>
void rope(Mat<T>& x, int nheads, int Dh, RopeStyle style, const std::vector<double>& inv_freq, int pos0 = 0);
// Backward of rope, in place on the gradient dy -> dx: each pair is rotated by the
// opposite angle (a rotation's transpose is its inverse).
template <class T>
void rope_backward(Mat<T>& d, int nheads, int Dh, RopeStyle style, const std::vector<double>& inv_freq,
                   int pos0 = 0);

// ---- attention -----------------------------------------------------------------
// Causal softmax attention with grouped KV heads: query head h reads KV head
// h / (H / Hkv).  q [N, H*Dh], k, v [N, Hkv*Dh] -> context [N, H*Dh].
// A_h = softmax(q_h k_g^T / sqrt(Dh) + causal mask); context_h = A_h v_g.
// The probabilities are returned in `probs` (H matrices [N, N]) when non-null.
template <class T>
Mat<T> attention(const Mat<T>& q, const Mat<T>& k, const Mat<T>& v, int H, int Hkv, int Dh,
                 std::vector<Mat<T>>* probs = nullptr);
// Backward of attention: from dctx = df/dcontext [N, H*Dh] and the recorded probabilities,
// the gradients dq [N, H*Dh], dk, dv [N, Hkv*Dh] (KV heads shared by a group accumulate).
template <class T>
void attention_backward(const Mat<T>& q, const Mat<T>& k, const Mat<T>& v, const std::vector<Mat<T>>& probs,
                        const Mat<T>& dctx, int H, int Hkv, int Dh, Mat<T>& dq, Mat<T>& dk, Mat<T>& dv);

// ---- MLP activations -------------------------------------------------------------
template <class T>
T silu(T x);        // x * sigmoid(x)
template <class T>
T gelu_tanh(T x);   // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))   (GPT-2 "gelu_new")
// act(x) / x written without the division (sigmoid(x) for SiLU, 0.5(1+tanh(..)) for
// GELU), used by the Taylor rule.
template <class T>
T act_over_x(Activation act, T x);
// d act / dx:  SiLU' = s (1 + x (1 - s)) with s = sigmoid(x);
// GELU' = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 * 0.044715 x^2), t = tanh(c (x + 0.044715 x^3)).
template <class T>
T act_derivative(Activation act, T x);

// SwiGLU: a = silu(x W_g^T) * (x W_u^T); out = a W_d^T.   x [N, D] -> out [N, D]
// The gate pre-activation, up projection and activation are returned when asked.
template <class T>
Mat<T> swiglu_mlp(const Mat<T>& x, const Mat<T>& w_gate, const Mat<T>& w_up, const Mat<T>& w_down,
                  Mat<T>* pre = nullptr, Mat<T>* up = nullptr, Mat<T>* act = nullptr);
// Backward of swiglu_mlp from the recorded gate pre-activation and up projection:
// dx = df/dx [N, D] from dout = df/dout [N, D]; `dact`, when given, receives df/da [N, I]
// (the gradient at the recorded activation, the input of the down projection).
template <class T>
Mat<T> swiglu_mlp_backward(const Mat<T>& w_gate, const Mat<T>& w_up, const Mat<T>& w_down, const Mat<T>& pre,
                           const Mat<T>& up, const Mat<T>& dout, Mat<T>* dact = nullptr);

// GELU MLP (GPT-2): a = gelu(x W_1^T + b_1); out = a W_2^T + b_2.
template <class T>
Mat<T> gelu_mlp(const Mat<T>& x, const Mat<T>& w1, const Vec<T>& b1, const Mat<T>& w2,
                const Vec<T>& b2, Mat<T>* pre = nullptr, Mat<T>* act = nullptr);
// Backward of gelu_mlp from the recorded pre-activation p; `dact` as for swiglu_mlp_backward.
template <class T>
Mat<T> gelu_mlp_backward(const Mat<T>& w1, const Mat<T>& w2, const Mat<T>& pre, const Mat<T>& dout,
                         Mat<T>* dact = nullptr);

// ---- unembedding ---------------------------------------------------------------
// logits = x W_U^T.                            x [N, D], W_U [V, D] -> [N, V]
template <class T>
Mat<T> unembed(const Mat<T>& x, const Mat<T>& W_U);
// Backward of unembed: dx = dlogits W_U.                    dlogits [N, V] -> [N, D]
template <class T>
Mat<T> unembed_backward(const Mat<T>& dlogits, const Mat<T>& W_U);

}  // namespace depass
