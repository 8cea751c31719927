// threading.cpp -- the threading policy of include/depass/threading.hpp.
#include "depass/threading.hpp"

#include <cstdlib>
#include <string>

#include "depass/blas.hpp"
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
    configure_blas_threads();  // OpenBLAS too: one thread per call
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
    if (!argv || !argv[0]) return;
    // OpenBLAS chooses its kernels when it is loaded, as libgomp reads its wait policy when it is:
    // both come from the environment, and one new start applies both (depass/blas.hpp).
    const bool blas_kernels = choose_blas_kernels();
    bool wait_policy = false;
#if defined(_OPENMP) && defined(__linux__)
    // The user's choice (or already re-executed) is kept; one thread never waits for another.
    wait_policy = !std::getenv("OMP_WAIT_POLICY") && omp_get_max_threads() > 1;
    if (wait_policy) setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
#endif
#ifdef __linux__
    if (wait_policy || blas_kernels) execv("/proc/self/exe", argv);
#endif
    // Not started again: the runtimes keep their defaults.
    if (wait_policy) unsetenv("OMP_WAIT_POLICY");
    if (blas_kernels) unsetenv("OPENBLAS_CORETYPE");
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
