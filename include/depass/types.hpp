// types.hpp -- the one place Eigen is included, plus the small value types every
// other header uses.
//
// Conventions (see README "Conventions"):
//   * Row-major matrices everywhere, matching numpy / PyTorch memory order.
//   * Dimension letters: N tokens, D hidden, H / Hkv heads, Dh head dim,
//     I MLP width, V vocab, L layers, M components.
//   * Linear weights are kept in the (out, in) layout and applied as x * W^T.
//     (GPT-2 stores Conv1D weights as (in, out); the loader transposes them once.)
//   * The scalar type T is a template parameter, instantiated for float and double.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace depass {

// Row-major dynamic matrix, the workhorse: activations are [N, D], weights [out, in].
template <class T>
using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
// Column vector (norm gains, biases, per-token factors).
template <class T>
using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;
// Views into existing storage (no copy).
template <class T>
using MatMap = Eigen::Map<Mat<T>>;
template <class T>
using ConstMatMap = Eigen::Map<const Mat<T>>;
// A strided row-major view: `rows x cols` with `stride` elements between rows.
template <class T>
using StridedMap = Eigen::Map<Mat<T>, 0, Eigen::OuterStride<>>;
template <class T>
using ConstStridedMap = Eigen::Map<const Mat<T>, 0, Eigen::OuterStride<>>;

// Every error the library raises. The message names the file / tensor / field,
// the expected and the actual value. Library code never prints or exits.
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A dense n-dimensional array in row-major (C) order: the exchange format for
// files (.safetensors, .npy) and for stacked results such as [L, H, N, N].
template <class T>
struct Tensor {
    std::vector<int64_t> shape;
    std::vector<T> data;

    Tensor() = default;
    explicit Tensor(std::vector<int64_t> s) : shape(std::move(s)), data(numel(shape), T(0)) {}

    static size_t numel(const std::vector<int64_t>& s) {
        size_t n = 1;
        for (int64_t d : s) n *= static_cast<size_t>(d);
        return n;
    }
    size_t size() const { return data.size(); }
    int64_t dim(size_t i) const { return shape.at(i); }
};

// "[2, 16, 64]" -- for error messages and reports.
std::string shape_str(const std::vector<int64_t>& shape);

}  // namespace depass
