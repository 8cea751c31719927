// depass eval -- faithfulness and cost measurements (include/depass/eval.hpp).
//
//   depass eval prompts        sample prompt prefixes from the model itself (the shipped set)
//   depass eval tokens         token deletion / keeping curves: DePass vs baselines
//   depass eval heads          zero the top / bottom ranked attention heads
//   depass eval neurons        zero the top / bottom ranked MLP neurons
//   depass eval neurons-speed  neuron-level DePass vs one ablation per neuron: time, Spearman
//   depass eval cost           token-level DePass vs integrated gradients vs input x gradient: time per prompt
//   depass eval speed-plot     one bar chart from several neurons-speed JSON files
#include "common.hpp"
#include "../io/json_guard.hpp"

#include "depass/allocator.hpp"
#include "depass/eval.hpp"
#include "depass/io.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace fs = std::filesystem;

namespace depass::cli {

namespace {

std::string fmt(const char* f, double v) {
    char b[64];
    std::snprintf(b, sizeof b, f, v);
    return b;
}

std::string csv_field(const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string o = "\"";
    for (char c : s) o += c == '"' ? std::string("\"\"") : std::string(1, c);
    return o + "\"";
}

std::string base_name(const std::string& path) { return fs::path(path).filename().string(); }

void write_out(const InputOptions& in, const std::string& path, const std::string& text) {
    write_file_atomic(path, text);
    say(in, "wrote " + path);
}

std::string prepare_dir(const std::string& dir) {
    if (dir.empty()) throw UsageError("--out: an output directory is needed");
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
    std::string methods;   // tokens: comma list or empty = all
    int ig_steps = 100;    // tokens: integrated gradients steps
    std::string fractions = "1,5,10";  // heads / neurons: percents
};

void add_set_options(CLI::App* sub, SetOptions& o) {
    add_input_options(sub, o.in, false);
    sub->add_option("--prompts", o.prompt_files,
                    "Prompt file(s): one prompt per line, '#' lines are comments (e.g. data/prompts/*.txt)")
        ->required();
    sub->add_option("--limit", o.limit, "Use only the first K prompts (0 = all)")->capture_default_str();
    sub->add_option("--out,-o", o.out, "Output directory (CSV, JSON, SVG)")->required();
    sub->add_option("--seed", o.seed, "Seed of the random baseline")->capture_default_str();
    sub->add_option("--draws", o.draws, "Draws averaged for the random baseline")->capture_default_str();
    sub->add_option("--temperature", o.temperature, "Softmax MLP rule temperature of DePass")->capture_default_str();
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
    const eval::TokenEvalSummary s = eval::token_eval(model, ps.ids, opt, progress_to(o.in, "prompts"));
    progress(o.in, "");

    const size_t M = opt.methods.size(), Q = opt.percents.size();
    // Curves: one row per method, mode and percent.
    std::ostringstream curves;
    curves << "method,mode,percent,mean_score\n";
    for (size_t m = 0; m < M; ++m)
        for (int mode = 0; mode < 2; ++mode)
            for (size_t q = 0; q < Q; ++q)
                curves << eval::method_name(opt.methods[m]) << "," << (mode ? "keeping" : "deletion") << ","
                       << opt.percents[q] << "," << fmt("%.6g", (mode ? s.keeping : s.deletion)[m][q]) << "\n";
    write_out(o.in, dir + "/tokens_curves.csv", curves.str());

    // Per prompt: the areas of every method.
    std::ostringstream per;
    // ig_*: integrated gradients' f(x), f(0) = log P(target) at the input and at the zero
    // baseline, and the completeness gap sum(attr) - (f(x) - f(0)); empty when IG was not run.
    per << "prompt,source,N,target,target_piece,p_clean,method,deletion_area,keeping_area,ig_f_x,ig_f_0,"
           "ig_completeness_gap\n";
    auto num_or_empty = [](double v) { return std::isnan(v) ? std::string() : fmt("%.6g", v); };
    for (size_t i = 0; i < s.per_prompt.size(); ++i) {
        const eval::PromptTokenResult& r = s.per_prompt[i];
        const int idx = s.prompt_index[i];
        for (size_t m = 0; m < M; ++m)
            per << idx << "," << csv_field(ps.source[idx]) << "," << r.N << "," << r.target << ","
                << csv_field(show_piece(tok.get(), r.target)) << "," << fmt("%.6g", r.p_clean) << ","
                << eval::method_name(opt.methods[m]) << "," << fmt("%.6g", r.deletion_area[m]) << ","
                << fmt("%.6g", r.keeping_area[m]) << "," << num_or_empty(r.ig_f_x) << "," << num_or_empty(r.ig_f_0)
                << "," << num_or_empty(r.ig_gap) << "\n";
    }
    write_out(o.in, dir + "/tokens_per_prompt.csv", per.str());

    // Summary JSON.
    nlohmann::json j;
    j["model"] = base_name(o.in.model);
    j["dtype"] = o.in.dtype;
    j["prompt_files"] = o.prompt_files;
    j["prompts"] = s.prompts;
    j["skipped_short_prompts"] = s.skipped;
    j["percents"] = opt.percents;
    j["random_draws"] = opt.random_draws;
    j["seed"] = opt.seed;
    j["temperature"] = opt.temperature;
    j["seconds"] = s.seconds;
    j["score"] = "min(100, |P_clean - P_masked| / P_clean * 100), target = greedy next token at the last position";
    j["area"] = "trapezoid over percent 10..100 divided by the width: a constant curve c has area c";
    if (std::find(opt.methods.begin(), opt.methods.end(), eval::TokenMethod::IntegratedGradients) != opt.methods.end()) {
        // Completeness of integrated gradients over the prompts: gap = sum(attr) - (f(x) - f(0)).
        double mean = 0, mean_abs = 0, max_abs = 0, mean_rel = 0, max_rel = 0;
        for (const eval::PromptTokenResult& r : s.per_prompt) {
            const double rel = std::abs(r.ig_gap) / std::max(std::abs(r.ig_f_x - r.ig_f_0), 1e-300);
            mean += r.ig_gap / s.prompts;
            mean_abs += std::abs(r.ig_gap) / s.prompts;
            max_abs = std::max(max_abs, std::abs(r.ig_gap));
            mean_rel += rel / s.prompts;
            max_rel = std::max(max_rel, rel);
        }
        j["integrated_gradients"] = {
            {"steps", opt.ig_steps},
            {"rule", "midpoint Riemann sum: alpha_s = (s + 1/2) / steps, s = 0 .. steps-1"},
            {"f", "log softmax(logits[N-1])[target]"},
            {"baseline", "token embeddings zeroed (learned position embeddings kept)"},
            {"completeness_gap", "sum_j attr[j] - (f(x) - f(0))"},
            {"completeness_gap_mean", mean},
            {"completeness_gap_mean_abs", mean_abs},
            {"completeness_gap_max_abs", max_abs},
            {"completeness_gap_mean_abs_rel", mean_rel},
            {"completeness_gap_max_abs_rel", max_rel},
            {"completeness_gap_rel", "|gap| / |f(x) - f(0)|"}};
    }
    for (size_t m = 0; m < M; ++m) {
        nlohmann::json e;
        e["deletion_curve"] = s.deletion[m];
        e["keeping_curve"] = s.keeping[m];
        e["deletion_area"] = s.deletion_area[m];
        e["deletion_area_se"] = s.deletion_area_se[m];
        e["keeping_area"] = s.keeping_area[m];
        e["keeping_area_se"] = s.keeping_area_se[m];
        j["methods"][eval::method_name(opt.methods[m])] = e;
    }
    // Paired differences against DePass (per prompt, then mean and standard error).
    const auto dp = std::find(opt.methods.begin(), opt.methods.end(), eval::TokenMethod::DePass);
    std::vector<double> dd_mean(M, 0), dd_se(M, 0), kd_mean(M, 0), kd_se(M, 0);
    if (dp != opt.methods.end() && s.prompts > 1) {
        const size_t d = size_t(dp - opt.methods.begin());
        const double n = s.prompts;
        for (size_t m = 0; m < M; ++m) {
            double sd = 0, sk = 0, qd = 0, qk = 0;
            for (const eval::PromptTokenResult& r : s.per_prompt) {
                const double a = r.deletion_area[m] - r.deletion_area[d], b = r.keeping_area[m] - r.keeping_area[d];
                sd += a;
                sk += b;
                qd += a * a;
                qk += b * b;
            }
            dd_mean[m] = sd / n;
            kd_mean[m] = sk / n;
            dd_se[m] = std::sqrt(std::max(0.0, (qd - n * dd_mean[m] * dd_mean[m]) / (n - 1) / n));
            kd_se[m] = std::sqrt(std::max(0.0, (qk - n * kd_mean[m] * kd_mean[m]) / (n - 1) / n));
            auto& e = j["methods"][eval::method_name(opt.methods[m])];
            e["deletion_area_minus_depass"] = dd_mean[m];
            e["deletion_area_minus_depass_se"] = dd_se[m];
            e["keeping_area_minus_depass"] = kd_mean[m];
            e["keeping_area_minus_depass_se"] = kd_se[m];
        }
    }
    write_out(o.in, dir + "/tokens_summary.json", j.dump(2) + "\n");

    // Plots.
    for (int mode = 0; mode < 2; ++mode) {
        std::vector<eval::Series> series;
        for (size_t m = 0; m < M; ++m) {
            eval::Series ser;
            const double area = (mode ? s.keeping_area : s.deletion_area)[m];
            ser.name = std::string(eval::method_name(opt.methods[m])) + " (" + fmt("%.1f", area) + ")";
            ser.x.assign(opt.percents.begin(), opt.percents.end());
            ser.y = (mode ? s.keeping : s.deletion)[m];
            series.push_back(ser);
        }
        const std::string title = std::string(mode ? "Keeping" : "Deletion") + ": " + base_name(o.in.model) + ", " +
                                  std::to_string(s.prompts) + " prompts (" + (mode ? "lower" : "higher") +
                                  " is better; area in legend)";
        write_out(o.in, dir + (mode ? "/tokens_keeping.svg" : "/tokens_deletion.svg"),
                  eval::svg_line_chart(title, mode ? "% of tokens kept (top-ranked)" : "% of tokens deleted (top-ranked)",
                                       "score: |P_clean - P_masked| / P_clean (%)", series, 10, 100, 0, 100));
    }

    // Table on stdout.
    std::printf("token faithfulness on %d prompts (%d too short skipped), %.1f s\n", s.prompts, s.skipped, s.seconds);
    std::printf("%-20s %18s %18s %20s %20s\n", "method", "deletion area (^)", "keeping area (v)",
                "deletion - depass", "keeping - depass");
    for (size_t m = 0; m < M; ++m)
        std::printf("%-20s %11.2f +-%4.2f %11.2f +-%4.2f %12.2f +-%5.2f %12.2f +-%5.2f\n",
                    eval::method_name(opt.methods[m]), s.deletion_area[m], s.deletion_area_se[m], s.keeping_area[m],
                    s.keeping_area_se[m], dd_mean[m], dd_se[m], kd_mean[m], kd_se[m]);
}

// ---- eval heads / neurons ----------------------------------------------------------------

template <class T>
void run_units(const SetOptions& o, eval::UnitKind kind) {
    const Model<T> model = load_model<T>(o.in.model);
    auto tok = find_tokenizer(o.in, model.cfg, true);
    const PromptSet ps = load_prompts(o, model.cfg, *tok);
    const std::string dir = prepare_dir(o.out);
    eval::UnitEvalOptions opt;
    opt.fractions.clear();
    for (int pct : parse_int_list("--fractions", o.fractions)) {
        if (pct < 1 || pct > 100) throw UsageError("--fractions: " + std::to_string(pct) + " is not a percent in [1, 100]");
        opt.fractions.push_back(pct / 100.0);
    }
    opt.random_draws = o.draws;
    opt.seed = o.seed;
    opt.temperature = o.temperature;
    const std::string name = eval::unit_name(kind);
    say(o.in, "model: " + describe(model.cfg) + "; " + std::to_string(ps.ids.size()) + " prompts");
    const eval::UnitEvalSummary s = eval::unit_eval(model, ps.ids, kind, opt, progress_to(o.in, "prompts"));
    progress(o.in, "");

    std::ostringstream csv;
    csv << "method,direction,percent,units_zeroed,survival_pct,mean_prob_drop_pts,mean_rel_drop_pct\n";
    for (const eval::UnitEvalRow& r : s.rows)
        csv << eval::method_name(r.method) << "," << (r.top ? "top" : "bottom") << "," << fmt("%g", r.fraction * 100)
            << "," << r.k << "," << fmt("%.4g", r.survival) << "," << fmt("%.4g", r.mean_drop) << ","
            << fmt("%.4g", r.mean_rel_drop) << "\n";
    write_out(o.in, dir + "/" + name + "s.csv", csv.str());

    nlohmann::json j;
    j["model"] = base_name(o.in.model);
    j["dtype"] = o.in.dtype;
    j["unit"] = name;
    j["prompt_files"] = o.prompt_files;
    j["prompts"] = s.prompts;
    j["total_units"] = s.total_units;
    j["mean_p_clean"] = s.mean_p_clean;
    j["random_draws"] = opt.random_draws;
    j["seed"] = opt.seed;
    j["seconds"] = s.seconds;
    j["zeroing"] = kind == eval::UnitKind::Head ? "the head's Dh columns of W_O set to 0" : "the neuron's column of W_down set to 0";
    for (const eval::UnitEvalRow& r : s.rows) {
        nlohmann::json e;
        e["method"] = eval::method_name(r.method);
        e["direction"] = r.top ? "top" : "bottom";
        e["percent"] = r.fraction * 100;
        e["units_zeroed"] = r.k;
        e["survival_pct"] = r.survival;
        e["mean_prob_drop_pts"] = r.mean_drop;
        e["mean_rel_drop_pct"] = r.mean_rel_drop;
        j["rows"].push_back(e);
    }
    write_out(o.in, dir + "/" + name + "s.json", j.dump(2) + "\n");

    // Bars: groups = direction x fraction, one bar per method.
    std::vector<std::string> bars;
    for (eval::UnitMethod m : opt.methods) bars.push_back(eval::method_name(m));
    for (int metric = 0; metric < 2; ++metric) {
        std::vector<eval::BarGroup> groups;
        for (bool top : {true, false})
            for (double f : opt.fractions) {
                eval::BarGroup g;
                g.label = std::string(top ? "top " : "bottom ") + fmt("%g", f * 100) + "% (" +
                          std::to_string(eval::zeroed_count(f, s.total_units)) + ")";
                for (eval::UnitMethod m : opt.methods)
                    for (const eval::UnitEvalRow& r : s.rows)
                        if (r.method == m && r.top == top && r.fraction == f)
                            g.values.push_back(metric ? r.survival : r.mean_rel_drop);
                groups.push_back(g);
            }
        const std::string title = std::string(metric ? "Greedy token survival" : "Mean relative drop of P(target)") +
                                  " after zeroing " + name + "s: " + base_name(o.in.model) + ", " +
                                  std::to_string(s.prompts) + " prompts";
        write_out(o.in, dir + "/" + name + (metric ? "s_survival.svg" : "s_drop.svg"),
                  eval::svg_bar_chart(title, metric ? "prompts whose greedy token survives (%)" : "mean (P_clean - P) / P_clean (%)",
                                      bars, groups, false, "%.0f"));
    }

    std::printf("%s ablation on %d prompts (%d %ss), %.1f s; mean P_clean %.3f\n", name.c_str(), s.prompts,
                s.total_units, name.c_str(), s.seconds, s.mean_p_clean);
    std::printf("%-14s %-7s %5s %5s %11s %13s %13s\n", "method", "zeroed", "%", "k", "survival %", "drop (pts)",
                "rel drop %");
    for (const eval::UnitEvalRow& r : s.rows)
        std::printf("%-14s %-7s %5g %5d %11.1f %13.2f %13.1f\n", eval::method_name(r.method), r.top ? "top" : "bottom",
                    r.fraction * 100, r.k, r.survival, r.mean_drop, r.mean_rel_drop);
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
        stop[v] = v == model.cfg.eos_id || tok->decode_piece(v == model.cfg.bos_id ? 0 : 5, v).find_first_of("\r\n") != std::string::npos;
    stop[model.cfg.eos_id] = true;
    const auto ids = eval::sample_prefixes(model, o.count, o.seed, o.min_tokens, o.max_tokens, o.temperature, stop);
    std::ostringstream os;
    os << "# Prefixes sampled from " << base_name(o.in.model) << " itself: depass eval prompts --count " << o.count
       << " --seed " << o.seed << " --min-tokens " << o.min_tokens << " --max-tokens " << o.max_tokens
       << " --temperature " << o.temperature << "\n"
       << "# One prompt per line; lines starting with '#' are comments. Exact duplicates are dropped.\n";
    std::vector<std::string> seen;
    int written = 0;
    for (const auto& seq : ids) {
        std::string text = tok->decode(seq);
        const size_t a = text.find_first_not_of(' '), b = text.find_last_not_of(' ');
        text = a == std::string::npos ? "" : text.substr(a, b - a + 1);
        if (text.empty() || text[0] == '#' || std::find(seen.begin(), seen.end(), text) != seen.end()) continue;
        seen.push_back(text);
        os << text << "\n";
        ++written;
    }
    write_out(o.in, o.out, os.str());
    std::printf("%d prompts (%d duplicates dropped) written to %s\n", written, o.count - written, o.out.c_str());
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
    std::string json, csv, svg, label;
};

// Weight scale of the random model: a freshly initialised network (std 0.02).
constexpr double kRandomStd = 0.02;

// The model of `eval neurons-speed` / `eval cost`: --model PATH, or --random SHAPE (seeded).
template <class T>
Model<T> model_or_random(const char* command, const InputOptions& in, const std::string& random, uint64_t seed) {
    if (in.model.empty() == random.empty())
        throw UsageError(std::string(command) + ": give exactly one of --model PATH or --random stories15M|stories110M");
    return random.empty() ? load_model<T>(in.model) : random_model<T>(stories_shape(random), seed, kRandomStd);
}

std::string model_label(const InputOptions& in, const std::string& random) {
    return random.empty() ? fs::path(in.model).stem().string() : "random " + random;
}

// `count` prefixes of n tokens (BOS + n - 1) sampled from the model, seeded.
template <class T>
std::vector<std::vector<int>> sampled_ids(const Model<T>& model, int n, int count, uint64_t seed) {
    const Config& cfg = model.cfg;
    if (cfg.max_positions > 0 && n > cfg.max_positions)
        throw UsageError("--n: " + std::to_string(n) + " exceeds the context of " + std::to_string(cfg.max_positions));
    const std::vector<bool> stop(cfg.V, false);
    return eval::sample_prefixes(model, count, seed, n - 1, n - 1, 1.0, stop);
}

// --model PATH or --random SHAPE (see model_or_random).
void add_model_or_random(CLI::App* sub, InputOptions& in, std::string& random) {
    sub->add_option("--model,-m", in.model, "Model: Hugging Face directory or llama2.c .bin");
    sub->add_option("--random", random,
                    "A random model instead (weights N(0, 0.02^2), seed --seed): stories15M (D 288, L 6, H 6, "
                    "I 768) or stories110M (D 768, L 12, H 12, I 2048), V 32000")
        ->check(CLI::IsMember({"stories15M", "stories110M"}));
}

// The fields every timing JSON starts with.
nlohmann::json run_header(const std::string& label, const std::string& model_name, const std::string& random,
                          uint64_t seed, const std::string& dtype, const Config& cfg) {
    nlohmann::json j;
    j["label"] = label;
    j["model"] = model_name;
    if (!random.empty()) {
        j["random_seed"] = seed;
        j["random_std"] = kRandomStd;
    }
    j["dtype"] = dtype;
    j["config"] = {{"D", cfg.D}, {"L", cfg.L}, {"H", cfg.H}, {"Hkv", cfg.Hkv}, {"I", cfg.I}, {"V", cfg.V}};
    return j;
}

template <class T>
void run_speed(const SpeedOptions& o) {
    const int given = int(!o.in.ids.empty()) + int(!o.in.prompt.empty()) + int(o.n > 0);
    if (given != 1) throw UsageError("neurons-speed: give exactly one of --ids, --prompt or --n N");
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
        runs.push_back(eval::neuron_speed(model, ids, !o.no_ablation, o.temperature, o.naive_sample, [&](int d, int t) {
            progress(o.in, "run " + std::to_string(k + 1) + " / " + std::to_string(o.repeats) + ": layer passes " +
                               std::to_string(d) + " / " + std::to_string(t));
        }));
    eval::NeuronSpeedResult r = runs[0];
    auto median = [&](auto field) {
        std::vector<double> v;
        for (const eval::NeuronSpeedResult& x : runs) v.push_back(x.*field);
        std::sort(v.begin(), v.end());
        return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
    };
    using R = eval::NeuronSpeedResult;
    for (double R::*f : {&R::forward_seconds, &R::forward_cpu, &R::depass_seconds, &R::depass_cpu, &R::ablation_seconds,
                         &R::ablation_cpu, &R::naive_sample_seconds, &R::naive_sample_cpu})
        r.*f = median(f);
    for (int l = 0; l < r.L; ++l) {
        std::vector<double> a, b;
        for (const eval::NeuronSpeedResult& x : runs) {
            a.push_back(x.depass_layer_seconds[l]);
            b.push_back(x.ablation_layer_seconds[l]);
        }
        std::sort(a.begin(), a.end());
        std::sort(b.begin(), b.end());
        r.depass_layer_seconds[l] = a[a.size() / 2];
        r.ablation_layer_seconds[l] = b[b.size() / 2];
    }
    progress(o.in, "");
    const std::string label = o.label.empty() ? model_name + " N=" + std::to_string(r.N) : o.label;

    nlohmann::json j = run_header(label, model_name, o.random, o.seed, o.in.dtype, cfg);
    j["N"] = r.N;
    j["ids_from"] = ids_from;
    j["ids"] = ids;
    j["target"] = r.target;
    j["target_logit"] = r.target_logit;
    j["threads"] = r.threads;
    j["repeats"] = o.repeats;
    j["timing"] = o.repeats > 1 ? "median over the repeats" : "one run";
    j["malloc_keeps_freed_memory"] = tuned;
    j["malloc_large_block_mapped"] = mapped;
    j["forward_seconds"] = r.forward_seconds;
    j["forward_cpu_seconds"] = r.forward_cpu;
    j["depass_seconds"] = r.depass_seconds;
    j["depass_cpu_seconds"] = r.depass_cpu;
    j["depass_layer_seconds"] = r.depass_layer_seconds;
    j["depass_includes"] =
        "the recorded forward + per layer: init_neurons (I + 1 components), propagate through the later blocks "
        "(all positions), logit_attribution";
    if (!o.no_ablation) {
        j["ablation_seconds"] = r.ablation_seconds;
        j["ablation_cpu_seconds"] = r.ablation_cpu;
        j["ablation_layer_seconds"] = r.ablation_layer_seconds;
        j["ablation_includes"] =
            "the recorded forward + per neuron: h[l+1] - a[:,i] W_down[:,i] (earlier blocks reused from the trace), "
            "the later blocks on all positions, final norm and target logit at the last position";
        j["speedup"] = r.speedup();
        j["speedup_cpu"] = r.speedup_cpu();
        j["spearman"] = r.spearman;
        j["spearman_per_layer"] = r.spearman_layer;
    }
    if (r.naive_sample > 0) {
        j["naive_sample"] = r.naive_sample;
        j["naive_sample_seconds"] = r.naive_sample_seconds;
        j["naive_seconds_extrapolated"] = r.naive_seconds_extrapolated();
        j["naive_cpu_seconds_extrapolated"] = r.naive_cpu_extrapolated();
        j["naive_includes"] = "per neuron a full forward() of a copy with W_down[:,i] zeroed (all layers, all logits), "
                              "timed on naive_sample neurons and scaled to all L*I";
        j["speedup_vs_naive"] = r.depass_seconds > 0 ? r.naive_seconds_extrapolated() / r.depass_seconds : 0.0;
        j["speedup_vs_naive_cpu"] = r.depass_cpu > 0 ? r.naive_cpu_extrapolated() / r.depass_cpu : 0.0;
        if (!o.no_ablation) j["naive_max_effect_diff"] = r.naive_max_effect_diff;
    }
    std::printf("%s: N=%d, L=%d, I=%d, %d neurons, %d threads, target id %d (logit %.4g)\n", model_name.c_str(), r.N,
                r.L, r.I, r.L * r.I, r.threads, r.target, r.target_logit);
    std::printf("  %-34s %10s %10s\n", "", "wall s", "cpu s");
    std::printf("  %-34s %10.4f %10.4f\n", "forward (shared)", r.forward_seconds, r.forward_cpu);
    std::printf("  %-34s %10.4f %10.4f\n", "DePass (one pass per layer)", r.depass_seconds, r.depass_cpu);
    if (!o.no_ablation) {
        std::printf("  %-34s %10.4f %10.4f\n", ("ablation (" + std::to_string(r.L * r.I) + " forwards from l+1)").c_str(),
                    r.ablation_seconds, r.ablation_cpu);
    }
    if (r.naive_sample > 0)
        std::printf("  %-34s %10.4f %10.4f   (%d sampled, extrapolated)\n", "naive ablation (full forwards)",
                    r.naive_seconds_extrapolated(), r.naive_cpu_extrapolated(), r.naive_sample);
    if (!o.no_ablation) {
        std::printf("  speed-up vs ablation: %.2f x (wall), %.2f x (cpu)\n", r.speedup(), r.speedup_cpu());
        if (r.naive_sample > 0)
            std::printf("  speed-up vs naive ablation: %.2f x (wall), %.2f x (cpu); naive and fast ablation effects "
                        "agree to %.2g\n",
                        r.naive_seconds_extrapolated() / r.depass_seconds, r.naive_cpu_extrapolated() / r.depass_cpu,
                        r.naive_max_effect_diff);
        std::printf("  Spearman(DePass score, ablation effect) over all neurons: %.4f; per layer:", r.spearman);
        for (double s : r.spearman_layer) std::printf(" %.3f", s);
        std::printf("\n");
    }
    if (!o.json.empty()) write_out(o.in, o.json, j.dump(2) + "\n");
    if (!o.csv.empty()) {
        std::ostringstream os;
        os << "layer,neuron,depass_score,ablation_effect\n";
        for (int l = 0; l < r.L; ++l)
            for (int i = 0; i < r.I; ++i)
                os << l << "," << i << "," << fmt("%.8g", r.depass_scores[size_t(l) * r.I + i]) << ","
                   << fmt("%.8g", r.ablation_effects[size_t(l) * r.I + i]) << "\n";
        write_out(o.in, o.csv, os.str());
    }
    if (!o.svg.empty()) {
        if (o.no_ablation) throw UsageError("--svg plots scores against ablation effects: drop --no-ablation");
        write_out(o.in, o.svg,
                  eval::svg_scatter(label + ": DePass score vs ablation effect (Spearman " + fmt("%.3f", r.spearman) + ")",
                                    "DePass logit attribution of the neuron", "clean logit - logit with the neuron zeroed",
                                    r.depass_scores, r.ablation_effects));
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
    std::ostringstream csv;
    csv << "label,N,neurons,threads,depass_wall_s,ablation_wall_s,naive_wall_s_extrapolated,depass_cpu_s,"
           "ablation_cpu_s,naive_cpu_s_extrapolated,speedup_wall,speedup_cpu,speedup_vs_naive_cpu,spearman\n";
    std::vector<eval::BarGroup> groups;
    for (const std::string& f : o.inputs) {
        const nlohmann::json j = detail::parse_json_checked(read_text_file(f), f, "not JSON");
        for (const char* key : {"label", "N", "config", "threads", "depass_seconds", "depass_cpu_seconds",
                                "ablation_seconds", "ablation_cpu_seconds", "speedup", "speedup_cpu", "spearman",
                                "naive_seconds_extrapolated", "naive_cpu_seconds_extrapolated"})
            if (!j.contains(key))
                throw Error(f + ": field '" + key + "' is missing (expected a neurons-speed JSON with ablation and "
                            "--naive-sample > 0)");
        auto num = [&](const char* k) { return j[k].get<double>(); };
        const std::string label = j["label"].get<std::string>();
        const int neurons = j["config"]["L"].get<int>() * j["config"]["I"].get<int>();
        csv << csv_field(label) << "," << j["N"].get<int>() << "," << neurons << "," << j["threads"].get<int>();
        for (const char* k : {"depass_seconds", "ablation_seconds", "naive_seconds_extrapolated", "depass_cpu_seconds",
                              "ablation_cpu_seconds", "naive_cpu_seconds_extrapolated"})
            csv << "," << fmt("%.6g", num(k));
        csv << "," << fmt("%.4g", num("speedup")) << "," << fmt("%.4g", num("speedup_cpu")) << ","
            << fmt("%.4g", num("naive_cpu_seconds_extrapolated") / num("depass_cpu_seconds")) << ","
            << fmt("%.4f", num("spearman")) << "\n";
        std::string two_lines = label;  // "model N=32" -> "model" / "N=32"
        const size_t cut = two_lines.rfind(" N=");
        if (cut != std::string::npos) two_lines[cut] = '\n';
        groups.push_back({two_lines + "\nablation / DePass " + fmt("%.1fx", num("speedup_cpu")),
                          {num("depass_cpu_seconds"), num("ablation_cpu_seconds"), num("naive_cpu_seconds_extrapolated")}});
    }
    write_out(in, dir + "/speed.csv", csv.str());
    write_out(in, dir + "/speed.svg",
              eval::svg_bar_chart("Scores for every neuron of every layer: CPU time (log scale)",
                                  "CPU seconds",
                                  {"DePass (one pass per layer)", "ablation (forward from l+1)",
                                   "naive ablation (full forward)"},
                                  groups, true, "%.3g"));
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
        throw UsageError("cost: give exactly one of --prompts FILE... or --n N (with --count K sampled prefixes)");
    if (o.ig_steps < 1) throw UsageError("--ig-steps: " + std::to_string(o.ig_steps) + " (expected >= 1)");
    if (o.limit < 1 || o.count < 1) throw UsageError("--limit and --count must be >= 1");
    const Model<T> model = model_or_random<T>("cost", o.in, o.random, o.seed);
    const Config& cfg = model.cfg;
    std::vector<std::vector<int>> prompts;
    std::string ids_from;
    if (o.n > 0) {
        prompts = sampled_ids(model, o.n, o.count, o.seed);
        ids_from = std::to_string(o.count) + " prefixes of " + std::to_string(o.n) + " tokens sampled from the model (seed " +
                   std::to_string(o.seed) + ", temperature 1)";
    } else {
        SetOptions so;
        so.in = o.in;
        so.prompt_files = o.prompt_files;
        so.limit = o.limit;
        auto tok = find_tokenizer(o.in, cfg, true);
        prompts = load_prompts(so, cfg, *tok).ids;
        ids_from = "the first " + std::to_string(prompts.size()) + " prompts of " + files_list(o.prompt_files);
    }
    if (prompts.empty()) throw Error("cost: no prompts");
    const std::string model_name = model_label(o.in, o.random);
    say(o.in, "model: " + model_name + ": " + describe(cfg) + "; " + std::to_string(prompts.size()) + " prompts");
    std::vector<eval::TokenCostResult> runs;
    for (size_t i = 0; i < prompts.size(); ++i) {
        progress(o.in, "prompt " + std::to_string(i + 1) + " / " + std::to_string(prompts.size()));
        runs.push_back(eval::token_cost(model, prompts[i], o.ig_steps, o.temperature));
    }
    progress(o.in, "");
    double dep = 0, ig = 0, ixg = 0, n_mean = 0, gap_max = 0;
    const double P = double(runs.size());
    for (const eval::TokenCostResult& r : runs) {
        dep += r.depass_seconds / P;
        ig += r.ig_seconds / P;
        ixg += r.ixg_seconds / P;
        n_mean += r.N / P;
        gap_max = std::max(gap_max, std::abs(r.ig_gap));
    }
    const std::string label = o.label.empty() ? model_name : o.label;
    nlohmann::json j = run_header(label, model_name, o.random, o.seed, o.in.dtype, cfg);
    j["prompts"] = runs.size();
    j["ids_from"] = ids_from;
    j["mean_N"] = n_mean;
    j["ig_steps"] = o.ig_steps;
#ifdef _OPENMP
    j["threads"] = omp_get_max_threads();
#else
    j["threads"] = 1;
#endif
    j["timing"] = "wall-clock seconds per attributed prompt, mean over the prompts; every method runs its own forward";
    j["depass_includes"] = "forward + init_tokens + propagate + logit_attribution (token level at h[0], softmax rule)";
    j["integrated_gradients_includes"] =
        "forward at x + forward at the zero baseline + ig_steps x (forward_from_embeddings + backward), all logits";
    j["input_x_gradient_includes"] = "forward + backward + x . g per token";
    j["depass_seconds_per_prompt"] = dep;
    j["integrated_gradients_seconds_per_prompt"] = ig;
    j["input_x_gradient_seconds_per_prompt"] = ixg;
    j["ratio_integrated_gradients_to_depass"] = ig / dep;
    j["ratio_input_x_gradient_to_depass"] = ixg / dep;
    j["ig_completeness_gap_max_abs"] = gap_max;
    for (const eval::TokenCostResult& r : runs)
        j["per_prompt"].push_back({{"N", r.N},
                                   {"target", r.target},
                                   {"depass_seconds", r.depass_seconds},
                                   {"integrated_gradients_seconds", r.ig_seconds},
                                   {"input_x_gradient_seconds", r.ixg_seconds},
                                   {"ig_completeness_gap", r.ig_gap}});
    std::printf("%s: %zu prompts, mean N %.1f, IG %d steps, %d thread(s)\n", label.c_str(), runs.size(), n_mean,
                o.ig_steps, j["threads"].get<int>());
    std::printf("  %-30s %14s %14s\n", "method", "s / prompt", "x DePass");
    std::printf("  %-30s %14.5f %14.2f\n", "depass (token level)", dep, 1.0);
    std::printf("  %-30s %14.5f %14.2f\n", ("integrated_gradients (" + std::to_string(o.ig_steps) + ")").c_str(), ig,
                ig / dep);
    std::printf("  %-30s %14.5f %14.2f\n", "input_x_gradient", ixg, ixg / dep);
    if (!o.json.empty()) write_out(o.in, o.json, j.dump(2) + "\n");
}

}  // namespace

void register_eval(CLI::App& app) {
    CLI::App* ev = app.add_subcommand(
        "eval",
        "Faithfulness and cost of DePass against baselines, on real weights.\n"
        "Outputs CSV, JSON and SVG plots; see docs/results.md for the shipped numbers.");
    ev->require_subcommand(1);

    {
        auto o = std::make_shared<PromptsOptions>();
        CLI::App* sub = ev->add_subcommand(
            "prompts",
            "Sample prompt prefixes from the model itself (seeded), one per line.\n"
            "Example: depass eval prompts -m weights/stories260K.bin --count 300 --seed 1 --out data/prompts/stories260K_sampled.txt");
        add_input_options(sub, o->in, false);
        sub->add_option("--count", o->count, "Number of prefixes drawn")->capture_default_str();
        sub->add_option("--seed", o->seed, "Seed")->capture_default_str();
        sub->add_option("--min-tokens", o->min_tokens, "Shortest prefix (tokens after BOS)")->capture_default_str();
        sub->add_option("--max-tokens", o->max_tokens, "Longest prefix (tokens after BOS)")->capture_default_str();
        sub->add_option("--temperature", o->temperature, "Sampling temperature")->capture_default_str();
        sub->add_option("--out,-o", o->out, "Output text file")->required();
        sub->callback([o] { wants_double(o->in) ? run_prompts<double>(*o) : run_prompts<float>(*o); });
    }
    {
        auto o = std::make_shared<SetOptions>();
        CLI::App* sub = ev->add_subcommand(
            "tokens",
            "Token-level faithfulness. Target = the model's greedy next token at the last position. Every method\n"
            "ranks the tokens between BOS and the last token; at p = 10..100% the top k = max(1, floor(p (N-2)))\n"
            "are deleted (deletion) or kept alone with BOS and the last token (keeping); score =\n"
            "min(100, |P_clean - P_masked| / P_clean * 100). Methods: depass (token level at h[0], softmax rule,\n"
            "ignore-special-token on), random, attn_last, attn_mean, rollout, embed_norm, occlusion, and the gradient\n"
            "baselines on f = log P(target): integrated_gradients (zero token-embedding baseline, midpoint rule,\n"
            "--ig-steps points; the completeness gap sum(attr) - (f(x) - f(0)) is reported), input_x_gradient\n"
            "(x . df/dx per token), gradient_norm (||df/dx|| per token).\n"
            "Writes tokens_curves.csv, tokens_per_prompt.csv, tokens_summary.json, tokens_deletion.svg, tokens_keeping.svg.\n"
            "Example: depass eval tokens -m weights/stories260K.bin --prompts data/prompts/handwritten.txt --out out/");
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
            std::string(head ? "Head" : "Neuron") +
                "-level faithfulness. Every " + (head ? "head (L x H)" : "MLP neuron (L x I)") +
                " is ranked by DePass (signed and absolute logit attribution of the target at the last position),\n"
                "random, " + (head ? "the head's output norm" : "|activation|") +
                " at the last position, and AtP (|sum over positions of activation x gradient of log P(target)|,\n"
                "the first-order estimate of zeroing the unit); the top and the bottom 1, 5, 10% are zeroed (" +
                (head ? "W_O columns" : "W_down column") +
                ") in a copy of the model.\n"
                "Reports how often the greedy token survives and the mean drop of its probability.\n"
                "Writes " + (head ? "heads" : "neurons") + ".csv, .json, _drop.svg, _survival.svg.");
        add_set_options(sub, *o);
        sub->add_option("--fractions", o->fractions, "Percents of the units zeroed, comma list")->capture_default_str();
        sub->callback([o, kind] { wants_double(o->in) ? run_units<double>(*o, kind) : run_units<float>(*o, kind); });
    }
    {
        auto o = std::make_shared<SpeedOptions>();
        CLI::App* sub = ev->add_subcommand(
            "neurons-speed",
            "Neuron-level cost: DePass scores for every neuron of every layer (one decomposed pass per layer, all\n"
            "neurons as components) against ablation (one forward per neuron, its W_down column zeroed, earlier\n"
            "layers reused from the trace). Prints both times, the ratio and the Spearman correlation of the\n"
            "DePass scores with the measured effects on the target logit.\n"
            "Example: depass eval neurons-speed --random stories15M --n 32 --json speed.json");
        add_model_or_random(sub, o->in, o->random);
        sub->add_option("--ids", o->in.ids, "Token ids, comma-separated");
        sub->add_option("--prompt,-p", o->in.prompt, "Text to tokenise (BOS is prepended)");
        sub->add_option("--n", o->n, "N tokens: BOS then N-1 tokens sampled from the model (seeded)");
        sub->add_option("--seed", o->seed, "Seed of the sampled ids and of the random model")->capture_default_str();
        sub->add_option("--tokenizer", o->in.tokenizer, "Tokenizer file (default: next to the model)");
        sub->add_option("--dtype", o->in.dtype, "f32 or f64")->check(CLI::IsMember({"f32", "f64"}))->capture_default_str();
        sub->add_option("--temperature", o->temperature, "Softmax MLP rule temperature")->capture_default_str();
        sub->add_flag("--no-ablation", o->no_ablation, "Only the DePass scores and time");
        sub->add_option("--naive-sample", o->naive_sample,
                        "Also time this many naive ablations (full forward of a zeroed copy) and extrapolate; 0 = off")
            ->capture_default_str();
        sub->add_option("--repeats", o->repeats, "Run everything this many times; timings are medians")
            ->capture_default_str();
        sub->add_flag("--system-malloc", o->system_malloc,
                      "Leave glibc's allocator at its defaults (by default freed memory is kept for reuse, see docs/results.md)");
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
            "Token-level cost: wall time per attributed prompt of DePass (token level), integrated gradients\n"
            "(--ig-steps, default 100) and input x gradient, in the same run, one prompt after the other.\n"
            "Example: depass eval cost --random stories15M --n 32 --count 5 --json cost.json");
        add_model_or_random(sub, o->in, o->random);
        sub->add_option("--prompts", o->prompt_files, "Prompt file(s), one prompt per line");
        sub->add_option("--limit", o->limit, "Use the first K prompts of --prompts")->capture_default_str();
        sub->add_option("--n", o->n, "Instead of --prompts: prefixes of N tokens sampled from the model (seeded)");
        sub->add_option("--count", o->count, "Number of sampled prefixes with --n")->capture_default_str();
        sub->add_option("--seed", o->seed, "Seed of the sampled ids and of the random model")->capture_default_str();
        sub->add_option("--ig-steps", o->ig_steps, "Integrated gradients: points of the midpoint rule")->capture_default_str();
        sub->add_option("--tokenizer", o->in.tokenizer, "Tokenizer file (default: next to the model)");
        sub->add_option("--dtype", o->in.dtype, "f32 or f64")->check(CLI::IsMember({"f32", "f64"}))->capture_default_str();
        sub->add_option("--temperature", o->temperature, "Softmax MLP rule temperature of DePass")->capture_default_str();
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
