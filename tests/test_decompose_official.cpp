// Parity with the outputs of the paper's own Python code (fixtures' depass_official_*.npy,
// LLaMA-GQA, Qwen2 and LLaMA with Llama 3.1 RoPE scaling), in double against the float64
// files and in float against the float32 files, after mapping our components into the
// reference layout.
//
// Two outcomes per file, decided up front (not from the numbers):
//  * MATCH: where the reference code keeps completeness (LLaMA; softmax, max and taylor
//    rules; token, head, module and subspace levels) our result must equal theirs within
//    tolerance::official_{f64,f32}_rel of the tensor's magnitude.
//  * INCOMPLETE-REFERENCE: where the reference code loses part of the state (relu and
//    linear rules, the neuron level, every Qwen2 file because the value-bias term W_O b_V
//    is assigned to no component) we do not copy the loss. The test asserts that our
//    result is complete, that the reference's own completeness error (recomputed here
//    from its array and the golden state) is large, and prints how far apart we are.
//    Where the loss is a matter of initialisation or of a dropped bias, the test also
//    reproduces it (neuron rest built from the pre-MLP residual; value biases removed
//    from the propagation) and asserts that this reproduction matches the reference,
//    which pins down the cause of the difference.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <type_traits>

#include "depass/decompose.hpp"
#include "depass/initialisers.hpp"
#include "depass/io.hpp"
#include "depass/tolerance.hpp"
#include "test_support.hpp"

using namespace depass;

namespace {

// A reference file counts as incomplete when its components miss the state by more than
// this fraction of the state's magnitude. Complete reference files are at ~5e-7 (float32
// noise); the incomplete ones lose 1e-2 .. 1 of the state.
constexpr double kIncompleteReferenceRel = 1e-3;

const char* const kFixtures[] = {"llama-gqa-s1", "qwen2-s1", "llama3-rope-s2"};

enum class Kind { Token, AllLayers, Mid, Head, ModuleAttn, ModuleMlp, Neuron, Subspace };

struct OfficialCase {
    std::string stem;  // depass_official_<stem>_<f32|f64>.npy
    Kind kind = Kind::Token;
    MlpRule rule = MlpRule::Softmax;
    bool ctor_ignore = true;  // ignore_special_token given to the reference constructor (meta.json "call")
    bool ignore = true;       // the flag its MLP rule actually uses: the head, module, neuron and
                              // subspace methods of manager.py pass ignore_special_token=False
};

// Every reference file of a fixture with L layers (13 per dtype).
std::vector<OfficialCase> official_cases(int L) {
    std::vector<OfficialCase> cs;
    auto add = [&](std::string stem, Kind k, MlpRule r, bool ctor_ignore, bool ignore) {
        OfficialCase c;
        c.stem = std::move(stem);
        c.kind = k;
        c.rule = r;
        c.ctor_ignore = ctor_ignore;
        c.ignore = ignore;
        cs.push_back(c);
    };
    add("token", Kind::Token, MlpRule::Softmax, true, true);
    add("token_nospecial", Kind::Token, MlpRule::Softmax, false, false);
    add("token_mlpmax", Kind::Token, MlpRule::Max, true, true);
    add("token_mlptaylor", Kind::Token, MlpRule::Taylor, true, true);
    add("token_mlprelu", Kind::Token, MlpRule::Relu, true, true);
    add("token_mlplinear", Kind::Token, MlpRule::Linear, true, true);
    add("token_all_layers", Kind::AllLayers, MlpRule::Softmax, true, true);
    add("token_mid_1_to_" + std::to_string(L), Kind::Mid, MlpRule::Softmax, true, true);
    add("module_attn_head_L0", Kind::Head, MlpRule::Softmax, true, false);
    add("module_attn_L0", Kind::ModuleAttn, MlpRule::Softmax, true, false);
    add("module_mlp_L0", Kind::ModuleMlp, MlpRule::Softmax, true, false);
    add("neuron_L0", Kind::Neuron, MlpRule::Softmax, true, false);
    add("subspace_L0", Kind::Subspace, MlpRule::Softmax, true, false);
    return cs;
}

bool lossy_rule(MlpRule r) { return r == MlpRule::Relu || r == MlpRule::Linear; }

// Final-norm scaling applied by the reference (all but the all-layers and mid-layer calls).
bool final_norm_scaled(Kind k) { return k != Kind::AllLayers && k != Kind::Mid; }

// How the reference output's deviations from the project's method are reproduced.
struct Emulation {
    bool drop_value_bias = false;      // W_O b_V of every layer assigned to no component
    bool neuron_rest_pre_mlp = false;  // neuron rest = m[l] - sum of neurons (instead of h[l+1] - sum)
};

template <class T>
struct Outcome {
    Tensor<double> mapped;    // our components in the reference layout
    double completeness = 0;  // max over the checked residual points of max|sum - state| / max|state|
};

std::string file_name(const OfficialCase& c, const std::string& sfx) {
    return "depass_official_" + c.stem + "_" + sfx + ".npy";
}

// Runs one case and maps the result into the reference layout:
//   token, mid:     [n, j, D]        component of source token j at position n (rest dropped)
//   all layers:     [s, n, j, D]     the same at every h[s], s = 0..L
//   head:           [n, 1+H, D]      0 = residual (our rest), 1+h = head h
//   module:         [n, 2, D]        0 = residual (our rest), 1 = module output
//   neuron:         [n, 1+I, D]      0 = residual (our rest), 1+i = neuron i
//   subspace:       [n, 2, D]        0 = x P, 1 = x - x P (our rest)
template <class T>
Outcome<T> run_case(const Model<T>& model, const Trace<T>& trace, const OfficialCase& oc,
                    const std::string& dir, const Emulation& em) {
    const Config& cfg = model.cfg;
    const int N = trace.N(), D = cfg.D, L = cfg.L;

    LevelRequest req;
    switch (oc.kind) {
        case Kind::Token:
        case Kind::AllLayers:
            req.level = Level::Token;
            req.layer = 0;
            break;
        case Kind::Mid:
            req.level = Level::Token;
            req.layer = 1;
            break;
        case Kind::Head:
            req.level = Level::Head;
            req.layer = 0;
            break;
        case Kind::ModuleAttn:
            req.level = Level::Module;
            req.layer = 0;
            break;
        case Kind::ModuleMlp:
            req.level = Level::Module;
            req.layer = 0;
            req.module_mlp = true;
            break;
        case Kind::Neuron:
            req.level = Level::Neuron;
            req.layer = 0;
            break;
        case Kind::Subspace: {
            // The reference decomposes x = h[1] (output of block 0) into [x P, x - x P].
            req.level = Level::Subspace;
            req.layer = 1;
            Tensor<double> P = read_npy<double>(dir + "/depass_subspace_projector_L0.npy");
            req.projectors.push_back(Eigen::Map<Mat<double>>(P.data.data(), P.shape.at(0), P.shape.at(1)));
            break;
        }
    }
    Initialised<T> init = initialise(model, trace, req);
    Components<T> comps = init.comps;
    const int rest = comps.rest();

    const Model<T>* prop = &model;
    Model<T> no_bias;
    if (em.drop_value_bias) {
        no_bias = model;
        for (auto& lw : no_bias.w.layers) lw.bv.setZero();
        prop = &no_bias;
        if (oc.kind == Kind::Head) {
            // The reference's head outputs and residual leave out W_O b_V of the cut layer too.
            const LayerWeights<T>& lw = model.w.layers[req.layer];
            Vec<T> rep(cfg.H * cfg.Dh);
            for (int h = 0; h < cfg.H; ++h)
                rep.segment(long(h) * cfg.Dh, cfg.Dh) =
                    lw.bv.segment(long(h / cfg.kv_group()) * cfg.Dh, cfg.Dh);
            const Vec<T> wo_bv = lw.wo * rep;  // [D]
            comps.block(rest).rowwise() -= wo_bv.transpose();
        }
    }
    if (em.neuron_rest_pre_mlp) {
        Mat<T> s = Mat<T>::Zero(N, D);
        for (int m = 0; m < rest; ++m) s += comps.component(m);
        comps.block(rest) = trace.layers[req.layer].m - s;
    }

    DecomposeOptions opt;
    opt.rule = oc.rule;
    opt.temperature = 0.1;
    opt.ignore_special_token = oc.ignore;
    opt.pos0_component = init.pos0_component;

    std::vector<Components<T>> stages;  // the decomposition at each compared residual point
    std::vector<int> stage_layer;       // its residual index h[.]
    ComponentObserver<T> observe;
    if (oc.kind == Kind::AllLayers)
        observe = [&](const CutPoint& p, const Components<T>& c) {
            if (!p.after_attention) {
                stages.push_back(c);
                stage_layer.push_back(p.layer);
            }
        };
    Components<T> out = propagate(*prop, trace, comps, init.cut, opt, observe);
    if (oc.kind != Kind::AllLayers) {
        stages.push_back(out);
        stage_layer.push_back(L);
    }
    REQUIRE(int(stages.size()) == (oc.kind == Kind::AllLayers ? L + 1 : 1));

    Outcome<T> r;
    for (size_t s = 0; s < stages.size(); ++s) {
        const Mat<T>& truth = trace.h[stage_layer[s]];
        REQUIRE(stage_layer[s] == (oc.kind == Kind::AllLayers ? int(s) : L));
        const double err = double((stages[s].sum() - truth).cwiseAbs().maxCoeff());
        r.completeness = std::max(r.completeness, err / double(truth.cwiseAbs().maxCoeff()));
    }

    // Their component k is our component of[k].
    std::vector<int> of;
    switch (oc.kind) {
        case Kind::Token:
        case Kind::AllLayers:
        case Kind::Mid:
            for (int j = 0; j < N; ++j) of.push_back(j);
            break;
        case Kind::Head:
        case Kind::ModuleAttn:
        case Kind::ModuleMlp:
        case Kind::Neuron:
            of.push_back(rest);
            for (int m = 0; m < rest; ++m) of.push_back(m);
            break;
        case Kind::Subspace:
            of = {0, rest};
            break;
    }
    const int K = int(of.size());

    if (oc.kind == Kind::AllLayers)
        r.mapped = Tensor<double>({int64_t(L + 1), int64_t(N), int64_t(K), int64_t(D)});
    else
        r.mapped = Tensor<double>({int64_t(N), int64_t(K), int64_t(D)});
    for (size_t s = 0; s < stages.size(); ++s) {
        Components<T> c = stages[s];
        if (final_norm_scaled(oc.kind))
            c = apply_norm_decomposed(cfg.norm, c, model.w.normf_g, model.w.normf_b, trace.normf);
        double* base = r.mapped.data.data() + s * size_t(N) * K * D;
        for (int k = 0; k < K; ++k) {
            const Mat<T> x = c.component(of[k]);
            for (int n = 0; n < N; ++n)
                for (int d = 0; d < D; ++d) base[(size_t(n) * K + k) * D + d] = double(x(n, d));
        }
    }
    return r;
}

// The reference's own completeness: max |sum over its components - golden state| / max |golden state|.
// The golden state is final_norm_out for final-norm-scaled outputs, final_residual_prenorm for the
// mid-layer call, and embeddings / layer_outputs[s-1] for stage s of the all-layers call.
double reference_completeness(const Tensor<double>& ref, Kind kind, const SafeTensors& golden, int L) {
    std::vector<Tensor<double>> truths;
    if (kind == Kind::AllLayers) {
        truths.push_back(golden.read<double>("embeddings"));
        Tensor<double> lo = golden.read<double>("layer_outputs");
        const size_t per = lo.size() / size_t(L);
        for (int s = 0; s < L; ++s) {
            Tensor<double> t({lo.shape[1], lo.shape[2]});
            std::copy(lo.data.begin() + s * per, lo.data.begin() + (s + 1) * per, t.data.begin());
            truths.push_back(t);
        }
    } else {
        truths.push_back(
            golden.read<double>(final_norm_scaled(kind) ? "final_norm_out" : "final_residual_prenorm"));
    }
    const int64_t K = ref.shape[ref.shape.size() - 2], D = ref.shape.back();
    double max_err = 0, max_truth = 0;
    for (size_t s = 0; s < truths.size(); ++s) {
        const Tensor<double>& t = truths[s];
        const int64_t N = t.shape[0];
        REQUIRE(t.shape[1] == D);
        for (int64_t n = 0; n < N; ++n)
            for (int64_t d = 0; d < D; ++d) {
                double sum = 0;
                for (int64_t k = 0; k < K; ++k) sum += ref.data[((s * N + n) * K + k) * D + d];
                const double truth = t.data[n * D + d];
                max_err = std::max(max_err, std::abs(sum - truth));
                max_truth = std::max(max_truth, std::abs(truth));
            }
    }
    return max_err / max_truth;
}

// meta.json records the exact reference call of every file: check the rule and the flag.
void check_call(const nlohmann::json& meta, const std::string& file, const OfficialCase& oc) {
    const std::string call = meta.at("depass").at(file).at("call").get<std::string>();
    INFO("meta.json call: " << call);
    CHECK(call.find(std::string("'mlp_decomposed_function': '") + rule_name(oc.rule) + "'") !=
          std::string::npos);
    CHECK(call.find(std::string("'ignore_special_token': ") + (oc.ctor_ignore ? "True" : "False")) !=
          std::string::npos);
}

template <class T>
int check_fixture(const std::string& name) {
    constexpr bool dbl = std::is_same<T, double>::value;
    const std::string sfx = dbl ? "f64" : "f32";
    const double tol = dbl ? tolerance::official_f64_rel : tolerance::official_f32_rel;
    const std::string dir = depass_test::fixtures_dir() + "/" + name;
    auto ids =
        nlohmann::json::parse(read_text_file(dir + "/tokens.json")).at("input_ids").get<std::vector<int>>();
    const nlohmann::json meta = nlohmann::json::parse(read_text_file(dir + "/meta.json"));
    const SafeTensors golden = SafeTensors::open(dir + "/golden_" + sfx + ".safetensors");
    const Model<T> model = load_model<T>(dir);
    const Trace<T> trace = forward(model, ids);

    bool value_bias = false;
    for (const auto& lw : model.w.layers)
        value_bias = value_bias || (lw.bv.size() && lw.bv.cwiseAbs().maxCoeff() > 0);

    int files = 0;
    for (const OfficialCase& oc : official_cases(model.cfg.L)) {
        const std::string file = file_name(oc, sfx);
        INFO(name << " " << file);
        REQUIRE(file_exists(dir + "/" + file));
        check_call(meta, file, oc);
        const Tensor<double> ref = read_npy<double>(dir + "/" + file);
        const Outcome<T> ours = run_case(model, trace, oc, dir, Emulation{});
        REQUIRE(ours.mapped.shape == ref.shape);
        const depass_test::Diff d = depass_test::diff(ours.mapped.data.data(), ref.data.data(), ref.size());
        const double ref_compl = reference_completeness(ref, oc.kind, golden, model.cfg.L);

        // Our decomposition is complete in every case.
        CHECK(ours.completeness <= tolerance::completeness_rel<T>());

        const bool reference_complete = !value_bias && !lossy_rule(oc.rule) && oc.kind != Kind::Neuron;
        char line[512];
        if (reference_complete) {
            std::snprintf(line, sizeof line, "%s (ref completeness %.2e, ours %.2e)",
                          d.rel() <= tol ? "MATCH" : "MISMATCH", ref_compl, ours.completeness);
            CHECK(d.rel() <= tol);
            CHECK(ref_compl <= kIncompleteReferenceRel);
        } else {
            // The reference loses part of the state: it must stay incomplete for this
            // test to document the difference instead of a match.
            CHECK(ref_compl > kIncompleteReferenceRel);
            std::string why;
            if (lossy_rule(oc.rule)) {
                why = std::string("rule '") + rule_name(oc.rule) + "' drops neuron values";
            } else {
                Emulation em;
                em.drop_value_bias = value_bias;
                em.neuron_rest_pre_mlp = oc.kind == Kind::Neuron;
                const Outcome<T> emu = run_case(model, trace, oc, dir, em);
                const depass_test::Diff de =
                    depass_test::diff(emu.mapped.data.data(), ref.data.data(), ref.size());
                char buf[200];
                std::snprintf(buf, sizeof buf, "reproduced with %s%s%s: rel %.2e",
                              em.drop_value_bias ? "W_O b_V dropped" : "",
                              em.drop_value_bias && em.neuron_rest_pre_mlp ? " + " : "",
                              em.neuron_rest_pre_mlp ? "rest = m[l] - neurons" : "", de.rel());
                why = buf;
                INFO("reproduction of the reference's loss: " << why);
                CHECK(de.rel() <= tol);
            }
            // With the taylor rule each component's share is independent of the others, so the
            // token components can agree while the lost part is what the reference drops with its rest.
            if (d.rel() <= tol) why += "; components agree in its layout, the loss is in the rest it drops";
            std::snprintf(line, sizeof line, "INCOMPLETE-REFERENCE (ref completeness %.2e, ours %.2e; %s)",
                          ref_compl, ours.completeness, why.c_str());
        }
        std::printf("  %-12s %-40s %s  max_abs %.3e  rel %.3e  %s\n", name.c_str(), file.c_str(), sfx.c_str(),
                    d.max_abs, d.rel(), line);
        ++files;
    }
    return files;
}

}  // namespace

TEST_CASE("every official DePass file of the fixtures has a parity case", "[decompose][official]") {
    SKIP_WITHOUT_SHARED();
    int found = 0;
    for (std::string name : kFixtures) {
        const std::string dir = depass_test::fixtures_dir() + "/" + name;
        const Config cfg = load_model<float>(dir).cfg;
        std::set<std::string> expected;
        for (const OfficialCase& oc : official_cases(cfg.L))
            for (const char* sfx : {"f32", "f64"}) expected.insert(file_name(oc, sfx));
        for (const auto& e : std::filesystem::directory_iterator(dir)) {
            const std::string f = e.path().filename().string();
            if (f.rfind("depass_official_", 0) != 0 || f.size() < 4 || f.substr(f.size() - 4) != ".npy")
                continue;
            INFO(name << ": " << f << " has no parity case");
            CHECK(expected.count(f) == 1);
            ++found;
        }
        for (const std::string& f : expected) {
            INFO(name << ": " << f << " is missing");
            CHECK(file_exists(dir + "/" + f));
        }
    }
    CHECK(found == 78);  // 13 calls x {f32, f64} x {LLaMA-GQA, Qwen2, LLaMA-3 RoPE}
}

TEST_CASE("double decomposition against the paper's float64 outputs", "[decompose][official]") {
    SKIP_WITHOUT_SHARED();
    int files = 0;
    for (std::string name : kFixtures) files += check_fixture<double>(name);
    CHECK(files == 39);
}

TEST_CASE("float decomposition against the paper's float32 outputs", "[decompose][official]") {
    SKIP_WITHOUT_SHARED();
    int files = 0;
    for (std::string name : kFixtures) files += check_fixture<float>(name);
    CHECK(files == 39);
}
