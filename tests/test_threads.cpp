// Results do not depend on the number of threads (every thread owns whole output rows).
#include "test_support.hpp"

#include "depass/decompose.hpp"
#include "depass/initialisers.hpp"

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
