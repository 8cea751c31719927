// The library entry point attribute() and the completeness monitor.
//
// attribute() must be exactly the pipeline it replaces (initialise -> propagate ->
// logit attribution, each called by hand here), name every component by what it is,
// resolve targets as documented, and refuse a decomposition that leaks.
#include <cmath>
#include <functional>
#include <limits>

#include "depass/attribute.hpp"
#include "depass/tolerance.hpp"
#include "test_support.hpp"

using namespace depass;
using Catch::Matchers::Contains;
using depass_test::error_of;
using depass_test::TinyArch;

namespace {

std::vector<int> ids_for(int N, int V) {
    std::vector<int> ids;
    for (int n = 0; n < N; ++n) ids.push_back((n * 7 + 3) % V);
    ids[0] = 1;
    return ids;
}

}  // namespace

TEMPLATE_TEST_CASE("attribute() equals initialise + propagate + logit_attribution, bit for bit",
                   "[attribute]", float, double) {
    using T = TestType;
    for (TinyArch arch : {TinyArch::Llama, TinyArch::Qwen2, TinyArch::Gpt2}) {
        const Model<T> model = random_model<T>(depass_test::tiny_config(arch), 11);
        const std::vector<int> ids = ids_for(9, model.cfg.V);
        const Trace<T> trace = forward(model, ids);
        for (Level level : {Level::Token, Level::Module, Level::Head, Level::Neuron})
            for (MlpRule rule : {MlpRule::Softmax, MlpRule::Max, MlpRule::Taylor}) {
                INFO(depass_test::tiny_arch_name(arch) << " " << level_name(level) << " " << rule_name(rule));
                AttributionRequest rq;
                rq.start.level = level;
                rq.start.layer = 1;
                rq.start.module_mlp = true;
                rq.rule = rule;
                rq.targets = {{2, 5}};
                const Attribution<T> a = attribute(model, trace, rq);

                // By hand.
                const Initialised<T> init = initialise(model, trace, rq.start);
                const DecomposeOptions opt = init.options(rule, 0.1);
                const Components<T> out = propagate(model, trace, init.comps, init.cut, opt);
                const std::vector<std::vector<int>> targets(trace.N(), std::vector<int>{2, 5});
                const Tensor<T> attr = logit_attribution(model, trace, out, targets);

                CHECK(a.level == level);
                CHECK(a.cut.str() == init.cut.str());
                CHECK(a.components.names == out.names);
                CHECK((a.components.X - out.X).cwiseAbs().maxCoeff() == T(0));
                REQUIRE(a.logit_attribution.shape == attr.shape);
                CHECK(a.logit_attribution.data == attr.data);
                CHECK(a.targets == targets);
                for (int n = 0; n < trace.N(); ++n) {
                    CHECK(a.target_logits(n, 0) == double(trace.logits(n, 2)));
                    CHECK(a.target_logits(n, 1) == double(trace.logits(n, 5)));
                }
                // One completeness record per residual point from the cut to h[L], all within tolerance.
                const int expected_points = level == Level::Token  ? 2 * (model.cfg.L - 1) + 1
                                            : level == Level::Head ? 2
                                                                   : 1;
                CHECK(int(a.completeness.size()) == expected_points);
                CHECK(a.completeness_max_rel <= tolerance::completeness_rel<T>());
                // The shares add up to the target logits (sum over m).
                const int M = a.M(), N = a.N(), K = a.K();
                double worst = 0;
                for (int n = 0; n < N; ++n)
                    for (int k = 0; k < K; ++k) {
                        double s = 0;
                        for (int m = 0; m < M; ++m)
                            s += double(a.logit_attribution.data[(size_t(m) * N + n) * K + k]);
                        worst = std::max(worst, std::abs(s - a.target_logits(n, k)) /
                                                    std::max(1.0, std::abs(a.target_logits(n, k))));
                    }
                CHECK(worst <= 50 * tolerance::completeness_rel<T>());
            }
    }
}

TEST_CASE("attribute(): descriptors name what each component is", "[attribute]") {
    const Model<double> model = random_model<double>(depass_test::tiny_config(TinyArch::Llama), 3);
    const Config& cfg = model.cfg;
    const Trace<double> trace = forward(model, ids_for(6, cfg.V));
    using K = ComponentInfo::Kind;

    AttributionRequest rq;
    rq.start.level = Level::Token;
    rq.start.layer = 1;
    Attribution<double> a = attribute(model, trace, rq);
    REQUIRE(a.info.size() == size_t(trace.N() + 1));
    for (int j = 0; j < trace.N(); ++j) {
        CHECK(a.info[j].kind == K::Token);
        CHECK(a.info[j].index == j);
        CHECK(a.info[j].layer == 1);
        CHECK(a.info[j].label == a.components.names[j]);
    }
    CHECK(a.info.back().kind == K::Rest);
    CHECK(a.options.ignore_special_token);  // the token level's default

    rq.start.level = Level::Head;
    rq.start.heads = {3, 0};
    rq.ignore_special_token = true;  // forced on at a level whose default is off
    a = attribute(model, trace, rq);
    REQUIRE(a.info.size() == 3);
    CHECK((a.info[0].kind == K::Head && a.info[0].index == 3 && a.info[0].layer == 1));
    CHECK((a.info[1].kind == K::Head && a.info[1].index == 0));
    CHECK(a.options.ignore_special_token);

    rq.start.level = Level::Neuron;
    rq.start.neuron_groups = 4;
    rq.ignore_special_token.reset();
    a = attribute(model, trace, rq);
    REQUIRE(a.info.size() == 5);
    CHECK(!a.options.ignore_special_token);
    for (int g = 0; g < 4; ++g) {
        CHECK(a.info[g].kind == K::NeuronGroup);
        CHECK(a.info[g].index == cfg.I * g / 4);
        CHECK(a.info[g].index_end == cfg.I * (g + 1) / 4);
    }
    CHECK(std::string(kind_name(a.info[0].kind)) == "neuron_group");

    rq.start.level = Level::Module;
    rq.start.module_mlp = false;
    a = attribute(model, trace, rq);
    CHECK(a.info[0].kind == K::Attention);
    CHECK(a.cut.str() == "m[1]");
}

TEST_CASE("attribute(): targets default to the argmax; bad targets are refused before any work",
          "[attribute]") {
    const Model<double> model = random_model<double>(depass_test::tiny_config(TinyArch::Gpt2), 5);
    const Trace<double> trace = forward(model, ids_for(5, model.cfg.V));
    AttributionRequest rq;
    const Attribution<double> a = attribute(model, trace, rq);
    for (int n = 0; n < trace.N(); ++n) {
        Eigen::Index best;
        trace.logits.row(n).maxCoeff(&best);
        REQUIRE(a.targets[n].size() == 1);
        CHECK(a.targets[n][0] == int(best));
    }
    rq.targets = {{1}, {2}};  // 2 rows for 5 positions
    CHECK_THAT(error_of([&] { attribute(model, trace, rq); }),
               Contains("2 rows of target ids for 5 positions"));
    rq.targets = {{model.cfg.V}};
    CHECK_THAT(error_of([&] { attribute(model, trace, rq); }),
               Contains("token id " + std::to_string(model.cfg.V)));
    rq.targets = {{1, 2}, {1}, {1}, {1}, {1}};
    CHECK_THAT(error_of([&] { attribute(model, trace, rq); }), Contains("row 1 has 1 ids"));
    rq.targets = {};
    rq.temperature = 0;
    CHECK_THAT(error_of([&] { attribute(model, trace, rq); }), Contains("temperature"));
}

TEMPLATE_TEST_CASE("CompletenessMonitor: a leak or a NaN at any point is a violation naming the point",
                   "[attribute][completeness]", float, double) {
    using T = TestType;
    const Model<T> model = random_model<T>(depass_test::tiny_config(TinyArch::Llama), 9);
    const Trace<T> trace = forward(model, ids_for(7, model.cfg.V));
    const Initialised<T> init = init_tokens(model, trace, 0);
    const DecomposeOptions opt = init.options();

    // Clean: every point passes, and the record has one entry per point.
    {
        CompletenessMonitor<T> mon(trace);
        propagate(
            model, trace, init.comps, init.cut, opt,
            ComponentObserver<T>([&](const CutPoint& p, const Components<T>& c) { mon.observe(p, c); }));
        CHECK(mon.ok());
        CHECK(int(mon.points().size()) == 2 * model.cfg.L + 1);
        CHECK_NOTHROW(mon.require());
    }
    // A leak of 1e-3 of the state's size, added at m[1] only: that point (and only the
    // points from there on, since the leak is carried along) fails.
    {
        CompletenessMonitor<T> mon(trace);
        Components<T> leaked;
        for (const CutPoint& p : {CutPoint{0, false}, CutPoint{1, true}}) {
            Components<T> c = init.comps;
            if (p.after_attention) {
                // The true state at m[1], split as the rest alone, plus a leak.
                c.X.setZero();
                c.block(c.rest()) = state_at(trace, p);
                c.X(c.row(c.rest(), 3), 2) += T(1e-3) * T(state_at(trace, p).cwiseAbs().maxCoeff());
            }
            mon.observe(p, c);
        }
        CHECK(!mon.ok());
        CHECK(mon.points()[0].pass);
        CHECK(!mon.points()[1].pass);
        CHECK(mon.worst_point() == "m[1]");
        CHECK(std::abs(mon.max_rel() - 1e-3) < 1e-5);
        CHECK_THAT(error_of([&] { mon.require(); }), Contains("completeness violated") && Contains("m[1]"));
    }
    // A NaN in one component at a later point fails even though the first point was clean.
    {
        CompletenessMonitor<T> mon(trace);
        mon.observe(CutPoint{0, false}, init.comps);
        Components<T> c = init.comps;
        c.X.setZero();
        c.block(c.rest()) = trace.h[1];
        c.X(0, 0) = std::numeric_limits<T>::quiet_NaN();
        mon.observe(CutPoint{1, false}, c);
        CHECK(!mon.ok());
        CHECK(std::isnan(mon.max_rel()));
        CHECK(mon.worst_point() == "h[1]");
        CHECK_THAT(error_of([&] { mon.require(); }), Contains("h[1]"));
    }
}

TEST_CASE("preset(): each family's architecture flags", "[config]") {
    const Config llama = preset(Arch::Llama), qwen = preset(Arch::Qwen2), gpt2 = preset(Arch::Gpt2),
                 l2c = preset(Arch::Llama2c), mistral = preset(Arch::Mistral);
    CHECK((llama.norm == NormKind::RMSNorm && llama.mlp == MlpKind::SwiGLU && llama.act == Activation::SiLU));
    CHECK((llama.rope == RopeStyle::Half && !llama.qkv_bias && !llama.o_bias && !llama.tied_embeddings));
    CHECK(llama.model_type == "llama");
    CHECK((mistral.model_type == "mistral" && mistral.rope == RopeStyle::Half && !mistral.qkv_bias));
    CHECK((qwen.qkv_bias && !qwen.o_bias && !qwen.mlp_bias && qwen.rope == RopeStyle::Half));
    CHECK((gpt2.norm == NormKind::LayerNorm && gpt2.mlp == MlpKind::GeluMLP &&
           gpt2.act == Activation::GeluTanh));
    CHECK((gpt2.rope == RopeStyle::None && gpt2.learned_positions && gpt2.tied_embeddings));
    CHECK((gpt2.qkv_bias && gpt2.o_bias && gpt2.mlp_bias));
    CHECK((l2c.rope == RopeStyle::Interleaved && l2c.tied_embeddings && l2c.model_type == "llama2c"));
    CHECK(llama.D == 0);  // sizes are the reader's
    CHECK(parse_arch("qwen2") == Arch::Qwen2);
    CHECK_THAT(error_of([] { parse_arch("bert"); }), Contains("'bert'"));
}
