// threading.cpp -- the threading policy of include/depass/threading.hpp.
#include "depass/threading.hpp"

#include <cstdlib>
#include <string>

#include "depass/types.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef __linux__
#include <unistd.h>
#endif

namespace depass {

bool worth_threads(double work) {
#ifdef _OPENMP
    return work >= kParallelWork && omp_get_max_threads() > 1 && !omp_in_parallel();
#else
    (void)work;
    return false;
#endif
}

void configure_threads() {
    Eigen::setNbThreads(1);
#ifdef _OPENMP
    omp_set_max_active_levels(1);
#endif
}

namespace {
// Every program linking the ops links this file (worth_threads is used by them), so the policy
// is in place before main() and before any product.
const bool g_threads_configured = (configure_threads(), true);
}  // namespace

void use_passive_wait_policy(char** argv) {
    if (std::getenv("OMP_WAIT_POLICY")) return;  // the user's choice (or already re-executed)
#if defined(_OPENMP) && defined(__linux__)
    // One thread never waits for another: no need to start again.
    if (omp_get_max_threads() <= 1 || !argv || !argv[0]) return;
    setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
    execv("/proc/self/exe", argv);
    unsetenv("OMP_WAIT_POLICY");  // not started again: the runtime keeps its default
#else
    (void)argv;
#endif
}

std::string threading_summary() {
    const char* wait = std::getenv("OMP_WAIT_POLICY");
    const std::string policy =
        wait ? std::string("OMP_WAIT_POLICY=") + wait : "OMP_WAIT_POLICY unset (runtime default)";
#ifdef _OPENMP
    return "threads: " + std::to_string(omp_get_max_threads()) + " (OpenMP, max active levels " +
           std::to_string(omp_get_max_active_levels()) + "; Eigen " + std::to_string(Eigen::nbThreads()) +
           "); " + policy;
#else
    return "threads: 1 (built without OpenMP; Eigen " + std::to_string(Eigen::nbThreads()) + "); " + policy;
#endif
}

}  // namespace depass
