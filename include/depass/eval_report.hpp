// eval_report.hpp -- what `depass eval` computes from the measurements of eval.hpp and
// the files it writes from them.
//
//   statistics (src/eval/stats.cpp): paired differences with their standard errors,
//     the completeness gap of integrated gradients over the prompts, medians over
//     repeated timing runs, means of the token-level cost;
//   writers (src/eval/writers.cpp): the CSV, JSON and SVG text of every eval command and
//     the prompt file of `eval prompts`.
//
// Writers return the text of a file (JSON ends with a newline) and never touch the file
// system, except speed_plot(), which reads the JSON files it combines. The command line
// writes the texts atomically (io.hpp write_file_atomic).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "depass/config.hpp"
#include "depass/eval.hpp"

namespace depass::eval {

// ---- statistics --------------------------------------------------------------------------

// A mean and the standard error of that mean.
struct MeanSe {
    double mean = 0, se = 0;
};

// Paired differences d_i = a_i - b_i, i = 1..n, n >= 2:
//   mean = (1/n) sum_i d_i
//   se   = sqrt(max(0, (sum_i d_i^2 - n mean^2) / (n - 1) / n))
// (the sample variance in its one-pass form, over n: the standard error of the mean).
// Throws when the sizes differ or n < 2.
MeanSe paired_mean_se(const std::vector<double>& a, const std::vector<double>& b);

// The per-prompt areas of one method paired with those of a reference method.
struct PairedAreaDifference {
    MeanSe deletion, keeping;  // of deletion_area[m] - deletion_area[ref], keeping likewise
};
// For every method m of s.options.methods (in that order), paired_mean_se of its per-prompt
// areas against those of `reference`, over the evaluated prompts. Empty when `reference`
// was not run or fewer than two prompts were evaluated.
std::vector<PairedAreaDifference> paired_area_differences(const TokenEvalSummary& s, TokenMethod reference);

// Completeness of integrated gradients over the prompts i = 1..n, with
//   gap_i = sum_j attr_i[j] - (f_i(x) - f_i(0)),   rel_i = |gap_i| / max(|f_i(x) - f_i(0)|, 1e-300):
//   mean = (1/n) sum_i gap_i,  mean_abs = (1/n) sum_i |gap_i|,  max_abs = max_i |gap_i|,
//   mean_abs_rel = (1/n) sum_i rel_i,  max_abs_rel = max_i rel_i.
// Every mean is accumulated term by term as sum_i (x_i / n).
struct CompletenessGapStats {
    double mean = 0, mean_abs = 0, max_abs = 0, mean_abs_rel = 0, max_abs_rel = 0;
};
// Throws when there is no prompt or integrated gradients was not run (a gap is NaN).
CompletenessGapStats completeness_gap_stats(const std::vector<PromptTokenResult>& per_prompt);

// Median of n >= 1 values: the middle of the sorted values for odd n, the mean of the two
// middle ones for even n. Throws for no values.
double median(std::vector<double> v);

// One result from repeated neuron_speed runs of the same input: the whole-run times
// (forward, depass, ablation, naive sample; wall and CPU) are the median() over the runs;
// the per-layer wall times are the upper median of each layer, sorted[n / 2]; every other
// field (scores, effects, Spearman, ...) is that of runs[0]. Throws for no runs.
NeuronSpeedResult median_of_runs(const std::vector<NeuronSpeedResult>& runs);

// Token-level cost over the prompts i = 1..P: every time and N as a mean accumulated as
// sum_i (x_i / P), and the largest |completeness gap| of the timed integrated gradients.
struct TokenCostSummary {
    double depass_seconds = 0, ig_seconds = 0, ixg_seconds = 0;  // per prompt
    double mean_N = 0;
    double ig_gap_max_abs = 0;
};
// Throws for no runs.
TokenCostSummary summarise_cost(const std::vector<TokenCostResult>& runs);

// ---- writers -----------------------------------------------------------------------------

// The file of `eval prompts`: `header` as the first line, a line on the format, then one
// prompt per line: each decoded prefix with the spaces at both ends trimmed; empty ones,
// ones starting with '#' and exact repeats of an earlier prompt are dropped.
struct PromptFile {
    std::string text;
    int prompts = 0;  // lines written after the two comment lines
};
PromptFile prompt_file(const std::string& header, const std::vector<std::string>& decoded);

// What the summaries of `eval tokens` / `heads` / `neurons` say about the run.
struct EvalRunInfo {
    std::string model;  // file name of the model
    std::string dtype;  // "f32" | "f64"
    std::vector<std::string> prompt_files;
};

// tokens_curves.csv: method,mode,percent,mean_score; one row per method, mode (deletion,
// keeping) and percent.
std::string tokens_curves_csv(const TokenEvalSummary& s);
// tokens_per_prompt.csv: one row per evaluated prompt and method. prompt_source[i] names the
// file of input prompt i; target_piece[k] shows the target of s.per_prompt[k].
std::string tokens_per_prompt_csv(const TokenEvalSummary& s, const std::vector<std::string>& prompt_source,
                                  const std::vector<std::string>& target_piece);
// tokens_summary.json: the options, curves and areas of every method, the completeness of
// integrated gradients (when run) and the paired differences against DePass (when run on
// at least two prompts).
std::string tokens_summary_json(const TokenEvalSummary& s, const EvalRunInfo& run);
// tokens_deletion.svg (keeping false) or tokens_keeping.svg (keeping true).
std::string tokens_svg(const TokenEvalSummary& s, bool keeping, const std::string& model);

// heads.csv / neurons.csv: one row per method, direction and fraction.
std::string units_csv(const UnitEvalSummary& s);
// heads.json / neurons.json.
std::string units_json(const UnitEvalSummary& s, const EvalRunInfo& run);
// heads_drop.svg (survival false) or heads_survival.svg (survival true); likewise neurons.
std::string units_svg(const UnitEvalSummary& s, bool survival, const std::string& model);

// What the JSON of a timing run (`eval neurons-speed`, `eval cost`) starts with.
struct TimingRunInfo {
    std::string label;    // the run's name in JSON and plots
    std::string model;    // the model's name
    bool random = false;  // a random model: random_seed and random_std are recorded
    uint64_t random_seed = 0;
    double random_std = 0;
    std::string dtype;
    Config cfg;
};

// What else the JSON of `eval neurons-speed` records.
struct NeuronSpeedRunInfo {
    std::string ids_from;  // where the ids came from
    std::vector<int> ids;
    int repeats = 1;
    bool malloc_keeps_freed_memory = false;
    bool malloc_large_block_mapped = false;  // a 64 MiB block gets its own mapping (glibc defaults)
    bool ablation = true;                    // false: --no-ablation, no ablation fields
};
// The JSON of `eval neurons-speed --json`.
std::string neuron_speed_json(const NeuronSpeedResult& r, const TimingRunInfo& run,
                              const NeuronSpeedRunInfo& info);
// --csv: layer,neuron,depass_score,ablation_effect; one row per neuron.
std::string neuron_speed_csv(const NeuronSpeedResult& r);
// --svg: the scatter plot of the DePass scores against the ablation effects.
std::string neuron_speed_svg(const NeuronSpeedResult& r, const std::string& label);

// `eval speed-plot`: speed.csv (one row per file) and speed.svg (CPU seconds, log scale)
// from neurons-speed JSON files with ablation and a naive sample. Throws naming the file
// and the field when a file is not JSON or lacks a field.
struct SpeedPlot {
    std::string csv, svg;
};
SpeedPlot speed_plot(const std::vector<std::string>& json_files);

// The JSON of `eval cost --json`. `threads`: the OpenMP threads of the run.
std::string token_cost_json(const std::vector<TokenCostResult>& runs, const TimingRunInfo& run,
                            const std::string& ids_from, int ig_steps, int threads);

}  // namespace depass::eval
