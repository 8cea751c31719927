// bench_decompose -- efficiency of the decomposed pass (token level).
//
// A random LLaMA of the stories15M shape; token-level decomposition at h[0]
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
// Memory: the dense decomposed state M N D sizeof(T), the stored rows R D sizeof(T),
// and the growth of the peak resident set during one propagate() call (VmHWM after
// resetting it through /proc/self/clear_refs; getrusage's ru_maxrss if that fails).
//
// Usage: bench_decompose [--quick] [--reps K] [--threads K] [--double] [--system-malloc] [--profile N]
//   --profile N: one forward and one propagate() at N only (for profilers).
#include "depass/decompose.hpp"
#include "depass/forward.hpp"
#include "depass/initialisers.hpp"
#include "depass/weights.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef __GLIBC__
#include <malloc.h>
#endif

using namespace depass;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Median wall times of each callable over rounds in which every callable runs once
// (so all see the same load on a shared machine). The caller warms up. When the
// calls are long, fewer rounds are made (at least 3).
template <class... F>
std::vector<double> median_times(int reps, double budget_s, F&&... f) {
    constexpr size_t K = sizeof...(F);
    std::vector<std::vector<double>> t(K);
    double spent = 0;
    for (int r = 0; r < reps; ++r) {
        size_t i = 0;
        auto time_one = [&](auto& fn) {
            const auto t0 = Clock::now();
            fn();
            t[i].push_back(seconds_since(t0));
            spent += t[i].back();
            ++i;
        };
        (time_one(f), ...);
        if (r + 1 >= 3 && spent > budget_s) break;
    }
    std::vector<double> med;
    for (auto& v : t) {
        std::sort(v.begin(), v.end());
        med.push_back(v[v.size() / 2]);
    }
    return med;
}

// Resident set figures from /proc/self/status, in bytes (-1 when unavailable).
long long proc_status_bytes(const char* key) {
    std::ifstream in("/proc/self/status");
    std::string line;
    const size_t klen = std::strlen(key);
    while (std::getline(in, line))
        if (line.compare(0, klen, key) == 0) return std::atoll(line.c_str() + klen + 1) * 1024LL;
    return -1;
}

// Resets the peak resident set (VmHWM) to the current one; false when not supported.
bool reset_peak_rss() {
    std::ofstream out("/proc/self/clear_refs");
    if (!out) return false;
    out << "5";
    out.close();
    return bool(out);
}

long long ru_maxrss_bytes() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return (long long)u.ru_maxrss * 1024LL;
}

Config stories15m_config() {
    Config c;
    c.model_type = "llama";
    c.source = "stories15M shape";
    c.D = 288;
    c.L = 6;
    c.H = c.Hkv = 6;
    c.Dh = 48;
    c.I = 768;
    c.V = 32000;
    c.max_positions = 256;
    c.norm = NormKind::RMSNorm;
    c.mlp = MlpKind::SwiGLU;
    c.act = Activation::SiLU;
    c.rope = RopeStyle::Half;
    c.tied_embeddings = true;
    return c;
}

std::vector<int> random_ids(const Config& c, int N, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int> pick(3, c.V - 1);
    std::vector<int> ids(N);
    ids[0] = c.bos_id;
    for (int n = 1; n < N; ++n) ids[n] = pick(rng);
    return ids;
}

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

// glibc returns freed blocks above its mmap threshold (at most 32 MiB) to the system,
// so every large temporary is paged in again on its next use (several microseconds
// per 4 KiB page on a virtual machine). Raising both thresholds keeps freed memory for
// reuse, as the GEMM reference reuses its buffers. Returns a line for the header.
std::string configure_malloc(bool system_default) {
#ifdef __GLIBC__
    if (!system_default) {
        mallopt(M_MMAP_THRESHOLD, 1 << 30);
        mallopt(M_TRIM_THRESHOLD, 1 << 30);
        return "malloc: glibc mmap/trim thresholds raised to 1 GiB (freed buffers reused; --system-malloc: defaults)";
    }
    return "malloc: glibc defaults (--system-malloc)";
#else
    (void)system_default;
    return "malloc: system defaults";
#endif
}

// Hands freed heap memory back to the system, so that the resident set is the live set.
void release_free_memory() {
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

volatile double g_sink = 0;  // keeps results observable so no work is optimised away

double mib(double bytes) { return bytes / (1024.0 * 1024.0); }

template <class T>
void run_table(bool quick, int reps, const char* type_name) {
    const Config cfg = stories15m_config();
    const Model<T> model = random_model<T>(cfg, 1234);
    std::printf("\n%s  (threads: %d)\n", type_name,
#ifdef _OPENMP
                omp_get_max_threads()
#else
                1
#endif
    );
    std::printf("%4s %4s %7s %8s %9s %9s %9s %9s %7s %9s %10s\n", "N", "M", "rows R", "GFLOP", "prop ms",
                "prop GF/s", "gemm GF/s", "vs gemm", "fwd ms", "prop/fwd", "max|sum-h|");
    struct MemRow { int N, M; double dense, stored, peak_growth, cold_s; bool hwm; };
    std::vector<MemRow> mem;
    const double budget = quick ? 1.0 : 6.0;
    for (int N : {64, 128, 256}) {
        if (quick && N > 128) continue;
        const std::vector<int> ids = random_ids(cfg, N, 7 + N);
        const Trace<T> trace = forward(model, ids);
        const Initialised<T> init = init_tokens(model, trace, 0);
        DecomposeOptions opt;
        opt.rule = MlpRule::Softmax;
        opt.temperature = 0.1;
        opt.ignore_special_token = true;
        opt.pos0_component = init.pos0_component;

        // Memory: one propagate() with the peak resident set reset just before it and
        // free memory handed back first. This first call also pages in its buffers
        // (its time is the "cold" column) and is the warm-up of the timings below.
        MemRow mr{N, init.comps.M, double(init.comps.M) * N * cfg.D * sizeof(T),
                  double(init.comps.rows()) * cfg.D * sizeof(T), 0, 0, false};
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
                for (int r = 0; r < repeat; ++r) {
                    Y.noalias() = X * W.transpose();
                    X(0, r % cfg.D) = Y(R - 1, r % cfg.I) * T(1e-3);  // a dependency between repeats
                }
                g_sink = g_sink + double(Y(0, 0));
            },
            [&] {
                Trace<T> tr = forward(model, ids);
                g_sink = g_sink + double(tr.logits(0, 0));
            });
        const double t_prop = t[1], t_gemm = t[2], t_fwd = t[3];
        const double rate = flops / t_prop * 1e-9, rate_gemm = repeat * gemm_flops / t_gemm * 1e-9;
        std::printf("%4d %4d %7lld %8.2f %9.1f %9.1f %9.1f %8.0f%% %7.2f %9.1f %10.1e\n", N, init.comps.M,
                    (long long)R, flops * 1e-9, t_prop * 1e3, rate, rate_gemm, 100.0 * rate / rate_gemm, t_fwd * 1e3,
                    t_prop / t_fwd, completeness);
        std::fflush(stdout);
    }
    std::printf("memory (%s): dense = M*N*D*sizeof(T), what an [M, N, D] state would take; stored = R*D*sizeof(T);\n"
                "peak growth = peak resident set during one propagate() minus the resident set before it (input\n"
                "state included there); cold ms = that first call, paging in its buffers\n",
                type_name);
    std::printf("%4s %4s %10s %11s %16s %9s\n", "N", "M", "dense MiB", "stored MiB", "peak growth MiB", "cold ms");
    for (const MemRow& r : mem)
        std::printf("%4d %4d %10.1f %11.1f %16.1f %9.1f%s\n", r.N, r.M, mib(r.dense), mib(r.stored),
                    mib(r.peak_growth), r.cold_s * 1e3, r.hwm ? "" : "  (ru_maxrss: whole-process peak)");
}

// One forward and one propagate() at N, timed once each: a short run for profilers
// (perf record bench_decompose --profile 128).
template <class T>
void profile_once(int N) {
    const Config cfg = stories15m_config();
    const Model<T> model = random_model<T>(cfg, 1234);
    const std::vector<int> ids = random_ids(cfg, N, 7 + N);
    auto t0 = Clock::now();
    const Trace<T> trace = forward(model, ids);
    const double t_fwd = seconds_since(t0);
    const Initialised<T> init = init_tokens(model, trace, 0);
    DecomposeOptions opt;
    opt.ignore_special_token = true;
    opt.pos0_component = init.pos0_component;
    t0 = Clock::now();
    Components<T> out = propagate(model, trace, init.comps, init.cut, opt);
    const double t_prop = seconds_since(t0);
    std::printf("N %d: forward %.1f ms, propagate %.1f ms (%.2f GFLOP)\n", N, t_fwd * 1e3, t_prop * 1e3,
                decomposed_flops(cfg, init.comps) * 1e-9);
    g_sink = g_sink + double(out.X(0, 0));
}

}  // namespace

int main(int argc, char** argv) {
    bool quick = false, with_double = false, system_malloc = false;
    int reps = 5, profile_n = 0;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--quick")) {
            quick = true;
        } else if (!std::strcmp(argv[i], "--double")) {
            with_double = true;
        } else if (!std::strcmp(argv[i], "--system-malloc")) {
            system_malloc = true;
        } else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = std::max(1, std::atoi(argv[++i]));
        } else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) {
            const int threads = std::max(1, std::atoi(argv[++i]));
#ifdef _OPENMP
            omp_set_num_threads(threads);
#else
            (void)threads;
#endif
        } else if (!std::strcmp(argv[i], "--profile") && i + 1 < argc) {
            profile_n = std::max(1, std::min(256, std::atoi(argv[++i])));
        } else {
            std::fprintf(stderr,
                         "usage: %s [--quick] [--reps K] [--threads K] [--double] [--system-malloc] [--profile N]\n",
                         argv[0]);
            return 2;
        }
    }
    if (quick) reps = std::min(reps, 3);
    const std::string malloc_line = configure_malloc(system_malloc);
    try {
        if (profile_n) {
            with_double ? profile_once<double>(profile_n) : profile_once<float>(profile_n);
            return 0;
        }
        std::printf("decomposed pass, token level from h[0] (M = N + 1 incl. the rest), softmax rule T = 0.1,\n"
                    "ignore-special-token on; random LLaMA of the stories15M shape (D 288, L 6, H 6, I 768).\n"
                    "GFLOP = value, output, gate, down products over the stored rows R + causal attention mixing.\n"
                    "GEMM = [R, D] x [D, I] repeated to the same FLOPs. prop/fwd = propagate() time / forward()\n"
                    "time. Medians, the three calls alternating. max|sum-h| = completeness of the output,\n"
                    "relative to max |h[L]|.\n%s\n",
                    malloc_line.c_str());
        run_table<float>(quick, reps, "float");
        if (with_double) run_table<double>(quick, reps, "double");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_decompose: %s\n", e.what());
        return 1;
    }
    return 0;
}
