// Forward pass against the reference goldens of every fixture, in float and double.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "depass/dump.hpp"
#include "depass/forward.hpp"
#include "depass/io.hpp"
#include "depass/tolerance.hpp"
#include "test_support.hpp"

using namespace depass;

namespace {

using depass_test::fixture_ids;

// Compares every tensor of a golden file with the same-named tensor of our trace.
template <class T>
void compare_with_golden(const std::string& fixture, const Model<T>& model, const std::vector<int>& ids,
                         const std::string& golden_file, double rel_tol) {
    Trace<T> t = forward(model, ids);
    auto ours = trace_tensors(model.cfg, t);
    SafeTensors golden = SafeTensors::open(golden_file);
    int compared = 0;
    for (const std::string& name : golden.names()) {
        const NamedTensor* mine = nullptr;
        for (const auto& nt : ours)
            if (nt.name == name) mine = &nt;
        INFO(fixture << " " << golden_file << " tensor " << name);
        REQUIRE(mine != nullptr);
        Tensor<double> ref = golden.read<double>(name);
        REQUIRE(ref.shape == mine->shape);
        auto d = depass_test::diff(mine->values.data(), ref.data.data(), ref.size());
        std::printf("  %-13s %-28s %-24s max_abs %.3e  rel %.3e  (tol %.0e)\n", fixture.c_str(),
                    golden_file.substr(golden_file.rfind('/') + 1).c_str(), name.c_str(), d.max_abs, d.rel(),
                    rel_tol);
        CHECK(d.rel() <= rel_tol);
        ++compared;
    }
    CHECK(compared >= 11);
}

}  // namespace

TEST_CASE("forward matches the goldens of every fixture (float and double)", "[forward][fixtures]") {
    SKIP_WITHOUT_SHARED();
    for (std::string name : {"llama-gqa-s1", "qwen2-s1", "llama3-rope-s2", "gpt2-s1"}) {
        const std::string dir = depass_test::fixtures_dir() + "/" + name;
        const auto ids = fixture_ids(dir);
        const bool uses_rope = name != "gpt2-s1";

        Model<float> mf = load_model<float>(dir);
        compare_with_golden(name, mf, ids, dir + "/golden_f32.safetensors", tolerance::golden_f32_rel);

        Model<double> md = load_model<double>(dir);
        compare_with_golden(name, md, ids, dir + "/golden_f64.safetensors",
                            uses_rope ? tolerance::golden_f64_rope_rel : tolerance::golden_f64_exact_rel);
        if (file_exists(dir + "/golden_exact_f64.safetensors"))
            compare_with_golden(name, md, ids, dir + "/golden_exact_f64.safetensors",
                                tolerance::golden_f64_exact_rel);
    }
}

TEST_CASE("stories260K: llama2.c .bin and Hugging Face copies agree with the llama2.c goldens",
          "[forward][stories260K]") {
    SKIP_WITHOUT_SHARED();
    const std::string wdir = depass_test::weights_dir();
    Tensor<float> logits_ref = read_npy<float>(wdir + "/golden/stories260K_once.logits.npy");
    Tensor<float> resid_ref = read_npy<float>(wdir + "/golden/stories260K_once.resid.npy");    // [N, L+1, D]
    Tensor<float> mid_ref = read_npy<float>(wdir + "/golden/stories260K_once.resid_mid.npy");  // [N, L, D]
    Tensor<float> attn_ref = read_npy<float>(wdir + "/golden/stories260K_once.attn.npy");      // [N, L, H, N]
    std::vector<int> ids = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426};

    Model<float> bin = load_model<float>(wdir + "/stories260K.bin");
    Model<float> hf = load_model<float>(wdir + "/stories260K_hf");
    REQUIRE(bin.cfg.rope == RopeStyle::Interleaved);
    REQUIRE(hf.cfg.rope == RopeStyle::Half);
    Trace<float> tb = forward(bin, ids);
    Trace<float> th = forward(hf, ids);
    const int N = 16, L = bin.cfg.L, D = bin.cfg.D, H = bin.cfg.H;

    // The two formats hold the same weights: logits agree to float rounding.
    auto dbh = depass_test::diff(tb.logits.data(), th.logits.data(), tb.logits.size());
    std::printf("  stories260K .bin vs HF logits: max_abs %.3e\n", dbh.max_abs);
    CHECK(dbh.max_abs <= tolerance::llama2c_logits_abs);  // both are float32 forwards

    for (const Trace<float>* t : {&tb, &th}) {
        const char* which = t == &tb ? ".bin" : "HF";
        auto dl = depass_test::diff(t->logits.data(), logits_ref.data.data(), logits_ref.size());
        std::printf("  stories260K %-4s logits vs llama2.c: max_abs %.3e (tol %.0e)\n", which, dl.max_abs,
                    tolerance::llama2c_logits_abs);
        CHECK(dl.max_abs <= tolerance::llama2c_logits_abs);
        double resid_err = 0, mid_err = 0, attn_err = 0;
        for (int n = 0; n < N; ++n)
            for (int l = 0; l <= L; ++l)
                for (int d = 0; d < D; ++d) {
                    resid_err = std::max(
                        resid_err,
                        std::abs(double(t->h[l](n, d)) - resid_ref.data[(size_t(n) * (L + 1) + l) * D + d]));
                    if (l < L)
                        mid_err = std::max(mid_err, std::abs(double(t->layers[l].m(n, d)) -
                                                             mid_ref.data[(size_t(n) * L + l) * D + d]));
                }
        for (int q = 0; q < N; ++q)
            for (int l = 0; l < L; ++l)
                for (int h = 0; h < H; ++h)
                    for (int k = 0; k < N; ++k)
                        attn_err = std::max(attn_err,
                                            std::abs(double(t->layers[l].probs[h](q, k)) -
                                                     attn_ref.data[((size_t(q) * L + l) * H + h) * N + k]));
        std::printf("  stories260K %-4s resid %.3e  resid_mid %.3e  attn %.3e\n", which, resid_err, mid_err,
                    attn_err);
        CHECK(resid_err <= 1e-4);
        CHECK(mid_err <= 1e-4);
        CHECK(attn_err <= 1e-5);
    }

    // Greedy continuation of the prompt reproduces the golden tokens.
    std::vector<int> prompt(ids.begin(), ids.begin() + 5);
    for (const Model<float>* m : {&bin, &hf}) {
        auto cont = generate_greedy(*m, prompt, 11);
        CHECK(cont == std::vector<int>(ids.begin() + 5, ids.end()));
    }
}
