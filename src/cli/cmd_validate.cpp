// cmd_validate.cpp -- `depass validate`: the completeness suite (depass/completeness.hpp),
// or with --qk the QK split's identities (depass/qk_identities.hpp), on real models (--model)
// or random tiny ones (--random), with a report table.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>

#include "commands.hpp"
#include "depass/completeness.hpp"
#include "depass/io.hpp"
#include "depass/qk_identities.hpp"
#include "depass/tolerance.hpp"
#include "depass/weights.hpp"

namespace depass::cli {

namespace {

struct ValidateOptions {
    std::vector<std::string> models;
    std::string random;
    std::string ids, ids_file;
    int n = 12;
    uint64_t seed = 1;
    std::string levels = "all", rules = "all", dtypes = "both", layers = "all";
    int layers_count = 2, heads = 4, kv_heads = -1, hidden = 32;
    bool verbose = false;
    bool inject_leak = false;
    bool qk = false;  // the QK identities instead of completeness
    // Which flags were given (filled after parsing).
    bool has_ids = false, has_ids_file = false, has_n = false, has_shape = false;
};

std::vector<std::string> split_list(const std::string& text) {
    std::vector<std::string> out;
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, ',')) {
        size_t a = item.find_first_not_of(" \t"), b = item.find_last_not_of(" \t");
        out.push_back(a == std::string::npos ? "" : item.substr(a, b - a + 1));
    }
    return out;
}

std::string join(const std::vector<std::string>& v, const char* sep = ",") {
    std::string s;
    for (const std::string& x : v) s += (s.empty() ? "" : sep) + x;
    return s;
}

// A comma list drawn from `allowed` (or "all"), without duplicates, in the order given.
std::vector<std::string> parse_choice_list(const std::string& flag, const std::string& text,
                                           const std::vector<std::string>& allowed,
                                           const std::string& all_word = "all") {
    if (text == all_word) return allowed;
    std::vector<std::string> out;
    for (const std::string& item : split_list(text)) {
        if (std::find(allowed.begin(), allowed.end(), item) == allowed.end())
            throw UsageError(flag + ": '" + item + "' is not one of " + join(allowed) + " (or " + all_word +
                             ")");
        if (std::find(out.begin(), out.end(), item) == out.end()) out.push_back(item);
    }
    if (out.empty()) throw UsageError(flag + ": empty list");
    return out;
}

std::string base_name(std::string path) {
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    const size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string fmt(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2e", v);
    return buf;
}

std::string pad(const std::string& s, size_t w) {
    return s.size() >= w ? s + " " : s + std::string(w - s.size(), ' ');
}

constexpr size_t kModelW = 16, kDtypeW = 6, kLevelW = 22, kRuleW = 9, kCutW = 6, kPointsW = 7, kWorstW = 7,
                 kNumW = 11;

void print_header() {
    std::cout << pad("model", kModelW) << pad("dtype", kDtypeW) << pad("level", kLevelW)
              << pad("rule", kRuleW) << pad("cut", kCutW) << pad("points", kPointsW) << pad("point", kWorstW)
              << pad("max_abs", kNumW) << pad("max_rel", kNumW) << "verdict\n";
}

// One residual point, under its run row.
void print_point(const validation::PointResult& p, bool worst) {
    std::cout << std::string(kModelW + kDtypeW + kLevelW + kRuleW + kCutW, ' ')
              << pad(worst ? "  *" : "", kPointsW) << pad(p.point.str(), kWorstW)
              << pad(fmt(p.max_abs), kNumW) << pad(fmt(p.max_rel), kNumW) << (p.pass ? "ok" : "FAIL") << "\n";
}

struct Worst {
    int runs = 0, points = 0, failed = 0;
    double max_abs = 0, max_rel = -1, tol = 0;
    std::string where;
};

struct Report {
    bool verbose = false;
    std::map<std::pair<int, std::string>, Worst> worst;  // (level order, dtype) -> worst
    int runs = 0, points = 0, failed_runs = 0;
    std::string first_failure;
};

template <class T>
void run_model(const std::string& name, const Model<T>& model, const std::vector<int>& ids,
               const validation::CompletenessPlan& plan, const char* dtype, Report& rep) {
    auto on_run = [&](const validation::RunResult& r) {
        const validation::PointResult* w = r.worst >= 0 ? &r.points[r.worst] : nullptr;
        std::cout << pad(name, kModelW) << pad(dtype, kDtypeW)
                  << pad(r.level + " (" + r.variant + ")", kLevelW) << pad(rule_name(r.rule), kRuleW)
                  << pad(r.cut.str(), kCutW) << pad(std::to_string(r.points.size()), kPointsW)
                  << pad(w ? w->point.str() : "-", kWorstW) << pad(w ? fmt(w->max_abs) : "-", kNumW)
                  << pad(w ? fmt(w->max_rel) : "-", kNumW) << (r.pass ? "ok" : "FAIL") << "\n";
        if (rep.verbose) {
            for (size_t i = 0; i < r.points.size(); ++i) print_point(r.points[i], int(i) == r.worst);
        } else if (r.first_fail >= 0) {
            print_point(r.points[r.first_fail], r.first_fail == r.worst);
        }
        if (!r.problem.empty()) std::cout << "    problem: " << r.problem << "\n";
        std::cout.flush();

        const int order =
            int(std::find(validation::all_levels().begin(), validation::all_levels().end(), r.level) -
                validation::all_levels().begin());
        Worst& agg = rep.worst[{order, dtype}];
        agg.runs += 1;
        agg.points += int(r.points.size());
        agg.tol = r.tolerance;
        if (!r.pass) agg.failed += 1;
        if (w && !(w->max_rel <= agg.max_rel)) {
            agg.max_rel = w->max_rel;
            agg.max_abs = w->max_abs;
            agg.where = name + " " + r.label() + " at " + w->point.str();
        }
        rep.runs += 1;
        rep.points += int(r.points.size());
        if (!r.pass) {
            rep.failed_runs += 1;
            if (rep.first_failure.empty()) {
                std::ostringstream os;
                os << "model " << name << " " << dtype << ", run " << r.label();
                if (r.first_fail >= 0) {
                    const validation::PointResult& p = r.points[r.first_fail];
                    os << ", point " << p.point.str() << ": max_rel " << fmt(p.max_rel) << " > tolerance "
                       << fmt(r.tolerance) << " (max_abs " << fmt(p.max_abs) << ", max |state| "
                       << fmt(p.scale) << ")";
                } else {
                    os << ": " << r.problem;
                }
                rep.first_failure = os.str();
            }
        }
    };
    validation::check_completeness(model, ids, plan, on_run);
}

// ---- --qk: the QK split's identities -------------------------------------------------------------

constexpr size_t kBlockW = 6, kSplitsW = 7, kCutsW = 16;

void print_qk_header() {
    std::cout << pad("model", kModelW) << pad("dtype", kDtypeW) << pad("block", kBlockW)
              << pad("splits", kSplitsW) << pad("cuts", kCutsW) << pad("logits", kNumW) << pad("probs", kNumW)
              << pad("tolerance", kNumW) << pad("verdict", 8) << "worst at\n";
}

// How far a split is from failing: its worse error over the tolerance (NaN: infinitely far).
double qk_ratio(const validation::QkResult& r) {
    const double x = std::max(r.logits_max_rel, r.probs_max_abs) / r.tolerance;
    return std::isnan(x) ? INFINITY : x;
}

// The worst of a set of splits (one block of one model and dtype, or one dtype overall).
struct QkWorst {
    int splits = 0, failed = 0;
    double logits = 0, probs = 0, tol = 0, ratio = -1;
    std::vector<CutPoint> cuts;  // in forward order
    std::string where;

    void add(const validation::QkResult& r, const std::string& model) {
        splits += 1;
        if (!r.pass) failed += 1;
        tol = r.tolerance;
        logits = std::isnan(r.logits_max_rel) ? r.logits_max_rel : std::max(logits, r.logits_max_rel);
        probs = std::isnan(r.probs_max_abs) ? r.probs_max_abs : std::max(probs, r.probs_max_abs);
        const auto before = [](const CutPoint& a, const CutPoint& b) {
            return a.layer != b.layer ? a.layer < b.layer : !a.after_attention && b.after_attention;
        };
        const auto at = std::lower_bound(cuts.begin(), cuts.end(), r.cut, before);
        if (at == cuts.end() || before(r.cut, *at)) cuts.insert(at, r.cut);
        if (qk_ratio(r) > ratio) {
            ratio = qk_ratio(r);
            where = (model.empty() ? "" : model + " ") + r.label();
        }
    }
    std::string cut_range() const {
        if (cuts.empty()) return "-";
        return std::to_string(cuts.size()) + " (" + cuts.front().str() +
               (cuts.size() > 1 ? ".." + cuts.back().str() : "") + ")";
    }
};

struct QkTally {
    bool verbose = false;
    std::map<std::string, QkWorst> by_dtype;
    int splits = 0, failed = 0;
    std::string first_failure;
};

template <class T>
void run_model_qk(const std::string& name, const Model<T>& model, const std::vector<int>& ids,
                  const validation::CompletenessPlan& plan, const char* dtype, QkTally& tally) {
    std::map<int, QkWorst> by_block;
    auto on_result = [&](const validation::QkResult& r) {
        if (tally.verbose)
            std::cout << "    " << pad(r.label(), 56) << "logits " << fmt(r.logits_max_rel) << "  probs "
                      << fmt(r.probs_max_abs) << "  " << (r.pass ? "ok" : "FAIL") << "\n";
        by_block[r.block].add(r, "");
        tally.by_dtype[dtype].add(r, name);
        tally.splits += 1;
        if (!r.pass) {
            tally.failed += 1;
            if (tally.first_failure.empty()) {
                std::ostringstream os;
                os << "model " << name << " " << dtype << ", split " << r.label() << ": logits "
                   << fmt(r.logits_max_rel) << ", probs " << fmt(r.probs_max_abs) << " (tolerance "
                   << fmt(r.tolerance) << ")";
                tally.first_failure = os.str();
            }
        }
    };
    validation::check_qk_identities(model, ids, plan, on_result);
    for (const auto& [block, w] : by_block)
        std::cout << pad(name, kModelW) << pad(dtype, kDtypeW) << pad(std::to_string(block), kBlockW)
                  << pad(std::to_string(w.splits), kSplitsW) << pad(w.cut_range(), kCutsW)
                  << pad(fmt(w.logits), kNumW) << pad(fmt(w.probs), kNumW) << pad(fmt(w.tol), kNumW)
                  << pad(w.failed ? "FAIL" : "ok", 8) << w.where << "\n";
    std::cout.flush();
}

struct ModelSource {
    std::string name;
    std::string path;  // --model
    std::string arch;  // --random
};

template <class T>
Model<T> make_model(const ModelSource& src, const ValidateOptions& o, int N) {
    if (!src.path.empty()) return load_model<T>(src.path);
    int kv = o.kv_heads;
    if (kv <= 0) kv = src.arch == "gpt2" || o.heads % 2 != 0 ? o.heads : o.heads / 2;
    Config cfg;
    try {
        cfg = validation::random_config(src.arch, o.layers_count, o.heads, kv, o.hidden, N);
    } catch (const Error& e) {
        throw UsageError(std::string("validate: ") + e.what() +
                         " (flags --layers-count, --heads, --kv-heads, --hidden)");
    }
    return random_model<T>(cfg, o.seed);
}

// The --qk summary: the worst per dtype, and the verdict (an error naming the first failure).
void finish_qk(const QkTally& qk, double secs) {
    std::cout << "\nworst QK identity error per dtype:\n"
              << pad("dtype", kDtypeW) << pad("splits", kSplitsW) << pad("logits", kNumW)
              << pad("probs", kNumW) << pad("tolerance", kNumW) << pad("verdict", 8) << "worst at\n";
    for (const auto& [dtype, w] : qk.by_dtype)
        std::cout << pad(dtype, kDtypeW) << pad(std::to_string(w.splits), kSplitsW)
                  << pad(fmt(w.logits), kNumW) << pad(fmt(w.probs), kNumW) << pad(fmt(w.tol), kNumW)
                  << pad(w.failed ? "FAIL" : "ok", 8) << w.where << "\n";
    char tbuf[32];
    std::snprintf(tbuf, sizeof tbuf, "%.2f s", secs);
    if (qk.splits == 0)
        throw Error("validate --qk: nothing was split (every selected cut is after the last block)");
    if (qk.failed > 0) {
        std::cout << "\nFAIL: " << qk.failed << " of " << qk.splits << " splits violate the QK identities ("
                  << tbuf << ")\n  first failure: " << qk.first_failure << "\n";
        std::cout.flush();
        throw Error("QK identities violated in " + std::to_string(qk.failed) + " of " +
                    std::to_string(qk.splits) + " splits; first failure: " + qk.first_failure);
    }
    std::cout << "\nPASS: " << qk.splits << " splits within tolerance (" << tbuf << ")\n";
}

void run_validate(const ValidateOptions& o) {
    const auto t0 = std::chrono::steady_clock::now();

    // ---- flag combinations ----
    if (o.models.empty() == o.random.empty())
        throw UsageError("validate: give exactly one of --model PATH or --random ARCH");
    if (int(o.has_ids) + int(o.has_ids_file) + int(o.has_n) > 1)
        throw UsageError("validate: give at most one of --ids, --ids-file and --n");
    if (o.has_shape && o.random.empty())
        throw UsageError(
            "validate: --layers-count, --heads, --kv-heads and --hidden shape a --random model only");
    if (o.has_n && o.n < 1) throw UsageError("validate: --n must be at least 1, got " + std::to_string(o.n));

    validation::CompletenessPlan plan;
    plan.levels = parse_choice_list("--levels", o.levels, validation::all_levels());
    plan.rules.clear();
    for (const std::string& r :
         parse_choice_list("--rules", o.rules, {"softmax", "max", "relu", "linear", "taylor"}))
        plan.rules.push_back(parse_mlp_rule(r));
    const std::vector<std::string> dtypes = parse_choice_list("--dtype", o.dtypes, {"f32", "f64"}, "both");
    if (o.layers != "all") plan.layers = parse_int_list("--layers", o.layers);
    plan.seed = o.seed;
    plan.inject_leak = o.inject_leak;

    std::vector<ModelSource> sources;
    for (const std::string& p : o.models) sources.push_back({base_name(p), p, ""});
    if (!o.random.empty())
        for (const std::string& a :
             parse_choice_list("--random", o.random, {"llama", "mistral", "qwen2", "gpt2"}))
            sources.push_back({"random-" + a, "", a});

    std::vector<int> given_ids;
    std::string ids_from;
    if (o.has_ids) {
        given_ids = parse_int_list("--ids", o.ids);
        ids_from = "--ids";
    } else if (o.has_ids_file) {
        given_ids = validation::read_ids_file(o.ids_file);
        ids_from = o.ids_file;
    }

    Report rep;
    rep.verbose = o.verbose;
    QkTally qk;
    qk.verbose = o.verbose;
    if (o.qk) {
        std::cout
            << "depass validate --qk: the QK split's identities (the summed (query-side, key-side) pairs are "
               "the logits\n"
            << "  recomputed from q and k; their causal softmax is the recorded attention), at every block "
               "at or after each cut\n"
            << "  levels " << join(plan.levels) << " | rules " << o.rules << " | dtypes " << join(dtypes)
            << " | cut layers " << o.layers << " | seed " << o.seed
            << (o.inject_leak ? " | LEAK INJECTED" : "") << "\n"
            << "  logits = max|sum of pairs - q.k/sqrt(Dh)| / max|logit|, probs = max|softmax(sum of pairs) "
               "- "
               "recorded|,\n"
            << "  worst over every head, case, rule and cut; tolerance " << fmt(tolerance::qk_rel<float>())
            << " (f32), " << fmt(tolerance::qk_rel<double>()) << " (f64)\n";
    } else {
        std::cout
            << "depass validate: completeness of the decomposed pass (sum over components == true residual "
               "state)\n"
            << "  levels " << join(plan.levels) << " | rules " << o.rules << " | dtypes " << join(dtypes)
            << " | layers " << o.layers << " | seed " << o.seed << (o.inject_leak ? " | LEAK INJECTED" : "")
            << "\n"
            << "  max_rel = max|sum - state| / max|state| at each residual point, tolerance "
            << fmt(tolerance::completeness_rel<float>()) << " (f32), "
            << fmt(tolerance::completeness_rel<double>()) << " (f64)\n";
    }

    for (const ModelSource& src : sources) {
        std::vector<int> ids = given_ids;
        const int N = ids.empty() ? o.n : int(ids.size());
        bool header_done = false;
        for (const std::string& dt : dtypes) {
            auto prepare = [&](const auto& model) {
                if (ids.empty()) {
                    ids = validation::random_ids(o.n, model.cfg.V, o.seed);
                    ids_from = "random (seed " + std::to_string(o.seed) + ")";
                }
                if (!header_done) {
                    std::cout << "\nmodel " << src.name << ": " << describe(model.cfg)
                              << "\n  N=" << ids.size() << " tokens from " << ids_from << ":";
                    for (size_t i = 0; i < ids.size() && i < 40; ++i) std::cout << ' ' << ids[i];
                    std::cout << (ids.size() > 40 ? " ..." : "") << "\n\n";
                    if (o.qk)
                        print_qk_header();
                    else
                        print_header();
                    header_done = true;
                }
            };
            if (dt == "f32") {
                const Model<float> model = make_model<float>(src, o, N);
                prepare(model);
                if (o.qk)
                    run_model_qk(src.name, model, ids, plan, "f32", qk);
                else
                    run_model(src.name, model, ids, plan, "f32", rep);
            } else {
                const Model<double> model = make_model<double>(src, o, N);
                prepare(model);
                if (o.qk)
                    run_model_qk(src.name, model, ids, plan, "f64", qk);
                else
                    run_model(src.name, model, ids, plan, "f64", rep);
            }
        }
    }

    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (o.qk) {
        finish_qk(qk, secs);
        return;
    }
    std::cout << "\nworst completeness error per level and dtype:\n"
              << pad("level", 10) << pad("dtype", kDtypeW) << pad("runs", 6) << pad("points", 8)
              << pad("max_abs", kNumW) << pad("max_rel", kNumW) << pad("tolerance", kNumW)
              << pad("verdict", 8) << "worst at\n";
    for (const auto& [key, w] : rep.worst) {
        std::cout << pad(validation::all_levels()[key.first], 10) << pad(key.second, kDtypeW)
                  << pad(std::to_string(w.runs), 6) << pad(std::to_string(w.points), 8)
                  << pad(fmt(w.max_abs), kNumW) << pad(w.max_rel < 0 ? "-" : fmt(w.max_rel), kNumW)
                  << pad(fmt(w.tol), kNumW) << pad(w.failed ? "FAIL" : "ok", 8) << w.where << "\n";
    }
    char tbuf[32];
    std::snprintf(tbuf, sizeof tbuf, "%.2f s", secs);
    if (rep.runs == 0) throw Error("validate: nothing was run (no level applies to the selected layers)");
    if (rep.failed_runs > 0) {
        std::cout << "\nFAIL: " << rep.failed_runs << " of " << rep.runs << " runs violate completeness ("
                  << tbuf << ")\n  first failure: " << rep.first_failure << "\n";
        std::cout.flush();
        throw Error("completeness violated in " + std::to_string(rep.failed_runs) + " of " +
                    std::to_string(rep.runs) + " runs; first failure: " + rep.first_failure);
    }
    std::cout << "\nPASS: " << rep.runs << " runs, " << rep.points << " residual points within tolerance ("
              << tbuf << ")\n";
}

}  // namespace

void register_validate(CLI::App& app) {
    auto o = std::make_shared<ValidateOptions>();
    CLI::App* sub = app.add_subcommand(
        "validate",
        "Completeness suite: for every level, MLP rule, cut layer and dtype, run the decomposed pass and "
        "check\n"
        "that the components sum to the true residual state at every point from the cut to the end.\n"
        "Exits 1 naming the first failing run and point when an error exceeds the tolerance\n"
        "(relative to max |state|: 1e-5 in f32, 1e-12 in f64).");
    auto* model = sub->add_option("--model", o->models,
                                  "Model to load: Hugging Face directory or llama2.c .bin (repeatable)");
    auto* random =
        sub->add_option("--random", o->random,
                        "A random tiny model instead: llama, mistral, qwen2, gpt2 (comma list or all)");
    model->excludes(random);
    auto* ids = sub->add_option("--ids", o->ids, "Token ids, comma-separated (e.g. 1,5,9)");
    auto* ids_file =
        sub->add_option("--ids-file", o->ids_file, "Token ids from JSON: {\"input_ids\": [...]} or [...]");
    auto* n = sub->add_option("--n", o->n, "Number of random token ids when none are given (default 12)");
    ids->excludes(ids_file)->excludes(n);
    ids_file->excludes(n);
    sub->add_option("--seed", o->seed,
                    "Seed for the random model, ids, subspaces and custom components (default 1)");
    sub->add_option("--levels", o->levels, "token,module,head,neuron,subspace,custom or all (default all)");
    sub->add_option("--rules", o->rules, "MLP rules: softmax,max,relu,linear,taylor or all (default all)");
    sub->add_option("--dtype", o->dtypes, "f32, f64 or both (default both)");
    sub->add_option("--layers", o->layers,
                    "Cut layers: all, or a list (residual levels use h[l], l=0..L; block levels blocks l<L)");
    sub->add_flag("--verbose,-v", o->verbose,
                  "One row per residual point under each run (--qk: one per split)");
    sub->add_flag(
        "--qk", o->qk,
        "Check the QK split's identities instead (docs/levels/qk.md): for every case, rule and cut, the\n"
        "components at every block input h[l] at or after the cut are split over (query-side, key-side)\n"
        "pairs; the summed pairs must equal the logits recomputed from q and k, and their causal softmax\n"
        "the recorded attention (within 1e-5 in f32, 1e-12 in f64). One row per model, dtype and block.");
    auto* lc = sub->add_option("--layers-count", o->layers_count, "Random model: layers (default 2)");
    auto* hd = sub->add_option("--heads", o->heads, "Random model: query heads H (default 4)");
    auto* kv =
        sub->add_option("--kv-heads", o->kv_heads, "Random model: key/value heads (default H/2; gpt2: H)");
    auto* hid = sub->add_option("--hidden", o->hidden, "Random model: hidden size D (default 32)");
    for (auto* opt : {lc, hd, kv, hid}) opt->group("Random model shape");
    sub->add_flag("--inject-leak", o->inject_leak,
                  "For testing the validator: perturb the rest component so completeness (with --qk: the QK\n"
                  "identities) breaks (must exit 1)")
        ->group("Testing the validator");
    sub->callback([o, ids, ids_file, n, lc, hd, kv, hid]() {
        o->has_ids = ids->count() > 0;
        o->has_ids_file = ids_file->count() > 0;
        o->has_n = n->count() > 0;
        o->has_shape = lc->count() + hd->count() + kv->count() + hid->count() > 0;
        run_validate(*o);
    });
}

}  // namespace depass::cli
