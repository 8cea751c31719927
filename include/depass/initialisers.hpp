// initialisers.hpp -- where a decomposition starts (depass-math.md section 4).
//
// Each initialiser picks a residual point (the cut), splits the true state there
// into components, and makes the rest = state - sum(components) so completeness
// holds exactly at the cut. It also says which component takes position 0 in the
// MLP rules (section 5 step 2) and whether ignore-special-token is on by default.
#pragma once

#include <string>
#include <vector>

#include "depass/decompose.hpp"

namespace depass {

// Where a decomposition starts (the `--level` of the command line).
enum class Level { Token, Module, Head, Neuron, Subspace, Custom };
Level parse_level(const std::string& s);  // "token", ...; throws naming the value
const char* level_name(Level level);

// What one component is, for reports and tools: its kind, the block it comes from,
// and its index there.
struct ComponentInfo {
    enum class Kind { Token, Attention, Mlp, Head, Neuron, NeuronGroup, Subspace, Custom, Rest };
    Kind kind = Kind::Rest;
    int layer = -1;      // the residual point h[layer] (token, subspace, custom) or the block
    int index = -1;      // token position, head, neuron, first neuron of a group, subspace / custom index
    int index_end = -1;  // neuron groups: one past the last neuron
    std::string label;   // the component's name, as in Components::names
};
const char* kind_name(ComponentInfo::Kind kind);  // "token", "attention", "mlp", "head", ...

template <class T>
struct Initialised {
    Components<T> comps;
    CutPoint cut;
    int pos0_component = 0;
    bool ignore_special_default = false;
    Level level = Level::Token;
    std::vector<ComponentInfo> info;  // [M], one per component (the rest last)

    // Options for propagate() with this level's defaults: the given MLP rule and
    // temperature, the level's ignore-special-token default and position-0 component.
    DecomposeOptions options(MlpRule rule = MlpRule::Softmax, double temperature = 0.1) const {
        DecomposeOptions opt;
        opt.rule = rule;
        opt.temperature = temperature;
        opt.ignore_special_token = ignore_special_default;
        opt.pos0_component = pos0_component;
        return opt;
    }
};

// The true residual state at a cut point.
template <class T>
const Mat<T>& state_at(const Trace<T>& t, const CutPoint& p);

// Token level at h[layer] (layer 0 = embeddings): component j = row j of h[layer]
// at position j (zero elsewhere). M = N + 1.
template <class T>
Initialised<T> init_tokens(const Model<T>& model, const Trace<T>& t, int layer);

// Module level of block `layer`: the attention output (cut m[layer]) or the MLP
// output (cut h[layer+1]), biases included, then the rest. M = 2.
template <class T>
Initialised<T> init_module(const Model<T>& model, const Trace<T>& t, int layer, bool mlp);

// Attention heads of block `layer` (cut m[layer]): component h = W_O[:, h] (sum_k A_h[., k] V_h[k]),
// values without their bias. `heads` empty = every head. The rest holds h[layer],
// the value and output biases and the heads not chosen.
template <class T>
Initialised<T> init_heads(const Model<T>& model, const Trace<T>& t, int layer, std::vector<int> heads);

// MLP neurons of block `layer` (cut h[layer+1]): component i = a[:, i] W_down[:, i].
// `neurons` empty = every neuron; `groups` > 0 = every neuron, in that many
// contiguous groups (one component per group).
template <class T>
Initialised<T> init_neurons(const Model<T>& model, const Trace<T>& t, int layer, std::vector<int> neurons,
                            int groups);

// Subspaces at h[layer]: each projector P (D x D, symmetric idempotent) gives the
// component x P; the rest is the orthogonal remainder.
template <class T>
Initialised<T> init_subspaces(const Model<T>& model, const Trace<T>& t, int layer,
                              const std::vector<Mat<double>>& projectors,
                              const std::vector<std::string>& names);

// A projector from a basis: B [D, k] is orthonormalised (Householder QR) and
// P = Q Q^T; a [D, D] matrix is taken as a projector and must be symmetric and
// idempotent. `what` names the source in error messages.
Mat<double> projector_from(const Mat<double>& B, int D, const std::string& what);
// The same from an array as read from a file: [D] (one direction), [D, k] or [D, D].
Mat<double> projector_from(const Tensor<double>& B, int D, const std::string& what);

// User components at h[layer]: C [K, N, D] must sum to the state (relative
// tolerance `rel_tol` of max |state|); the rest is the (tiny) difference.
template <class T>
Initialised<T> init_custom(const Model<T>& model, const Trace<T>& t, int layer, const Tensor<double>& C,
                           double rel_tol, const std::string& what);

}  // namespace depass

namespace depass {

// A whole request, as the command line and the validation suite express it.
struct LevelRequest {
    Level level = Level::Token;
    // token, subspace, custom: the residual point h[layer] (0 = embeddings, L = final residual);
    // module, head, neuron:    the block whose module / heads / neurons are decomposed.
    int layer = 0;
    bool module_mlp = false;              // module level: the MLP output instead of the attention output
    std::vector<int> heads;               // head level: empty = all
    std::vector<int> neurons;             // neuron level: empty = all
    int neuron_groups = 0;                // neuron level: > 0 = all neurons in this many groups
    std::vector<Mat<double>> projectors;  // subspace level
    std::vector<std::string> projector_names;
    Tensor<double> custom;  // custom level: [K, N, D]
    double custom_rel_tol = 1e-5;
    std::string custom_source = "custom components";
};

// The decomposition `req` names. With ranks > 1 (a run split over processes, distributed.hpp)
// only the block of components that `rank` holds (split_components) is computed, as a slice
// (components.hpp); `info` still describes every component. The rest, on the last rank that
// holds anything, is computed exactly as in the whole decomposition, to the last bit.
template <class T>
Initialised<T> initialise(const Model<T>& model, const Trace<T>& t, const LevelRequest& req, int rank = 0,
                          int ranks = 1);

}  // namespace depass
