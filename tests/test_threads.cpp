// Results do not depend on the number of threads (every thread owns whole output rows).
#include "test_support.hpp"

#include "depass/decompose.hpp"
#include "depass/initialisers.hpp"
#include "depass/threading.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

using namespace depass;

TEST_CASE("forward and decomposed pass give identical results with 1 and 2 threads", "[threads]") {
#ifndef _OPENMP
    WARN("built without OpenMP: nothing to compare");
    return;
#else
    Config cfg;
    cfg.model_type = "llama";
    cfg.D = 48; cfg.I = 96; cfg.L = 2; cfg.H = 6; cfg.Hkv = 2; cfg.Dh = 8; cfg.V = 64; cfg.max_positions = 64;
    Model<double> model = random_model<double>(cfg, 7);
    std::vector<int> ids;
    for (int n = 0; n < 33; ++n) ids.push_back((n * 7 + 1) % cfg.V);
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
    Config cfg;
    cfg.model_type = "llama";
    cfg.D = 48; cfg.I = 96; cfg.L = 2; cfg.H = 6; cfg.Hkv = 2; cfg.Dh = 8; cfg.V = 64; cfg.max_positions = 192;
    Model<double> model = random_model<double>(cfg, 11);
    std::vector<int> ids;
    for (int n = 0; n < 160; ++n) ids.push_back((n * 13 + 1) % cfg.V);
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
    Config cfg;
    cfg.model_type = "llama";
    cfg.D = 64; cfg.I = 768; cfg.L = 1; cfg.H = 4; cfg.Hkv = 4; cfg.Dh = 16; cfg.V = 64; cfg.max_positions = 64;
    Model<float> model = random_model<float>(cfg, 5);
    std::vector<int> ids;
    for (int n = 0; n < 64; ++n) ids.push_back((n * 5 + 2) % cfg.V);
    omp_set_num_threads(1);
    const Trace<float> one = forward(model, ids);
    omp_set_num_threads(2);
    const Trace<float> two = forward(model, ids);
    omp_set_num_threads(omp_get_num_procs());
    CHECK((one.h[cfg.L] - two.h[cfg.L]).cwiseAbs().maxCoeff() == 0.0f);
    CHECK((one.logits - two.logits).cwiseAbs().maxCoeff() == 0.0f);
#endif
}
