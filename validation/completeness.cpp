// completeness.cpp -- the completeness suite: every level, variant, cut layer and MLP
// rule, checked at every residual point from the cut to the end.
#include "depass/completeness.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "depass/attribute.hpp"
#include "depass/forward.hpp"
#include "depass/io.hpp"
#include "depass/tolerance.hpp"
#include "suite.hpp"

namespace depass::validation {

namespace {

// A small, fully specified random source (splitmix64), so that seeds give the same
// subspaces, components and ids with every standard library.
class Rng {
public:
    explicit Rng(uint64_t seed) : s_(seed) {}
    uint64_t next() {
        uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    // Uniform in (0, 1).
    double uniform() { return (double(next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
    // Standard normal (Box-Muller).
    double normal() {
        const double u = uniform(), v = uniform();
        return std::sqrt(-2.0 * std::log(u)) * std::cos(6.283185307179586 * v);
    }
    int below(int n) { return int(next() % uint64_t(n)); }

private:
    uint64_t s_;
};

// A seed for one (purpose, layer) so that a run's random inputs do not depend on
// which other runs were selected.
uint64_t derive_seed(uint64_t seed, uint64_t purpose, int layer) {
    Rng r(seed ^ (purpose * 0xD1B54A32D192ED03ull) ^ (uint64_t(layer + 1) * 0x8CB92BA72F3D8DD7ull));
    return r.next();
}

// The residual points propagate() must report for a cut, in forward order.
std::vector<CutPoint> expected_points(const CutPoint& cut, int L) {
    std::vector<CutPoint> pts{cut};
    for (int l = cut.layer; l < L; ++l) {
        if (!(l == cut.layer && cut.after_attention)) pts.push_back(CutPoint{l, true});
        pts.push_back(CutPoint{l + 1, false});
    }
    return pts;
}

bool same_point(const CutPoint& a, const CutPoint& b) {
    return a.layer == b.layer && a.after_attention == b.after_attention;
}

// A random basis [D, k] -> its orthogonal projector.
Mat<double> random_projector(int D, int k, uint64_t seed) {
    Rng r(seed);
    Mat<double> B(D, k);
    for (int i = 0; i < D; ++i)
        for (int j = 0; j < k; ++j) B(i, j) = r.normal();
    return projector_from(B, D, "random subspace basis (seed " + std::to_string(seed) + ")");
}

// K components [K, N, D] summing to `state`: K-1 random ones, the last = state minus
// the others (in double). The random entries have standard deviation max|state| / 4,
// so the largest entry of each component is about max |state| (components much
// larger than the state would measure float cancellation, not completeness).
template <class T>
Tensor<double> random_custom(const Mat<T>& state, int K, uint64_t seed) {
    const int N = int(state.rows()), D = int(state.cols());
    const double scale = 0.25 * std::max(double(state.cwiseAbs().maxCoeff()), 1e-30);
    Tensor<double> C({K, N, D});
    Rng r(seed);
    const size_t ND = size_t(N) * D;
    for (size_t i = 0; i < ND; ++i) {
        double rest = double(state.data()[i]);
        for (int k = 0; k + 1 < K; ++k) {
            const double v = scale * r.normal();
            C.data[size_t(k) * ND + i] = v;
            rest -= v;
        }
        C.data[size_t(K - 1) * ND + i] = rest;
    }
    return C;
}

}  // namespace

template <class T>
std::vector<SuiteCase> suite_cases(const Model<T>& model, const Trace<T>& trace,
                                   const CompletenessPlan& plan) {
    const Config& cfg = model.cfg;
    const int L = cfg.L;
    std::vector<int> layers = plan.layers;
    if (layers.empty())
        for (int l = 0; l <= L; ++l) layers.push_back(l);
    for (int l : layers)
        if (l < 0 || l > L)
            throw Error("validate: layer " + std::to_string(l) + " is out of range [0, " + std::to_string(L) +
                        "] for this " + std::to_string(L) + "-layer model");
    if (plan.custom_components < 1)
        throw Error("validate: the custom level needs at least 1 component, got " +
                    std::to_string(plan.custom_components));

    std::vector<SuiteCase> cases;
    for (const std::string& level : plan.levels) {
        if (std::find(all_levels().begin(), all_levels().end(), level) == all_levels().end())
            throw Error("validate: unknown level '" + level +
                        "' (expected token, module, head, neuron, subspace or custom)");
        const bool block_level = level == "module" || level == "head" || level == "neuron";
        for (int l : layers) {
            if (block_level && l == L) continue;  // blocks are 0..L-1
            SuiteCase c;
            c.level = level;
            c.req.level = parse_level(level);
            c.req.layer = l;
            if (level == "token") {
                for (int on : {1, 0}) {
                    c.variant = on ? "special on" : "special off";
                    c.ignore_special = on;
                    cases.push_back(c);
                }
            } else if (level == "module") {
                for (bool mlp : {false, true}) {
                    c.variant = mlp ? "mlp" : "attn";
                    c.req.module_mlp = mlp;
                    cases.push_back(c);
                }
            } else if (level == "head") {
                c.variant = "all " + std::to_string(cfg.H);
                cases.push_back(c);
            } else if (level == "neuron") {
                c.variant = "all " + std::to_string(cfg.I);
                cases.push_back(c);
                const int g = std::max(1, std::min(plan.neuron_groups, cfg.I));
                c.variant = std::to_string(g) + " groups";
                c.req.neuron_groups = g;
                cases.push_back(c);
            } else if (level == "subspace") {
                const int k = std::max(1, cfg.D / 4);
                c.variant = "k=" + std::to_string(k);
                c.req.projectors = {random_projector(cfg.D, k, derive_seed(plan.seed, 1, l))};
                c.req.projector_names = {"random k=" + std::to_string(k)};
                cases.push_back(c);
            } else {  // custom
                const int K = plan.custom_components;
                c.variant = "K=" + std::to_string(K);
                c.req.custom = random_custom(trace.h.at(l), K, derive_seed(plan.seed, 2, l));
                c.req.custom_rel_tol = tolerance::completeness_rel<T>();
                c.req.custom_source = "random custom components (seed " + std::to_string(plan.seed) + ")";
                cases.push_back(c);
            }
        }
    }
    return cases;
}

template std::vector<SuiteCase> suite_cases(const Model<float>&, const Trace<float>&,
                                            const CompletenessPlan&);
template std::vector<SuiteCase> suite_cases(const Model<double>&, const Trace<double>&,
                                            const CompletenessPlan&);

const std::vector<std::string>& all_levels() {
    static const std::vector<std::string> levels{"token", "module", "head", "neuron", "subspace", "custom"};
    return levels;
}

std::string RunResult::label() const {
    return level + " (" + variant + ") rule=" + rule_name(rule) + " cut=" + cut.str();
}

template <class T>
std::vector<RunResult> check_completeness(const Model<T>& model, const std::vector<int>& ids,
                                          const CompletenessPlan& plan,
                                          const std::function<void(const RunResult&)>& on_run) {
    const double tol = tolerance::completeness_rel<T>();
    const Trace<T> trace = forward(model, ids);
    const std::vector<SuiteCase> cases = suite_cases(model, trace, plan);

    std::vector<RunResult> results;
    for (const SuiteCase& cs : cases) {
        const Initialised<T> init = initialise(model, trace, cs.req);
        Components<T> start = init.comps;
        if (plan.inject_leak) inject_leak(trace, init.cut, start);
        const std::vector<CutPoint> expected = expected_points(init.cut, model.cfg.L);
        for (MlpRule rule : plan.rules) {
            RunResult r;
            r.level = cs.level;
            r.variant = cs.variant;
            r.rule = rule;
            r.layer = cs.req.layer;
            r.cut = init.cut;
            r.components = init.comps.M;
            r.tolerance = tol;

            const DecomposeOptions opt = suite_options(init, cs, rule, plan);
            CompletenessMonitor<T> monitor(trace, tol);
            propagate(model, trace, start, init.cut, opt,
                      ComponentObserver<T>(
                          [&](const CutPoint& p, const Components<T>& c) { monitor.observe(p, c); }));
            for (const CompletenessPoint& p : monitor.points())
                r.points.push_back({p.point, p.max_abs, p.scale, p.max_rel, p.pass});

            // The observer must have seen exactly the residual points from the cut to h[L].
            bool sequence_ok = r.points.size() == expected.size();
            for (size_t i = 0; sequence_ok && i < expected.size(); ++i)
                sequence_ok = same_point(r.points[i].point, expected[i]);
            if (!sequence_ok) {
                std::string seen;
                for (const PointResult& p : r.points) seen += (seen.empty() ? "" : " ") + p.point.str();
                r.problem = "propagate reported the points [" + seen + "], expected " +
                            std::to_string(expected.size()) + " points from " + expected.front().str() +
                            " to " + expected.back().str();
                r.pass = false;
            }
            for (size_t i = 0; i < r.points.size(); ++i) {
                const PointResult& p = r.points[i];
                if (r.worst < 0 || !(p.max_rel <= r.points[r.worst].max_rel)) r.worst = int(i);
                if (!p.pass && r.first_fail < 0) r.first_fail = int(i);
            }
            if (r.first_fail >= 0) r.pass = false;
            if (on_run) on_run(r);
            results.push_back(std::move(r));
        }
    }
    return results;
}

template std::vector<RunResult> check_completeness(const Model<float>&, const std::vector<int>&,
                                                   const CompletenessPlan&,
                                                   const std::function<void(const RunResult&)>&);
template std::vector<RunResult> check_completeness(const Model<double>&, const std::vector<int>&,
                                                   const CompletenessPlan&,
                                                   const std::function<void(const RunResult&)>&);

// ---- inputs ----------------------------------------------------------------------------

Config random_config(const std::string& arch, int L, int H, int Hkv, int D, int max_positions) {
    const std::string where = "random " + arch + " model: ";
    if (L < 1) throw Error(where + "layers must be positive, got " + std::to_string(L));
    if (H < 1) throw Error(where + "heads must be positive, got " + std::to_string(H));
    if (Hkv < 1) throw Error(where + "kv heads must be positive, got " + std::to_string(Hkv));
    if (D < 1) throw Error(where + "hidden size must be positive, got " + std::to_string(D));
    if (D % H != 0)
        throw Error(where + "hidden size " + std::to_string(D) + " is not a multiple of heads " +
                    std::to_string(H));
    if (H % Hkv != 0)
        throw Error(where + "heads " + std::to_string(H) + " is not a multiple of kv heads " +
                    std::to_string(Hkv));
    if (arch != "llama" && arch != "mistral" && arch != "qwen2" && arch != "gpt2")
        throw Error("random model: unknown architecture '" + arch +
                    "' (expected llama, mistral, qwen2 or gpt2)");
    Config c = preset(parse_arch(arch));  // the family's flags
    c.source = "random " + arch;
    c.D = D;
    c.L = L;
    c.H = H;
    c.Hkv = Hkv;
    c.Dh = D / H;
    c.V = 256;  // room for the fixtures' token ids
    c.max_positions = std::max(64, max_positions);
    c.bos_id = 1;
    c.eos_id = 2;
    if (arch == "llama" || arch == "mistral" || arch == "qwen2") {
        // RMSNorm, SwiGLU/SiLU, rotate-half RoPE; qwen2 adds q/k/v biases.
        if (c.Dh % 2 != 0)
            throw Error(where + "head dimension " + std::to_string(c.Dh) +
                        " (hidden / heads) must be even for RoPE");
        c.I = 3 * D + 2;  // deliberately not a multiple of D
        c.norm_eps = arch == "qwen2" ? 1e-6 : 1e-5;
        c.rope_theta = arch == "llama" ? 10000.0 : 1000000.0;
        c.tied_embeddings = arch == "qwen2";
    } else if (arch == "gpt2") {
        if (Hkv != H)
            throw Error(where + "GPT-2 has no grouped-query attention: kv heads " + std::to_string(Hkv) +
                        " must equal heads " + std::to_string(H));
        c.I = 4 * D;
    }
    validate_config(c);
    return c;
}

std::vector<int> random_ids(int N, int V, uint64_t seed) {
    if (N < 1) throw Error("random ids: need at least one token, got N = " + std::to_string(N));
    if (V < 1) throw Error("random ids: empty vocabulary");
    Rng r(derive_seed(seed, 3, 0));
    std::vector<int> ids(N);
    for (int& id : ids) id = r.below(V);
    return ids;
}

std::vector<int> read_ids_file(const std::string& path) {
    const std::string text = read_text_file(path);
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        throw Error(path + ": malformed JSON: " + e.what());
    }
    const nlohmann::json* arr = &j;
    if (j.is_object()) {
        if (!j.contains("input_ids")) throw Error(path + ": missing field 'input_ids'");
        arr = &j["input_ids"];
    }
    if (!arr->is_array())
        throw Error(path + ": 'input_ids' must be an array of integers, got " + arr->dump().substr(0, 60));
    // A batch of one ([[...]]) is accepted too.
    if (arr->size() == 1 && (*arr)[0].is_array()) arr = &(*arr)[0];
    std::vector<int> ids;
    for (size_t i = 0; i < arr->size(); ++i) {
        const nlohmann::json& v = (*arr)[i];
        if (!v.is_number_integer() || v.get<int64_t>() < 0 ||
            v.get<int64_t>() > std::numeric_limits<int>::max())
            throw Error(path + ": input_ids[" + std::to_string(i) + "] = " + v.dump() +
                        " is not a non-negative integer");
        ids.push_back(int(v.get<int64_t>()));
    }
    if (ids.empty()) throw Error(path + ": 'input_ids' is empty");
    return ids;
}

}  // namespace depass::validation
