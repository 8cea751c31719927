// qk_identities.hpp -- the QK split's two identities as a validation suite, behind
// `depass validate --qk`.
//
// For one model and token sequence, every case of the completeness plan (level, variant,
// cut layer; completeness.hpp) is initialised and propagated with every MLP rule, as the
// completeness suite does. At the input h[l] of every block l at or after the cut, the
// components there are split over (query-side, key-side) pairs for every query head
// (qk_split, one head at a time) and the split is held to the identities of qk.hpp
// (check_qk_split):
//
//   logits_max_rel = max_{h,i,j<=i} | sum_{m,m'} S_h[m,m'][i,j] - s_h[i,j] | / max |s_h|
//                    (s_h = q_h . k_g / sqrt(Dh), recomputed from the recorded h[l]: attention_logits)
//   probs_max_abs  = max_{h,i,j<=i} | softmax_{j<=i}(sum_{m,m'} S_h[m,m'][i,.])_j - A_h[i,j] |
//                    (A_h the probabilities recorded by the forward pass)
//
// and a split passes when both are <= tolerance::qk_rel<T>().
//
// Library code: nothing is printed; results go to the caller (and to an optional callback
// after each split, so a caller can report progress).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "depass/completeness.hpp"

namespace depass::validation {

// One split: a case's components at h[block], over all query heads and positions.
struct QkResult {
    std::string level;    // token | module | head | neuron | subspace | custom
    std::string variant;  // as in RunResult
    MlpRule rule = MlpRule::Softmax;
    CutPoint cut;
    int block = 0;       // the block whose logits were split (its input h[block], at or after the cut)
    int components = 0;  // M, rest included
    int heads = 0;       // query heads split (all of them)
    double logits_max_rel = 0, probs_max_abs = 0;  // the worst over the heads
    double tolerance = 0;
    bool pass = true;

    std::string label() const;  // "token (special on) rule=softmax cut=h[0] block 1"
};

// Runs every case of the plan on (model, ids) and splits block l's logits for every block at
// or after each case's cut (a cut at h[L] splits none). `on_result` is called after each split.
// With plan.inject_leak the rest is perturbed after initialisation, as in check_completeness, so
// the identities must fail. Throws depass::Error for invalid plans and library errors.
template <class T>
std::vector<QkResult> check_qk_identities(const Model<T>& model, const std::vector<int>& ids,
                                          const CompletenessPlan& plan,
                                          const std::function<void(const QkResult&)>& on_result = {});

}  // namespace depass::validation
