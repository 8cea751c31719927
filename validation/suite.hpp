// suite.hpp -- what the validation suites share (validation/ only): the cases of a plan, the
// options each is propagated with, and the deliberate leak that tests a suite itself.
//
// The completeness suite (completeness.cpp) and the QK identities (qk_identities.cpp) run the
// same initialisations: every level and variant of the plan at every cut layer, with every
// MLP rule.
#pragma once

#include <string>
#include <vector>

#include "depass/completeness.hpp"
#include "depass/forward.hpp"

namespace depass::validation {

// One initialisation to run with every rule.
struct SuiteCase {
    std::string level, variant;
    LevelRequest req;
    int ignore_special = -1;  // -1: the initialiser's default; 0 / 1: forced off / on
};

// The plan's cases on (model, trace), level by level, cut layer by cut layer. Throws
// depass::Error for a layer outside 0..L, an unknown level or no custom components.
template <class T>
std::vector<SuiteCase> suite_cases(const Model<T>& model, const Trace<T>& trace,
                                   const CompletenessPlan& plan);

// The options of one case's run with `rule`: the initialiser's position-0 component and
// ignore-special-token default (unless the case forces it), the plan's temperature.
template <class T>
DecomposeOptions suite_options(const Initialised<T>& init, const SuiteCase& cs, MlpRule rule,
                               const CompletenessPlan& plan) {
    DecomposeOptions opt;
    opt.rule = rule;
    opt.temperature = plan.temperature;
    opt.pos0_component = init.pos0_component;
    opt.ignore_special_token = cs.ignore_special < 0 ? init.ignore_special_default : cs.ignore_special == 1;
    return opt;
}

// The deliberate leak of CompletenessPlan::inject_leak: the rest at the last position gains
// +-1e-3 of max |state at the cut| (as a lost bias would), so the components no longer sum
// to the state.
template <class T>
void inject_leak(const Trace<T>& trace, const CutPoint& cut, Components<T>& c) {
    const Mat<T>& s = state_at(trace, cut);
    const double mag = 1e-3 * std::max(double(s.cwiseAbs().maxCoeff()), 1.0);
    const int64_t row = c.row(c.rest(), c.N - 1);
    for (int d = 0; d < c.D; ++d) c.X(row, d) += T((d % 2 ? -1.0 : 1.0) * mag);
}

}  // namespace depass::validation
