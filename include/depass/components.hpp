// components.hpp -- a decomposed state: M additive components of an [N, D] state.
//
// A decomposition of a residual state S [N, D] is a set of M components X_m [N, D]
// with  sum_m X_m = S  (completeness). The last component is always the *rest*: it
// absorbs every bias added after the cut and whatever the chosen components do not
// cover (depass-math.md section 2).
//
// Storage. Components are kept as one row-major matrix X whose rows are (m, n)
// pairs, component-major. Component m is known to be exactly zero at positions
// n < first[m] (token level: token j does not exist before position j), and those
// rows are not stored: component m occupies rows offset[m] .. offset[m+1]-1 for
// positions first[m] .. N-1. Every row-wise op (norms, linear layers, the MLP) is
// then ONE matrix product over all stored rows; the zero blocks cost nothing.
//
// The decomposed twin of every op (ops.hpp) takes Components and returns Components
// of the same layout (the same M, N, first[]), possibly with another width D.
//
// Slices. A run split over processes (distributed.hpp) keeps a contiguous block of the
// components on each: components m0 .. m0 + M - 1 of `total`, stored exactly as above. Only
// the slice that ends at `total` holds the rest, so the ops add a bias to the rest's rows
// through add_to_rest(), which does nothing on the other slices. A whole decomposition is the
// slice m0 = 0, total = M.
#pragma once

#include <string>
#include <vector>

#include "depass/types.hpp"

namespace depass {

template <class T>
struct Components {
    int M = 0, N = 0, D = 0;
    std::vector<int> first;          // [M] first stored position of component m
    std::vector<int64_t> offset;     // [M+1] first row of component m in X
    std::vector<int> row_pos;        // [R] position n of each stored row
    Mat<T> X;                        // [R, D] stored rows
    std::vector<std::string> names;  // [M]; names.back() == "rest" (when the slice holds it)
    int m0 = 0;                      // index of component 0 in the whole decomposition
    int total = 0;                   // components of the whole decomposition

    // Empty components (all zero) with the given first positions (first.back() must be 0).
    static Components zeros(int N, int D, std::vector<int> first, std::vector<std::string> names);
    // An empty slice: components m0 .. m0 + first.size() - 1 of `total` (zero of them allowed);
    // when it ends at `total` it holds the rest (then first.back() must be 0).
    static Components slice_zeros(int N, int D, std::vector<int> first, std::vector<std::string> names,
                                  int m0, int total);
    bool has_rest() const { return m0 + M == total && M > 0; }
    int rest() const { return M - 1; }  // the rest's index here (when has_rest())
    // y.middleRows of the rest += b in every row (y has this layout's rows); nothing on a slice
    // without the rest.
    template <class Y, class B>
    void add_to_rest(Y& y, const B& b) const {
        if (has_rest()) y.middleRows(offset[rest()], N).rowwise() += b.transpose();
    }
    int64_t rows() const { return offset.back(); }
    // Rows of component m (positions first[m] .. N-1).
    auto block(int m) { return X.middleRows(offset[m], offset[m + 1] - offset[m]); }
    auto block(int m) const { return X.middleRows(offset[m], offset[m + 1] - offset[m]); }
    // Row index of (m, n), or -1 when n < first[m] (a known-zero row).
    int64_t row(int m, int n) const { return n < first[m] ? -1 : offset[m] + (n - first[m]); }

    Mat<T> sum() const;                  // [N, D] sum over components
    Mat<T> component(int m) const;       // [N, D] dense (zeros before first[m])
    Components like(Mat<T> newX) const;  // same layout, new rows [R, D'] (the width may differ)
};

// Residual add, the twin of h + y: X_m(out) = X_m + Y_m for every component (same layout).
// Identity kept: sum_m X_m(out) = S + sum_m Y_m.
template <class T>
void residual_add(Components<T>& x, const Components<T>& y);

}  // namespace depass
