// qk_identities.cpp -- the QK split's identities on every case, rule and block
// (qk_identities.hpp).
#include "depass/qk_identities.hpp"

#include <algorithm>
#include <cmath>

#include "depass/attribute.hpp"
#include "depass/forward.hpp"
#include "depass/qk.hpp"
#include "depass/tolerance.hpp"
#include "suite.hpp"

namespace depass::validation {

namespace {

// The larger error; NaN is worse than any number (and fails the tolerance).
double worse(double a, double b) { return std::isnan(a) || std::isnan(b) ? NAN : std::max(a, b); }

}  // namespace

std::string QkResult::label() const {
    return level + " (" + variant + ") rule=" + rule_name(rule) + " cut=" + cut.str() + " block " +
           std::to_string(block);
}

template <class T>
std::vector<QkResult> check_qk_identities(const Model<T>& model, const std::vector<int>& ids,
                                          const CompletenessPlan& plan,
                                          const std::function<void(const QkResult&)>& on_result) {
    const Config& cfg = model.cfg;
    const double tol = tolerance::qk_rel<T>();
    const Trace<T> trace = forward(model, ids);
    const std::vector<SuiteCase> cases = suite_cases(model, trace, plan);

    std::vector<QkResult> results;
    for (const SuiteCase& cs : cases) {
        const Initialised<T> init = initialise(model, trace, cs.req);
        Components<T> start = init.comps;
        if (plan.inject_leak) inject_leak(trace, init.cut, start);
        for (MlpRule rule : plan.rules) {
            // The components at every block input h[l] from the cut on (the cut itself when it
            // is one), split as they pass.
            const auto split_at = [&](const CutPoint& p, const Components<T>& c) {
                if (p.after_attention || p.layer >= cfg.L) return;
                QkResult r;
                r.level = cs.level;
                r.variant = cs.variant;
                r.rule = rule;
                r.cut = init.cut;
                r.block = p.layer;
                r.components = c.M;
                r.heads = cfg.H;
                r.tolerance = tol;
                // One head at a time: a split holds M^2 N^2 numbers per head.
                for (int h = 0; h < cfg.H; ++h) {
                    const QkSplit<T> s = qk_split(model, trace, c, QkRequest{p.layer, {h}, {}});
                    const QkCheck k = check_qk_split(model, trace, s);
                    r.logits_max_rel = worse(r.logits_max_rel, k.logits_max_rel);
                    r.probs_max_abs = worse(r.probs_max_abs, k.probs_max_abs);
                }
                r.pass = r.logits_max_rel <= tol && r.probs_max_abs <= tol;
                if (on_result) on_result(r);
                results.push_back(std::move(r));
            };
            propagate(model, trace, start, init.cut, suite_options(init, cs, rule, plan),
                      ComponentObserver<T>(split_at));
        }
    }
    return results;
}

template std::vector<QkResult> check_qk_identities(const Model<float>&, const std::vector<int>&,
                                                   const CompletenessPlan&,
                                                   const std::function<void(const QkResult&)>&);
template std::vector<QkResult> check_qk_identities(const Model<double>&, const std::vector<int>&,
                                                   const CompletenessPlan&,
                                                   const std::function<void(const QkResult&)>&);

}  // namespace depass::validation
