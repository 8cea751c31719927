// linear.cpp -- the linear layer y = x W^T + b.
//
// Weights keep the (out, in) layout of PyTorch's nn.Linear. GPT-2 checkpoints
// store Conv1D weights as (in, out); the loader transposes those once, so this
// is the only linear op.
#include <algorithm>

#include "blas_product.hpp"
#include "check.hpp"
#include "depass/ops.hpp"

namespace depass {

namespace {

// Output tiles of the large products below. The sizes are fixed, so every output
// value is computed the same way whatever the number of threads.
constexpr long kTileRows = 64, kTileCols = 256;
// With the BLAS backend (depass/blas.hpp) each tile is one cblas_?gemm call, which packs both
// operands first: larger tiles keep that cost small.
constexpr long kBlasTileRows = 256, kBlasTileCols = 512;
// Products with fewer multiply-adds than kTiledProductWork (threading.hpp) are left whole to Eigen.

// y = x W^T. A large product is split into output tiles [kTileRows, kTileCols] spread
// over the threads:  y[r0:r1, c0:c1] = x[r0:r1] W[c0:c1]^T.  Each tile is one
// single-threaded product, so the threads never wait for each other inside a product
// (which stalls badly on a loaded machine) and each owns whole tiles.
template <class T>
void product_xwt(const Mat<T>& x, const Mat<T>& W, Mat<T>& y) {
    const long N = x.rows(), O = W.rows();
    if (double(N) * double(O) * double(x.cols()) < kTiledProductWork) {
        y.noalias() = x * W.transpose();
        return;
    }
    const bool blas = blas_products();
    const long tile_r = blas ? kBlasTileRows : kTileRows, tile_c = blas ? kBlasTileCols : kTileCols;
    const long tiles_r = (N + tile_r - 1) / tile_r, tiles_c = (O + tile_c - 1) / tile_c;
    // Called from parallel code too (the evaluations): then the tiles run on the calling thread.
#pragma omp parallel for collapse(2) \
    schedule(dynamic) if (worth_threads(double(N) * double(O) * double(x.cols())))
    for (long i = 0; i < tiles_r; ++i) {
        for (long j = 0; j < tiles_c; ++j) {
            const long r0 = i * tile_r, c0 = j * tile_c;
            const long r = std::min(tile_r, N - r0), c = std::min(tile_c, O - c0);
            detail::product_nt(y.block(r0, c0, r, c), x.middleRows(r0, r), W.middleRows(c0, c));
        }
    }
}

}  // namespace

template <class T>
Mat<T> linear(const Mat<T>& x, const Mat<T>& W, const Vec<T>& b) {
    detail::check_dim("linear", "input width", x.cols(), W.cols());
    Mat<T> y(x.rows(), W.rows());
    product_xwt(x, W, y);
    if (b.size()) {
        detail::check_dim("linear", "bias length", b.size(), W.rows());
        y.rowwise() += b.transpose();
    }
    return y;
}

// Backward of linear. y[n, o] = sum_i x[n, i] W[o, i] + b[o], so
//   df/dx[n, i] = sum_o df/dy[n, o] W[o, i]     dx = dy W
//   df/dW[o, i] = sum_n df/dy[n, o] x[n, i]     dW = dy^T x
//   df/db[o]    = sum_n df/dy[n, o]
template <class T>
Mat<T> linear_backward(const Mat<T>& x, const Mat<T>& W, const Mat<T>& dy, Mat<T>* dW, Vec<T>* db) {
    detail::check_dim("linear_backward", "input width", x.cols(), W.cols());
    detail::check_shape("linear_backward", "dy", dy, x.rows(), W.rows());
    if (dW) *dW = dy.transpose() * x;
    if (db) *db = dy.colwise().sum().transpose();
    return dy * W;
}

// Decomposed twin of linear: each component goes through W, the bias goes to the rest.
//   Y_m = X_m W^T  (+ b for the rest).     rows [R, in] -> [R, out]
// Identity kept: sum_m Y_m = (sum_m X_m) W^T + b = linear(S).
// One matrix product over all stored rows of all components.
template <class T>
Components<T> linear_decomposed(const Components<T>& c, const Mat<T>& W, const Vec<T>& b) {
    detail::check_dim("linear_decomposed", "input width", c.D, W.cols());
    Mat<T> y(c.rows(), W.rows());
    product_xwt(c.X, W, y);
    if (b.size()) {
        detail::check_dim("linear_decomposed", "bias length", b.size(), W.rows());
        c.add_to_rest(y, b);
    }
    return c.like(std::move(y));
}

template Mat<float> linear(const Mat<float>&, const Mat<float>&, const Vec<float>&);
template Mat<double> linear(const Mat<double>&, const Mat<double>&, const Vec<double>&);
template Mat<float> linear_backward(const Mat<float>&, const Mat<float>&, const Mat<float>&, Mat<float>*,
                                    Vec<float>*);
template Mat<double> linear_backward(const Mat<double>&, const Mat<double>&, const Mat<double>&, Mat<double>*,
                                     Vec<double>*);
template Components<float> linear_decomposed(const Components<float>&, const Mat<float>&, const Vec<float>&);
template Components<double> linear_decomposed(const Components<double>&, const Mat<double>&,
                                              const Vec<double>&);

}  // namespace depass
