// ops.hpp -- every transformer operation as one free function on plain tensors,
// templated on the scalar type, each followed by its decomposed twin (DePass,
// depass-math.md section 3) and its backward (`<op>_backward`: the gradient of a
// scalar f with respect to the op's input, given the gradient with respect to its
// output; see docs/gradients.md). The source keeps the same order: each op in
// src/ops/*.cpp, its twin and its backward directly below it.
//
// Ops know nothing of models, configs or traces: they take matrices, vectors and
// the few enums below. The model (decompose.hpp, forward.hpp) picks the weights and
// the recorded quantities and calls them.
//
// A twin maps Components at the op's input to Components at its output using only
// quantities frozen by the recorded pass, and keeps the identity it states
// (sum over m of the outputs equals the plain op's output).
//
// Shapes are given with the letters of types.hpp. Each op checks the shapes of
// its arguments on entry and throws depass::Error on a mismatch.
#pragma once

#include <string>
#include <vector>

#include "depass/components.hpp"
#include "depass/distributed.hpp"
#include "depass/types.hpp"

namespace depass {

// ---- the kinds of op a model can choose ------------------------------------------
enum class NormKind { RMSNorm, LayerNorm };
enum class Activation { SiLU, GeluTanh };          // GeluTanh = GPT-2's "gelu_new"
enum class RopeStyle { None, Interleaved, Half };  // llama2.c pairs (2i,2i+1) / HF (i, i+Dh/2)

// Per-token factors of one norm, computed from the true state (frozen by DePass).
//   RMSNorm:   inv[n] = 1 / sqrt(mean_d x[n,d]^2 + eps), mean empty
//   LayerNorm: inv[n] = 1 / sqrt(var_d x[n,d] + eps),     mean[n] = mean_d x[n,d]
template <class T>
struct NormFactors {
    Vec<T> inv;   // [N]
    Vec<T> mean;  // [N] (LayerNorm only)
};

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
// Twin, with the factors r[n] = inv[n] frozen:  Y_m[n] = g * X_m[n] * r[n].   sum_m Y_m = rms_norm(S)
template <class T>
Components<T> rms_norm_decomposed(const Components<T>& x, const Vec<T>& g, const Vec<T>& inv);

// LayerNorm: y[n] = g * (x[n] - mean) / sqrt(var + eps) + b  (population variance).
template <class T>
Mat<T> layer_norm(const Mat<T>& x, const Vec<T>& g, const Vec<T>& b, double eps,
                  NormFactors<T>* factors = nullptr);
// Backward of layer_norm with respect to x (beta does not enter it).               -> [N, D]
template <class T>
Mat<T> layer_norm_backward(const Mat<T>& x, const Vec<T>& g, double eps, const Mat<T>& dy);
// Twin, with r[n] = inv[n] frozen: Y_m[n] = g * (X_m[n] - mean_d X_m[n]) * r[n]; beta to the rest.
//                                                                           sum_m Y_m = layer_norm(S)
template <class T>
Components<T> layer_norm_decomposed(const Components<T>& x, const Vec<T>& g, const Vec<T>& b,
                                    const Vec<T>& inv);

// The norm of the given kind (the model's config names it), its backward and its twin.
template <class T>
Mat<T> apply_norm(NormKind kind, double eps, const Mat<T>& x, const Vec<T>& g, const Vec<T>& b,
                  NormFactors<T>* factors = nullptr);
template <class T>
Mat<T> apply_norm_backward(NormKind kind, double eps, const Mat<T>& x, const Vec<T>& g, const Mat<T>& dy);
template <class T>
Components<T> apply_norm_decomposed(NormKind kind, const Components<T>& x, const Vec<T>& g, const Vec<T>& b,
                                    const NormFactors<T>& f);

// ---- linear --------------------------------------------------------------------
// y = x W^T + b.                       x [N, in], W [out, in], b [out] or empty -> [N, out]
template <class T>
Mat<T> linear(const Mat<T>& x, const Mat<T>& W, const Vec<T>& b);
// Backward of linear: dx = dy W ([N, in]); when asked, dW = dy^T x ([out, in]) and
// db = sum_n dy[n] ([out]).
template <class T>
Mat<T> linear_backward(const Mat<T>& x, const Mat<T>& W, const Mat<T>& dy, Mat<T>* dW = nullptr,
                       Vec<T>* db = nullptr);
// Twin: Y_m = X_m W^T; the bias goes to the rest.                            sum_m Y_m = linear(S)
template <class T>
Components<T> linear_decomposed(const Components<T>& x, const Mat<T>& W, const Vec<T>& b);

// ---- rotary position embedding ---------------------------------------------------
// RoPE frequency scaling (config.json `rope_scaling`).
//   Linear: every inverse frequency divided by `factor` (positions divided by it).
//   Llama3: Llama 3.1's rule: pairs whose wavelength 2 pi / f exceeds
//           original_max_positions / low_freq_factor are divided by `factor`, those
//           shorter than original_max_positions / high_freq_factor are kept, the band
//           between is interpolated.
enum class RopeScalingKind { None, Linear, Llama3 };
struct RopeScaling {
    RopeScalingKind kind = RopeScalingKind::None;
    double factor = 1.0;
    double low_freq_factor = 1.0;
    double high_freq_factor = 4.0;
    double original_max_positions = 8192;
};

// The inverse frequency of every pair, [Dh/2]: f_i = theta^(-2i/Dh), then scaled as
// `scaling` says. Computed in double. (A model's table: rope_inv_freq(cfg), config.hpp.)
std::vector<double> rope_inv_freq(int Dh, double theta, const RopeScaling& scaling = {});

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
// Twin, the value path with the probabilities frozen (queries, keys, RoPE and the
// softmax are not decomposed):  ctx_m[q] (head h) = sum_k A_h[q, k] V_m[k] (KV head of h).
// v: components of the values [.., Hkv*Dh] -> [.., H*Dh].        sum_m ctx_m = attention context
template <class T>
Components<T> attention_decomposed(const Components<T>& v, const std::vector<Mat<T>>& probs, int H, int Hkv,
                                   int Dh);

// Twin of RoPE: each component's rows rotated by their own positions. RoPE is a rotation
// per position, linear in x, so the rotated components sum to the rotated state.
//                                                                sum_m rope(X_m) = rope(S)
template <class T>
void rope_decomposed(Components<T>& x, int nheads, int Dh, RopeStyle style,
                     const std::vector<double>& inv_freq);

// The bilinear twin of the attention logits (the QK circuit). With the queries and keys
// split into components, q = sum_m Q_m and k = sum_m' K_m', every logit is a sum over pairs
//   S_h[m, m'][i, j] = Q_m,h[i] . K_m',g[j] / sqrt(Dh)     (g = h / (H/Hkv); 0 for j > i)
//   sum_{m, m'} S_h[m, m'][i, j] = q_h[i] . k_g[j] / sqrt(Dh),  the logit before the softmax.
// For the query heads `heads` (empty: all) and the query positions `queries` (empty: all).
// q: components [.., H*Dh], k: [.., Hkv*Dh] (the same M and N) -> [H', M, M, Nq, N] row-major.
template <class T>
Tensor<T> qk_logits_decomposed(const Components<T>& q, const Components<T>& k, int H, int Hkv, int Dh,
                               const std::vector<int>& heads, const std::vector<int>& queries);

// ---- MLP activations -------------------------------------------------------------
template <class T>
T silu(T x);  // x * sigmoid(x)
template <class T>
T gelu_tanh(T x);  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))   (GPT-2 "gelu_new")
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
Mat<T> gelu_mlp(const Mat<T>& x, const Mat<T>& w1, const Vec<T>& b1, const Mat<T>& w2, const Vec<T>& b2,
                Mat<T>* pre = nullptr, Mat<T>* act = nullptr);
// Backward of gelu_mlp from the recorded pre-activation p; `dact` as for swiglu_mlp_backward.
template <class T>
Mat<T> gelu_mlp_backward(const Mat<T>& w1, const Mat<T>& w2, const Mat<T>& pre, const Mat<T>& dout,
                         Mat<T>* dact = nullptr);

// ---- decomposed twin of the MLPs (depass-math.md sections 3 and 5) -------------------
//
// The MLP is not linear, so DePass freezes the true activation a[n, i] of every
// (position, neuron) and distributes it over the components by weights w_m[n, i]
// that sum to 1 over m:
//   Y_m[n] = sum_i w_m[n, i] * a[n, i] * W_d[:, i]          (+ b_d for the rest)
// The weights come from each component's share of the pre-activation that decides
// the neuron (the "gate shares"):
//   G_m = Z_m W_g^T            (SwiGLU: Z_m = Norm2 of component m)
//   G_m = Z_m W_1^T (+ b_1)    (GELU MLP; the bias is the rest's share)
// Identity kept: sum_m Y_m[n] = sum_i a[n, i] W_d[:, i] (+ b_d) = MLP output.

enum class MlpRule { Softmax, Max, Relu, Linear, Taylor };
MlpRule parse_mlp_rule(const std::string& s);  // throws naming the value
const char* rule_name(MlpRule r);

struct DecomposeOptions {
    MlpRule rule = MlpRule::Softmax;
    double temperature = 0.1;
    // Section 5 step 1: the first component's gate shares are set to zero (the BOS
    // token at token level, where it acts as an attention sink).
    bool ignore_special_token = false;
    // Section 5 step 2: at position 0 the gate share of this component is set to 1
    // (token level: the first token; head/neuron/module: the rest; subspace: component 0).
    int pos0_component = 0;
    // Positions per MLP chunk (0 = automatic, bounded memory). Results do not depend on it.
    int mlp_chunk = 0;
};

// The steps, each on the shares g [K, I] (row-major, row k = the k-th component present
// at position n, in component order, so the rest is the last row), in place:
//
// Section 5 steps 1-3, before every rule but taylor: component 0's shares are 0 with
// ignore-special-token; at n = 0 the shares of opt.pos0_component are 1; the rest's
// shares with |G| < 1e-5 are 0, and where every share of a neuron is 0 the rest's is 1.
// comp[k] is the component index of row k and `rest` the rest's index; `scratch` has length I.
//
// Split over ranks (distributed.hpp), the rows are those of this rank's slice: comp[] holds
// indices in the whole decomposition, the rest's row is here only on the rank holding it,
// and every step that looks across components reduces its per-neuron vector over the ranks
// through `group` (the identity for one process). Every rank calls every step for every
// position, with K = 0 where it holds nothing there, so the reductions pair up.
template <class T>
void prepare_gate_shares(T* g, const int* comp, int K, int I, int n, const DecomposeOptions& opt, int rest,
                         T* scratch, const Group& group = one_process());
// The rules (section 3; step 4): shares -> weights w summing to 1 over the components
// whose share is not 0 (the participating ones; the others get 0). Where a rule's
// normaliser is 0 the participating components share the neuron equally.
//   softmax: w = softmax(G / T) over the participating components
//   max:     w = 1 for the largest share (the first component on ties; comp[k] is row k's
//            component index, `at` scratch of length I)
//   relu:    w proportional to max(G, 0)
//   linear:  w proportional to G - min G
// `scratch` has length 2I (softmax, max, relu) or 3I (linear); softmax_rule's `e` has length I,
// aligned for Eigen's packets.
template <class T>
void softmax_rule(T* g, int K, int I, T temperature, T* scratch, T* e, const Group& group = one_process());
template <class T>
void max_rule(T* g, const int* comp, int K, int I, T* scratch, int* at, const Group& group = one_process());
template <class T>
void relu_rule(T* g, int K, int I, T* scratch, const Group& group = one_process());
template <class T>
void linear_rule(T* g, int K, int I, T* scratch, const Group& group = one_process());
// taylor: no weights, a first-order split of the activation along the pre-activation p:
//   A_m = G_m * act(p)/p * up        (sum_m G_m = p, so sum_m A_m = a)
// pre, up [I] are the position's recorded pre-activation and up projection (up null: GELU);
// `scratch` has length I. Nothing is shared across components: no reduction.
template <class T>
void taylor_rule(T* g, int K, int I, Activation act, const T* pre, const T* up, T* scratch);

// The twin of swiglu_mlp / gelu_mlp:
//   z         Norm2 of the components (the MLP's input)                 [R, D]
//   W_share   [I, D] the map to the shares G: W_g (SwiGLU) or W_1 (GELU)
//   b_share   [I] the rest's extra share (GELU's b_1) or empty
//   W_down    [D, I];  b_down [D] or empty (to the rest)
//   pre, up, a  the recorded pre-activation, up projection (empty for GELU) and activation  [N, I]
// Returns the components of the MLP output (same layout, width D). z may be one rank's slice
// of the components, the share rules then reducing over `group`.
template <class T>
Components<T> mlp_decomposed(const Components<T>& z, const Mat<T>& W_share, const Vec<T>& b_share,
                             const Mat<T>& W_down, const Vec<T>& b_down, Activation act, const Mat<T>& pre,
                             const Mat<T>& up, const Mat<T>& a, const DecomposeOptions& opt,
                             const Group& group = one_process());

// ---- unembedding ---------------------------------------------------------------
// logits = x W_U^T.                            x [N, D], W_U [V, D] -> [N, V]
template <class T>
Mat<T> unembed(const Mat<T>& x, const Mat<T>& W_U);
// Backward of unembed: dx = dlogits W_U.                    dlogits [N, V] -> [N, D]
template <class T>
Mat<T> unembed_backward(const Mat<T>& dlogits, const Mat<T>& W_U);
// Twin at the requested targets only (the logit attribution, never the full [M, N, V]):
//   attr[m, n, k] = W_U[targets[n][k]] . Z_m[n]      z: the components after the final norm.
// Returned as [M, N, K].                      sum_m attr[m, n, k] = logits[n, targets[n][k]]
template <class T>
Tensor<T> unembed_decomposed(const Components<T>& z, const Mat<T>& W_U,
                             const std::vector<std::vector<int>>& targets);

}  // namespace depass
