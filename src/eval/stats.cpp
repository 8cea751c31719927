// stats.cpp -- the statistics `depass eval` reports on top of the measurements:
// paired differences with standard errors, the completeness gap of integrated
// gradients, medians of repeated timing runs, means of the token-level cost.
#include <algorithm>
#include <cmath>

#include "depass/eval_report.hpp"

namespace depass::eval {

// d_i = a_i - b_i;  mean = (1/n) sum d_i;  se = sqrt(max(0, (sum d_i^2 - n mean^2) / (n - 1) / n))
MeanSe paired_mean_se(const std::vector<double>& a, const std::vector<double>& b) {
    if (a.size() != b.size())
        throw Error("paired_mean_se: " + std::to_string(a.size()) + " values paired with " +
                    std::to_string(b.size()));
    if (a.size() < 2) throw Error("paired_mean_se: " + std::to_string(a.size()) + " pairs (need at least 2)");
    const double n = double(a.size());
    double sum = 0, sum_sq = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        const double d = a[i] - b[i];
        sum += d;
        sum_sq += d * d;
    }
    MeanSe r;
    r.mean = sum / n;
    r.se = std::sqrt(std::max(0.0, (sum_sq - n * r.mean * r.mean) / (n - 1) / n));
    return r;
}

std::vector<PairedAreaDifference> paired_area_differences(const TokenEvalSummary& s, TokenMethod reference) {
    const std::vector<TokenMethod>& methods = s.options.methods;
    const auto ref = std::find(methods.begin(), methods.end(), reference);
    if (ref == methods.end() || s.per_prompt.size() < 2) return {};
    const size_t d = size_t(ref - methods.begin());
    std::vector<double> del_ref, keep_ref;
    for (const PromptTokenResult& r : s.per_prompt) {
        del_ref.push_back(r.deletion_area.at(d));
        keep_ref.push_back(r.keeping_area.at(d));
    }
    std::vector<PairedAreaDifference> out;
    for (size_t m = 0; m < methods.size(); ++m) {
        std::vector<double> del, keep;
        for (const PromptTokenResult& r : s.per_prompt) {
            del.push_back(r.deletion_area.at(m));
            keep.push_back(r.keeping_area.at(m));
        }
        out.push_back({paired_mean_se(del, del_ref), paired_mean_se(keep, keep_ref)});
    }
    return out;
}

// rel_i = |gap_i| / max(|f_i(x) - f_i(0)|, 1e-300); means as sum_i (x_i / n), maxima of |gap_i| and rel_i
CompletenessGapStats completeness_gap_stats(const std::vector<PromptTokenResult>& per_prompt) {
    if (per_prompt.empty()) throw Error("completeness_gap_stats: no prompts");
    const double n = double(per_prompt.size());
    CompletenessGapStats g;
    for (size_t i = 0; i < per_prompt.size(); ++i) {
        const PromptTokenResult& r = per_prompt[i];
        if (std::isnan(r.ig_gap))
            throw Error("completeness_gap_stats: prompt " + std::to_string(i) +
                        " has no integrated gradients result");
        const double rel = std::abs(r.ig_gap) / std::max(std::abs(r.ig_f_x - r.ig_f_0), 1e-300);
        g.mean += r.ig_gap / n;
        g.mean_abs += std::abs(r.ig_gap) / n;
        g.max_abs = std::max(g.max_abs, std::abs(r.ig_gap));
        g.mean_abs_rel += rel / n;
        g.max_abs_rel = std::max(g.max_abs_rel, rel);
    }
    return g;
}

// sorted v:  v[n/2] for odd n,  (v[n/2 - 1] + v[n/2]) / 2 for even n
double median(std::vector<double> v) {
    if (v.empty()) throw Error("median: no values");
    std::sort(v.begin(), v.end());
    const size_t h = v.size() / 2;
    return v.size() % 2 ? v[h] : (v[h - 1] + v[h]) / 2;
}

NeuronSpeedResult median_of_runs(const std::vector<NeuronSpeedResult>& runs) {
    if (runs.empty()) throw Error("median_of_runs: no runs");
    NeuronSpeedResult r = runs[0];
    using R = NeuronSpeedResult;
    for (double R::*f :
         {&R::forward_seconds, &R::forward_cpu, &R::depass_seconds, &R::depass_cpu, &R::ablation_seconds,
          &R::ablation_cpu, &R::naive_sample_seconds, &R::naive_sample_cpu}) {
        std::vector<double> v;
        for (const R& x : runs) v.push_back(x.*f);
        r.*f = median(v);
    }
    // per layer: the upper median sorted[n / 2]
    for (int l = 0; l < r.L; ++l) {
        std::vector<double> a, b;
        for (const R& x : runs) {
            a.push_back(x.depass_layer_seconds.at(l));
            b.push_back(x.ablation_layer_seconds.at(l));
        }
        std::sort(a.begin(), a.end());
        std::sort(b.begin(), b.end());
        r.depass_layer_seconds[l] = a[a.size() / 2];
        r.ablation_layer_seconds[l] = b[b.size() / 2];
    }
    return r;
}

// mean of x over the P prompts as sum_i (x_i / P); ig_gap_max_abs = max_i |gap_i|
TokenCostSummary summarise_cost(const std::vector<TokenCostResult>& runs) {
    if (runs.empty()) throw Error("summarise_cost: no runs");
    const double P = double(runs.size());
    TokenCostSummary c;
    for (const TokenCostResult& r : runs) {
        c.depass_seconds += r.depass_seconds / P;
        c.ig_seconds += r.ig_seconds / P;
        c.ixg_seconds += r.ixg_seconds / P;
        c.mean_N += r.N / P;
        c.ig_gap_max_abs = std::max(c.ig_gap_max_abs, std::abs(r.ig_gap));
    }
    return c;
}

}  // namespace depass::eval
