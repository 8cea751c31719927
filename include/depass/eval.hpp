// eval.hpp -- measuring what DePass claims, against baselines.
//
// Two claims of the method are measured on real weights:
//
//  1. Faithfulness. Attributions match what the model really uses: masking the
//     components DePass ranks highest hurts the prediction most.
//       * tokens:  delete (or keep only) the top-ranked input tokens and re-run the model;
//       * heads / neurons: zero the top-ranked units (W_O columns of a head, the W_down
//         column of a neuron) in a working copy of the model.
//     Baselines are ranked and masked the same way (random, attention, rollout,
//     embedding norm, leave-one-out occlusion, and the gradient methods integrated
//     gradients, input x gradient, gradient norm; head norm / activation magnitude and
//     attribution patching for units).
//
//  2. Cost. One decomposed pass per layer gives a score for every neuron of that
//     layer; ablation needs one forward per neuron. neuron_speed() times both and
//     reports the rank correlation of the scores with the measured ablation effects.
//     token_cost() times token-level DePass against integrated gradients and input x gradient.
//
// Scores everywhere: the target is the model's own greedy next token at the last
// position, and P is its softmax probability there.
//
// Library code: no printing; long loops report progress through an optional callback.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "depass/decompose.hpp"
#include "depass/forward.hpp"
#include "depass/types.hpp"
#include "depass/weights.hpp"

namespace depass::eval {

// (done, total) -- called from the calling thread only.
using Progress = std::function<void(int, int)>;

// ---- numbers and rankings ------------------------------------------------------------

// Number of tokens masked at `percent` (1..100) of `candidates` tokens:
//   k = max(1, floor(percent * candidates / 100))     (integer arithmetic, no rounding error)
int masked_count(int percent, int candidates);

// Faithfulness score of one masked run:  min(100, |P_clean - P_masked| / P_clean * 100).
double mask_score(double p_clean, double p_masked);

// Area under a curve y(x) by the trapezoid rule, divided by the width x.back() - x.front(),
// so a constant curve c has area c (a curve in [0, 100] has an area in [0, 100]).
// x strictly increasing, at least two points.
double curve_area(const std::vector<double>& x, const std::vector<double>& y);

// Ranks 1..n of the values (ascending); tied values share the mean of their ranks.
std::vector<double> average_ranks(const std::vector<double>& v);

// Spearman rank correlation: Pearson correlation of the average ranks (ties handled).
// Returns 0 when either side is constant.
double spearman(const std::vector<double>& a, const std::vector<double>& b);

// Indices sorted by descending score; equal scores keep the lower index first.
std::vector<int> order_descending(const std::vector<double>& scores);

// A small seeded generator (SplitMix64): the same stream on every platform, unlike the
// distributions of <random>.
class Rng {
public:
    explicit Rng(uint64_t seed) : s_(seed) {}
    uint64_t next();
    double uniform();  // [0, 1) with 53 random bits
    int below(int n);  // uniform in [0, n)
    template <class It>
    void shuffle(It first, It last) {  // Fisher-Yates
        for (auto n = last - first; n > 1; --n) std::swap(first[n - 1], first[below(int(n))]);
    }

private:
    uint64_t s_;
};

// A seed derived from a base seed and up to three indices (prompt, draw, ...).
uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b = 0, uint64_t c = 0);

// ---- masking input tokens ------------------------------------------------------------

// ids without the tokens at `positions`.
std::vector<int> delete_positions(const std::vector<int>& ids, const std::vector<int>& positions);
// ids[0] (BOS), the tokens at `positions` in their original order, and ids.back().
std::vector<int> keep_positions(const std::vector<int>& ids, const std::vector<int>& positions);

// Softmax probability of `target` at the last position of a forward pass on ids.
template <class T>
double target_probability(const Model<T>& model, const std::vector<int>& ids, int target);

// Softmax probability (in double) of `target` in one row of logits.
template <class T>
double softmax_probability(const Mat<T>& logits, int row, int target);

// ---- token attribution methods --------------------------------------------------------

enum class TokenMethod {
    DePass,
    Random,
    AttentionLast,
    AttentionMean,
    Rollout,
    EmbeddingNorm,
    Occlusion,
    IntegratedGradients,
    InputXGradient,
    GradientNorm  // gradient baselines (backward.hpp)
};
// "depass", "random", "attn_last", "attn_mean", "rollout", "embed_norm", "occlusion",
// "integrated_gradients", "input_x_gradient", "gradient_norm"
const char* method_name(TokenMethod m);
TokenMethod parse_token_method(const std::string& s);  // throws naming the value
std::vector<TokenMethod> all_token_methods();

// DePass at token level: components = input tokens at h[0], softmax MLP rule with
// `temperature`, ignore-special-token on; score[j] = token j's logit attribution for
// `target` at the last position. [N]
template <class T>
std::vector<double> depass_token_scores(const Model<T>& model, const Trace<T>& trace, int target,
                                        double temperature = 0.1);
// Attention of the last layer: the last query row averaged over heads. [N]
template <class T>
std::vector<double> attention_last_scores(const Trace<T>& trace);
// The last query row averaged over heads and over layers. [N]
template <class T>
std::vector<double> attention_mean_scores(const Trace<T>& trace);
// Attention rollout: per layer the head average A, then  B = 0.5 A + 0.5 I  with rows
// renormalised, R = B_{L-1} ... B_1 B_0; given the per-layer head averages [L] x [N, N],
// returns R [N, N].
Mat<double> attention_rollout(const std::vector<Mat<double>>& head_mean);
template <class T>
std::vector<double> rollout_scores(const Trace<T>& trace);  // last row of R. [N]
// ||h[0][j]||: the norm of each input embedding. [N]
template <class T>
std::vector<double> embedding_norm_scores(const Trace<T>& trace);
// Leave-one-out: P_clean - P(ids without token j), for j = 1..N-2 (0 for BOS and the last). [N]
template <class T>
std::vector<double> occlusion_scores(const Model<T>& model, const std::vector<int>& ids, int target,
                                     double p_clean);

// Gradient baselines. f = log softmax(logits[N-1])[target]; x[j] = E[ids[j]] the token
// embedding (GPT-2's learned positions are kept fixed, see backward.hpp); g = df/dh[0].
//
// Integrated gradients with the zero-embedding baseline, midpoint Riemann sum of `steps` points:
//   attr[j, d] = x[j, d] * (1/S) sum_{s=0}^{S-1} g(alpha_s)[j, d],  alpha_s = (s + 1/2) / S,
//   evaluated at h[0] = alpha_s x + P;   score[j] = sum_d attr[j, d].
// Completeness: sum_j score[j] -> f(x) - f(0) as S grows (the midpoint rule's error is O(1/S^2));
// gap = sum_j score[j] - (f(x) - f(0)).
struct IntegratedGradientsResult {
    std::vector<double> scores;  // [N]
    double f_x = 0, f_0 = 0;     // f at the input and at the baseline (token embeddings zeroed)
    double sum = 0;              // sum_j scores[j]
    double gap() const { return sum - (f_x - f_0); }
};
template <class T>
IntegratedGradientsResult integrated_gradients(const Model<T>& model, const std::vector<int>& ids, int target,
                                               int steps = 100);
// Input x gradient: score[j] = x[j] . g[j] at the input. [N]
template <class T>
std::vector<double> input_x_gradient_scores(const Model<T>& model, const Trace<T>& trace, int target);
// Gradient norm: score[j] = ||g[j]||. [N]
template <class T>
std::vector<double> gradient_norm_scores(const Model<T>& model, const Trace<T>& trace, int target);

// ---- token faithfulness ------------------------------------------------------------------

struct TokenEvalOptions {
    std::vector<TokenMethod> methods = all_token_methods();
    int ig_steps = 100;  // integrated gradients: points of the midpoint rule
    std::vector<int> percents = {10, 20, 30, 40, 50, 60, 70, 80, 90, 100};
    int random_draws = 5;
    uint64_t seed = 1;
    double temperature = 0.1;
};

// One prompt: for each method and each percent, the deletion and keeping scores
// (the random method averaged over its draws).
struct PromptTokenResult {
    int N = 0;
    int target = -1;
    double p_clean = 0;
    std::vector<std::vector<double>> deletion, keeping;  // [method][percent]
    std::vector<double> deletion_area, keeping_area;     // [method]
    // Integrated gradients (NaN when the method was not run): f(x), f(0) and the completeness
    // gap sum(attr) - (f(x) - f(0)).
    double ig_f_x = std::numeric_limits<double>::quiet_NaN();
    double ig_f_0 = std::numeric_limits<double>::quiet_NaN();
    double ig_gap = std::numeric_limits<double>::quiet_NaN();
};

// `prompt_index` seeds the random draws (results do not depend on the thread count).
// Needs N >= 3 (BOS, at least one maskable token, the last token).
template <class T>
PromptTokenResult token_faithfulness(const Model<T>& model, const std::vector<int>& ids,
                                     const TokenEvalOptions& opt, uint64_t prompt_index);

struct TokenEvalSummary {
    TokenEvalOptions options;
    int prompts = 0;                                        // evaluated (N >= 3)
    int skipped = 0;                                        // too short
    std::vector<std::vector<double>> deletion, keeping;     // [method][percent], mean over prompts
    std::vector<double> deletion_area, keeping_area;        // [method], area of the mean curve
    std::vector<double> deletion_area_se, keeping_area_se;  // standard error of the per-prompt areas
    std::vector<PromptTokenResult> per_prompt;              // only the evaluated prompts
    std::vector<int> prompt_index;                          // index in the input of each per_prompt entry
    double seconds = 0;
};

// All prompts (OpenMP over prompts). Split over the ranks of `group` (distributed.hpp; every
// rank calls this with the same arguments): each rank evaluates a contiguous block of the
// prompts, the per-prompt results are exchanged, and every rank returns the summary one
// process computes, number for number (the same per-prompt results, combined in prompt order).
template <class T>
TokenEvalSummary token_eval(const Model<T>& model, const std::vector<std::vector<int>>& prompts,
                            const TokenEvalOptions& opt, const Progress& progress = {},
                            const Group& group = one_process());

// ---- heads and neurons -------------------------------------------------------------------

enum class UnitKind { Head, Neuron };
const char* unit_name(UnitKind k);  // "head" / "neuron"
// Units per layer: H or I.
int units_per_layer(const Config& cfg, UnitKind k);

// atp: attribution patching (AtP), the first-order estimate of zeroing the unit (see atp_unit_scores).
enum class UnitMethod { DePassSigned, DePassAbs, Random, Magnitude, Atp };
const char* method_name(UnitMethod m);  // "depass_signed", "depass_abs", "random", "magnitude", "atp"
std::vector<UnitMethod> all_unit_methods();

// DePass scores of every unit of every layer, [L * U] (layer-major): for each layer the
// head-level (init_heads) or neuron-level (init_neurons) decomposition is propagated to the
// end and the unit's logit attribution for `target` at the last position is its score.
// `rule` picks the MLP rule; with `adjoint` (taylor rule only) one reverse pass of the frozen
// network gives every layer's scores at once (adjoint.hpp) instead of one decomposed pass per layer.
template <class T>
std::vector<double> depass_unit_scores(const Model<T>& model, const Trace<T>& trace, UnitKind kind,
                                       int target, double temperature = 0.1, MlpRule rule = MlpRule::Softmax,
                                       bool adjoint = false);
// Magnitude baseline [L * U]: the norm of the head's output (through W_O) at the last
// position, or the neuron's |activation| at the last position.
template <class T>
std::vector<double> magnitude_unit_scores(const Model<T>& model, const Trace<T>& trace, UnitKind kind);

// Attribution patching (AtP) [L * U]: with f = log softmax(logits[N-1])[target] and g its gradient
// (backward.hpp), the first-order estimate of zeroing a unit at every position, as the ablation
// of unit_eval does (a head's W_O columns = its context c_h; a neuron's W_down column = its
// activation a[:, i]):
//   f(zeroed) - f ~ -sum_n c_h[n] . g_h[n]         (head: its Dh context dims, all positions)
//   f(zeroed) - f ~ -sum_n a[n, i] g[n, i]         (neuron)
// and the score is the absolute value of that estimate, |sum_n activation x gradient|.
template <class T>
std::vector<double> atp_unit_scores(const Model<T>& model, const Trace<T>& trace, UnitKind kind, int target);

// Zeroing in place: a head's columns h*Dh .. h*Dh+Dh-1 of W_O, or column i of W_down.
template <class T>
void zero_head(Model<T>& model, int layer, int head);
template <class T>
void zero_neuron(Model<T>& model, int layer, int neuron);
// Copies the same columns back from `original`.
template <class T>
void restore_unit(Model<T>& model, const Model<T>& original, UnitKind kind, int layer, int unit);

struct UnitEvalOptions {
    std::vector<UnitMethod> methods = all_unit_methods();
    std::vector<double> fractions = {0.01, 0.05, 0.10};
    int random_draws = 5;
    uint64_t seed = 1;
    double temperature = 0.1;
    MlpRule rule = MlpRule::Softmax;  // the MLP rule of the DePass scores
    bool adjoint = false;             // taylor rule: every layer's scores by one reverse pass
};

// Number of units zeroed for a fraction of `total`: max(1, floor(fraction * total + 1e-9)).
int zeroed_count(double fraction, int total);

// One row of the summary: a method, a direction (top = highest ranked zeroed first,
// bottom = lowest ranked), a fraction.
struct UnitEvalRow {
    UnitMethod method;
    bool top = true;
    double fraction = 0;
    int k = 0;
    double survival = 0;       // % of prompts whose greedy next token is unchanged
    double mean_drop = 0;      // mean of (P_clean - P_masked) * 100 (probability points)
    double mean_rel_drop = 0;  // mean of (P_clean - P_masked) / P_clean * 100
};

struct UnitEvalSummary {
    UnitKind kind = UnitKind::Head;
    UnitEvalOptions options;
    int prompts = 0;
    int total_units = 0;
    double mean_p_clean = 0;
    std::vector<UnitEvalRow> rows;  // method-major, then top/bottom, then fraction
    double seconds = 0;
};

// All prompts (OpenMP over prompts); split over the ranks of `group` as token_eval is.
template <class T>
UnitEvalSummary unit_eval(const Model<T>& model, const std::vector<std::vector<int>>& prompts, UnitKind kind,
                          const UnitEvalOptions& opt, const Progress& progress = {},
                          const Group& group = one_process());

// ---- neuron-level cost: DePass vs one ablation per neuron ---------------------------------

// (The ablations re-run the network with depass::forward_blocks, forward.hpp.)
// The logit of `target` at the last position from a final residual h[L]:
// W_U[target] . NormF(h[L][N-1]).
template <class T>
double last_target_logit(const Model<T>& model, const Mat<T>& hL, int target);

struct NeuronSpeedResult {
    int N = 0, target = -1, L = 0, I = 0, threads = 1;
    double target_logit = 0;
    MlpRule rule = MlpRule::Softmax;  // the DePass side's MLP rule
    bool adjoint = false;             // DePass by one reverse pass (then depass_layer_seconds = total / L)
    // Wall-clock seconds, and process CPU seconds (all threads) of the same spans.
    double forward_seconds = 0, forward_cpu = 0;  // the recorded forward (counted in both totals)
    double depass_seconds = 0,
           depass_cpu = 0;  // forward + per layer init_neurons + propagate + logit_attribution
    double ablation_seconds = 0,
           ablation_cpu = 0;  // forward + per neuron: blocks l+1.. from the edited h[l+1]
    std::vector<double> depass_layer_seconds, ablation_layer_seconds;  // [L], wall, without the forward
    std::vector<double> depass_scores;     // [L * I] logit attribution of each neuron
    std::vector<double> ablation_effects;  // [L * I] clean logit - logit with the neuron zeroed
    double spearman = 0;                   // over all L * I neurons
    std::vector<double> spearman_layer;    // [L]
    // Naive ablation, timed on a sample of neurons: a full forward() of the whole model with the
    // neuron's W_down column zeroed (all layers, all logits), extrapolated to L * I neurons.
    int naive_sample = 0;
    double naive_sample_seconds = 0, naive_sample_cpu = 0;
    double naive_max_effect_diff = 0;  // max |naive effect - ablation effect| over the sample
    double naive_seconds_extrapolated() const {
        return naive_sample > 0 ? naive_sample_seconds * double(L) * I / naive_sample : 0;
    }
    double naive_cpu_extrapolated() const {
        return naive_sample > 0 ? naive_sample_cpu * double(L) * I / naive_sample : 0;
    }
    double speedup() const { return depass_seconds > 0 ? ablation_seconds / depass_seconds : 0; }
    double speedup_cpu() const { return depass_cpu > 0 ? ablation_cpu / depass_cpu : 0; }
};

// DePass: one decomposed pass per layer with every neuron of the layer as a component
// (M = I + 1). Ablation: for each neuron of layer l, h[l+1] minus a[:, i] W_down[:, i]
// (exactly the effect of zeroing its W_down column, the earlier layers reused from the
// trace), then blocks l+1 .. L-1 on all positions, then the target logit at the last
// position. `run_ablation` false skips the ablation (scores only). `naive_sample` > 0 also
// times that many naive ablations (neurons spread evenly over the layers).
// `rule` and `adjoint` as for depass_unit_scores: with adjoint the DePass side is the recorded
// forward + one reverse pass of the frozen network for the target, every neuron of every layer
// scored from its cotangents.
template <class T>
NeuronSpeedResult neuron_speed(const Model<T>& model, const std::vector<int>& ids, bool run_ablation = true,
                               double temperature = 0.1, int naive_sample = 0, const Progress& progress = {},
                               MlpRule rule = MlpRule::Softmax, bool adjoint = false);

// ---- token-level cost: DePass against the gradient baselines ------------------------------

// Wall-clock seconds of one attribution of one prompt (target = the greedy next token at the
// last position, found beforehand and not timed). Every method starts from the ids and runs
// its own forward at the input:
//   depass:               forward + init_tokens + propagate + logit_attribution (depass_token_scores)
//   integrated_gradients: forward at x (f(x)) + forward at the baseline (f(0))
//                         + `ig_steps` x (forward_from_embeddings + backward)
//   input_x_gradient:     forward + backward + x . g
struct TokenCostResult {
    int N = 0, target = -1, ig_steps = 0;
    double depass_seconds = 0, ig_seconds = 0, ixg_seconds = 0;
    double ig_gap = 0;  // completeness gap of the timed IG run
};
template <class T>
TokenCostResult token_cost(const Model<T>& model, const std::vector<int>& ids, int ig_steps = 100,
                           double temperature = 0.1);

// ---- prompts -----------------------------------------------------------------------------

// One prompt per line; empty lines and lines starting with '#' are skipped; a trailing
// '\r' is dropped. Throws depass::Error naming the file.
std::vector<std::string> read_prompt_file(const std::string& path);

// Prefixes sampled from the model itself: for prompt j, a length uniform in
// [min_tokens, max_tokens], then tokens drawn from softmax(logits / temperature) at the
// last position, starting from BOS, with a generator seeded by (seed, j). A token with
// stop[id] true (EOS, pieces holding a newline) ends the prefix when it is long enough,
// otherwise the draw starts over. Returns the ids, BOS first.
template <class T>
std::vector<std::vector<int>> sample_prefixes(const Model<T>& model, int count, uint64_t seed, int min_tokens,
                                              int max_tokens, double temperature,
                                              const std::vector<bool>& stop);

// ---- plots (minimal hand-written SVG) ------------------------------------------------------

struct Series {
    std::string name;
    std::vector<double> x, y;
};
// A line chart with markers, axes, ticks and a legend.
std::string svg_line_chart(const std::string& title, const std::string& x_label, const std::string& y_label,
                           const std::vector<Series>& series, double x_min, double x_max, double y_min,
                           double y_max);

struct BarGroup {
    std::string label;
    std::vector<double> values;  // one per bar series
};
// Grouped bars (a '\n' in a group label starts a second line); `log_scale` draws a log10 y axis (values must
// be > 0); values are printed above the bars with `value_format` (printf style, e.g. "%.2f").
std::string svg_bar_chart(const std::string& title, const std::string& y_label,
                          const std::vector<std::string>& bar_names, const std::vector<BarGroup>& groups,
                          bool log_scale, const std::string& value_format);

// A scatter plot of y against x with a least-squares line.
std::string svg_scatter(const std::string& title, const std::string& x_label, const std::string& y_label,
                        const std::vector<double>& x, const std::vector<double>& y);

}  // namespace depass::eval
