// The decomposed pass in double against the exact float64 DePass references
// (fixtures' depass_spec_*_f64.npy, layout [M, N, D], rest last), and completeness.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "depass/decompose.hpp"
#include "depass/initialisers.hpp"
#include "depass/io.hpp"
#include "depass/tolerance.hpp"
#include "test_support.hpp"

using namespace depass;

namespace {

struct SpecCase {
    std::string file;
    LevelRequest req;
    MlpRule rule = MlpRule::Softmax;
    bool ignore_special = false;
};

std::vector<SpecCase> spec_cases(const std::string& dir) {
    std::vector<SpecCase> cases;
    auto tok = [](MlpRule r, bool ign) {
        SpecCase c;
        c.req.level = Level::Token;
        c.req.layer = 0;
        c.rule = r;
        c.ignore_special = ign;
        return c;
    };
    cases.push_back(tok(MlpRule::Softmax, true));
    cases.back().file = "depass_spec_token_f64.npy";
    cases.push_back(tok(MlpRule::Softmax, false));
    cases.back().file = "depass_spec_token_nospecial_f64.npy";
    for (auto [r, n] : {std::pair{MlpRule::Max, "max"}, std::pair{MlpRule::Relu, "relu"},
                        std::pair{MlpRule::Linear, "linear"}, std::pair{MlpRule::Taylor, "taylor"}}) {
        cases.push_back(tok(r, true));
        cases.back().file = std::string("depass_spec_token_mlp") + n + "_f64.npy";
    }
    SpecCase head;
    head.file = "depass_spec_head_L0_f64.npy";
    head.req.level = Level::Head;
    cases.push_back(head);
    SpecCase neuron;
    neuron.file = "depass_spec_neuron_L0_f64.npy";
    neuron.req.level = Level::Neuron;
    cases.push_back(neuron);
    for (bool mlp : {false, true}) {
        SpecCase m;
        m.file = mlp ? "depass_spec_module_mlp_L0_f64.npy" : "depass_spec_module_attn_L0_f64.npy";
        m.req.level = Level::Module;
        m.req.module_mlp = mlp;
        cases.push_back(m);
    }
    if (file_exists(dir + "/depass_subspace_projector_L0.npy")) {
        SpecCase s;
        s.file = "depass_spec_subspace_L0_f64.npy";
        s.req.level = Level::Subspace;
        s.req.layer = 1;  // x = h[1], the output of block 0
        Tensor<double> P = read_npy<double>(dir + "/depass_subspace_projector_L0.npy");
        s.req.projectors.push_back(Eigen::Map<Mat<double>>(P.data.data(), P.shape[0], P.shape[1]));
        cases.push_back(s);
    }
    return cases;
}

}  // namespace

TEST_CASE("double decomposition equals the exact float64 references of every fixture", "[decompose][spec]") {
    SKIP_WITHOUT_SHARED();
    int files = 0;
    for (std::string name : {"llama-gqa-s1", "qwen2-s1", "llama3-rope-s2", "gpt2-s1"}) {
        const std::string dir = depass_test::fixtures_dir() + "/" + name;
        auto ids = nlohmann::json::parse(read_text_file(dir + "/tokens.json"))
                       .at("input_ids")
                       .get<std::vector<int>>();
        Model<double> model = load_model<double>(dir);
        Trace<double> trace = forward(model, ids);
        for (const SpecCase& sc : spec_cases(dir)) {
            if (!file_exists(dir + "/" + sc.file)) continue;
            INFO(name << " " << sc.file);
            Tensor<double> ref = read_npy<double>(dir + "/" + sc.file);
            Initialised<double> init = initialise(model, trace, sc.req);
            DecomposeOptions opt;
            opt.rule = sc.rule;
            opt.ignore_special_token = sc.ignore_special;
            opt.pos0_component = init.pos0_component;
            Components<double> out = propagate(model, trace, init.comps, init.cut, opt);
            REQUIRE(ref.shape == std::vector<int64_t>{out.M, out.N, out.D});
            double max_abs = 0, max_ref = 0;
            for (int m = 0; m < out.M; ++m) {
                Mat<double> x = out.component(m);
                for (int n = 0; n < out.N; ++n)
                    for (int d = 0; d < out.D; ++d) {
                        double r = ref.data[(size_t(m) * out.N + n) * out.D + d];
                        max_abs = std::max(max_abs, std::abs(x(n, d) - r));
                        max_ref = std::max(max_ref, std::abs(r));
                    }
            }
            const Mat<double>& truth = trace.h[model.cfg.L];
            const double compl_err = (out.sum() - truth).cwiseAbs().maxCoeff() / truth.cwiseAbs().maxCoeff();
            std::printf("  %-13s %-38s max_abs %.3e  rel %.3e  completeness rel %.3e\n", name.c_str(),
                        sc.file.c_str(), max_abs, max_abs / max_ref, compl_err);
            CHECK(max_abs / max_ref <= tolerance::spec_f64_rel);
            CHECK(compl_err <= tolerance::completeness_rel<double>());
            ++files;
        }
    }
    CHECK(files == 43);  // 11 + 11 + 11 LLaMA / Qwen2 / LLaMA-3 RoPE files, 10 GPT-2 files (no subspace)
}
