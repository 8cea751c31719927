// blas_product.hpp -- y = x w^T for the large products, through OpenBLAS when the build has it
// (include/depass/blas.hpp), else Eigen.
//
// Why cblas_?gemm at these two sites and not EIGEN_USE_BLAS: EIGEN_USE_BLAS sends every Eigen
// product above a tiny size to BLAS, in every file that includes Eigen (the tests and programs
// too, which would all have to be compiled the same way), and a whole product called outside our
// parallel regions would be threaded by OpenBLAS itself, split as it chooses. Here only the
// products that carry the work go to BLAS: the fixed output tiles of x W^T (linear.cpp) and the
// chunk products of the decomposed MLP (mlp.cpp). Each call runs on one thread (OpenBLAS is set
// to one thread when the library is loaded) and computes whole output blocks that depend on the
// shapes only, so which thread computes a block never changes its value.
#pragma once

#include <type_traits>

#include "depass/blas.hpp"
#include "depass/types.hpp"

#ifdef DEPASS_HAVE_BLAS
#include <cblas.h>
#endif

namespace depass::detail {

// y = x w^T for row-major blocks: x [r, k], w [c, k], y [r, c] (shapes are checked by the callers).
template <class Y, class X, class W>
void product_nt(Y&& y, const X& x, const W& w) {
#ifdef DEPASS_HAVE_BLAS
    if (!blas_products()) {
        y.noalias() = x * w.transpose();
        return;
    }
    using T = typename std::decay_t<Y>::Scalar;
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "float or double");
    static_assert(std::decay_t<Y>::IsRowMajor && X::IsRowMajor && W::IsRowMajor, "row-major blocks");
    static_assert(std::decay_t<Y>::InnerStrideAtCompileTime == 1 && X::InnerStrideAtCompileTime == 1 &&
                      W::InnerStrideAtCompileTime == 1,
                  "contiguous rows");
    const int r = int(x.rows()), c = int(w.rows()), k = int(x.cols());
    if (r == 0 || c == 0) return;
    if (k == 0) {
        y.setZero();
        return;
    }
    if constexpr (std::is_same_v<T, float>)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r, c, k, 1.0f, x.data(), int(x.outerStride()),
                    w.data(), int(w.outerStride()), 0.0f, y.data(), int(y.outerStride()));
    else
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r, c, k, 1.0, x.data(), int(x.outerStride()),
                    w.data(), int(w.outerStride()), 0.0, y.data(), int(y.outerStride()));
#else
    y.noalias() = x * w.transpose();
#endif
}

}  // namespace depass::detail
