// blas.cpp -- the optional BLAS backend (include/depass/blas.hpp).
#include "depass/blas.hpp"

#include <strings.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "blas_product.hpp"
#include "check.hpp"
#include "depass/types.hpp"

#ifdef DEPASS_HAVE_BLAS
#include <cblas.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

namespace depass {

bool blas_enabled() {
#ifdef DEPASS_HAVE_BLAS
    return true;
#else
    return false;
#endif
}

namespace {
// DEPASS_BLAS=off (or 0) in the environment switches the backend off for the whole run.
bool initial_blas_products() {
    const char* env = std::getenv("DEPASS_BLAS");
    return blas_enabled() && !(env && (!strcasecmp(env, "off") || !std::strcmp(env, "0")));
}
bool g_blas_products = initial_blas_products();
}  // namespace

bool blas_products() { return g_blas_products; }

void set_blas_products(bool on) { g_blas_products = on && blas_enabled(); }

void configure_blas_threads() {
#ifdef DEPASS_HAVE_BLAS
#ifdef _OPENMP
    const int threads = omp_get_max_threads();
#endif
    // In the OpenMP build this also calls omp_set_num_threads(1): the count is put back.
    openblas_set_num_threads(1);
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
#endif
}

#ifdef DEPASS_HAVE_BLAS
namespace {
// OpenBLAS's fallbacks when it does not recognise a CPU: kernels without AVX2.
bool generic_kernels(const char* core) {
    for (const char* name :
         {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Barcelona", "Sandybridge"})
        if (core && !strcasecmp(core, name)) return true;
    return false;
}
}  // namespace
#endif

bool choose_blas_kernels() {
#if defined(DEPASS_HAVE_BLAS) && (defined(__x86_64__) || defined(__i386__))
    if (std::getenv("OPENBLAS_CORETYPE")) return false;  // the user's choice, or already chosen
    if (!generic_kernels(openblas_get_corename())) return false;
    const char* core = nullptr;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512cd"))
        core = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        core = "Haswell";
    if (!core) return false;
    setenv("OPENBLAS_CORETYPE", core, 0);
    return true;
#else
    return false;
#endif
}

template <class T>
void single_product_nt(const Mat<T>& x, const Mat<T>& w, Mat<T>& y) {
    detail::check_dim("single_product_nt", "inner dimension", w.cols(), x.cols());
    y.resize(x.rows(), w.rows());
    detail::product_nt(y, x, w);
}
template void single_product_nt(const Mat<float>&, const Mat<float>&, Mat<float>&);
template void single_product_nt(const Mat<double>&, const Mat<double>&, Mat<double>&);

std::string blas_summary() {
#ifdef DEPASS_HAVE_BLAS
    std::string config = openblas_get_config();
    while (!config.empty() && config.front() == ' ') config.erase(config.begin());
    const int kind = openblas_get_parallel();  // 0 sequential, 1 pthreads, 2 OpenMP
    const char* env = std::getenv("OPENBLAS_CORETYPE");
    if (!g_blas_products)
        return "products: Eigen (the OpenBLAS backend switched off: DEPASS_BLAS=off or set_blas_products)";
    return "products: " + config.substr(0, config.find(' ', config.find(' ') + 1)) +
           (kind == 2   ? " (OpenMP build)"
            : kind == 1 ? " (pthreads build)"
                        : " (sequential build)") +
           ", kernels " + openblas_get_corename() +
           (env ? std::string(" (OPENBLAS_CORETYPE=") + env + ")" : std::string()) + ", " +
           std::to_string(openblas_get_num_threads()) + " thread per call";
#else
    return "products: Eigen " + std::to_string(EIGEN_WORLD_VERSION) + "." +
           std::to_string(EIGEN_MAJOR_VERSION) + "." + std::to_string(EIGEN_MINOR_VERSION) +
           " (built with DEPASS_BLAS off)";
#endif
}

}  // namespace depass
