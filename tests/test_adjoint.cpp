// The taylor rule's attribution by one reverse pass of the frozen network (adjoint.hpp)
// against the decomposed forward pass with the taylor rule: the same linear map applied in
// the other order, so the two must agree to rounding (tolerance::adjoint_rel) for every
// level, every cut layer, several targets per position and every fixture architecture.
#include <cstdio>
#include <random>

#include "depass/adjoint.hpp"
#include "depass/eval.hpp"
#include "depass/io.hpp"
#include "depass/tolerance.hpp"
#include "test_support.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

using namespace depass;
using depass_test::TinyArch;

namespace {

// Every request the test makes on a model: each level at each of its cut layers.
// `states` [L+1] are the residual states h[l] (in double) the custom components must sum to.
std::vector<std::pair<std::string, LevelRequest>> all_requests(const Config& cfg,
                                                               const std::vector<Mat<double>>& states,
                                                               uint64_t seed) {
    std::vector<std::pair<std::string, LevelRequest>> out;
    std::mt19937_64 rng(seed);
    for (int l = 0; l <= cfg.L; ++l) {
        LevelRequest q;
        q.layer = l;
        q.level = Level::Token;
        out.push_back({"token h[" + std::to_string(l) + "]", q});
        // A random 3-dimensional subspace and its complement's half.
        q.level = Level::Subspace;
        q.projectors = {projector_from(depass_test::randn<double>(cfg.D, 3, rng), cfg.D, "basis a"),
                        projector_from(depass_test::randn<double>(cfg.D, 2, rng), cfg.D, "basis b")};
        out.push_back({"subspace h[" + std::to_string(l) + "]", q});
        // Three random custom components plus whatever makes them sum to the state.
        q = LevelRequest{};
        q.layer = l;
        q.level = Level::Custom;
        const Mat<double>& h = states[size_t(l)];
        const int N = int(h.rows()), D = int(h.cols());
        Tensor<double> C({3, N, D});
        Mat<double> a = depass_test::randn<double>(N, D, rng), b = depass_test::randn<double>(N, D, rng);
        const Mat<double> c = h - a - b;
        for (int n = 0; n < N * D; ++n) {
            C.data[size_t(n)] = a.data()[n];
            C.data[size_t(N * D + n)] = b.data()[n];
            C.data[size_t(2 * N * D + n)] = c.data()[n];
        }
        q.custom = C;
        q.custom_rel_tol = 1e-5;
        out.push_back({"custom h[" + std::to_string(l) + "]", q});
    }
    for (int l = 0; l < cfg.L; ++l) {
        LevelRequest q;
        q.layer = l;
        q.level = Level::Head;
        out.push_back({"head L" + std::to_string(l), q});
        q.heads = {cfg.H - 1, 0};
        out.push_back({"heads (two) L" + std::to_string(l), q});
        q = LevelRequest{};
        q.layer = l;
        q.level = Level::Neuron;
        out.push_back({"neuron L" + std::to_string(l), q});
        q.neurons = {3, 1, cfg.I - 1};
        out.push_back({"neurons (three) L" + std::to_string(l), q});
        q.neurons.clear();
        q.neuron_groups = 5;
        out.push_back({"neuron groups L" + std::to_string(l), q});
        q = LevelRequest{};
        q.layer = l;
        q.level = Level::Module;
        out.push_back({"module attn L" + std::to_string(l), q});
        q.module_mlp = true;
        out.push_back({"module mlp L" + std::to_string(l), q});
    }
    return out;
}

// Worst relative difference of the adjoint path against the forward path over every request.
template <class T>
double worst_identity(const Model<T>& model, const std::vector<int>& ids, const std::string& what) {
    const Trace<T> trace = forward(model, ids);
    std::vector<Mat<double>> states;
    for (const Mat<T>& h : trace.h) states.push_back(h.template cast<double>());
    double worst = 0;
    std::string worst_case;
    for (const auto& [name, q] : all_requests(model.cfg, states, 7)) {
        for (const std::vector<std::vector<int>>& targets :
             {std::vector<std::vector<int>>{}, std::vector<std::vector<int>>{{2, 5, 0}}}) {
            AttributionRequest rq;
            rq.start = q;
            rq.rule = MlpRule::Taylor;
            rq.targets = targets;
            const Attribution<T> fwd = attribute(model, trace, rq);
            rq.adjoint = true;
            const Attribution<T> adj = attribute(model, trace, rq);
            INFO(what << ": " << name << ", " << targets.size() << " target rows");
            REQUIRE(adj.logit_attribution.shape == fwd.logit_attribution.shape);
            CHECK(adj.components.names == fwd.components.names);
            CHECK(adj.cut.str() == fwd.cut.str());
            CHECK(adj.targets == fwd.targets);
            CHECK(adj.components.D == 0);  // nothing formed
            const depass_test::Diff d =
                depass_test::diff(adj.logit_attribution.data.data(), fwd.logit_attribution.data.data(),
                                  fwd.logit_attribution.size());
            INFO("max_abs " << d.max_abs << " rel " << d.rel() << " at " << d.worst);
            CHECK(d.rel() <= tolerance::adjoint_rel<T>());
            CHECK(adj.completeness_max_rel <= tolerance::adjoint_sum_rel<T>());
            if (!(d.rel() <= worst)) {
                worst = d.rel();
                worst_case = name;
            }
        }
    }
    std::printf("%-34s %-6s adjoint vs forward (taylor): worst rel %.3e (%s), tol %.0e\n", what.c_str(),
                sizeof(T) == 8 ? "f64" : "f32", worst, worst_case.c_str(), tolerance::adjoint_rel<T>());
    return worst;
}

std::vector<int> ids_for(int N, int V) {
    std::vector<int> ids;
    for (int n = 0; n < N; ++n) ids.push_back((n * 7 + 3) % V);
    ids[0] = 1;
    return ids;
}

}  // namespace

TEMPLATE_TEST_CASE("adjoint == forward decomposed pass (taylor) on every fixture, level and cut", "[adjoint]",
                   float, double) {
    using T = TestType;
    SKIP_WITHOUT_SHARED();
    for (std::string name : {"llama-gqa-s1", "qwen2-s1", "llama3-rope-s2", "gpt2-s1"}) {
        const std::string dir = depass_test::fixtures_dir() + "/" + name;
        const Model<T> model = load_model<T>(dir);
        const double w = worst_identity(model, depass_test::fixture_ids(dir), name);
        CHECK(w <= tolerance::adjoint_rel<T>());
    }
}

TEMPLATE_TEST_CASE("adjoint == forward decomposed pass (taylor) on random tiny models of every family",
                   "[adjoint]", float, double) {
    using T = TestType;
    for (TinyArch arch : {TinyArch::Llama, TinyArch::LlamaInterleaved, TinyArch::Qwen2, TinyArch::Gpt2}) {
        const Model<T> model = random_model<T>(depass_test::tiny_config(arch), 5);
        worst_identity(model, ids_for(11, model.cfg.V), depass_test::tiny_arch_name(arch));
    }
}

TEMPLATE_TEST_CASE("every layer at once: one reverse pass == one decomposed pass per layer", "[adjoint]",
                   float, double) {
    using T = TestType;
    for (TinyArch arch : {TinyArch::Llama, TinyArch::Gpt2}) {
        const Model<T> model = random_model<T>(depass_test::tiny_config(arch), 9);
        const Trace<T> trace = forward(model, ids_for(10, model.cfg.V));
        for (Level level : {Level::Head, Level::Neuron, Level::Module}) {
            for (bool mlp : {false, true}) {
                if (mlp && level != Level::Module) continue;
                AttributionRequest rq;
                rq.start.level = level;
                rq.start.module_mlp = mlp;
                rq.rule = MlpRule::Taylor;
                const std::vector<Attribution<T>> fwd = attribute_all_layers(model, trace, rq);
                rq.adjoint = true;
                const std::vector<Attribution<T>> adj = attribute_all_layers(model, trace, rq);
                REQUIRE(fwd.size() == size_t(model.cfg.L));
                REQUIRE(adj.size() == fwd.size());
                for (size_t l = 0; l < fwd.size(); ++l) {
                    INFO(depass_test::tiny_arch_name(arch)
                         << " " << level_name(level) << (mlp ? " mlp" : "") << " layer " << l);
                    CHECK(adj[l].cut.str() == fwd[l].cut.str());
                    CHECK(adj[l].components.names == fwd[l].components.names);
                    const depass_test::Diff d = depass_test::diff(adj[l].logit_attribution.data.data(),
                                                                  fwd[l].logit_attribution.data.data(),
                                                                  fwd[l].logit_attribution.size());
                    CHECK(d.rel() <= tolerance::adjoint_rel<T>());
                }
            }
        }
    }
}

TEST_CASE("the adjoint path is the taylor rule's only: other rules and levels are refused", "[adjoint]") {
    const Model<double> model = random_model<double>(depass_test::tiny_config(TinyArch::Llama), 3);
    const Trace<double> trace = forward(model, ids_for(6, model.cfg.V));
    for (MlpRule rule : {MlpRule::Softmax, MlpRule::Max, MlpRule::Relu, MlpRule::Linear}) {
        AttributionRequest rq;
        rq.rule = rule;
        rq.adjoint = true;
        depass_test::expect_error([&] { attribute(model, trace, rq); },
                                  {"taylor", rule_name(rule), "linear in the components"});
    }
    AttributionRequest rq;
    rq.rule = MlpRule::Taylor;
    rq.adjoint = true;
    rq.start.level = Level::Token;
    depass_test::expect_error([&] { attribute_all_layers(model, trace, rq); }, {"token level"});
    rq.start.level = Level::Head;
    rq.start.layer = model.cfg.L;  // no block L
    depass_test::expect_error([&] { attribute(model, trace, rq); },
                              {"head level", "layer 2", "out of range"});
    rq.start.layer = 0;
    rq.start.heads = {model.cfg.H};
    depass_test::expect_error([&] { attribute(model, trace, rq); }, {"head level", "head 4"});
    rq.start.level = Level::Neuron;
    rq.start.neurons = {model.cfg.I};
    depass_test::expect_error([&] { attribute(model, trace, rq); }, {"neuron level", "neuron 48"});
}

TEST_CASE("the cotangent at h[0] is the gradient of the frozen network: a hand-made one-block check",
          "[adjoint]") {
    // With the taylor rule the frozen network is linear in the state, so the token-level
    // attribution at h[0] is input x gradient of the frozen logit: perturbing h[0] along
    // token j's row by t changes the frozen logit by t * attr / 1 -- checked here against a
    // second, independent forward decomposition of the perturbation itself (a custom level
    // whose one component is the perturbation), which must carry exactly lambda . delta.
    const Model<double> model = random_model<double>(depass_test::tiny_config(TinyArch::Qwen2), 21);
    const Trace<double> trace = forward(model, ids_for(7, model.cfg.V));
    std::mt19937_64 rng(4);
    const Mat<double> delta = depass_test::randn<double>(trace.N(), model.cfg.D, rng);
    // Forward: components {delta, h[0] - delta}; the first one's share is W_U . J delta.
    Tensor<double> C({2, trace.N(), model.cfg.D});
    const Mat<double> rest = trace.h[0] - delta;
    for (int i = 0; i < trace.N() * model.cfg.D; ++i) {
        C.data[size_t(i)] = delta.data()[i];
        C.data[size_t(trace.N() * model.cfg.D + i)] = rest.data()[i];
    }
    AttributionRequest rq;
    rq.rule = MlpRule::Taylor;
    rq.start.level = Level::Custom;
    rq.start.custom = C;
    const Attribution<double> fwd = attribute(model, trace, rq);
    // Reverse: lambda at h[0] for the same targets, dotted with delta by hand.
    std::vector<LogitTarget> rhs;
    for (int n = 0; n < trace.N(); ++n) rhs.push_back({n, fwd.targets[n][0]});
    Mat<double> lam0;
    std::vector<int64_t> offset;
    adjoint_pass<double>(model, trace, rhs, CutPoint{0, false},
                         [&](const CutPoint& p, const Cotangents<double>& c) {
                             if (p.layer == 0 && !p.after_attention) {
                                 lam0 = c.X;
                                 offset = c.offset;
                             }
                         });
    REQUIRE(lam0.rows() == trace.N() * (trace.N() + 1) / 2);
    for (int n = 0; n < trace.N(); ++n) {
        double s = 0;
        for (int j = 0; j <= n; ++j) s += lam0.row(offset[n] + j).dot(delta.row(j));
        const double ref = fwd.logit_attribution.data[size_t(n)];  // component 0 at (n, k = 0)
        CHECK(std::abs(s - ref) <= tolerance::adjoint_rel<double>() * std::max(1.0, std::abs(ref)));
    }
}

TEST_CASE(
    "depass attribute --adjoint: the forward path's numbers, every layer with --layer all, usage errors",
    "[adjoint][cli]") {
    const std::string model = depass_test::source_dir() + "/weights/stories260K.bin";
    const std::string args =
        "attribute --quiet -m " + depass_test::shell_quoted(model) +
        " --prompt 'Once upon a time there was' --dtype f64 --rule taylor --targets 261,286 ";
    for (std::string level : {"token --layer 2", "head --layer 1", "neuron --layer 3 --neuron-groups 7",
                              "module --module attn --layer 4"}) {
        INFO(level);
        const std::string f = depass_test::temp_path("fwd.safetensors"),
                          a = depass_test::temp_path("adj.safetensors");
        REQUIRE(depass_test::run_cli(args + "--level " + level + " --out " + depass_test::shell_quoted(f)) ==
                0);
        REQUIRE(depass_test::run_cli(args + "--level " + level + " --adjoint --out " +
                                     depass_test::shell_quoted(a)) == 0);
        const SafeTensors sf = SafeTensors::open(f), sa = SafeTensors::open(a);
        CHECK(!sa.has("components"));  // never formed
        const Tensor<double> x = sa.read<double>("logit_attribution"),
                             y = sf.read<double>("logit_attribution");
        REQUIRE(x.shape == y.shape);
        CHECK(depass_test::diff(x.data.data(), y.data.data(), y.size()).rel() <=
              tolerance::adjoint_rel<double>());
        CHECK(sa.read<double>("target_logits").data == sf.read<double>("target_logits").data);
        CHECK(sa.metadata().at("component_names") == sf.metadata().at("component_names"));
        CHECK(sa.metadata().at("path") == "adjoint");
    }
    // --layer all: [L, M, N, K], layer l equal to --layer l (forward path), with and without --adjoint.
    for (std::string extra : {"", "--adjoint "}) {
        INFO("--layer all " << extra);
        const std::string all = depass_test::temp_path("all.safetensors");
        REQUIRE(depass_test::run_cli(args + "--level head --layer all " + extra + "--out " +
                                     depass_test::shell_quoted(all)) == 0);
        const Tensor<double> by = SafeTensors::open(all).read<double>("logit_attribution_by_layer");
        REQUIRE(by.shape.size() == 4);
        CHECK(by.shape[0] == 5);
        CHECK(by.shape[1] == 9);  // 8 heads and the rest
        const size_t per = size_t(by.shape[1] * by.shape[2] * by.shape[3]);
        for (int l = 0; l < 5; ++l) {
            const std::string one = depass_test::temp_path("one.safetensors");
            REQUIRE(depass_test::run_cli(args + "--level head --layer " + std::to_string(l) + " --out " +
                                         depass_test::shell_quoted(one)) == 0);
            const Tensor<double> y = SafeTensors::open(one).read<double>("logit_attribution");
            REQUIRE(y.size() == per);
            CHECK(depass_test::diff(by.data.data() + l * per, y.data.data(), per).rel() <=
                  tolerance::adjoint_rel<double>());
        }
    }
    // Usage errors, before any work: another rule, --all-layers, --layer all at token level.
    const std::string out = depass_test::temp_path("never.safetensors");
    struct Case {
        std::string flags, says;
    };
    for (const Case& c :
         {Case{"--rule softmax --adjoint", "only the taylor rule is linear"},
          Case{"--rule taylor --adjoint --all-layers", "never forms"},
          Case{"--rule taylor --level token --layer all", "--layer all applies"},
          Case{"--rule taylor --level head --layer first", "neither a layer number nor 'all'"}}) {
        INFO(c.flags);
        std::string log;
        CHECK(depass_test::run_cli("attribute -m " + depass_test::shell_quoted(model) + " --ids 1,2,3 " +
                                       c.flags + " --out " + depass_test::shell_quoted(out),
                                   &log) == 2);
        CHECK(log.find(c.says) != std::string::npos);
        CHECK(!file_exists(out));
    }
}

TEST_CASE("eval scores: --adjoint gives the forward path's taylor scores for every head and neuron",
          "[adjoint]") {
    for (TinyArch arch : {TinyArch::Llama, TinyArch::Gpt2}) {
        const Model<double> model = random_model<double>(depass_test::tiny_config(arch), 13);
        const Trace<double> trace = forward(model, ids_for(9, model.cfg.V));
        for (eval::UnitKind kind : {eval::UnitKind::Head, eval::UnitKind::Neuron}) {
            const std::vector<double> f =
                eval::depass_unit_scores(model, trace, kind, 4, 0.1, MlpRule::Taylor, false);
            const std::vector<double> a =
                eval::depass_unit_scores(model, trace, kind, 4, 0.1, MlpRule::Taylor, true);
            REQUIRE(a.size() == f.size());
            CHECK(depass_test::diff(a.data(), f.data(), f.size()).rel() <= tolerance::adjoint_rel<double>());
        }
        depass_test::expect_error(
            [&] {
                eval::depass_unit_scores(model, trace, eval::UnitKind::Head, 4, 0.1, MlpRule::Softmax, true);
            },
            {"taylor", "softmax"});
    }
}

TEST_CASE("the reverse pass gives identical results with 1 and 2 threads", "[adjoint][threads]") {
#ifndef _OPENMP
    WARN("built without OpenMP: nothing to compare");
    return;
#else
    // Large enough that every parallel loop of adjoint.cpp takes threads (depass/threading.hpp).
    Config cfg = depass_test::tiny_config(TinyArch::Llama);
    cfg.D = 128;
    cfg.I = 256;
    cfg.H = 8;
    cfg.Hkv = 2;
    cfg.Dh = 16;
    cfg.max_positions = 64;
    const Model<double> model = random_model<double>(cfg, 17);
    const Trace<double> trace = forward(model, ids_for(64, cfg.V));
    auto run = [&](int threads) {
        omp_set_num_threads(threads);
        std::vector<double> out;
        for (Level level : {Level::Head, Level::Neuron, Level::Token}) {
            AttributionRequest rq;
            rq.start.level = level;
            rq.rule = MlpRule::Taylor;
            rq.adjoint = true;
            const Attribution<double> a = attribute(model, trace, rq);
            out.insert(out.end(), a.logit_attribution.data.begin(), a.logit_attribution.data.end());
        }
        return out;
    };
    const std::vector<double> one = run(1), two = run(2);
    omp_set_num_threads(omp_get_num_procs());
    REQUIRE(one.size() == two.size());
    CHECK(one == two);
#endif
}

TEST_CASE("depass eval: --adjoint without --rule taylor is a usage error before any output",
          "[adjoint][cli]") {
    const std::string model = depass_test::source_dir() + "/weights/stories260K.bin";
    const std::string prompts = depass_test::source_dir() + "/data/prompts/handwritten.txt";
    const std::string dir = depass_test::temp_path("eval_never");
    for (std::string cmd : {"heads", "neurons"}) {
        std::string log;
        CHECK(depass_test::run_cli("eval " + cmd + " -m " + depass_test::shell_quoted(model) + " --prompts " +
                                       depass_test::shell_quoted(prompts) + " --adjoint --out " +
                                       depass_test::shell_quoted(dir),
                                   &log) == 2);
        CHECK(log.find("--adjoint needs --rule taylor") != std::string::npos);
        CHECK(!file_exists(dir));
    }
    std::string log;
    CHECK(depass_test::run_cli(
              "eval neurons-speed -m " + depass_test::shell_quoted(model) + " --n 8 --rule max --adjoint",
              &log) == 2);
    CHECK(log.find("(got --rule max)") != std::string::npos);
}
