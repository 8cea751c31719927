// decompose.hpp -- the decomposed forward pass (DePass).
//
// A decomposition of a residual state S [N, D] is a set of M components X_m [N, D]
// with  sum_m X_m = S  (completeness). The last component is always the *rest*: it
// absorbs every bias added after the cut and whatever the chosen components do not
// cover. Each operation of the model has a decomposed twin (src/ops/*.cpp, right
// below the op) that maps components at its input to components at its output
// using only quantities frozen by the recorded pass (attention probabilities,
// per-token norm factors, MLP activations), so completeness holds after every op.
//
// Storage. Components are kept as one row-major matrix X whose rows are (m, n)
// pairs, component-major. Component m is known to be exactly zero at positions
// n < first[m] (token level: token j does not exist before position j), and those
// rows are not stored: component m occupies rows offset[m] .. offset[m+1]-1 for
// positions first[m] .. N-1. Every row-wise op (norms, linear layers, the MLP) is
// then ONE matrix product over all stored rows; the zero blocks cost nothing.
#pragma once

#include "depass/forward.hpp"
#include "depass/types.hpp"
#include "depass/weights.hpp"

#include <functional>
#include <string>
#include <vector>

namespace depass {

template <class T>
struct Components {
    int M = 0, N = 0, D = 0;
    std::vector<int> first;        // [M] first stored position of component m
    std::vector<int64_t> offset;   // [M+1] first row of component m in X
    std::vector<int> row_pos;      // [R] position n of each stored row
    Mat<T> X;                      // [R, D] stored rows
    std::vector<std::string> names;  // [M]; names.back() == "rest"

    // Empty components (all zero) with the given first positions (first.back() must be 0).
    static Components zeros(int N, int D, std::vector<int> first, std::vector<std::string> names);
    int rest() const { return M - 1; }
    int64_t rows() const { return offset.back(); }
    // Rows of component m (positions first[m] .. N-1).
    auto block(int m) { return X.middleRows(offset[m], offset[m + 1] - offset[m]); }
    auto block(int m) const { return X.middleRows(offset[m], offset[m + 1] - offset[m]); }
    // Row index of (m, n), or -1 when n < first[m] (a known-zero row).
    int64_t row(int m, int n) const { return n < first[m] ? -1 : offset[m] + (n - first[m]); }

    Mat<T> sum() const;                       // [N, D] sum over components
    Mat<T> component(int m) const;            // [N, D] dense (zeros before first[m])
    Components like(Mat<T> newX) const;       // same layout, new rows (columns may differ)
};

// ---- MLP distribution rules (depass-math.md sections 3 and 5) -------------------------
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

// Residual points, in forward order: h[l] enters block l; m[l] is after its attention.
struct CutPoint {
    int layer = 0;             // 0..L (layer L with after_attention=false is the final residual)
    bool after_attention = false;
    std::string str() const;   // "h[3]" / "m[3]"
};

// Called after every residual point from the cut on: ("h"|"m", layer, components).
template <class T>
using ComponentObserver = std::function<void(const CutPoint&, const Components<T>&)>;

// Pushes components from `cut` through the rest of the network (to h[L]) with every
// frozen quantity taken from `trace`. Returns the components of h[L].
template <class T>
Components<T> propagate(const Model<T>& model, const Trace<T>& trace, Components<T> comps, CutPoint cut,
                        const DecomposeOptions& opt, const ComponentObserver<T>& observe = {});

// ---- decomposed twins of each op (defined beside the ops in src/ops/) ------------------

// RMSNorm with frozen factors r[n]:  Y_m[n] = g * X_m[n] * r[n].     sum_m Y_m = rms_norm(S)
template <class T>
Mat<T> rms_norm_decomposed(const Components<T>& c, const Vec<T>& g, const Vec<T>& inv);
// LayerNorm with frozen r[n]: Y_m[n] = g * (X_m[n] - mean(X_m[n])) * r[n]; beta to the rest.
template <class T>
Mat<T> layer_norm_decomposed(const Components<T>& c, const Vec<T>& g, const Vec<T>& b, const Vec<T>& inv);
template <class T>
Mat<T> apply_norm_decomposed(const Config& cfg, const Components<T>& c, const Vec<T>& g, const Vec<T>& b,
                             const NormFactors<T>& f);
// Linear: Y_m = X_m W^T; the bias goes to the rest.                 sum_m Y_m = linear(S)
template <class T>
Mat<T> linear_decomposed(const Components<T>& c, const Mat<T>& rows, const Mat<T>& W, const Vec<T>& b);
// Attention value path with frozen probabilities:
//   ctx_m[q] (head h) = sum_k A_h[q, k] V_m[k] (KV head of h).       sum_m ctx_m = attention context
template <class T>
Mat<T> attention_decomposed(const Components<T>& c, const Mat<T>& v_rows, const std::vector<Mat<T>>& probs,
                            int H, int Hkv, int Dh);
// MLP with frozen activations distributed over components by the rule.
//   Y_m[n] = sum_i w_m[n,i] a[n,i] W_d[:, i]  (+ b_d to the rest).  sum_m Y_m = MLP output
template <class T>
Mat<T> mlp_decomposed(const Config& cfg, const LayerWeights<T>& lw, const LayerTrace<T>& lt,
                      const Components<T>& c, const Mat<T>& normed_rows, const DecomposeOptions& opt);

// The per-(position, neuron) weights of a rule: given the gate shares G[m] of the
// participating components (already prepared per section 5), writes w[m] summing to 1.
// Exposed for unit tests. `rest_index` is the index of the rest within G (or -1).
template <class T>
void rule_weights(MlpRule rule, double temperature, const T* G, int count, T* w);

// ---- logit attribution -------------------------------------------------------------
// For targets[n][k]: attr[m][n][k] = W_U[v] . NormF_m(X_m[n]);  summed over m this is
// the true logit minus any unembedding bias. Returned as [M, N, K] (row-major).
template <class T>
Tensor<T> logit_attribution(const Model<T>& model, const Trace<T>& trace, const Components<T>& c,
                            const std::vector<std::vector<int>>& targets);

}  // namespace depass
