// depass eval -- faithfulness and cost measurements (include/depass/eval.hpp).
//
//   depass eval prompts        sample prompt prefixes from the model itself (the shipped set)
//   depass eval tokens         token deletion / keeping curves: DePass vs baselines
//   depass eval heads          zero the top / bottom ranked attention heads
//   depass eval neurons        zero the top / bottom ranked MLP neurons
//   depass eval neurons-speed  neuron-level DePass vs one ablation per neuron: time, Spearman
//   depass eval cost           token-level DePass vs integrated gradients vs input x gradient: time per
//   prompt depass eval speed-plot     one bar chart from several neurons-speed JSON files
//
// Thin: options, calls and printed tables. The measurements are in depass/eval.hpp, the
// statistics and the text of every output file in depass/eval_report.hpp.
#include <algorithm>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "common.hpp"
#include "depass/allocator.hpp"
#include "depass/eval.hpp"
#include "depass/eval_report.hpp"
#include "depass/io.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace fs = std::filesystem;

namespace depass::cli {

namespace {

std::string base_name(const std::string& path) { return fs::path(path).filename().string(); }

void write_out(const InputOptions& in, const std::string& path, const std::string& text) {
    write_file_atomic(path, text);
    say(in, "wrote " + path);
}

// Over MPI ranks only rank 0 creates it (and writes the files).
std::string prepare_dir(const std::string& dir) {
    if (dir.empty()) throw UsageError("--out: an output directory is needed");
    if (!is_root()) return dir;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (!fs::is_directory(dir)) throw Error("--out: cannot create the directory " + dir);
    return dir;
}

// ---- options shared by tokens / heads / neurons ------------------------------------------

struct SetOptions {
    InputOptions in;
    std::vector<std::string> prompt_files;
    int limit = 0;
    std::string out;
    uint64_t seed = 1;
    int draws = 5;
    double temperature = 0.1;
    std::string methods;               // tokens: comma list or empty = all
    int ig_steps = 100;                // tokens: integrated gradients steps
    std::string fractions = "1,5,10";  // heads / neurons: percents
    std::string rule = "softmax";      // heads / neurons: the DePass scores' MLP rule
    bool adjoint = false;              // heads / neurons: taylor scores by one reverse pass
};

// --adjoint is the taylor rule's only (the one rule linear in the components).
void check_adjoint_rule(bool adjoint, const std::string& rule) {
    if (adjoint && rule != "taylor")
        throw UsageError("--adjoint needs --rule taylor (got --rule " + rule +
                         "): only the taylor rule is linear in the components, so only it can be computed by "
                         "one reverse pass");
}

// --rule and --adjoint of heads, neurons and neurons-speed.
void add_rule_options(CLI::App* sub, std::string& rule, bool& adjoint) {
    sub->add_option("--rule", rule, "MLP rule of the DePass scores: softmax | max | relu | linear | taylor")
        ->check(CLI::IsMember({"softmax", "max", "relu", "linear", "taylor"}))
        ->capture_default_str();
    sub->add_flag(
        "--adjoint", adjoint,
        "with --rule taylor: every layer's DePass scores from one reverse pass of the frozen network "
        "(the same scores to rounding) instead of one decomposed pass per layer");
}

void add_set_options(CLI::App* sub, SetOptions& o) {
    add_input_options(sub, o.in, false);
    sub->add_option("--prompts", o.prompt_files,
                    "Prompt file(s): one prompt per line, '#' lines are comments (e.g. data/prompts/*.txt)")
        ->required();
    sub->add_option("--limit", o.limit, "Use only the first K prompts (0 = all)")->capture_default_str();
    sub->add_option("--out,-o", o.out, "Output directory (CSV, JSON, SVG)")->required();
    sub->add_option("--seed", o.seed, "Seed of the random baseline")->capture_default_str();
    sub->add_option("--draws", o.draws, "Draws averaged for the random baseline")->capture_default_str();
    sub->add_option("--temperature", o.temperature, "Softmax MLP rule temperature of DePass")
        ->capture_default_str();
}

struct PromptSet {
    std::vector<std::string> text;
    std::vector<std::string> source;  // file of each prompt
    std::vector<std::vector<int>> ids;
};

PromptSet load_prompts(const SetOptions& o, const Config& cfg, const Tokenizer& tok) {
    if (o.limit < 0) throw UsageError("--limit: " + std::to_string(o.limit) + " (expected >= 0)");
    if (o.draws < 1) throw UsageError("--draws: " + std::to_string(o.draws) + " (expected >= 1)");
    if (!(o.temperature > 0)) throw UsageError("--temperature must be > 0");
    PromptSet s;
    for (const std::string& f : o.prompt_files)
        for (const std::string& p : eval::read_prompt_file(f)) {
            if (o.limit > 0 && int(s.text.size()) >= o.limit) break;
            std::vector<int> ids = tok.encode(p, true, false);
            try {
                check_ids(cfg, ids);
            } catch (const Error& e) {
                throw Error(f + ": prompt '" + p + "': " + e.what());
            }
            s.text.push_back(p);
            s.source.push_back(base_name(f));
            s.ids.push_back(std::move(ids));
        }
    return s;
}

eval::Progress progress_to(const InputOptions& in, const std::string& what) {
    return [&in, what](int done, int total) {
        progress(in, what + " " + std::to_string(done) + " / " + std::to_string(total));
    };
}

std::string files_list(const std::vector<std::string>& files) {
    std::string s;
    for (const std::string& f : files) s += (s.empty() ? "" : " ") + f;
    return s;
}

// ---- eval tokens -------------------------------------------------------------------------

template <class T>
void run_tokens(const SetOptions& o) {
    const Model<T> model = load_model<T>(o.in.model);
    auto tok = find_tokenizer(o.in, model.cfg, true);
    const PromptSet ps = load_prompts(o, model.cfg, *tok);
    const std::string dir = prepare_dir(o.out);
    eval::TokenEvalOptions opt;
    if (!o.methods.empty()) {
        opt.methods.clear();
        std::stringstream ss(o.methods);
        std::string item;
        while (std::getline(ss, item, ',')) {
            try {
                opt.methods.push_back(eval::parse_token_method(item));
            } catch (const Error& e) {
                throw UsageError(std::string("--methods: ") + e.what());
            }
        }
    }
    opt.random_draws = o.draws;
    opt.seed = o.seed;
    opt.temperature = o.temperature;
    if (o.ig_steps < 1) throw UsageError("--ig-steps: " + std::to_string(o.ig_steps) + " (expected >= 1)");
    opt.ig_steps = o.ig_steps;
    say(o.in, "model: " + describe(model.cfg) + "; " + std::to_string(ps.ids.size()) + " prompts");
    const eval::TokenEvalSummary s =
        eval::token_eval(model, ps.ids, opt, progress_to(o.in, "prompts"), ranks());
    progress(o.in, "");
    if (!is_root()) return;

    std::vector<std::string> pieces;
    for (const eval::PromptTokenResult& r : s.per_prompt) pieces.push_back(show_piece(tok.get(), r.target));
    const eval::EvalRunInfo run{base_name(o.in.model), o.in.dtype, o.prompt_files};
    write_out(o.in, dir + "/tokens_curves.csv", eval::tokens_curves_csv(s));
    write_out(o.in, dir + "/tokens_per_prompt.csv", eval::tokens_per_prompt_csv(s, ps.source, pieces));
    write_out(o.in, dir + "/tokens_summary.json", eval::tokens_summary_json(s, run));
    write_out(o.in, dir + "/tokens_deletion.svg", eval::tokens_svg(s, false, run.model));
    write_out(o.in, dir + "/tokens_keeping.svg", eval::tokens_svg(s, true, run.model));

    // Table on stdout; the differences against DePass are 0 when it was not run or on one prompt.
    const std::vector<eval::PairedAreaDifference> pd =
        eval::paired_area_differences(s, eval::TokenMethod::DePass);
    std::printf("token faithfulness on %d prompts (%d too short skipped), %.1f s\n", s.prompts, s.skipped,
                s.seconds);
    std::printf("%-20s %18s %18s %20s %20s\n", "method", "deletion area (^)", "keeping area (v)",
                "deletion - depass", "keeping - depass");
    for (size_t m = 0; m < opt.methods.size(); ++m) {
        const eval::PairedAreaDifference d = pd.empty() ? eval::PairedAreaDifference{} : pd[m];
        std::printf("%-20s %11.2f +-%4.2f %11.2f +-%4.2f %12.2f +-%5.2f %12.2f +-%5.2f\n",
                    eval::method_name(opt.methods[m]), s.deletion_area[m], s.deletion_area_se[m],
                    s.keeping_area[m], s.keeping_area_se[m], d.deletion.mean, d.deletion.se, d.keeping.mean,
                    d.keeping.se);
    }
}

// ---- eval heads / neurons ----------------------------------------------------------------

template <class T>
void run_units(const SetOptions& o, eval::UnitKind kind) {
    check_adjoint_rule(o.adjoint, o.rule);  // before any work or output directory
    const Model<T> model = load_model<T>(o.in.model);
    auto tok = find_tokenizer(o.in, model.cfg, true);
    const PromptSet ps = load_prompts(o, model.cfg, *tok);
    const std::string dir = prepare_dir(o.out);
    eval::UnitEvalOptions opt;
    opt.fractions.clear();
    for (int pct : parse_int_list("--fractions", o.fractions)) {
        if (pct < 1 || pct > 100)
            throw UsageError("--fractions: " + std::to_string(pct) + " is not a percent in [1, 100]");
        opt.fractions.push_back(pct / 100.0);
    }
    opt.random_draws = o.draws;
    opt.seed = o.seed;
    opt.temperature = o.temperature;
    opt.rule = parse_mlp_rule(o.rule);
    opt.adjoint = o.adjoint;
    const std::string name = eval::unit_name(kind);
    say(o.in, "model: " + describe(model.cfg) + "; " + std::to_string(ps.ids.size()) + " prompts");
    const eval::UnitEvalSummary s =
        eval::unit_eval(model, ps.ids, kind, opt, progress_to(o.in, "prompts"), ranks());
    progress(o.in, "");
    if (!is_root()) return;

    const eval::EvalRunInfo run{base_name(o.in.model), o.in.dtype, o.prompt_files};
    write_out(o.in, dir + "/" + name + "s.csv", eval::units_csv(s));
    write_out(o.in, dir + "/" + name + "s.json", eval::units_json(s, run));
    write_out(o.in, dir + "/" + name + "s_drop.svg", eval::units_svg(s, false, run.model));
    write_out(o.in, dir + "/" + name + "s_survival.svg", eval::units_svg(s, true, run.model));

    std::printf("%s ablation on %d prompts (%d %ss), %.1f s; mean P_clean %.3f\n", name.c_str(), s.prompts,
                s.total_units, name.c_str(), s.seconds, s.mean_p_clean);
    std::printf("%-14s %-7s %5s %5s %11s %13s %13s\n", "method", "zeroed", "%", "k", "survival %",
                "drop (pts)", "rel drop %");
    for (const eval::UnitEvalRow& r : s.rows)
        std::printf("%-14s %-7s %5g %5d %11.1f %13.2f %13.1f\n", eval::method_name(r.method),
                    r.top ? "top" : "bottom", r.fraction * 100, r.k, r.survival, r.mean_drop,
                    r.mean_rel_drop);
}

// ---- eval prompts ------------------------------------------------------------------------

struct PromptsOptions {
    InputOptions in;
    int count = 300;
    uint64_t seed = 1;
    int min_tokens = 8, max_tokens = 32;
    double temperature = 1.0;
    std::string out;
};

template <class T>
void run_prompts(const PromptsOptions& o) {
    const Model<T> model = load_model<T>(o.in.model);
    auto tok = find_tokenizer(o.in, model.cfg, true);
    // A prefix ends at EOS or at a piece holding a newline (one prompt per line).
    std::vector<bool> stop(model.cfg.V, false);
    for (int v = 0; v < model.cfg.V && v < tok->vocab_size(); ++v)
        stop[v] =
            v == model.cfg.eos_id ||
            tok->decode_piece(v == model.cfg.bos_id ? 0 : 5, v).find_first_of("\r\n") != std::string::npos;
    stop[model.cfg.eos_id] = true;
    const auto ids =
        eval::sample_prefixes(model, o.count, o.seed, o.min_tokens, o.max_tokens, o.temperature, stop);
    std::ostringstream header;
    header << "# Prefixes sampled from " << base_name(o.in.model) << " itself: depass eval prompts --count "
           << o.count << " --seed " << o.seed << " --min-tokens " << o.min_tokens << " --max-tokens "
           << o.max_tokens << " --temperature " << o.temperature;
    std::vector<std::string> decoded;
    for (const auto& seq : ids) decoded.push_back(tok->decode(seq));
    const eval::PromptFile file = eval::prompt_file(header.str(), decoded);
    const int written = file.prompts;
    write_out(o.in, o.out, file.text);
    std::printf("%d prompts (%d duplicates dropped) written to %s\n", written, o.count - written,
                o.out.c_str());
}

// ---- eval neurons-speed ------------------------------------------------------------------

struct SpeedOptions {
    InputOptions in;
    std::string random;  // "stories15M" or "stories110M"
    int n = 0;
    uint64_t seed = 1;
    bool no_ablation = false;
    bool system_malloc = false;
    int naive_sample = 32;
    int repeats = 1;
    double temperature = 0.1;
    std::string rule = "softmax";
    bool adjoint = false;
    std::string json, csv, svg, label;
};

// Weight scale of the random model: a freshly initialised network (std 0.02).
constexpr double kRandomStd = 0.02;

// The model of `eval neurons-speed` / `eval cost`: --model PATH, or --random SHAPE (seeded).
template <class T>
Model<T> model_or_random(const char* command, const InputOptions& in, const std::string& random,
                         uint64_t seed) {
    if (in.model.empty() == random.empty())
        throw UsageError(std::string(command) +
                         ": give exactly one of --model PATH or --random stories15M|stories110M");
    return random.empty() ? load_model<T>(in.model)
                          : random_model<T>(stories_shape(random), seed, kRandomStd);
}

std::string model_label(const InputOptions& in, const std::string& random) {
    return random.empty() ? fs::path(in.model).stem().string() : "random " + random;
}

// `count` prefixes of n tokens (BOS + n - 1) sampled from the model, seeded.
template <class T>
std::vector<std::vector<int>> sampled_ids(const Model<T>& model, int n, int count, uint64_t seed) {
    const Config& cfg = model.cfg;
    if (cfg.max_positions > 0 && n > cfg.max_positions)
        throw UsageError("--n: " + std::to_string(n) + " exceeds the context of " +
                         std::to_string(cfg.max_positions));
    const std::vector<bool> stop(cfg.V, false);
    return eval::sample_prefixes(model, count, seed, n - 1, n - 1, 1.0, stop);
}

// --model PATH or --random SHAPE (see model_or_random).
void add_model_or_random(CLI::App* sub, InputOptions& in, std::string& random) {
    sub->add_option("--model,-m", in.model, "Model: Hugging Face directory or llama2.c .bin");
    sub->add_option(
           "--random", random,
           "A random model instead (weights N(0, 0.02^2), seed --seed): stories15M (D 288, L 6, H 6, "
           "I 768) or stories110M (D 768, L 12, H 12, I 2048), V 32000")
        ->check(CLI::IsMember({"stories15M", "stories110M"}));
}

// What every timing JSON starts with.
eval::TimingRunInfo timing_run(const std::string& label, const std::string& model_name,
                               const std::string& random, uint64_t seed, const std::string& dtype,
                               const Config& cfg) {
    eval::TimingRunInfo run;
    run.label = label;
    run.model = model_name;
    run.random = !random.empty();
    run.random_seed = seed;
    run.random_std = kRandomStd;
    run.dtype = dtype;
    run.cfg = cfg;
    return run;
}

template <class T>
void run_speed(const SpeedOptions& o) {
    const int given = int(!o.in.ids.empty()) + int(!o.in.prompt.empty()) + int(o.n > 0);
    if (given != 1) throw UsageError("neurons-speed: give exactly one of --ids, --prompt or --n N");
    check_adjoint_rule(o.adjoint, o.rule);
    const MlpRule rule = parse_mlp_rule(o.rule);
    const bool tuned = freed_memory_kept();  // applied by main() unless --system-malloc
    const bool mapped = large_blocks_mapped();
    say(o.in, allocator_summary());
    const Model<T> model = model_or_random<T>("neurons-speed", o.in, o.random, o.seed);
    const Config& cfg = model.cfg;
    std::vector<int> ids;
    std::string ids_from;
    if (o.n > 0) {
        ids = sampled_ids(model, o.n, 1, o.seed)[0];
        ids_from = "sampled from the model (seed " + std::to_string(o.seed) + ", temperature 1)";
    } else {
        auto tok = o.random.empty() ? find_tokenizer(o.in, cfg, !o.in.prompt.empty()) : nullptr;
        ids = resolve_ids(o.in, cfg, tok.get());
        ids_from = o.in.ids.empty() ? "--prompt" : "--ids";
    }
    const std::string model_name = model_label(o.in, o.random);
    say(o.in, "model: " + model_name + ": " + describe(cfg) + "; N = " + std::to_string(ids.size()));
    if (o.repeats < 1) throw UsageError("--repeats: " + std::to_string(o.repeats) + " (expected >= 1)");
    // Repeated runs: every timing is the median over the runs (the machine may be shared).
    std::vector<eval::NeuronSpeedResult> runs;
    for (int k = 0; k < o.repeats; ++k)
        runs.push_back(eval::neuron_speed(
            model, ids, !o.no_ablation, o.temperature, o.naive_sample,
            [&](int d, int t) {
                progress(o.in, "run " + std::to_string(k + 1) + " / " + std::to_string(o.repeats) +
                                   ": layer passes " + std::to_string(d) + " / " + std::to_string(t));
            },
            rule, o.adjoint));
    const eval::NeuronSpeedResult r = eval::median_of_runs(runs);
    progress(o.in, "");
    const std::string label = o.label.empty() ? model_name + " N=" + std::to_string(r.N) : o.label;

    eval::NeuronSpeedRunInfo info;
    info.ids_from = ids_from;
    info.ids = ids;
    info.repeats = o.repeats;
    info.malloc_keeps_freed_memory = tuned;
    info.malloc_large_block_mapped = mapped;
    info.ablation = !o.no_ablation;
    std::printf("%s: N=%d, L=%d, I=%d, %d neurons, %d threads, target id %d (logit %.4g)\n",
                model_name.c_str(), r.N, r.L, r.I, r.L * r.I, r.threads, r.target, r.target_logit);
    std::printf("  %-34s %10s %10s\n", "", "wall s", "cpu s");
    std::printf("  %-34s %10.4f %10.4f\n", "forward (shared)", r.forward_seconds, r.forward_cpu);
    std::printf("  %-34s %10.4f %10.4f\n",
                o.adjoint ? "DePass (one reverse pass, taylor)"
                          : (rule == MlpRule::Softmax ? std::string("DePass (one pass per layer)")
                                                      : "DePass (one pass per layer, " + o.rule + ")")
                                .c_str(),
                r.depass_seconds, r.depass_cpu);
    if (!o.no_ablation) {
        std::printf("  %-34s %10.4f %10.4f\n",
                    ("ablation (" + std::to_string(r.L * r.I) + " forwards from l+1)").c_str(),
                    r.ablation_seconds, r.ablation_cpu);
    }
    if (r.naive_sample > 0)
        std::printf("  %-34s %10.4f %10.4f   (%d sampled, extrapolated)\n", "naive ablation (full forwards)",
                    r.naive_seconds_extrapolated(), r.naive_cpu_extrapolated(), r.naive_sample);
    if (!o.no_ablation) {
        std::printf("  speed-up vs ablation: %.2f x (wall), %.2f x (cpu)\n", r.speedup(), r.speedup_cpu());
        if (r.naive_sample > 0)
            std::printf(
                "  speed-up vs naive ablation: %.2f x (wall), %.2f x (cpu); naive and fast ablation effects "
                "agree to %.2g\n",
                r.naive_seconds_extrapolated() / r.depass_seconds, r.naive_cpu_extrapolated() / r.depass_cpu,
                r.naive_max_effect_diff);
        std::printf("  Spearman(DePass score, ablation effect) over all neurons: %.4f; per layer:",
                    r.spearman);
        for (double s : r.spearman_layer) std::printf(" %.3f", s);
        std::printf("\n");
    }
    if (!o.json.empty())
        write_out(o.in, o.json,
                  eval::neuron_speed_json(r, timing_run(label, model_name, o.random, o.seed, o.in.dtype, cfg),
                                          info));
    if (!o.csv.empty()) write_out(o.in, o.csv, eval::neuron_speed_csv(r));
    if (!o.svg.empty()) {
        if (o.no_ablation)
            throw UsageError("--svg plots scores against ablation effects: drop --no-ablation");
        write_out(o.in, o.svg, eval::neuron_speed_svg(r, label));
    }
}

// ---- eval speed-plot ---------------------------------------------------------------------

struct SpeedPlotOptions {
    std::vector<std::string> inputs;
    std::string out;
    bool quiet = false;
};

void run_speed_plot(const SpeedPlotOptions& o) {
    InputOptions in;
    in.quiet = o.quiet;
    const std::string dir = prepare_dir(o.out);
    const eval::SpeedPlot plot = eval::speed_plot(o.inputs);
    write_out(in, dir + "/speed.csv", plot.csv);
    write_out(in, dir + "/speed.svg", plot.svg);
}

// ---- eval cost ---------------------------------------------------------------------------

struct CostOptions {
    InputOptions in;
    std::string random;  // "stories15M" or "stories110M"
    std::vector<std::string> prompt_files;
    int limit = 10;
    int n = 0, count = 5;
    uint64_t seed = 1;
    int ig_steps = 100;
    double temperature = 0.1;
    std::string json, label;
};

template <class T>
void run_cost(const CostOptions& o) {
    if (o.prompt_files.empty() == (o.n <= 0))
        throw UsageError(
            "cost: give exactly one of --prompts FILE... or --n N (with --count K sampled prefixes)");
    if (o.ig_steps < 1) throw UsageError("--ig-steps: " + std::to_string(o.ig_steps) + " (expected >= 1)");
    if (o.limit < 1 || o.count < 1) throw UsageError("--limit and --count must be >= 1");
    const Model<T> model = model_or_random<T>("cost", o.in, o.random, o.seed);
    const Config& cfg = model.cfg;
    std::vector<std::vector<int>> prompts;
    std::string ids_from;
    if (o.n > 0) {
        prompts = sampled_ids(model, o.n, o.count, o.seed);
        ids_from = std::to_string(o.count) + " prefixes of " + std::to_string(o.n) +
                   " tokens sampled from the model (seed " + std::to_string(o.seed) + ", temperature 1)";
    } else {
        SetOptions so;
        so.in = o.in;
        so.prompt_files = o.prompt_files;
        so.limit = o.limit;
        auto tok = find_tokenizer(o.in, cfg, true);
        prompts = load_prompts(so, cfg, *tok).ids;
        ids_from =
            "the first " + std::to_string(prompts.size()) + " prompts of " + files_list(o.prompt_files);
    }
    if (prompts.empty()) throw Error("cost: no prompts");
    const std::string model_name = model_label(o.in, o.random);
    say(o.in,
        "model: " + model_name + ": " + describe(cfg) + "; " + std::to_string(prompts.size()) + " prompts");
    std::vector<eval::TokenCostResult> runs;
    for (size_t i = 0; i < prompts.size(); ++i) {
        progress(o.in, "prompt " + std::to_string(i + 1) + " / " + std::to_string(prompts.size()));
        runs.push_back(eval::token_cost(model, prompts[i], o.ig_steps, o.temperature));
    }
    progress(o.in, "");
    const eval::TokenCostSummary c = eval::summarise_cost(runs);
    const std::string label = o.label.empty() ? model_name : o.label;
#ifdef _OPENMP
    const int threads = omp_get_max_threads();
#else
    const int threads = 1;
#endif
    std::printf("%s: %zu prompts, mean N %.1f, IG %d steps, %d thread(s)\n", label.c_str(), runs.size(),
                c.mean_N, o.ig_steps, threads);
    std::printf("  %-30s %14s %14s\n", "method", "s / prompt", "x DePass");
    std::printf("  %-30s %14.5f %14.2f\n", "depass (token level)", c.depass_seconds, 1.0);
    std::printf("  %-30s %14.5f %14.2f\n",
                ("integrated_gradients (" + std::to_string(o.ig_steps) + ")").c_str(), c.ig_seconds,
                c.ig_seconds / c.depass_seconds);
    std::printf("  %-30s %14.5f %14.2f\n", "input_x_gradient", c.ixg_seconds,
                c.ixg_seconds / c.depass_seconds);
    if (!o.json.empty())
        write_out(
            o.in, o.json,
            eval::token_cost_json(runs, timing_run(label, model_name, o.random, o.seed, o.in.dtype, cfg),
                                  ids_from, o.ig_steps, threads));
}

}  // namespace

void register_eval(CLI::App& app) {
    CLI::App* ev = app.add_subcommand(
        "eval",
        "Faithfulness and cost of DePass against baselines, on real weights.\n"
        "Outputs CSV, JSON and SVG plots; see docs/results.md for the shipped numbers.\n"
        "MPI builds: mpirun -np P depass eval tokens|heads|neurons ... splits the prompts\n"
        "over P ranks; rank 0 writes the same files as one process (docs/scaling.md).");
    ev->require_subcommand(1);
    register_eval_qk(ev);

    {
        auto o = std::make_shared<PromptsOptions>();
        CLI::App* sub =
            ev->add_subcommand("prompts",
                               "Sample prompt prefixes from the model itself (seeded), one per line.\n"
                               "Example: depass eval prompts -m weights/stories260K.bin --count 300 --seed 1 "
                               "--out data/prompts/stories260K_sampled.txt");
        add_input_options(sub, o->in, false);
        sub->add_option("--count", o->count, "Number of prefixes drawn")->capture_default_str();
        sub->add_option("--seed", o->seed, "Seed")->capture_default_str();
        sub->add_option("--min-tokens", o->min_tokens, "Shortest prefix (tokens after BOS)")
            ->capture_default_str();
        sub->add_option("--max-tokens", o->max_tokens, "Longest prefix (tokens after BOS)")
            ->capture_default_str();
        sub->add_option("--temperature", o->temperature, "Sampling temperature")->capture_default_str();
        sub->add_option("--out,-o", o->out, "Output text file")->required();
        sub->callback([o] { wants_double(o->in) ? run_prompts<double>(*o) : run_prompts<float>(*o); });
    }
    {
        auto o = std::make_shared<SetOptions>();
        CLI::App* sub = ev->add_subcommand(
            "tokens",
            "Token-level faithfulness. Target = the model's greedy next token at the last position. Every "
            "method\n"
            "ranks the tokens between BOS and the last token; at p = 10..100% the top k = max(1, floor(p "
            "(N-2)))\n"
            "are deleted (deletion) or kept alone with BOS and the last token (keeping); score =\n"
            "min(100, |P_clean - P_masked| / P_clean * 100). Methods: depass (token level at h[0], softmax "
            "rule,\n"
            "ignore-special-token on), random, attn_last, attn_mean, rollout, embed_norm, occlusion, and the "
            "gradient\n"
            "baselines on f = log P(target): integrated_gradients (zero token-embedding baseline, midpoint "
            "rule,\n"
            "--ig-steps points; the completeness gap sum(attr) - (f(x) - f(0)) is reported), "
            "input_x_gradient\n"
            "(x . df/dx per token), gradient_norm (||df/dx|| per token).\n"
            "Writes tokens_curves.csv, tokens_per_prompt.csv, tokens_summary.json, tokens_deletion.svg, "
            "tokens_keeping.svg.\n"
            "Example: depass eval tokens -m weights/stories260K.bin --prompts data/prompts/handwritten.txt "
            "--out out/");
        add_set_options(sub, *o);
        sub->add_option("--methods", o->methods, "Comma list of methods (default all)");
        sub->add_option("--ig-steps", o->ig_steps, "Integrated gradients: points of the midpoint rule")
            ->capture_default_str();
        sub->callback([o] { wants_double(o->in) ? run_tokens<double>(*o) : run_tokens<float>(*o); });
    }
    for (eval::UnitKind kind : {eval::UnitKind::Head, eval::UnitKind::Neuron}) {
        auto o = std::make_shared<SetOptions>();
        const bool head = kind == eval::UnitKind::Head;
        CLI::App* sub = ev->add_subcommand(
            head ? "heads" : "neurons",
            std::string(head ? "Head" : "Neuron") + "-level faithfulness. Every " +
                (head ? "head (L x H)" : "MLP neuron (L x I)") +
                " is ranked by DePass (signed and absolute logit attribution of the target at the last "
                "position),\n"
                "random, " +
                (head ? "the head's output norm" : "|activation|") +
                " at the last position, and AtP (|sum over positions of activation x gradient of log "
                "P(target)|,\n"
                "the first-order estimate of zeroing the unit); the top and the bottom 1, 5, 10% are zeroed "
                "(" +
                (head ? "W_O columns" : "W_down column") +
                ") in a copy of the model.\n"
                "Reports how often the greedy token survives and the mean drop of its probability.\n"
                "DePass uses --rule (default softmax: one decomposed pass per layer); --rule taylor "
                "--adjoint gets "
                "every\n"
                "layer's scores from one reverse pass of the frozen network.\n"
                "Writes " +
                (head ? "heads" : "neurons") + ".csv, .json, _drop.svg, _survival.svg.");
        add_set_options(sub, *o);
        sub->add_option("--fractions", o->fractions, "Percents of the units zeroed, comma list")
            ->capture_default_str();
        add_rule_options(sub, o->rule, o->adjoint);
        sub->callback(
            [o, kind] { wants_double(o->in) ? run_units<double>(*o, kind) : run_units<float>(*o, kind); });
    }
    {
        auto o = std::make_shared<SpeedOptions>();
        CLI::App* sub = ev->add_subcommand(
            "neurons-speed",
            "Neuron-level cost: DePass scores for every neuron of every layer (one decomposed pass per "
            "layer, all\n"
            "neurons as components) against ablation (one forward per neuron, its W_down column zeroed, "
            "earlier\n"
            "layers reused from the trace). Prints both times, the ratio and the Spearman correlation of "
            "the\n"
            "DePass scores with the measured effects on the target logit.\n"
            "Cost: the decomposed pass per layer carries I + 1 components (about I forwards of work, every "
            "rule);\n"
            "--rule taylor --adjoint scores every neuron of every layer from one reverse pass of the frozen\n"
            "network (about one backward pass).\n"
            "Example: depass eval neurons-speed --random stories15M --n 32 --json speed.json\n"
            "         depass eval neurons-speed --random stories15M --n 32 --rule taylor --adjoint");
        add_model_or_random(sub, o->in, o->random);
        sub->add_option("--ids", o->in.ids, "Token ids, comma-separated");
        sub->add_option("--prompt,-p", o->in.prompt, "Text to tokenise (BOS is prepended)");
        sub->add_option("--n", o->n, "N tokens: BOS then N-1 tokens sampled from the model (seeded)");
        sub->add_option("--seed", o->seed, "Seed of the sampled ids and of the random model")
            ->capture_default_str();
        sub->add_option("--tokenizer", o->in.tokenizer, "Tokenizer file (default: next to the model)");
        sub->add_option("--dtype", o->in.dtype, "f32 or f64")
            ->check(CLI::IsMember({"f32", "f64"}))
            ->capture_default_str();
        sub->add_option("--temperature", o->temperature, "Softmax MLP rule temperature")
            ->capture_default_str();
        add_rule_options(sub, o->rule, o->adjoint);
        sub->add_flag("--no-ablation", o->no_ablation, "Only the DePass scores and time");
        sub->add_option(
               "--naive-sample", o->naive_sample,
               "Also time this many naive ablations (full forward of a zeroed copy) and extrapolate; 0 = off")
            ->capture_default_str();
        sub->add_option("--repeats", o->repeats, "Run everything this many times; timings are medians")
            ->capture_default_str();
        sub->add_flag("--system-malloc", o->system_malloc,
                      "Leave glibc's allocator at its defaults (by default freed memory is kept for reuse, "
                      "see docs/results.md)");
        sub->add_option("--json", o->json, "Write the result as JSON");
        sub->add_option("--csv", o->csv, "Write every neuron's DePass score and ablation effect");
        sub->add_option("--svg", o->svg, "Write a scatter plot of scores against effects");
        sub->add_option("--label", o->label, "Label of this run in JSON and plots");
        sub->add_flag("--quiet,-q", o->in.quiet, "No progress on stderr");
        sub->callback([o] { wants_double(o->in) ? run_speed<double>(*o) : run_speed<float>(*o); });
    }
    {
        auto o = std::make_shared<CostOptions>();
        CLI::App* sub = ev->add_subcommand(
            "cost",
            "Token-level cost: wall time per attributed prompt of DePass (token level), integrated "
            "gradients\n"
            "(--ig-steps, default 100) and input x gradient, in the same run, one prompt after the other.\n"
            "Example: depass eval cost --random stories15M --n 32 --count 5 --json cost.json");
        add_model_or_random(sub, o->in, o->random);
        sub->add_option("--prompts", o->prompt_files, "Prompt file(s), one prompt per line");
        sub->add_option("--limit", o->limit, "Use the first K prompts of --prompts")->capture_default_str();
        sub->add_option("--n", o->n,
                        "Instead of --prompts: prefixes of N tokens sampled from the model (seeded)");
        sub->add_option("--count", o->count, "Number of sampled prefixes with --n")->capture_default_str();
        sub->add_option("--seed", o->seed, "Seed of the sampled ids and of the random model")
            ->capture_default_str();
        sub->add_option("--ig-steps", o->ig_steps, "Integrated gradients: points of the midpoint rule")
            ->capture_default_str();
        sub->add_option("--tokenizer", o->in.tokenizer, "Tokenizer file (default: next to the model)");
        sub->add_option("--dtype", o->in.dtype, "f32 or f64")
            ->check(CLI::IsMember({"f32", "f64"}))
            ->capture_default_str();
        sub->add_option("--temperature", o->temperature, "Softmax MLP rule temperature of DePass")
            ->capture_default_str();
        sub->add_option("--json", o->json, "Write the result as JSON");
        sub->add_option("--label", o->label, "Label of this run in the JSON");
        sub->add_flag("--quiet,-q", o->in.quiet, "No progress on stderr");
        sub->callback([o] { wants_double(o->in) ? run_cost<double>(*o) : run_cost<float>(*o); });
    }
    {
        auto o = std::make_shared<SpeedPlotOptions>();
        CLI::App* sub = ev->add_subcommand(
            "speed-plot", "Combine neurons-speed JSON files into speed.csv and speed.svg (bars, log scale).");
        sub->add_option("--json", o->inputs, "neurons-speed JSON files")->required();
        sub->add_option("--out,-o", o->out, "Output directory")->required();
        sub->add_flag("--quiet,-q", o->quiet, "Say nothing on stderr");
        sub->callback([o] { run_speed_plot(*o); });
    }
}

}  // namespace depass::cli
