// bench_decompose -- efficiency of the decomposed pass (token level).
//
// Random LLaMA models of the stories15M and stories110M shapes; token-level decomposition at h[0]
// (component j = token j, from position j on, plus the rest: M = N + 1), softmax
// MLP rule with T = 0.1, ignore-special-token on. Times propagate() (median after
// a warm-up) and compares it with a plain GEMM and with the forward pass, all
// measured in the same run, calls alternating so they see the same machine load.
//
// FLOPs counted (2 x multiply-adds, the work that is actually needed; depass-math.md
// section 6), per layer, with R = sum_m (N - first[m]) stored rows (component j
// exists from position j on) and n_m = N - first[m]:
//   value   2 R D (Hkv Dh)      output  2 R (H Dh) D
//   gate    2 R D I             down    2 R I D
//   mixing  sum_m 2 H Dh n_m (n_m + 1) / 2    (lower triangle of each head's A)
// Norms, the rule weights (exp per stored row and neuron) and the gathers are not counted.
//
// GEMM reference: Y = X W^T with X [R, D] and W [I, D] (the gate product over all
// stored rows), repeated back to back to the same FLOPs.
//
// BLAS builds (-DDEPASS_BLAS, depass/blas.hpp) also time propagate() with the backend switched off
// (set_blas_products(false): Eigen's products and tiles), alternating with the other calls, and the
// GEMM through linear() (the tiled OpenBLAS product). Rates are also given as a share of the
// machine's peak per core times the threads (bench_peak.hpp: nominal, and a measured FMA loop).
//
// Ceiling: the best the product library itself does on this thread, measured in the same run: one
// [8384, 768] x [768, 2048] product as ONE call (single_product_nt: one cblas_?gemm call, or one
// Eigen product; no tiles), median of 5. "%best" is the decomposed pass's rate over that ceiling
// times the threads: a pass made only of such products, with nothing else to do, would reach 100%.
//
// Memory: the dense decomposed state M N D sizeof(T), the stored rows R D sizeof(T),
// and the growth of the peak resident set during one propagate() call (VmHWM after
// resetting it through /proc/self/clear_refs; getrusage's ru_maxrss if that fails).
//
// Usage: bench_decompose [--quick] [--reps K] [--threads K] [--shape S] [--float-only] [--double]
//                        [--system-malloc] [--profile N]
//   float and double, both shapes by default; --quick: stories15M, N <= 128.
//   --profile N: one forward and one propagate() at N only (for profilers; float unless --double).
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "bench_peak.hpp"
#include "depass/blas.hpp"
#include "depass/decompose.hpp"
#include "depass/forward.hpp"
#include "depass/initialisers.hpp"
#include "depass/ops.hpp"
#include "depass/weights.hpp"

using namespace depass;
using namespace depass::bench;

namespace {

// Needed FLOPs of propagate() from h[0] (every layer), see the file comment.
template <class T>
double decomposed_flops(const Config& c, const Components<T>& comps) {
    const double R = double(comps.rows()), D = c.D, QD = double(c.H) * c.Dh, KVD = double(c.Hkv) * c.Dh;
    double mix = 0;
    for (int m = 0; m < comps.M; ++m) {
        const double n = comps.N - comps.first[m];
        mix += 2.0 * QD * n * (n + 1) / 2;
    }
    const double per_layer = 2 * R * D * KVD + 2 * R * QD * D + 2 * R * D * c.I + 2 * R * c.I * D + mix;
    return c.L * per_layer;
}

// The machine's peak per core (bench_peak.hpp), measured once.
const Peak& the_peak() {
    static const Peak p = machine_peak();
    return p;
}

// The product library's ceiling on one thread (see the file comment), GFLOP/s: [0] the active
// backend (OpenBLAS in a BLAS build), [1] Eigen (the same as [0] without the backend).
template <class T>
std::array<double, 2> library_ceiling(int reps) {
    const Mat<T> X = Mat<T>::Random(8384, 768), W = Mat<T>::Random(2048, 768);
    Mat<T> Y;
    const double flops = 2.0 * 8384 * 768 * 2048;
    const bool both = blas_enabled();
    // OpenBLAS's OpenMP build threads a call made outside a parallel region over
    // omp_get_max_threads(): one thread while measuring, the count put back after.
    const int threads = max_threads();
    set_threads(1);
    single_product_nt(X, W, Y);  // warm-up: pages in Y
    const std::vector<double> t = median_times(
        reps, 1e9,
        [&] {
            set_blas_products(true);
            single_product_nt(X, W, Y);
            g_sink = g_sink + double(Y(0, 0));
        },
        [&] {
            if (!both) return;
            set_blas_products(false);
            single_product_nt(X, W, Y);
            g_sink = g_sink + double(Y(0, 0));
            set_blas_products(true);
        });
    set_threads(threads);
    return {flops / t[0] * 1e-9, both ? flops / t[1] * 1e-9 : flops / t[0] * 1e-9};
}

template <class T>
void run_table(const std::string& shape, bool quick, int reps, const char* type_name) {
    // Per core x threads: the nominal peak, and the measured FMA loop's rate (half of it in double).
    const double peak_nominal = (sizeof(T) == 4 ? the_peak().nominal_f32 : the_peak().nominal_f64) * max_threads();
    const double fma_f32 = the_peak().measured_f32 > 0 ? the_peak().measured_f32 : the_peak().nominal_f32;
    const double peak_fma = (sizeof(T) == 4 ? fma_f32 : fma_f32 / 2) * max_threads();
    const Config cfg = stories_shape(shape);
    const Model<T> model = random_model<T>(cfg, 1234);
    const std::array<double, 2> best = library_ceiling<T>(5);
    std::printf("\n%s ceiling, one [8384, 768] x [768, 2048] product as one call on one thread: %s %.1f GFLOP/s"
                " (%.0f%% nominal, %.0f%% fma)",
                type_name, blas_enabled() ? "OpenBLAS" : "Eigen", best[0],
                100.0 * best[0] * max_threads() / peak_nominal, 100.0 * best[0] * max_threads() / peak_fma);
    if (blas_enabled())
        std::printf(", Eigen %.1f (%.0f%% nominal, %.0f%% fma)", best[1],
                    100.0 * best[1] * max_threads() / peak_nominal, 100.0 * best[1] * max_threads() / peak_fma);
    std::printf("\n");
    std::printf("\n%s, %s shape (D %d, L %d, H %d, I %d)  (threads: %d)\n", type_name, shape.c_str(), cfg.D,
                cfg.L, cfg.H, cfg.I, max_threads());
    std::printf("%4s %4s %7s %8s %8s %8s %6s %6s %6s %8s %6s %6s %8s %8s %7s %7s %8s %9s\n", "N", "M", "rows R",
                "GFLOP", "prop ms", "GF/s", "%nom", "%fma", "%best", "Eigen", "%fma", "%best", "gemm E", "gemm B",
                "vs gemm", "fwd ms", "prop/fwd", "max|sum-h|");
    struct MemRow {
        int N, M;
        double dense, stored, peak_growth, cold_s;
        bool hwm;
    };
    std::vector<MemRow> mem;
    const double budget = quick ? 1.0 : 6.0;
    for (int N : {64, 128, 256}) {
        if (quick && N > 128) continue;
        const std::vector<int> ids = random_ids(cfg, N, 7 + N);
        const Trace<T> trace = forward(model, ids);
        const Initialised<T> init = init_tokens(model, trace, 0);
        const DecomposeOptions opt = init.options(MlpRule::Softmax, 0.1);  // ignore-special-token on

        // Memory: one propagate() with the peak resident set reset just before it and
        // free memory handed back first. This first call also pages in its buffers
        // (its time is the "cold" column) and is the warm-up of the timings below.
        MemRow mr{N,
                  init.comps.M,
                  double(init.comps.M) * N * cfg.D * sizeof(T),
                  double(init.comps.rows()) * cfg.D * sizeof(T),
                  0,
                  0,
                  false};
        double completeness = 0;
        {
            Components<T> in = init.comps;
            release_free_memory();
            const long long before = proc_status_bytes("VmRSS:");
            mr.hwm = reset_peak_rss() && before > 0;
            const auto t0 = Clock::now();
            Components<T> out = propagate(model, trace, std::move(in), init.cut, opt);
            mr.cold_s = seconds_since(t0);
            const long long peak = mr.hwm ? proc_status_bytes("VmHWM:") : ru_maxrss_bytes();
            mr.peak_growth = double(peak - (mr.hwm ? before : 0));
            completeness = (out.sum() - trace.h[cfg.L]).cwiseAbs().maxCoeff() /
                           std::max(T(1e-30), trace.h[cfg.L].cwiseAbs().maxCoeff());
        }
        mem.push_back(mr);

        const double flops = decomposed_flops(cfg, init.comps);
        const int64_t R = init.comps.rows();
        const Mat<T> W = Mat<T>::Random(cfg.I, cfg.D);
        Mat<T> X = Mat<T>::Random(R, cfg.D);
        Mat<T> Y(R, cfg.I);
        const double gemm_flops = 2.0 * double(R) * cfg.D * cfg.I;
        const int repeat = std::max(1, int(std::lround(flops / gemm_flops)));
        Y.noalias() = X * W.transpose();  // warm-up (propagate and forward ran above)
        Components<T> fresh;
        const bool both = blas_enabled();  // the BLAS build: also time Eigen's products, alternating
        const std::vector<double> t = median_times(
            reps, budget,
            [&] {
                fresh = init.comps;  // the copy is made outside the timed call below
            },
            [&] {
                Components<T> out = propagate(model, trace, std::move(fresh), init.cut, opt);
                g_sink = g_sink + double(out.X(0, 0));
            },
            [&] {
                set_blas_products(false);  // outside the timed call
                if (both) fresh = init.comps;
            },
            [&] {
                if (!both) return;
                Components<T> out = propagate(model, trace, std::move(fresh), init.cut, opt);
                g_sink = g_sink + double(out.X(0, 0));
            },
            [&] {
                set_blas_products(true);
                for (int r = 0; r < repeat; ++r) {
                    Y.noalias() = X * W.transpose();
                    X(0, r % cfg.D) = Y(R - 1, r % cfg.I) * T(1e-3);  // a dependency between repeats
                }
                g_sink = g_sink + double(Y(0, 0));
            },
            [&] {
                if (!both) return;
                for (int r = 0; r < repeat; ++r) {
                    Y = linear(X, W, Vec<T>());  // the tiled product of the decomposed pass, through BLAS
                    X(0, r % cfg.D) = Y(R - 1, r % cfg.I) * T(1e-3);
                }
                g_sink = g_sink + double(Y(0, 0));
            },
            [&] {
                Trace<T> tr = forward(model, ids);
                g_sink = g_sink + double(tr.logits(0, 0));
            });
        const double t_prop = t[1], t_eigen = t[3], t_gemm = t[4], t_blas = t[5], t_fwd = t[6];
        const double rate = flops / t_prop * 1e-9, rate_eigen = both ? flops / t_eigen * 1e-9 : rate;
        const double rate_gemm = repeat * gemm_flops / t_gemm * 1e-9;
        const double rate_blas = both ? repeat * gemm_flops / t_blas * 1e-9 : 0;
        const double threads = max_threads();
        std::printf(
            "%4d %4d %7lld %8.2f %8.1f %8.1f %5.0f%% %5.0f%% %5.0f%% %8.1f %5.0f%% %5.0f%% %8.1f %8.1f %6.0f%% %7.2f "
            "%8.1f %9.1e\n",
            N, init.comps.M, (long long)R, flops * 1e-9, t_prop * 1e3, rate, 100.0 * rate / peak_nominal,
            100.0 * rate / peak_fma, 100.0 * rate / (best[0] * threads), rate_eigen, 100.0 * rate_eigen / peak_fma,
            100.0 * rate_eigen / (best[1] * threads), rate_gemm, rate_blas,
            100.0 * rate / std::max(rate_gemm, rate_blas), t_fwd * 1e3, t_prop / t_fwd, completeness);
        std::fflush(stdout);
    }
    std::printf(
        "memory (%s): dense = M*N*D*sizeof(T), what an [M, N, D] state would take; stored = R*D*sizeof(T);\n"
        "peak growth = peak resident set during one propagate() minus the resident set before it (input\n"
        "state included there); cold ms = that first call, paging in its buffers\n",
        type_name);
    std::printf("%4s %4s %10s %11s %16s %9s\n", "N", "M", "dense MiB", "stored MiB", "peak growth MiB",
                "cold ms");
    for (const MemRow& r : mem)
        std::printf("%4d %4d %10.1f %11.1f %16.1f %9.1f%s\n", r.N, r.M, mib(r.dense), mib(r.stored),
                    mib(r.peak_growth), r.cold_s * 1e3, r.hwm ? "" : "  (ru_maxrss: whole-process peak)");
}

// One forward and one propagate() at N, timed once each: a short run for profilers
// (perf record bench_decompose --profile 128).
template <class T>
void profile_once(const std::string& shape, int N) {
    const Config cfg = stories_shape(shape);
    const Model<T> model = random_model<T>(cfg, 1234);
    const std::vector<int> ids = random_ids(cfg, N, 7 + N);
    auto t0 = Clock::now();
    const Trace<T> trace = forward(model, ids);
    const double t_fwd = seconds_since(t0);
    const Initialised<T> init = init_tokens(model, trace, 0);
    const DecomposeOptions opt = init.options();
    t0 = Clock::now();
    Components<T> out = propagate(model, trace, init.comps, init.cut, opt);
    const double t_prop = seconds_since(t0);
    std::printf("N %d: forward %.1f ms, propagate %.1f ms (%.2f GFLOP)\n", N, t_fwd * 1e3, t_prop * 1e3,
                decomposed_flops(cfg, init.comps) * 1e-9);
    g_sink = g_sink + double(out.X(0, 0));
}

}  // namespace

int main(int argc, char** argv) {
    use_passive_wait_policy(argv);  // first: may start the program again (depass/threading.hpp)
    bool quick = false, with_double = true, profile_double = false, system_malloc = false;
    int reps = 5, profile_n = 0;
    std::vector<std::string> shapes{"stories15M", "stories110M"};
    const char* usage =
        "usage: %s [--quick] [--reps K] [--threads K] [--shape stories15M|stories110M] [--float-only]\n"
        "          [--double] [--system-malloc] [--profile N]\n";
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--quick")) {
            quick = true;
        } else if (!std::strcmp(argv[i], "--float-only")) {
            with_double = false;
        } else if (!std::strcmp(argv[i], "--double")) {  // --profile in double
            profile_double = true;
        } else if (!std::strcmp(argv[i], "--system-malloc")) {
            system_malloc = true;
        } else if (!std::strcmp(argv[i], "--shape") && i + 1 < argc) {
            shapes = {argv[++i]};
        } else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = std::max(1, std::atoi(argv[++i]));
        } else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) {
            set_threads(std::atoi(argv[++i]));
        } else if (!std::strcmp(argv[i], "--profile") && i + 1 < argc) {
            profile_n = std::max(1, std::min(256, std::atoi(argv[++i])));
        } else {
            std::fprintf(stderr, usage, argv[0]);
            return 2;
        }
    }
    if (quick) {
        reps = std::min(reps, 3);
        if (shapes.size() > 1) shapes = {"stories15M"};
    }
    const std::string malloc_line = configure_malloc(system_malloc);
    try {
        if (profile_n) {
            profile_double ? profile_once<double>(shapes[0], profile_n)
                           : profile_once<float>(shapes[0], profile_n);
            return 0;
        }
        std::printf(
            "decomposed pass, token level from h[0] (M = N + 1 incl. the rest), softmax rule T = 0.1,\n"
            "ignore-special-token on; random LLaMA models of the stories shapes.\n"
            "GFLOP = value, output, gate, down products over the stored rows R + causal attention mixing.\n"
            "GEMM = [R, D] x [D, I] repeated to the same FLOPs. prop/fwd = propagate() time / forward()\n"
            "time. Medians, the three calls alternating. max|sum-h| = completeness of the output,\n"
            "relative to max |h[L]|. %%nom, %%fma = GFLOP/s / (peak per core x threads), the nominal peak\n"
            "and the measured FMA loop's (below). Eigen = the decomposed pass with the BLAS backend switched\n"
            "off (set_blas_products(false); BLAS builds only, alternating with the first). gemm E = the GEMM\n"
            "as one Eigen product, gemm B = the same through linear(), the tiled BLAS product (BLAS builds);\n"
            "vs gemm = prop GF/s / the faster of the two. %%best = GF/s / (the ceiling x threads): the\n"
            "ceiling is the library's own rate on one large product as one call (printed before each table).\n"
            "%s\n%s\n%s\n",
            malloc_line.c_str(), the_peak().describe().c_str(), load_average().c_str());
        for (const std::string& shape : shapes) {
            run_table<float>(shape, quick, reps, "float");
            if (with_double) run_table<double>(shape, quick, reps, "double");
        }
        std::printf("\nat the end: %s\n", load_average().c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_decompose: %s\n", e.what());
        return 1;
    }
    return 0;
}
