// Results do not depend on the number of threads (every thread owns whole output rows).
#include "depass/decompose.hpp"
#include "depass/initialisers.hpp"
#include "depass/threading.hpp"
#include "test_support.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

using namespace depass;

namespace {

// A llama config (RMSNorm, SwiGLU, rotate-half RoPE) of the given shape, V 64.
Config llama_config(int D, int I, int L, int H, int Hkv, int Dh, int max_positions) {
    Config cfg;
    cfg.model_type = "llama";
    cfg.D = D;
    cfg.I = I;
    cfg.L = L;
    cfg.H = H;
    cfg.Hkv = Hkv;
    cfg.Dh = Dh;
    cfg.V = 64;
    cfg.max_positions = max_positions;
    return cfg;
}

// n token ids (k * step + first) mod V, k = 0..n-1.
std::vector<int> id_pattern(int n, int step, int first, int V) {
    std::vector<int> ids;
    for (int k = 0; k < n; ++k) ids.push_back((k * step + first) % V);
    return ids;
}

}  // namespace

TEST_CASE("forward and decomposed pass give identical results with 1 and 2 threads", "[threads]") {
#ifndef _OPENMP
    WARN("built without OpenMP: nothing to compare");
    return;
#else
    const Config cfg = llama_config(48, 96, 2, 6, 2, 8, 64);
    Model<double> model = random_model<double>(cfg, 7);
    const std::vector<int> ids = id_pattern(33, 7, 1, cfg.V);
    auto run = [&](int threads) {
        omp_set_num_threads(threads);
        Trace<double> t = forward(model, ids);
        Initialised<double> init = init_tokens(model, t, 0);
        DecomposeOptions opt;
        opt.ignore_special_token = true;
        return std::make_pair(t.logits, propagate(model, t, init.comps, init.cut, opt).X);
    };
    auto one = run(1), two = run(2);
    omp_set_num_threads(omp_get_num_procs());
    CHECK((one.first - two.first).cwiseAbs().maxCoeff() == 0.0);
    CHECK((one.second - two.second).cwiseAbs().maxCoeff() == 0.0);
#endif
}

// Neuron level at 160 tokens: 97 components x 160 positions = 15520 stored rows, so the output
// projection of block 1 (15520 x 48 x 48 multiply-adds) takes the tiled product (threading.hpp,
// kTiledProductWork); 150 tokens would stay below it.
TEST_CASE("a neuron-level pass through the tiled product is identical with 1 and 2 threads", "[threads]") {
#ifndef _OPENMP
    WARN("built without OpenMP: nothing to compare");
    return;
#else
    const Config cfg = llama_config(48, 96, 2, 6, 2, 8, 192);
    Model<double> model = random_model<double>(cfg, 11);
    const std::vector<int> ids = id_pattern(160, 13, 1, cfg.V);
    const Trace<double> t = forward(model, ids);
    const Initialised<double> init = init_neurons(model, t, 0, {}, 0);
    REQUIRE(double(init.comps.rows()) * cfg.D * (cfg.H * cfg.Dh) >= kTiledProductWork);
    auto run = [&](int threads) {
        omp_set_num_threads(threads);
        DecomposeOptions opt;
        return propagate(model, t, init.comps, init.cut, opt).X;
    };
    const Mat<double> one = run(1), two = run(2);
    omp_set_num_threads(omp_get_num_procs());
    CHECK((one - two).cwiseAbs().maxCoeff() == 0.0);
    // and the pass is right: its components sum to the recorded final residual
    Components<double> out = init.comps.like(Mat<double>(one));
    const double err = (out.sum() - t.h[cfg.L]).cwiseAbs().maxCoeff() / t.h[cfg.L].cwiseAbs().maxCoeff();
    INFO("completeness " << err);
    CHECK(err < 1e-12);
#endif
}

// An MLP of width 768 makes the down projection deeper than Eigen's depth blocking; a product
// threaded by Eigen itself splits that depth differently from a one-thread product, so this
// checks that Eigen's threading stays off (threading.hpp).
TEST_CASE("a forward with deep products is identical with 1 and 2 threads", "[threads]") {
#ifndef _OPENMP
    WARN("built without OpenMP: nothing to compare");
    return;
#else
    const Config cfg = llama_config(64, 768, 1, 4, 4, 16, 64);
    Model<float> model = random_model<float>(cfg, 5);
    const std::vector<int> ids = id_pattern(64, 5, 2, cfg.V);
    omp_set_num_threads(1);
    const Trace<float> one = forward(model, ids);
    omp_set_num_threads(2);
    const Trace<float> two = forward(model, ids);
    omp_set_num_threads(omp_get_num_procs());
    CHECK((one.h[cfg.L] - two.h[cfg.L]).cwiseAbs().maxCoeff() == 0.0f);
    CHECK((one.logits - two.logits).cwiseAbs().maxCoeff() == 0.0f);
#endif
}
