// linear.cpp -- the linear layer y = x W^T + b.
//
// Weights keep the (out, in) layout of PyTorch's nn.Linear. GPT-2 checkpoints
// store Conv1D weights as (in, out); the loader transposes those once, so this
// is the only linear op.
#include "depass/decompose.hpp"
#include "depass/ops.hpp"
#include "check.hpp"

namespace depass {

template <class T>
Mat<T> linear(const Mat<T>& x, const Mat<T>& W, const Vec<T>& b) {
    detail::check_dim("linear", "input width", x.cols(), W.cols());
    Mat<T> y = x * W.transpose();
    if (b.size()) {
        detail::check_dim("linear", "bias length", b.size(), W.rows());
        y.rowwise() += b.transpose();
    }
    return y;
}

// Decomposed twin of linear: each component goes through W, the bias goes to the rest.
//   Y_m = X_m W^T  (+ b for the rest).     rows [R, in] -> [R, out]
// Identity kept: sum_m Y_m = (sum_m X_m) W^T + b = linear(S).
// One matrix product over all stored rows of all components.
template <class T>
Mat<T> linear_decomposed(const Components<T>& c, const Mat<T>& rows, const Mat<T>& W, const Vec<T>& b) {
    detail::check_shape("linear_decomposed", "rows", rows, c.rows(), W.cols());
    Mat<T> y(rows.rows(), W.rows());
    y.noalias() = rows * W.transpose();
    if (b.size()) {
        detail::check_dim("linear_decomposed", "bias length", b.size(), W.rows());
        y.middleRows(c.offset[c.rest()], c.N).rowwise() += b.transpose();
    }
    return y;
}

template Mat<float> linear(const Mat<float>&, const Mat<float>&, const Vec<float>&);
template Mat<double> linear(const Mat<double>&, const Mat<double>&, const Vec<double>&);
template Mat<float> linear_decomposed(const Components<float>&, const Mat<float>&, const Mat<float>&,
                                      const Vec<float>&);
template Mat<double> linear_decomposed(const Components<double>&, const Mat<double>&, const Mat<double>&,
                                       const Vec<double>&);

}  // namespace depass
