// adjoint.hpp -- DePass with the taylor rule by one reverse pass (docs/gradients-adjoint.md).
//
// With the taylor MLP rule (A_m = G_m * act(p)/p * up) every decomposed op is linear in
// its component once the recorded quantities are frozen: the attention probabilities, the
// norm factors and s = act(p)/p * up. Biases go to the rest. So the decomposed pass from a
// cut point to the final residual applies one fixed linear map J to every component, and
// component m's logit attribution for the target (n, v) is
//     w . (J X_m)  =  (J^T w) . X_m,        w = the frozen final norm and W_U[v] at n.
// lambda = J^T w is the gradient of the target logit of the *frozen* network with respect
// to the residual state at the cut. One reverse pass through the frozen network gives it
// at every residual point h[l] and m[l] at once, for every target together (each target
// is one right-hand side of the same transposed products), and the attribution of any
// level at any cut is then an inner product with the level's initial components:
//   token j at h[l]:    lambda[j] . h[l][j]
//   head h of block l:  sum_n lambda_{m[l]}[n] . (head h's output at n)
//   neuron i of l:      sum_n a[n, i] (lambda_{h[l+1]}[n] . W_down[:, i])
//   the rest:           lambda . (its initial component) + the biases' share (below)
// Every bias the decomposed pass hands to the rest after the cut adds (its cotangent) . b.
//
// The result equals the forward decomposed pass with the taylor rule (tests/test_adjoint.cpp)
// without carrying the M components: its cost is that of the targets' backward passes,
// whatever the number of components or layers. Only the taylor rule is linear in the
// components (softmax, max, relu and linear weigh each component against the others), so
// only it has this shortcut.
#pragma once

#include <functional>
#include <vector>

#include "depass/attribute.hpp"

namespace depass {

// One right-hand side of the reverse pass: the logit of `token` at position `pos`.
struct LogitTarget {
    int pos = 0, token = 0;
};

// The cotangents lambda of R targets at one residual point. Target r depends on the
// positions 0 .. pos[r] only (causal attention), so only those rows are stored:
// rows offset[r] .. offset[r+1]-1 of X are positions 0 .. pos[r] of target r.
template <class T>
struct Cotangents {
    int R = 0, N = 0, D = 0;
    std::vector<LogitTarget> targets;  // [R]
    std::vector<int64_t> offset;       // [R+1]
    std::vector<int> row_pos;          // [rows] position of each stored row
    Mat<T> X;                          // [rows, D]
    // [R] the share of every bias added between this point and the logit (the rest's part
    // that no component at this point carries).
    std::vector<double> bias;

    int64_t rows() const { return offset.back(); }
    auto block(int r) const { return X.middleRows(offset[r], offset[r + 1] - offset[r]); }
    Cotangents like(Mat<T> newX) const;  // same targets and rows, new values (width may differ)
};

// ---- the transposed frozen ops (each the transpose of a twin in ops.hpp) ----------------
// Rows of dy are positions row_pos[r]; inv / s are the recorded factors, indexed by position.

// Norm with frozen factor r[n]: RMSNorm y = g * x * r  ->  dx = g * dy * r;
// LayerNorm y = g * (x - mean x) * r  ->  dx = r * (u - mean u),  u = g * dy.
template <class T>
Mat<T> norm_frozen_backward(NormKind kind, const Mat<T>& dy, const Vec<T>& g, const Vec<T>& inv,
                            const std::vector<int>& row_pos);

// Attention with frozen probabilities, ctx_h = A_h V_g  ->  dV_g = sum_{h in group g} A_h^T dctx_h,
// per target over its positions 0 .. pos only.            dctx [rows, H*Dh] -> [rows, Hkv*Dh]
template <class T>
Mat<T> attention_frozen_backward(const Cotangents<T>& dctx, const std::vector<Mat<T>>& probs, int H, int Hkv,
                                 int Dh);

// Taylor MLP with frozen s[n, i] = act(p)/p * up:  A = (z W_share^T) * s, Y = A W_down^T
//   ->  dA = dY W_down,  dG = dA * s,  dz = dG W_share.  Returns dz; *dG receives dG.
template <class T>
Mat<T> taylor_mlp_frozen_backward(const Mat<T>& dY, const Mat<T>& W_share, const Mat<T>& W_down,
                                  const Mat<T>& s, const std::vector<int>& row_pos, Mat<T>* dG);

// ---- the reverse pass --------------------------------------------------------------------

// Called at every residual point from h[L] down to the stop point: (point, cotangents there).
template <class T>
using CotangentObserver = std::function<void(const CutPoint&, const Cotangents<T>&)>;

// The reverse pass of the frozen network for the given targets, from the logits down to
// `stop` (a residual point), calling `observe` at h[L], m[L-1], h[L-1], ..., stop.
template <class T>
void adjoint_pass(const Model<T>& model, const Trace<T>& trace, const std::vector<LogitTarget>& targets,
                  CutPoint stop, const CotangentObserver<T>& observe);

// Logit attribution [M, R] from the cotangents at the cut and a level's initial components c:
//   attr[m, r] = sum_{j <= pos[r]} lambda_r[j] . X_m[j]   (+ lambda's bias share for the rest).
// (With the targets (n, k) of attribute() in the order r = n K + k this is [M, N, K].)
template <class T>
Tensor<T> adjoint_scores(const Cotangents<T>& lambda, const Components<T>& c);

// The same for the head or neuron level without forming the components (closed forms of
// the header comment): `units` are head indices (head level) or sets of neurons (neuron
// level, one set per component); the rest is lambda . state + bias minus the units' scores.
// Both [units + 1, R], the rest last; lambda is the cotangent at m[layer] (heads) or h[layer+1].
template <class T>
Tensor<T> adjoint_head_scores(const Model<T>& model, const Trace<T>& trace, int layer,
                              const std::vector<int>& heads, const Cotangents<T>& lambda);
template <class T>
Tensor<T> adjoint_neuron_scores(const Model<T>& model, const Trace<T>& trace, int layer,
                                const std::vector<std::vector<int>>& sets, const Cotangents<T>& lambda);

// attribute() for a request with `adjoint` set (attribute() calls it): the logit attribution
// of the taylor rule without propagating components. `components` of the result has the
// level's layout and names but width 0 (nothing is formed); its completeness check is
// sum over m of the attribution against the target logits (completeness_worst_point "logits").
template <class T>
Attribution<T> attribute_adjoint(const Model<T>& model, const Trace<T>& trace, const AttributionRequest& rq);

// Every block's attribution at once (module, head, neuron level; rq.start.layer is ignored):
// entry l is what attribute() gives for layer l. With rq.adjoint one reverse pass serves
// every layer; otherwise one decomposed pass per layer.
// Split over the ranks of `group` (distributed.hpp): each layer's pass as attribute() does it
// (the adjoint path is refused there).
template <class T>
std::vector<Attribution<T>> attribute_all_layers(const Model<T>& model, const Trace<T>& trace,
                                                 const AttributionRequest& rq,
                                                 const Group& group = one_process());

}  // namespace depass
