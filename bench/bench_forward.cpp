// bench_forward -- speed of the recorded forward pass (prefill of N tokens).
//
// For random LLaMA-style models of the stories15M and stories110M shapes it times
// forward() (median of several runs after a warm-up) and compares the rate with a
// plain Eigen GEMM measured in the same run:
//
//   forward FLOPs (2 x multiply-adds), per layer
//     projections   2 N D (H Dh)  +  2 * 2 N D (Hkv Dh)  +  2 N (H Dh) D     (q, k, v, o)
//     attention     2 * 2 H Dh N(N+1)/2                  (scores and mixing, causal lower triangle)
//     MLP           3 * 2 N D I                          (gate, up, down)
//   plus the unembedding of every position  2 N D V.
//   Norms, RoPE, softmax and SiLU are not counted (they are O(N D), O(H N^2) and O(N I)).
//
//   GEMM reference: Y = X W^T with X [N, D] and W [I, D] (the shape of the gate
//   projection, same scalar type and threads), repeated back to back until it does
//   the same FLOPs as the forward; its rate is FLOPs / time.
//
// Usage: bench_forward [--quick] [--reps K] [--threads K] [--float-only] [--system-malloc]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "depass/forward.hpp"
#include "depass/weights.hpp"

using namespace depass;
using namespace depass::bench;

namespace {

double forward_flops(const Config& c, int N) {
    const double n = N, D = c.D, QD = double(c.H) * c.Dh, KVD = double(c.Hkv) * c.Dh, I = c.I;
    const double proj = 2 * n * D * QD + 2 * 2 * n * D * KVD + 2 * n * QD * D;
    const double attn = 2 * 2 * QD * n * (n + 1) / 2;
    const double mlp = 3 * 2 * n * D * I;
    return c.L * (proj + attn + mlp) + 2 * n * D * c.V;
}

template <class T>
void run_table(bool quick, int reps, const char* type_name) {
    std::printf("\n%s  (threads: %d)\n", type_name, max_threads());
    std::printf("%-11s %4s %9s %10s %10s %10s %10s %8s\n", "model", "N", "GFLOP", "fwd ms", "fwd GF/s",
                "gemm ms", "gemm GF/s", "ratio");
    const double budget = quick ? 0.5 : 3.0;
    for (bool big : {false, true}) {
        if (quick && big) continue;
        const Config cfg = stories_shape(big ? "stories110M" : "stories15M");
        const Model<T> model = random_model<T>(cfg, 1234);
        Mat<T> W = Mat<T>::Random(cfg.I, cfg.D);
        for (int N : {64, 128, 256}) {
            if (quick && N > 128) continue;
            const std::vector<int> ids = random_ids(cfg, N, 99 + N);
            const double flops = forward_flops(cfg, N);
            Mat<T> X = Mat<T>::Random(N, cfg.D);
            Mat<T> Y(N, cfg.I);
            const double gemm_flops = 2.0 * N * cfg.D * cfg.I;
            const int repeat = std::max(1, int(std::lround(flops / gemm_flops)));
            auto run_forward = [&] {
                Trace<T> t = forward(model, ids);
                g_sink = g_sink + double(t.logits(N - 1, 0));
            };
            auto run_gemm = [&] {
                for (int r = 0; r < repeat; ++r) {
                    Y.noalias() = X * W.transpose();
                    X(0, r % cfg.D) = Y(N - 1, r % cfg.I) * T(1e-3);  // a dependency between repeats
                }
                g_sink = g_sink + double(Y(0, 0));
            };
            run_forward();  // warm-up: page in weights, size the buffers
            run_gemm();
            const std::vector<double> t = median_times(reps, budget, run_forward, run_gemm);
            const double t_fwd = t[0], t_gemm = t[1];
            const double rate_fwd = flops / t_fwd * 1e-9, rate_gemm = repeat * gemm_flops / t_gemm * 1e-9;
            std::printf("%-11s %4d %9.2f %10.2f %10.1f %10.2f %10.1f %7.0f%%\n",
                        big ? "stories110M" : "stories15M", N, flops * 1e-9, t_fwd * 1e3, rate_fwd,
                        t_gemm * 1e3, rate_gemm, 100.0 * rate_fwd / rate_gemm);
            std::fflush(stdout);
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    use_passive_wait_policy(argv);  // first: may start the program again (depass/threading.hpp)
    bool quick = false, system_malloc = false, with_double = true;
    int reps = 7;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--quick")) {
            quick = true;
        } else if (!std::strcmp(argv[i], "--system-malloc")) {
            system_malloc = true;
        } else if (!std::strcmp(argv[i], "--float-only")) {
            with_double = false;
        } else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = std::max(1, std::atoi(argv[++i]));
        } else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) {
            set_threads(std::atoi(argv[++i]));
        } else {
            std::fprintf(stderr,
                         "usage: %s [--quick] [--reps K] [--threads K] [--float-only] [--system-malloc]\n",
                         argv[0]);
            return 2;
        }
    }
    if (quick) reps = std::min(reps, 3);
    const std::string malloc_line = configure_malloc(system_malloc);
    std::printf("forward prefill: random LLaMA (RMSNorm, SwiGLU, RoPE half), V 32000, tied unembedding\n");
    std::printf(
        "FLOPs = 2 x multiply-adds of q/k/v/o, causal attention scores + mixing, gate/up/down, and the\n"
        "unembedding of all N positions. GEMM = [N, D] x [D, I] (X W^T, W [I, D]) repeated to the same\n"
        "FLOPs; ratio = forward GFLOP/s / GEMM GFLOP/s. Times are medians after a warm-up, forward and\n"
        "GEMM calls alternating.\n%s\n",
        malloc_line.c_str());
    try {
        run_table<float>(quick, reps, "float");
        if (with_double) run_table<double>(quick, reps, "double");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_forward: %s\n", e.what());
        return 1;
    }
    return 0;
}
