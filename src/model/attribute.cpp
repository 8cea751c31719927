// attribute.cpp -- the library entry point: initialise, propagate with a completeness
// monitor, attribute the target logits.
#include "depass/attribute.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "depass/adjoint.hpp"
#include "depass/distributed.hpp"
#include "depass/estimate.hpp"
#include "depass/tolerance.hpp"

namespace depass {

// ---- completeness --------------------------------------------------------------------

template <class T>
CompletenessMonitor<T>::CompletenessMonitor(const Trace<T>& trace, double tolerance)
    : trace_(&trace), tol_(tolerance) {}

template <class T>
CompletenessMonitor<T>::CompletenessMonitor(const Trace<T>& trace)
    : CompletenessMonitor(trace, tolerance::completeness_rel<T>()) {}

// At point p:  abs = max |sum_m X_m - state|,  rel = abs / max |state|.
template <class T>
void CompletenessMonitor<T>::observe(const CutPoint& p, const Components<T>& c) {
    const Mat<T>& truth = state_at(*trace_, p);
    if (c.N != truth.rows() || c.D != truth.cols())
        throw Error("completeness: components are [" + std::to_string(c.N) + ", " + std::to_string(c.D) +
                    "] at " + p.str() + ", the state is [" + std::to_string(truth.rows()) + ", " +
                    std::to_string(truth.cols()) + "]");
    observe_sum(p, c.sum());
}

template <class T>
void CompletenessMonitor<T>::observe_sum(const CutPoint& p, const Mat<T>& sum) {
    const Mat<T>& truth = state_at(*trace_, p);
    if (sum.rows() != truth.rows() || sum.cols() != truth.cols())
        throw Error("completeness: the components' sum is [" + std::to_string(sum.rows()) + ", " +
                    std::to_string(sum.cols()) + "] at " + p.str() + ", the state is [" +
                    std::to_string(truth.rows()) + ", " + std::to_string(truth.cols()) + "]");
    const double state_max = double(truth.cwiseAbs().maxCoeff());
    const double scale = std::max(1e-30, state_max);
    const double abs_err = double((sum - truth).cwiseAbs().template maxCoeff<Eigen::PropagateNaN>());
    const double rel = abs_err / scale;
    CompletenessPoint pt{p, abs_err, state_max, rel, rel <= tol_};
    points_.push_back(pt);
    if (!(abs_err <= max_abs_)) max_abs_ = abs_err;  // NaN sticks
    if (std::isnan(rel)) {
        if (!std::isnan(max_rel_)) {
            max_rel_ = rel;
            worst_point_ = p.str();
        }
    } else if (rel > max_rel_ || worst_point_.empty()) {
        max_rel_ = std::max(max_rel_, rel);
        worst_point_ = p.str();
    }
    ok_ = ok_ && pt.pass;
}

template <class T>
void CompletenessMonitor<T>::require() const {
    if (ok_) return;
    std::ostringstream os;
    os << "completeness violated: the components' sum differs from the true state at " << worst_point_
       << " by " << max_rel_ << " (relative), above the tolerance " << tol_;
    throw CompletenessError(os.str());
}

// ---- the entry point ------------------------------------------------------------------

// Targets per position: the model's argmax (none given), one row for every position, or one row each.
template <class T>
std::vector<std::vector<int>> resolve_targets(const std::vector<std::vector<int>>& given,
                                              const Trace<T>& trace, int V) {
    const int N = trace.N();
    std::vector<std::vector<int>> t(N);
    if (given.empty()) {
        for (int n = 0; n < N; ++n) {
            Eigen::Index best;
            trace.logits.row(n).maxCoeff(&best);
            t[n] = {int(best)};
        }
        return t;
    }
    if (given.size() != 1 && int(given.size()) != N)
        throw Error("targets: " + std::to_string(given.size()) + " rows of target ids for " +
                    std::to_string(N) + " positions (expected 1 or " + std::to_string(N) + ")");
    for (size_t r = 0; r < given.size(); ++r) {
        if (given[r].empty() || given[r].size() != given[0].size())
            throw Error("targets: row " + std::to_string(r) + " has " + std::to_string(given[r].size()) +
                        " ids, expected the same non-zero number in every row");
        for (int v : given[r])
            if (v < 0 || v >= V)
                throw Error("targets: token id " + std::to_string(v) + " is outside the vocabulary [0, " +
                            std::to_string(V) + ")");
    }
    for (int n = 0; n < N; ++n) t[n] = given.size() == 1 ? given[0] : given[size_t(n)];
    return t;
}

// The sum over every rank's slice of the components, in the order of one process
// (Components::sum: component 0, 1, ..., each over its stored positions).
template <class T>
Mat<T> sum_over_ranks(const Components<T>& slice, const Group& group) {
    if (group.size() == 1) return slice.sum();
    Mat<T> s(slice.N, slice.D);
    group.ordered_sum(s.data(), s.size(), [&](T* running) {
        MatMap<T> acc(running, slice.N, slice.D);
        for (int m = 0; m < slice.M; ++m) acc.bottomRows(slice.N - slice.first[m]) += slice.block(m);
    });
    return s;
}

template <class T>
Attribution<T> attribute(const Model<T>& model, const Trace<T>& trace, const AttributionRequest& rq,
                         const ComponentObserver<T>& observe, const Group& group) {
    if (!(rq.temperature > 0))
        throw Error("attribute: temperature " + std::to_string(rq.temperature) + " (expected > 0)");
    if (rq.mlp_chunk < 0)
        throw Error("attribute: MLP chunk " + std::to_string(rq.mlp_chunk) + " (expected >= 0)");
    if (rq.adjoint && rq.qk)
        throw Error(
            "qk: the QK split needs the components at its block's input, which the adjoint path never "
            "forms (drop the adjoint option)");
    const bool split = group.size() > 1;
    if (rq.adjoint && split)
        throw Error("adjoint: the reverse pass forms no components to split over " +
                    std::to_string(group.size()) +
                    " ranks; run it as one process (it costs about one backward pass per target position)");
    if (rq.adjoint) return attribute_adjoint(model, trace, rq);
    Attribution<T> a;
    a.targets = resolve_targets(rq.targets, trace, model.cfg.V);  // a bad target fails before any work
    Initialised<T> init = initialise(model, trace, rq.start, group.rank(), group.size());
    const int M = int(init.info.size());  // every component, on every rank
    a.level = init.level;
    a.cut = init.cut;
    a.info = init.info;
    a.options = init.options(rq.rule, rq.temperature);
    if (rq.ignore_special_token) a.options.ignore_special_token = *rq.ignore_special_token;
    a.options.mlp_chunk = rq.mlp_chunk;

    if (rq.qk) {
        // Before any work: the request, the cut at or before the block's input, the size.
        check_qk_request(model.cfg, trace.N(), *rq.qk);
        const int l = rq.qk->layer;
        if (init.cut.layer > l || (init.cut.layer == l && init.cut.after_attention))
            throw Error("qk: the decomposition starts at " + init.cut.str() + ", after h[" +
                        std::to_string(l) + "], the input of block " + std::to_string(l) +
                        " whose logits are to be split (cut at or before it)");
        const uint64_t bytes = qk_bytes(model.cfg, M, trace.N(), *rq.qk, int(sizeof(T)));
        if (rq.qk_max_bytes && bytes > rq.qk_max_bytes)
            throw Error("qk: the split of " + std::to_string(M) + " x " + std::to_string(M) +
                        " component pairs needs " + format_bytes(bytes) + ", more than the " +
                        format_bytes(rq.qk_max_bytes) +
                        " allowed; choose fewer heads or query positions, or fewer components");
    }

    CompletenessMonitor<T> monitor(trace);
    Mat<T> final_sum;  // split over ranks: the sum at h[L], checked against the gathered result
    const ComponentObserver<T> watch = [&](const CutPoint& p, const Components<T>& c) {
        if (rq.qk && p.layer == rq.qk->layer && !p.after_attention) {
            const Components<T> whole = gather_components(c, group);  // c itself for one process
            if (group.is_root()) a.qk = qk_split(model, trace, whole, *rq.qk);
        }
        if (split) {
            Mat<T> sum = sum_over_ranks(c, group);
            monitor.observe_sum(p, sum);
            if (p.layer == model.cfg.L) final_sum = std::move(sum);
        } else {
            monitor.observe(p, c);
        }
        if (rq.keep_points) {
            Components<T> whole = gather_components(c, group);
            if (group.is_root()) {
                a.points.push_back(p);
                a.at_points.push_back(std::move(whole));
            }
        }
        if (observe) observe(p, c);
    };
    sync_point(group);  // every rank is ready for the collective calls of the pass
    a.components = collective(group, [&] {
        return propagate(model, trace, std::move(init.comps), init.cut, a.options, watch, group);
    });
    monitor.require();  // every rank has seen the same sums: the same verdict everywhere
    a.completeness = monitor.points();
    a.completeness_max_abs = monitor.max_abs();
    a.completeness_max_rel = monitor.max_rel();
    a.completeness_worst_point = monitor.worst_point();
    if (a.qk) {
        // The split's two identities; a violation is a bug, as for completeness.
        a.qk_check = check_qk_split(model, trace, *a.qk);
        const double tol = tolerance::qk_rel<T>();
        if (!(a.qk_check.logits_max_rel <= tol) || !(a.qk_check.probs_max_abs <= tol)) {
            std::ostringstream os;
            os << "qk: the component pairs do not add up to block " << a.qk->layer << "'s attention: logits "
               << a.qk_check.logits_max_rel << " (relative), probabilities " << a.qk_check.probs_max_abs
               << " (absolute), above the tolerance " << tol;
            throw CompletenessError(os.str());
        }
    }

    a.logit_attribution = logit_attribution(model, trace, a.components, a.targets);
    if (split) {
        sync_point(group);  // rank 0's QK check, every rank's logit attribution
        collective(group, [&] {
            a.components = gather_components(a.components, group);
            a.logit_attribution = gather_components_tensor(a.logit_attribution, group);
        });
        // The completeness of the gathered result itself: its sum is the one the monitor checked
        // at h[L], to the last bit (the same additions in the same order).
        if (group.is_root() && !(a.components.sum().array() == final_sum.array()).all())
            throw CompletenessError(
                "completeness: the components gathered from " + std::to_string(group.size()) +
                " ranks do not sum to the state checked at h[" + std::to_string(model.cfg.L) + "]");
    }
    const int N = trace.N(), K = a.K();
    a.target_logits.resize(N, K);
    for (int n = 0; n < N; ++n)
        for (int k = 0; k < K; ++k) a.target_logits(n, k) = double(trace.logits(n, a.targets[n][k]));
    return a;
}

template <class T>
Attribution<T> attribute(const Model<T>& model, const std::vector<int>& ids,
                         const AttributionRequest& request, const ComponentObserver<T>& observe) {
    const Trace<T> trace = forward(model, ids);
    return attribute(model, trace, request, observe);
}

template class CompletenessMonitor<float>;
template class CompletenessMonitor<double>;
#define DEPASS_INSTANTIATE(T)                                                                              \
    template std::vector<std::vector<int>> resolve_targets(const std::vector<std::vector<int>>&,           \
                                                           const Trace<T>&, int);                          \
    template Attribution<T> attribute(const Model<T>&, const Trace<T>&, const AttributionRequest&,         \
                                      const ComponentObserver<T>&, const Group&);                          \
    template Attribution<T> attribute(const Model<T>&, const std::vector<int>&, const AttributionRequest&, \
                                      const ComponentObserver<T>&);
DEPASS_INSTANTIATE(float)
DEPASS_INSTANTIATE(double)
#undef DEPASS_INSTANTIATE

}  // namespace depass
