// attribute.hpp -- the one library entry point of DePass.
//
//   Attribution<T> a = attribute(model, ids, request);
//
// runs the recorded forward pass, starts the decomposition the request names
// (initialisers.hpp, depass-math.md section 4), pushes it through the rest of the
// network (propagate, decompose.hpp) while a CompletenessMonitor checks at every
// residual point that the components add up to the true state, and attributes the
// target logits to the components. The command line, the evaluations, the tests
// and the language bindings all call this; none of them repeats the pipeline.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "depass/decompose.hpp"
#include "depass/initialisers.hpp"
#include "depass/qk.hpp"

namespace depass {

// The components stopped adding up to the true state (a NaN, an overflow, or a bug):
// what CompletenessMonitor::require throws, so callers can tell it from a bad request.
class CompletenessError : public Error {
public:
    using Error::Error;
};

// One residual point as the monitor measured it.
struct CompletenessPoint {
    CutPoint point;
    double max_abs = 0;  // max |sum_m X_m - state|
    double scale = 0;    // max |state|
    double max_rel = 0;  // max_abs / max(scale, 1e-30)
    bool pass = true;    // max_rel <= tolerance (false for NaN)
};

// Completeness at every residual point a decomposed pass reports: the largest
// absolute and relative error of the components' sum against the recorded state.
// Use observe() as (or inside) the observer of propagate(); require() throws when any
// point exceeded the tolerance (tolerance.hpp). A NaN anywhere is a violation.
template <class T>
class CompletenessMonitor {
public:
    explicit CompletenessMonitor(const Trace<T>& trace, double tolerance);
    explicit CompletenessMonitor(const Trace<T>& trace);  // tolerance::completeness_rel<T>()

    void observe(const CutPoint& p, const Components<T>& c);
    // The same from the components' sum (a run split over ranks sums every rank's slice first).
    void observe_sum(const CutPoint& p, const Mat<T>& sum);
    const std::vector<CompletenessPoint>& points() const { return points_; }
    double max_abs() const { return max_abs_; }
    double max_rel() const { return max_rel_; }
    // The point where the relative error was largest (the first on ties), "" before any.
    const std::string& worst_point() const { return worst_point_; }
    double tolerance() const { return tol_; }
    bool ok() const { return ok_; }
    // Throws CompletenessError naming the worst point and the error when !ok().
    void require() const;

private:
    const Trace<T>* trace_;
    double tol_;
    std::vector<CompletenessPoint> points_;
    double max_abs_ = 0, max_rel_ = 0;
    std::string worst_point_;
    bool ok_ = true;
};

// What to attribute. The level's options mirror `depass attribute --help`.
struct AttributionRequest {
    LevelRequest start;                        // the level, its layer and its choices
    MlpRule rule = MlpRule::Softmax;           // how MLP activations are shared
    double temperature = 0.1;                  // softmax rule temperature
    std::optional<bool> ignore_special_token;  // unset: the level's default (on for token level)
    int mlp_chunk = 0;                         // positions per MLP chunk (0 = automatic)
    // Target tokens: empty = the model's argmax at every position; one row = the same
    // ids at every position; N rows = ids per position (every row of the same length K).
    std::vector<std::vector<int>> targets;
    bool keep_points = false;  // also keep the components at every residual point
    // Taylor rule only: the attribution by one reverse pass of the frozen network instead of
    // the decomposed forward pass (adjoint.hpp); the components themselves are not formed.
    bool adjoint = false;
    // Also split the attention logits of block qk->layer over pairs of components (qk.hpp),
    // from the components at its input h[layer]; the cut must be at or before it. Refused
    // before any work when the split would take more than qk_max_bytes (0: no limit).
    std::optional<QkRequest> qk;
    uint64_t qk_max_bytes = 0;
};

// The result.
template <class T>
struct Attribution {
    Level level = Level::Token;
    CutPoint cut;
    DecomposeOptions options;                     // what propagate() ran with
    Components<T> components;                     // at h[L], the final residual (rest last)
    std::vector<ComponentInfo> info;              // [M] what each component is
    std::vector<std::vector<int>> targets;        // [N][K]
    Mat<double> target_logits;                    // [N, K] the model's logits at the targets
    Tensor<T> logit_attribution;                  // [M, N, K]; sums over m to target_logits
    std::vector<CompletenessPoint> completeness;  // every residual point from the cut on
    double completeness_max_abs = 0, completeness_max_rel = 0;
    std::string completeness_worst_point;
    std::optional<QkSplit<T>> qk;  // with request.qk: the split, checked (qk_check) against both identities
    QkCheck qk_check;
    std::vector<CutPoint> points;          // with keep_points: the residual points, in order,
    std::vector<Components<T>> at_points;  // and the components there

    int M() const { return components.M; }
    int N() const { return components.N; }
    int K() const { return targets.empty() ? 0 : int(targets[0].size()); }
};

// Targets per position as a request gives them (see AttributionRequest::targets): [N][K].
// Throws depass::Error for a row count other than 1 or N, ragged rows or an id outside [0, V).
template <class T>
std::vector<std::vector<int>> resolve_targets(const std::vector<std::vector<int>>& given,
                                              const Trace<T>& trace, int V);

// On a recorded pass. `observe`, when given, is called at every residual point after
// the monitor (for progress). With request.adjoint: attribute_adjoint() (adjoint.hpp; no
// components, `observe` is not called). Throws depass::Error for a bad request or when
// completeness is violated (nothing is returned then).
//
// Split over the ranks of `group` (distributed.hpp; every rank calls this with the same
// arguments): each rank initialises and propagates its block of components, the monitor
// checks completeness at every residual point on the sum of every rank's slice (summed in
// the order of one process, so its figures are one process's), and rank 0 gathers the
// components and the logit attribution (with request.qk the split and with keep_points the
// points' components too, both computed from gathered components). Rank 0 returns the whole
// result; the other ranks return it without components, logit attribution, points or QK
// split. `observe` sees each rank's slice. request.adjoint is refused (its reverse pass forms
// no components to split).
template <class T>
Attribution<T> attribute(const Model<T>& model, const Trace<T>& trace, const AttributionRequest& request,
                         const ComponentObserver<T>& observe = {}, const Group& group = one_process());

// The same from token ids (runs the recorded forward pass first).
template <class T>
Attribution<T> attribute(const Model<T>& model, const std::vector<int>& ids,
                         const AttributionRequest& request, const ComponentObserver<T>& observe = {});

}  // namespace depass
