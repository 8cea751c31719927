// decompose.hpp -- the decomposed forward pass (DePass) through a whole model.
//
// A decomposition (components.hpp) of the residual state at a cut point is pushed
// through every later block: propagate() mirrors forward() (src/model/forward.cpp)
// line by line, calling the decomposed twin of every op (ops.hpp) with the weights
// of the model and the quantities frozen in the recorded trace (attention
// probabilities, per-token norm factors, MLP activations), so completeness holds
// after every op. The logit attribution is the twin of the final norm and the
// unembedding.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "depass/components.hpp"
#include "depass/forward.hpp"
#include "depass/ops.hpp"
#include "depass/types.hpp"
#include "depass/weights.hpp"

namespace depass {

// Residual points, in forward order: h[l] enters block l; m[l] is after its attention.
struct CutPoint {
    int layer = 0;  // 0..L (layer L with after_attention=false is the final residual)
    bool after_attention = false;
    std::string str() const;  // "h[3]" / "m[3]"
};

// Called after every residual point from the cut on: ("h"|"m", layer, components).
template <class T>
using ComponentObserver = std::function<void(const CutPoint&, const Components<T>&)>;

// Pushes components from `cut` through the rest of the network (to h[L]) with every
// frozen quantity taken from `trace`. Returns the components of h[L].
// Split over ranks (distributed.hpp): `comps` is this rank's slice, every rank calls this
// with its own, and the MLP share rules reduce over `group`; `observe` sees the slice.
template <class T>
Components<T> propagate(const Model<T>& model, const Trace<T>& trace, Components<T> comps, CutPoint cut,
                        const DecomposeOptions& opt, const ComponentObserver<T>& observe = {},
                        const Group& group = one_process());

// The attention block's twin with one block's weights `lw` and record `lt`: the
// components of its output (W_O of the frozen-probability mix of Norm1(X_m) W_V^T;
// biases to the rest).
template <class T>
Components<T> attention_block_decomposed(const Config& cfg, const LayerWeights<T>& lw,
                                         const LayerTrace<T>& lt, const Components<T>& x);
// The MLP block's twin with one block's weights and record: the components of its output.
template <class T>
Components<T> mlp_block_decomposed(const Config& cfg, const LayerWeights<T>& lw, const LayerTrace<T>& lt,
                                   const Components<T>& x, const DecomposeOptions& opt,
                                   const Group& group = one_process());

// Logit attribution: for targets[n][k], attr[m][n][k] = W_U[v] . NormF_m(X_m[n]) with
// the final norm's factors frozen; summed over m this is the true logit (minus any
// unembedding bias). Returned as [M, N, K] (row-major).
template <class T>
Tensor<T> logit_attribution(const Model<T>& model, const Trace<T>& trace, const Components<T>& c,
                            const std::vector<std::vector<int>>& targets);

}  // namespace depass
