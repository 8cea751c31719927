// bench_peak.hpp -- the machine's floating-point peak per core, for the benchmarks' "% of peak".
//
// Nominal peak = clock x lanes x FMA units x 2 flops (one multiply and one add per lane of an FMA):
//   clock  /sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq (the highest clock the kernel
//          reports), else the first "cpu MHz" of /proc/cpuinfo (under a hypervisor usually the
//          nominal clock: turbo is not seen)
//   lanes  from the CPU flags: avx512f 512-bit vectors (16 floats, 8 doubles); avx2 + fma 256-bit
//          (8 floats, 4 doubles); otherwise 128-bit SSE without FMA (4 floats, counted as 1 flop)
//   units  2 FMA units per core: an assumption (true for Intel Haswell to Sapphire Rapids client
//          and Xeon Gold/Platinum, AMD Zen 1-4; Xeon Silver/Bronze have one 512-bit unit)
// Measured peak: 12 independent chains of vector FMAs of the widest kind the build uses, timed
// on the calling thread; it checks the assumptions (and sees turbo clocks the nominal one hides).
#pragma once

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace depass::bench {

struct Peak {
    double ghz = 0;          // the clock used
    std::string clock_from;  // where it was read
    int bits = 128;          // vector width from the flags
    bool fma = false;
    int units = 2;                            // assumed FMA units per core
    double nominal_f32 = 0, nominal_f64 = 0;  // GFLOP/s per core
    double measured_f32 = 0;                  // GFLOP/s on the calling thread (0: not measured in this build)
    std::string describe() const;
};

inline std::string cpu_flags() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("flags", 0) == 0) return " " + line.substr(line.find(':') + 1) + " ";
    return "";
}

// Best of a few timings of 12 chains x `n` FMAs of the widest vectors this build has.
inline double measured_fma_gflops_f32(long n = 20000000) {
    double best = 0;
    for (int round = 0; round < 5; ++round) {
        const auto t0 = std::chrono::steady_clock::now();
        double flops = 0;
#if defined(__AVX512F__)
        // Distinct starting values: equal chains would be merged into one by the compiler.
        __m512 a0 = _mm512_set1_ps(1.00f), a1 = _mm512_set1_ps(1.01f), a2 = _mm512_set1_ps(1.02f),
               a3 = _mm512_set1_ps(1.03f), a4 = _mm512_set1_ps(1.04f), a5 = _mm512_set1_ps(1.05f),
               a6 = _mm512_set1_ps(1.06f), a7 = _mm512_set1_ps(1.07f), a8 = _mm512_set1_ps(1.08f),
               a9 = _mm512_set1_ps(1.09f), a10 = _mm512_set1_ps(1.10f), a11 = _mm512_set1_ps(1.11f);
        const __m512 b = _mm512_set1_ps(0.99999994f), c = _mm512_set1_ps(1e-8f);
        for (long k = 0; k < n; ++k) {
            a0 = _mm512_fmadd_ps(a0, b, c);
            a1 = _mm512_fmadd_ps(a1, b, c);
            a2 = _mm512_fmadd_ps(a2, b, c);
            a3 = _mm512_fmadd_ps(a3, b, c);
            a4 = _mm512_fmadd_ps(a4, b, c);
            a5 = _mm512_fmadd_ps(a5, b, c);
            a6 = _mm512_fmadd_ps(a6, b, c);
            a7 = _mm512_fmadd_ps(a7, b, c);
            a8 = _mm512_fmadd_ps(a8, b, c);
            a9 = _mm512_fmadd_ps(a9, b, c);
            a10 = _mm512_fmadd_ps(a10, b, c);
            a11 = _mm512_fmadd_ps(a11, b, c);
        }
        const __m512 s =
            _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                          _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)),
                                        _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11))));
        volatile float sink = _mm512_reduce_add_ps(s);
        (void)sink;
        flops = 2.0 * 16 * 12 * double(n);
#elif defined(__AVX2__) && defined(__FMA__)
        __m256 a0 = _mm256_set1_ps(1.00f), a1 = _mm256_set1_ps(1.01f), a2 = _mm256_set1_ps(1.02f),
               a3 = _mm256_set1_ps(1.03f), a4 = _mm256_set1_ps(1.04f), a5 = _mm256_set1_ps(1.05f),
               a6 = _mm256_set1_ps(1.06f), a7 = _mm256_set1_ps(1.07f), a8 = _mm256_set1_ps(1.08f),
               a9 = _mm256_set1_ps(1.09f), a10 = _mm256_set1_ps(1.10f), a11 = _mm256_set1_ps(1.11f);
        const __m256 b = _mm256_set1_ps(0.99999994f), c = _mm256_set1_ps(1e-8f);
        for (long k = 0; k < n; ++k) {
            a0 = _mm256_fmadd_ps(a0, b, c);
            a1 = _mm256_fmadd_ps(a1, b, c);
            a2 = _mm256_fmadd_ps(a2, b, c);
            a3 = _mm256_fmadd_ps(a3, b, c);
            a4 = _mm256_fmadd_ps(a4, b, c);
            a5 = _mm256_fmadd_ps(a5, b, c);
            a6 = _mm256_fmadd_ps(a6, b, c);
            a7 = _mm256_fmadd_ps(a7, b, c);
            a8 = _mm256_fmadd_ps(a8, b, c);
            a9 = _mm256_fmadd_ps(a9, b, c);
            a10 = _mm256_fmadd_ps(a10, b, c);
            a11 = _mm256_fmadd_ps(a11, b, c);
        }
        __m256 s =
            _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                          _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)),
                                        _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11))));
        alignas(32) float out[8];
        _mm256_store_ps(out, s);
        volatile float sink = out[0];
        (void)sink;
        flops = 2.0 * 8 * 12 * double(n);
#else
        (void)n;
        return 0;
#endif
        const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        best = std::max(best, flops / t * 1e-9);
    }
    return best;
}

inline Peak machine_peak(bool measure = true) {
    Peak p;
    {
        std::ifstream f("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq");
        double khz = 0;
        if (f >> khz && khz > 0) {
            p.ghz = khz * 1e-6;
            p.clock_from = "cpufreq cpuinfo_max_freq";
        }
    }
    if (p.ghz == 0) {
        std::ifstream in("/proc/cpuinfo");
        std::string line;
        while (std::getline(in, line))
            if (line.rfind("cpu MHz", 0) == 0) {
                p.ghz = std::stod(line.substr(line.find(':') + 1)) * 1e-3;
                p.clock_from = "/proc/cpuinfo cpu MHz (no cpufreq in sysfs)";
                break;
            }
    }
    const std::string flags = cpu_flags();
    auto has = [&](const char* f) { return flags.find(std::string(" ") + f + " ") != std::string::npos; };
    p.fma = has("fma");
    p.bits = has("avx512f") ? 512 : (has("avx2") && p.fma) ? 256 : 128;
    if (p.bits == 128) p.fma = false;
    const double flops_per_lane = p.fma ? 2.0 : 1.0;
    p.nominal_f32 = p.ghz * (p.bits / 32) * p.units * flops_per_lane;
    p.nominal_f64 = p.nominal_f32 / 2;
    if (measure) p.measured_f32 = measured_fma_gflops_f32();
    return p;
}

// "load average: 1.20 0.95 0.80 (1, 5, 15 min)": what else ran on the machine.
inline std::string load_average() {
    std::ifstream in("/proc/loadavg");
    double a = 0, b = 0, c = 0;
    if (!(in >> a >> b >> c)) return "load average: unknown";
    char buf[96];
    std::snprintf(buf, sizeof buf, "load average: %.2f %.2f %.2f (1, 5, 15 min)", a, b, c);
    return buf;
}

inline std::string Peak::describe() const {
    char buf[640];
    std::snprintf(
        buf, sizeof buf,
        "peak per core: %.3f GHz (%s) x %d float lanes (%d-bit%s) x %d FMA units (assumed) x %d flops"
        " = %.1f GFLOP/s float, %.1f double;\n  measured FMA loop on this thread: %.1f GFLOP/s float"
        " (%.0f%% of nominal)",
        ghz, clock_from.c_str(), bits / 32, bits, fma ? ", FMA" : ", no FMA", units, fma ? 2 : 1, nominal_f32,
        nominal_f64, measured_f32, nominal_f32 > 0 ? 100.0 * measured_f32 / nominal_f32 : 0.0);
    return buf;
}

}  // namespace depass::bench
