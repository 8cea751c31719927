// blas.hpp -- the optional BLAS backend of the large matrix products (build option DEPASS_BLAS,
// see README.md). With it, the tiles of x W^T (src/ops/linear.cpp) and the chunk products of the
// decomposed MLP (src/ops/mlp.cpp) are cblas_?gemm calls into OpenBLAS; every other product
// stays an Eigen product. OpenBLAS runs on one thread (set when the library is loaded, like
// Eigen): the threads are depass's own, one per output tile, so results stay independent of
// the thread count (include/depass/threading.hpp, point 3).
#pragma once

#include <string>

#include "depass/types.hpp"

namespace depass {

// Whether this build sends the large products to OpenBLAS.
bool blas_enabled();

// Whether the large products go to OpenBLAS now: blas_enabled(), unless switched off by
// DEPASS_BLAS=off (or 0) in the environment when the library is loaded, or by
// set_blas_products(false), which gives exactly the products (and tiles) of a build without the
// backend; the benchmarks compare both in one run. Switch only between calls, never while
// another thread computes.
bool blas_products();
void set_blas_products(bool on);

// y = x w^T as ONE product on the calling thread, through whichever backend blas_products()
// selects (one cblas_?gemm call, or one Eigen product): no tiles, no threads. This is the
// library's best case on a large product, the ceiling the benchmarks compare the decomposed pass
// with (bench/bench_decompose.cpp); the library's own products go through linear() instead.
template <class T>
void single_product_nt(const Mat<T>& x, const Mat<T>& w, Mat<T>& y);

// One line for logs and benchmark headers, e.g.
// "products: OpenBLAS 0.3.21 (OpenMP build), kernels SkylakeX, 1 thread per call" or
// "products: Eigen 3.4.0 (built with DEPASS_BLAS off)".
std::string blas_summary();

// OpenBLAS picks its kernels for the CPU when it is loaded. Debian 12's OpenBLAS 0.3.21 does not
// know newer CPUs (e.g. Intel family 6 model 0xCF) and then falls back to SSE3 kernels, five
// times slower than Eigen's. When that happened, OPENBLAS_CORETYPE is unset and the CPU has
// AVX-512 (or AVX2 and FMA), this sets OPENBLAS_CORETYPE to the matching kernels (SkylakeX,
// Haswell) and returns true: the program must then be started again for the library to read it
// (use_passive_wait_policy does). False in every other case, and always without the backend.
bool choose_blas_kernels();

// Sets the OpenBLAS library to one thread per call, keeping OpenMP's thread count (OpenBLAS's
// OpenMP build sets both). Runs when the library is loaded; calling it again is harmless.
void configure_blas_threads();

}  // namespace depass
