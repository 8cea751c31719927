// writers.cpp -- the CSV, JSON and SVG files of `depass eval`, as text.
//
// Numbers in CSV and plot labels are printf-formatted (the format is next to each field);
// JSON numbers are nlohmann's shortest round-trip form.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "depass/eval_qk.hpp"
#include "depass/eval_report.hpp"
#include "depass/io.hpp"
#include "io/json_guard.hpp"

namespace depass::eval {

namespace {

std::string fmt(const char* f, double v) {
    char b[64];
    std::snprintf(b, sizeof b, f, v);
    return b;
}

// A CSV field: quoted (with doubled quotes) when it holds a comma, a quote or a newline.
std::string csv_field(const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string o = "\"";
    for (char c : s) o += c == '"' ? std::string("\"\"") : std::string(1, c);
    return o + "\"";
}

std::string dump(const nlohmann::json& j) { return j.dump(2) + "\n"; }

// The fields every evaluation summary starts with: the model, the type and the prompt files.
nlohmann::json run_header(const EvalRunInfo& run) {
    nlohmann::json j;
    j["model"] = run.model;
    j["dtype"] = run.dtype;
    j["prompt_files"] = run.prompt_files;
    return j;
}

// The fields every timing JSON starts with.
nlohmann::json timing_header(const TimingRunInfo& run) {
    nlohmann::json j;
    j["label"] = run.label;
    j["model"] = run.model;
    if (run.random) {
        j["random_seed"] = run.random_seed;
        j["random_std"] = run.random_std;
    }
    j["dtype"] = run.dtype;
    const Config& cfg = run.cfg;
    j["config"] = {{"D", cfg.D}, {"L", cfg.L}, {"H", cfg.H}, {"Hkv", cfg.Hkv}, {"I", cfg.I}, {"V", cfg.V}};
    return j;
}

// One timed span of neurons-speed: <what>_seconds, <what>_cpu_seconds, <what>_layer_seconds
// and what the span includes.
void put_span(nlohmann::json& j, const std::string& what, double wall, double cpu,
              const std::vector<double>& layers, const char* includes) {
    j[what + "_seconds"] = wall;
    j[what + "_cpu_seconds"] = cpu;
    j[what + "_layer_seconds"] = layers;
    j[what + "_includes"] = includes;
}

}  // namespace

// ---- eval prompts ------------------------------------------------------------------------

PromptFile prompt_file(const std::string& header, const std::vector<std::string>& decoded) {
    PromptFile f;
    std::ostringstream os;
    os << header << "\n"
       << "# One prompt per line; lines starting with '#' are comments. Exact duplicates are dropped.\n";
    std::vector<std::string> seen;
    for (std::string text : decoded) {
        const size_t a = text.find_first_not_of(' '), b = text.find_last_not_of(' ');
        text = a == std::string::npos ? "" : text.substr(a, b - a + 1);
        if (text.empty() || text[0] == '#' || std::find(seen.begin(), seen.end(), text) != seen.end())
            continue;
        seen.push_back(text);
        os << text << "\n";
        ++f.prompts;
    }
    f.text = os.str();
    return f;
}

// ---- eval tokens -------------------------------------------------------------------------

std::string tokens_curves_csv(const TokenEvalSummary& s) {
    const TokenEvalOptions& opt = s.options;
    std::ostringstream curves;
    curves << "method,mode,percent,mean_score\n";
    for (size_t m = 0; m < opt.methods.size(); ++m)
        for (int mode = 0; mode < 2; ++mode)
            for (size_t q = 0; q < opt.percents.size(); ++q)
                curves << method_name(opt.methods[m]) << "," << (mode ? "keeping" : "deletion") << ","
                       << opt.percents[q] << "," << fmt("%.6g", (mode ? s.keeping : s.deletion)[m][q])
                       << "\n";
    return curves.str();
}

std::string tokens_per_prompt_csv(const TokenEvalSummary& s, const std::vector<std::string>& prompt_source,
                                  const std::vector<std::string>& target_piece) {
    if (target_piece.size() != s.per_prompt.size())
        throw Error("tokens_per_prompt_csv: " + std::to_string(target_piece.size()) + " target pieces for " +
                    std::to_string(s.per_prompt.size()) + " prompts");
    const TokenEvalOptions& opt = s.options;
    std::ostringstream per;
    // ig_*: integrated gradients' f(x), f(0) = log P(target) at the input and at the zero
    // baseline, and the completeness gap sum(attr) - (f(x) - f(0)); empty when IG was not run.
    per << "prompt,source,N,target,target_piece,p_clean,method,deletion_area,keeping_area,ig_f_x,ig_f_0,"
           "ig_completeness_gap\n";
    auto num_or_empty = [](double v) { return std::isnan(v) ? std::string() : fmt("%.6g", v); };
    for (size_t i = 0; i < s.per_prompt.size(); ++i) {
        const PromptTokenResult& r = s.per_prompt[i];
        const int idx = s.prompt_index.at(i);
        for (size_t m = 0; m < opt.methods.size(); ++m)
            per << idx << "," << csv_field(prompt_source.at(size_t(idx))) << "," << r.N << "," << r.target
                << "," << csv_field(target_piece[i]) << "," << fmt("%.6g", r.p_clean) << ","
                << method_name(opt.methods[m]) << "," << fmt("%.6g", r.deletion_area[m]) << ","
                << fmt("%.6g", r.keeping_area[m]) << "," << num_or_empty(r.ig_f_x) << ","
                << num_or_empty(r.ig_f_0) << "," << num_or_empty(r.ig_gap) << "\n";
    }
    return per.str();
}

std::string tokens_summary_json(const TokenEvalSummary& s, const EvalRunInfo& run) {
    const TokenEvalOptions& opt = s.options;
    nlohmann::json j = run_header(run);
    j["prompts"] = s.prompts;
    j["skipped_short_prompts"] = s.skipped;
    j["percents"] = opt.percents;
    j["random_draws"] = opt.random_draws;
    j["seed"] = opt.seed;
    j["temperature"] = opt.temperature;
    j["seconds"] = s.seconds;
    j["score"] =
        "min(100, |P_clean - P_masked| / P_clean * 100), target = greedy next token at the last position";
    j["area"] = "trapezoid over percent 10..100 divided by the width: a constant curve c has area c";
    if (std::find(opt.methods.begin(), opt.methods.end(), TokenMethod::IntegratedGradients) !=
        opt.methods.end()) {
        const CompletenessGapStats g = completeness_gap_stats(s.per_prompt);
        j["integrated_gradients"] = {
            {"steps", opt.ig_steps},
            {"rule", "midpoint Riemann sum: alpha_s = (s + 1/2) / steps, s = 0 .. steps-1"},
            {"f", "log softmax(logits[N-1])[target]"},
            {"baseline", "token embeddings zeroed (learned position embeddings kept)"},
            {"completeness_gap", "sum_j attr[j] - (f(x) - f(0))"},
            {"completeness_gap_mean", g.mean},
            {"completeness_gap_mean_abs", g.mean_abs},
            {"completeness_gap_max_abs", g.max_abs},
            {"completeness_gap_mean_abs_rel", g.mean_abs_rel},
            {"completeness_gap_max_abs_rel", g.max_abs_rel},
            {"completeness_gap_rel", "|gap| / |f(x) - f(0)|"}};
    }
    for (size_t m = 0; m < opt.methods.size(); ++m) {
        nlohmann::json e;
        e["deletion_curve"] = s.deletion[m];
        e["keeping_curve"] = s.keeping[m];
        e["deletion_area"] = s.deletion_area[m];
        e["deletion_area_se"] = s.deletion_area_se[m];
        e["keeping_area"] = s.keeping_area[m];
        e["keeping_area_se"] = s.keeping_area_se[m];
        j["methods"][method_name(opt.methods[m])] = e;
    }
    // Paired differences against DePass (per prompt, then mean and standard error).
    const std::vector<PairedAreaDifference> pd = paired_area_differences(s, TokenMethod::DePass);
    for (size_t m = 0; m < pd.size(); ++m) {
        auto& e = j["methods"][method_name(opt.methods[m])];
        e["deletion_area_minus_depass"] = pd[m].deletion.mean;
        e["deletion_area_minus_depass_se"] = pd[m].deletion.se;
        e["keeping_area_minus_depass"] = pd[m].keeping.mean;
        e["keeping_area_minus_depass_se"] = pd[m].keeping.se;
    }
    return dump(j);
}

std::string tokens_svg(const TokenEvalSummary& s, bool keeping, const std::string& model) {
    const TokenEvalOptions& opt = s.options;
    std::vector<Series> series;
    for (size_t m = 0; m < opt.methods.size(); ++m) {
        Series ser;
        const double area = (keeping ? s.keeping_area : s.deletion_area)[m];
        ser.name = std::string(method_name(opt.methods[m])) + " (" + fmt("%.1f", area) + ")";
        ser.x.assign(opt.percents.begin(), opt.percents.end());
        ser.y = (keeping ? s.keeping : s.deletion)[m];
        series.push_back(ser);
    }
    const std::string title = std::string(keeping ? "Keeping" : "Deletion") + ": " + model + ", " +
                              std::to_string(s.prompts) + " prompts (" + (keeping ? "lower" : "higher") +
                              " is better; area in legend)";
    return svg_line_chart(title,
                          keeping ? "% of tokens kept (top-ranked)" : "% of tokens deleted (top-ranked)",
                          "score: |P_clean - P_masked| / P_clean (%)", series, 10, 100, 0, 100);
}

// ---- eval heads / neurons ----------------------------------------------------------------

std::string units_csv(const UnitEvalSummary& s) {
    std::ostringstream csv;
    csv << "method,direction,percent,units_zeroed,survival_pct,mean_prob_drop_pts,mean_rel_drop_pct\n";
    for (const UnitEvalRow& r : s.rows)
        csv << method_name(r.method) << "," << (r.top ? "top" : "bottom") << ","
            << fmt("%g", r.fraction * 100) << "," << r.k << "," << fmt("%.4g", r.survival) << ","
            << fmt("%.4g", r.mean_drop) << "," << fmt("%.4g", r.mean_rel_drop) << "\n";
    return csv.str();
}

std::string units_json(const UnitEvalSummary& s, const EvalRunInfo& run) {
    nlohmann::json j = run_header(run);
    j["unit"] = unit_name(s.kind);
    j["prompts"] = s.prompts;
    j["total_units"] = s.total_units;
    j["mean_p_clean"] = s.mean_p_clean;
    j["random_draws"] = s.options.random_draws;
    j["seed"] = s.options.seed;
    j["seconds"] = s.seconds;
    if (s.options.adjoint || s.options.rule != MlpRule::Softmax) {  // (the default run's file is unchanged)
        j["depass_rule"] = rule_name(s.options.rule);
        j["depass_path"] = s.options.adjoint ? "adjoint (one reverse pass for every layer)" : "forward";
    }
    j["zeroing"] = s.kind == UnitKind::Head ? "the head's Dh columns of W_O set to 0"
                                            : "the neuron's column of W_down set to 0";
    for (const UnitEvalRow& r : s.rows) {
        nlohmann::json e;
        e["method"] = method_name(r.method);
        e["direction"] = r.top ? "top" : "bottom";
        e["percent"] = r.fraction * 100;
        e["units_zeroed"] = r.k;
        e["survival_pct"] = r.survival;
        e["mean_prob_drop_pts"] = r.mean_drop;
        e["mean_rel_drop_pct"] = r.mean_rel_drop;
        j["rows"].push_back(e);
    }
    return dump(j);
}

// Bars: groups = direction x fraction, one bar per method.
std::string units_svg(const UnitEvalSummary& s, bool survival, const std::string& model) {
    const std::string name = unit_name(s.kind);
    std::vector<std::string> bars;
    for (UnitMethod m : s.options.methods) bars.push_back(method_name(m));
    std::vector<BarGroup> groups;
    for (bool top : {true, false})
        for (double f : s.options.fractions) {
            BarGroup g;
            g.label = std::string(top ? "top " : "bottom ") + fmt("%g", f * 100) + "% (" +
                      std::to_string(zeroed_count(f, s.total_units)) + ")";
            for (UnitMethod m : s.options.methods)
                for (const UnitEvalRow& r : s.rows)
                    if (r.method == m && r.top == top && r.fraction == f)
                        g.values.push_back(survival ? r.survival : r.mean_rel_drop);
            groups.push_back(g);
        }
    const std::string title =
        std::string(survival ? "Greedy token survival" : "Mean relative drop of P(target)") +
        " after zeroing " + name + "s: " + model + ", " + std::to_string(s.prompts) + " prompts";
    return svg_bar_chart(
        title, survival ? "prompts whose greedy token survives (%)" : "mean (P_clean - P) / P_clean (%)",
        bars, groups, false, "%.0f");
}

// ---- eval neurons-speed ------------------------------------------------------------------

std::string neuron_speed_json(const NeuronSpeedResult& r, const TimingRunInfo& run,
                              const NeuronSpeedRunInfo& info) {
    nlohmann::json j = timing_header(run);
    j["N"] = r.N;
    j["ids_from"] = info.ids_from;
    j["ids"] = info.ids;
    j["target"] = r.target;
    j["target_logit"] = r.target_logit;
    j["threads"] = r.threads;
    j["repeats"] = info.repeats;
    j["timing"] = info.repeats > 1 ? "median over the repeats" : "one run";
    j["malloc_keeps_freed_memory"] = info.malloc_keeps_freed_memory;
    j["malloc_large_block_mapped"] = info.malloc_large_block_mapped;
    j["forward_seconds"] = r.forward_seconds;
    j["forward_cpu_seconds"] = r.forward_cpu;
    if (r.adjoint || r.rule != MlpRule::Softmax) {  // (the default run's file is unchanged)
        j["rule"] = rule_name(r.rule);
        j["path"] = r.adjoint ? "adjoint" : "forward";
    }
    if (r.adjoint)
        put_span(j, "depass", r.depass_seconds, r.depass_cpu, r.depass_layer_seconds,
                 "the recorded forward + one reverse pass of the frozen network (taylor rule) for the target, "
                 "every neuron of every layer scored from its cotangents (per layer: total / L)");
    else
        put_span(j, "depass", r.depass_seconds, r.depass_cpu, r.depass_layer_seconds,
                 "the recorded forward + per layer: init_neurons (I + 1 components), propagate through the later "
                 "blocks "
                 "(all positions), logit_attribution");
    if (info.ablation) {
        put_span(
            j, "ablation", r.ablation_seconds, r.ablation_cpu, r.ablation_layer_seconds,
            "the recorded forward + per neuron: h[l+1] - a[:,i] W_down[:,i] (earlier blocks reused from the "
            "trace), the later blocks on all positions, final norm and target logit at the last position");
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
        j["naive_includes"] =
            "per neuron a full forward() of a copy with W_down[:,i] zeroed (all layers, all logits), "
            "timed on naive_sample neurons and scaled to all L*I";
        j["speedup_vs_naive"] =
            r.depass_seconds > 0 ? r.naive_seconds_extrapolated() / r.depass_seconds : 0.0;
        j["speedup_vs_naive_cpu"] = r.depass_cpu > 0 ? r.naive_cpu_extrapolated() / r.depass_cpu : 0.0;
        if (info.ablation) j["naive_max_effect_diff"] = r.naive_max_effect_diff;
    }
    return dump(j);
}

std::string neuron_speed_csv(const NeuronSpeedResult& r) {
    std::ostringstream os;
    os << "layer,neuron,depass_score,ablation_effect\n";
    for (int l = 0; l < r.L; ++l)
        for (int i = 0; i < r.I; ++i)
            os << l << "," << i << "," << fmt("%.8g", r.depass_scores[size_t(l) * r.I + i]) << ","
               << fmt("%.8g", r.ablation_effects[size_t(l) * r.I + i]) << "\n";
    return os.str();
}

std::string neuron_speed_svg(const NeuronSpeedResult& r, const std::string& label) {
    return svg_scatter(label + ": DePass score vs ablation effect (Spearman " + fmt("%.3f", r.spearman) + ")",
                       "DePass logit attribution of the neuron", "clean logit - logit with the neuron zeroed",
                       r.depass_scores, r.ablation_effects);
}

// ---- eval speed-plot ---------------------------------------------------------------------

SpeedPlot speed_plot(const std::vector<std::string>& json_files) {
    std::ostringstream csv;
    csv << "label,N,neurons,threads,depass_wall_s,ablation_wall_s,naive_wall_s_extrapolated,depass_cpu_s,"
           "ablation_cpu_s,naive_cpu_s_extrapolated,speedup_wall,speedup_cpu,speedup_vs_naive_cpu,spearman\n";
    std::vector<BarGroup> groups;
    for (const std::string& f : json_files) {
        const nlohmann::json j = detail::parse_json_checked(read_text_file(f), f, "not JSON");
        for (const char* key : {"label", "N", "config", "threads", "depass_seconds", "depass_cpu_seconds",
                                "ablation_seconds", "ablation_cpu_seconds", "speedup", "speedup_cpu",
                                "spearman", "naive_seconds_extrapolated", "naive_cpu_seconds_extrapolated"})
            if (!j.contains(key))
                throw Error(f + ": field '" + key +
                            "' is missing (expected a neurons-speed JSON with ablation and "
                            "--naive-sample > 0)");
        auto num = [&](const char* k) { return j[k].get<double>(); };
        const std::string label = j["label"].get<std::string>();
        const int neurons = j["config"]["L"].get<int>() * j["config"]["I"].get<int>();
        csv << csv_field(label) << "," << j["N"].get<int>() << "," << neurons << ","
            << j["threads"].get<int>();
        for (const char* k : {"depass_seconds", "ablation_seconds", "naive_seconds_extrapolated",
                              "depass_cpu_seconds", "ablation_cpu_seconds", "naive_cpu_seconds_extrapolated"})
            csv << "," << fmt("%.6g", num(k));
        csv << "," << fmt("%.4g", num("speedup")) << "," << fmt("%.4g", num("speedup_cpu")) << ","
            << fmt("%.4g", num("naive_cpu_seconds_extrapolated") / num("depass_cpu_seconds")) << ","
            << fmt("%.4f", num("spearman")) << "\n";
        std::string two_lines = label;  // "model N=32" -> "model" / "N=32"
        const size_t cut = two_lines.rfind(" N=");
        if (cut != std::string::npos) two_lines[cut] = '\n';
        groups.push_back({two_lines + "\nablation / DePass " + fmt("%.1fx", num("speedup_cpu")),
                          {num("depass_cpu_seconds"), num("ablation_cpu_seconds"),
                           num("naive_cpu_seconds_extrapolated")}});
    }
    SpeedPlot p;
    p.csv = csv.str();
    p.svg = svg_bar_chart(
        "Scores for every neuron of every layer: CPU time (log scale)", "CPU seconds",
        {"DePass (one pass per layer)", "ablation (forward from l+1)", "naive ablation (full forward)"},
        groups, true, "%.3g");
    return p;
}

// ---- eval cost ---------------------------------------------------------------------------

std::string token_cost_json(const std::vector<TokenCostResult>& runs, const TimingRunInfo& run,
                            const std::string& ids_from, int ig_steps, int threads) {
    const TokenCostSummary c = summarise_cost(runs);
    nlohmann::json j = timing_header(run);
    j["prompts"] = runs.size();
    j["ids_from"] = ids_from;
    j["mean_N"] = c.mean_N;
    j["ig_steps"] = ig_steps;
    j["threads"] = threads;
    j["timing"] =
        "wall-clock seconds per attributed prompt, mean over the prompts; every method runs its own forward";
    j["depass_includes"] =
        "forward + init_tokens + propagate + logit_attribution (token level at h[0], softmax rule)";
    j["integrated_gradients_includes"] =
        "forward at x + forward at the zero baseline + ig_steps x (forward_from_embeddings + backward), all "
        "logits";
    j["input_x_gradient_includes"] = "forward + backward + x . g per token";
    j["depass_seconds_per_prompt"] = c.depass_seconds;
    j["integrated_gradients_seconds_per_prompt"] = c.ig_seconds;
    j["input_x_gradient_seconds_per_prompt"] = c.ixg_seconds;
    j["ratio_integrated_gradients_to_depass"] = c.ig_seconds / c.depass_seconds;
    j["ratio_input_x_gradient_to_depass"] = c.ixg_seconds / c.depass_seconds;
    j["ig_completeness_gap_max_abs"] = c.ig_gap_max_abs;
    for (const TokenCostResult& r : runs)
        j["per_prompt"].push_back({{"N", r.N},
                                   {"target", r.target},
                                   {"depass_seconds", r.depass_seconds},
                                   {"integrated_gradients_seconds", r.ig_seconds},
                                   {"input_x_gradient_seconds", r.ixg_seconds},
                                   {"ig_completeness_gap", r.ig_gap}});
    return dump(j);
}

// ---- eval qk ------------------------------------------------------------------------------

std::string qk_rows_csv(const QkEffectSummary& s) {
    std::ostringstream o;
    o << "prompt,layer,head,position,side,pattern_first,pattern_exact,pattern_error,ctx_first,ctx_exact,ctx_error,"
         "logit_first,logit_first_grad,logit_exact_pattern,logit_exact\n";
    for (const QkEffectRow& r : s.rows)
        o << r.prompt << "," << r.layer << "," << r.head << "," << r.component << "," << qk_side_name(r.side) << ","
          << fmt("%.6g", r.pattern_first) << "," << fmt("%.6g", r.pattern_exact) << "," << fmt("%.6g", r.pattern_error) << ","
          << fmt("%.6g", r.ctx_first) << "," << fmt("%.6g", r.ctx_exact) << "," << fmt("%.6g", r.ctx_error) << "," << fmt("%.6g", r.logit_first)
          << "," << fmt("%.6g", r.logit_first_grad) << "," << fmt("%.6g", r.logit_exact_pattern) << "," << fmt("%.6g", r.logit_exact) << "\n";
    return o.str();
}

std::string qk_tokens_csv(const QkEffectSummary& s, const std::vector<std::string>& pieces) {
    std::ostringstream o;
    o << "prompt,position,id,piece,ablation,depass_taylor,depass_softmax,qk_first,qk_first_grad,miss_taylor\n";
    for (size_t i = 0; i < s.tokens.size(); ++i) {
        const QkTokenRow& t = s.tokens[i];
        o << t.prompt << "," << t.position << "," << t.id << "," << csv_field(i < pieces.size() ? pieces[i] : "")
          << "," << fmt("%.6g", t.ablation) << "," << fmt("%.6g", t.depass_taylor) << "," << fmt("%.6g", t.depass_softmax) << ","
          << fmt("%.6g", t.qk_first) << "," << fmt("%.6g", t.qk_first_grad) << "," << fmt("%.6g", t.ablation - t.depass_taylor) << "\n";
    }
    return o.str();
}

std::string qk_summary_json(const QkEffectSummary& s, const EvalRunInfo& run) {
    nlohmann::json j = run_header(run);
    j["prompts"] = s.prompts.size();
    j["seconds"] = s.seconds;
    for (const QkSideStats& st : qk_side_stats(s)) {
        nlohmann::json e;
        e["experiments"] = st.rows;
        e["pattern_rel_error"] = st.pattern_rel_error;
        e["context_rel_error"] = st.ctx_rel_error;
        e["logit_pearson"] = st.logit_pearson;
        e["logit_spearman"] = st.logit_spearman;
        e["logit_rel_error"] = st.logit_rel_error;
        e["logit_pearson_frozen_after_head"] = st.logit_pearson_frozen;
        e["logit_rel_error_frozen_after_head"] = st.logit_rel_error_frozen;
        e["logit_pearson_gradient_after_head"] = st.logit_pearson_grad;
        e["logit_rel_error_gradient_after_head"] = st.logit_rel_error_grad;
        e["mean_abs_logit_exact"] = st.mean_abs_exact;
        j["sides"][qk_side_name(st.side)] = e;
    }
    for (bool skip : {false, true}) {
        const QkTokenStats t = qk_token_stats(s, skip);
        nlohmann::json e;
        e["tokens"] = t.tokens;
        e["mean_abs_ablation"] = t.mean_abs_ablation;
        e["miss_taylor"] = t.miss_taylor;
        e["miss_softmax"] = t.miss_softmax;
        e["miss_taylor_plus_qk"] = t.miss_with_qk;
        e["qk_explained_of_miss"] = t.qk_explained;
        e["pearson_miss_qk"] = t.miss_qk_pearson;
        e["qk_gradient_explained_of_miss"] = t.qk_explained_grad;
        e["pearson_miss_qk_gradient"] = t.miss_qk_pearson_grad;
        e["pearson_ablation_taylor"] = t.pearson_taylor;
        e["pearson_ablation_taylor_plus_qk"] = t.pearson_with_qk;
        j["tokens"][skip ? "without_bos" : "all"] = e;
    }
    return dump(j);
}

}  // namespace depass::eval
