// eval_qk.hpp -- what frozen attention misses: the QK path of a component, to first order
// and exactly (docs/levels/qk.md, "Beyond frozen attention").
//
// Plain DePass freezes every attention pattern, so a component is credited only for what it
// carries through the value path. Removing a component m also changes the patterns: in block
// l, head h, its share of the logits (qk.hpp) is
//   query side  dS[q, k] = - sum_m' S[m, m'][q, k]        (m removed from the queries)
//   key side    dS[q, k] = - sum_m' S[m', m][q, k]        (m removed from the keys)
//   both        dS[q, k] = - (the two above - S[m, m][q, k])
// and the pattern changes by
//   first order dA[q, k] = A[q, k] (dS[q, k] - sum_k' A[q, k'] dS[q, k'])
//   exact       dA[q, k] = softmax_k<=q(S[q, .] + dS[q, .])[k] - A[q, k].
// With the values frozen the head's context changes by dctx[q] = sum_k dA[q, k] v[k] and the
// block's output by W_O,h dctx. Its effect on the target logit is measured two ways:
//   first order  through the frozen network after the head (the taylor rule's linear map,
//                lambda = its transpose applied to the target, adjoint.hpp):
//                dz = sum_q lambda_{m[l]}[q] . W_O,h dctx[q] = sum_{q,k} dA[q, k] G[q, k],
//                G[q, k] = (lambda_{m[l]}[q] W_O,h) . v[k];
//   exact        the real network re-run from m[l] + W_O,h dctx (everything after the head,
//                later patterns included, recomputed).
// and, to tell the two approximations apart, the linear pattern through the real network's
// gradient after the head (backward.hpp, logit_backward): the full first-order estimate.
// A token's whole effect is its ablation: the target logit minus the logit with its component
// removed from h[0] and the model re-run. Plain DePass (taylor, frozen) credits it a_j; the
// difference is what freezing misses, and the sum over blocks and heads of the first-order QK
// effect (both sides) is the part of that the attention patterns explain.
//
// Library code: no printing; progress through an optional callback.
#pragma once

#include <string>
#include <vector>

#include "depass/eval.hpp"
#include "depass/eval_report.hpp"

namespace depass::eval {

enum class QkSide { Query, Key, Both };
const char* qk_side_name(QkSide s);  // "query", "key", "both"

// One causal row of a pattern change, q = row.size() - 1 (keys 0..q), in double.
//   a: the recorded probabilities A[q, 0..q];  s: the logits S[q, 0..q];  ds: the change dS.
std::vector<double> pattern_change_first_order(const std::vector<double>& a, const std::vector<double>& ds);
std::vector<double> pattern_change_exact(const std::vector<double>& s, const std::vector<double>& ds);

// One (component, block, head, side) experiment of one prompt.
struct QkEffectRow {
    int prompt = 0, layer = 0, head = 0, component = 0;
    QkSide side = QkSide::Both;
    double pattern_first = 0;    // sum_{q,k} |dA| first order
    double pattern_exact = 0;    // sum_{q,k} |dA| exact
    double pattern_error = 0;    // sum_{q,k} |dA first - dA exact|
    double ctx_first = 0;        // ||dctx||_F first order
    double ctx_exact = 0;        // ||dctx||_F exact
    double ctx_error = 0;        // ||dctx first - dctx exact||_F
    double logit_first = 0;      // dz, first order (linear pattern, frozen network after the head)
    double logit_first_grad = 0;     // dz, linear pattern, the real network's gradient after the head
    double logit_exact_pattern = 0;  // dz with the exact pattern, frozen network after the head
    double logit_exact = 0;      // dz with the exact pattern, the real network re-run after the head
};

// One token of one prompt.
struct QkTokenRow {
    int prompt = 0, position = 0, id = 0;
    double ablation = 0;        // z - z(component removed from h[0], model re-run)
    double depass_taylor = 0;   // plain DePass, taylor rule (frozen attention)
    double depass_softmax = 0;  // plain DePass, softmax rule (the default)
    double qk_first = 0;        // - sum over blocks and heads of logit_first (both sides): the QK path's credit
    double qk_first_grad = 0;   // the same from logit_first_grad
};

struct QkPromptInfo {
    std::vector<int> ids;
    int target = 0;           // the greedy next token at the last position
    double target_logit = 0;  // z
};

struct QkEffectSummary {
    std::vector<QkPromptInfo> prompts;
    std::vector<QkEffectRow> rows;      // tokens only (not the rest), every block, head and side
    std::vector<QkTokenRow> tokens;     // every position of every prompt
    double seconds = 0;
};

// The experiment on each prompt (ids each with BOS as the tokenizer gives it). Token level
// components at h[0]; the target is the greedy next token at the last position.
template <class T>
QkEffectSummary qk_effects(const Model<T>& model, const std::vector<std::vector<int>>& prompts,
                           const Progress& progress = {});

// The largest memory one prompt of N tokens takes in qk_effects() (bytes): one block's split
// over all heads (H (N+1)^2 N^2 scalars), one head of it in double, each token's query, key and
// diagonal sums of a head, and the components kept at every residual point.
uint64_t qk_effects_bytes(const Config& cfg, int N, int scalar_bytes);

// Statistics of one side over the rows: how well the first order matches the exact effect.
struct QkSideStats {
    QkSide side = QkSide::Both;
    int rows = 0;
    double pattern_rel_error = 0;       // sum |dA first - exact| / sum |dA exact|
    double ctx_rel_error = 0;           // sum ||dctx first - exact|| / sum ||dctx exact||
    double logit_pearson = 0;           // first order vs exact (real network)
    double logit_spearman = 0;
    double logit_rel_error = 0;         // sum |dz first - dz exact| / sum |dz exact|
    double logit_pearson_frozen = 0;    // first order vs exact pattern with the frozen network after the head
    double logit_rel_error_frozen = 0;  // (the softmax linearisation alone)
    double logit_pearson_grad = 0;      // first order with the real gradient after the head vs exact
    double logit_rel_error_grad = 0;
    double mean_abs_exact = 0;          // mean |dz exact|
};
std::vector<QkSideStats> qk_side_stats(const QkEffectSummary& s);

// Statistics of the tokens: how much of the ablation effect plain DePass misses, and how much
// of that the first-order QK path explains. `skip_first`: leave position 0 (BOS) out.
struct QkTokenStats {
    int tokens = 0;
    double mean_abs_ablation = 0;
    double miss_taylor = 0;           // sum |ablation - depass_taylor| / sum |ablation|
    double miss_softmax = 0;          // sum |ablation - depass_softmax| / sum |ablation|
    double miss_with_qk = 0;          // sum |ablation - depass_taylor - qk_first| / sum |ablation|
    double qk_explained = 0;          // 1 - sum (miss - qk)^2 / sum miss^2   (miss = ablation - depass_taylor)
    double miss_qk_pearson = 0;       // Pearson(miss, qk_first)
    double pearson_taylor = 0;        // Pearson(ablation, depass_taylor)
    double pearson_with_qk = 0;       // Pearson(ablation, depass_taylor + qk_first)
    double qk_explained_grad = 0;     // as qk_explained, with qk_first_grad
    double miss_qk_pearson_grad = 0;  // Pearson(miss, qk_first_grad)
};
QkTokenStats qk_token_stats(const QkEffectSummary& s, bool skip_first);

// The output files of `depass eval qk`: one row per experiment, one per token, the summary
// (the statistics above, with the model's and the prompts' names).
std::string qk_rows_csv(const QkEffectSummary& s);
std::string qk_tokens_csv(const QkEffectSummary& s, const std::vector<std::string>& pieces);
std::string qk_summary_json(const QkEffectSummary& s, const EvalRunInfo& run);

// Pearson correlation; 0 when either side is constant.
double pearson(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace depass::eval
