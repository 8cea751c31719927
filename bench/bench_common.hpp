// Timing, memory and setup helpers shared by the benchmark programs.
#pragma once

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "depass/allocator.hpp"
#include "depass/blas.hpp"
#include "depass/config.hpp"
#include "depass/threading.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef __GLIBC__
#include <malloc.h>
#endif

namespace depass::bench {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Median wall times of each callable over rounds in which every callable runs once,
// in order (so all see the same load on a shared machine). The caller warms up.
// When the calls are long, fewer rounds are made (at least 3).
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

inline int max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

inline void set_threads(int threads) {
#ifdef _OPENMP
    omp_set_num_threads(std::max(1, threads));
#else
    (void)threads;
#endif
}

// BOS, then N - 1 ids drawn uniformly from [3, V).
inline std::vector<int> random_ids(const Config& c, int N, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int> pick(3, c.V - 1);
    std::vector<int> ids(N);
    ids[0] = c.bos_id;
    for (int n = 1; n < N; ++n) ids[n] = pick(rng);
    return ids;
}

// The allocator setting of depass (depass/allocator.hpp) unless --system-malloc. Returns the
// header lines: the allocator, then the threads (depass/threading.hpp).
inline std::string configure_malloc(bool system_default) {
    if (!system_default) keep_freed_memory();
    return allocator_summary() + (system_default ? " (--system-malloc)" : "") + "\n" + threading_summary() + "\n" +
           blas_summary();
}

// Hands freed heap memory back to the system, so that the resident set is the live set.
inline void release_free_memory() {
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

// A figure from /proc/self/status ("VmRSS:", "VmHWM:"), in bytes; -1 when unavailable.
inline long long proc_status_bytes(const char* key) {
    std::ifstream in("/proc/self/status");
    std::string line;
    const size_t klen = std::strlen(key);
    while (std::getline(in, line))
        if (line.compare(0, klen, key) == 0) return std::atoll(line.c_str() + klen + 1) * 1024LL;
    return -1;
}

// Resets the peak resident set (VmHWM) to the current one; false when not supported.
inline bool reset_peak_rss() {
    std::ofstream out("/proc/self/clear_refs");
    if (!out) return false;
    out << "5";
    out.close();
    return bool(out);
}

// The whole-process peak resident set (getrusage), in bytes.
inline long long ru_maxrss_bytes() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return (long long)u.ru_maxrss * 1024LL;
}

inline double mib(double bytes) { return bytes / (1024.0 * 1024.0); }

// Keeps results observable so that no timed work is optimised away.
inline volatile double g_sink = 0;

}  // namespace depass::bench
