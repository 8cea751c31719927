// rope.cpp -- rotary position embedding, both layouts.
//
// For head dimension Dh there are Dh/2 rotation pairs; pair i at position p is
// rotated by the angle  p * f_i, with the inverse frequency f_i = theta^(-2i/Dh) or its
// scaled value (the table comes from rope_inv_freq, rope_freq.cpp):
//     (a, b) -> (a cos - b sin,  a sin + b cos)
// llama2.c ("Interleaved") pairs the coordinates (2i, 2i+1) of each head;
// Hugging Face ("Half") pairs (i, i + Dh/2). The two are the same rotation after
// permuting the rows of W_q and W_k, which is how HF checkpoints are converted.
//
// The table and the angles are in double for both scalar types; cos / sin are rounded to T.
#include <cmath>
#include <string>
#include <vector>

#include "check.hpp"
#include "depass/components.hpp"
#include "depass/ops.hpp"

namespace depass {

namespace {

// Rotates every pair of every head of every row n by the angle  sign * (pos0 + n) * inv_freq[i].
template <class T>
void rotate_pairs(const char* what, Mat<T>& x, int nheads, int Dh, RopeStyle style,
                  const std::vector<double>& inv_freq, int pos0, double sign) {
    detail::check_dim(what, "width", x.cols(), long(nheads) * Dh);
    if (Dh % 2) throw Error(std::string(what) + ": head dimension " + std::to_string(Dh) + " is odd");
    const int half = Dh / 2;
    detail::check_dim(what, "inverse-frequency table", long(inv_freq.size()), half);
    const long N = x.rows();
#pragma omp parallel for if (worth_threads(16.0 * N * x.cols()))  // sin/cos: ~16 per element
    for (long n = 0; n < N; ++n) {
        const double p = double(pos0 + n);
        for (int i = 0; i < half; ++i) {
            const double angle = sign * (p * inv_freq[i]);
            const T c = T(std::cos(angle)), s = T(std::sin(angle));
            const int ia = style == RopeStyle::Interleaved ? 2 * i : i;
            const int ib = style == RopeStyle::Interleaved ? 2 * i + 1 : i + half;
            for (int h = 0; h < nheads; ++h) {
                T* head = x.data() + n * x.cols() + long(h) * Dh;
                const T a = head[ia], b = head[ib];
                head[ia] = a * c - b * s;
                head[ib] = a * s + b * c;
            }
        }
    }
}

}  // namespace

template <class T>
void rope(Mat<T>& x, int nheads, int Dh, RopeStyle style, const std::vector<double>& inv_freq, int pos0) {
    if (style == RopeStyle::None) return;
    rotate_pairs("rope", x, nheads, Dh, style, inv_freq, pos0, +1.0);
}

// Backward of rope. Per pair, (a', b') = R (a, b) with R = [[c, -s], [s, c]], so
//   (df/da, df/db) = R^T (df/da', df/db') = (c da' + s db',  -s da' + c db'):
// the same rotation by the opposite angle (R^T = R(-angle)), applied to the gradient.
template <class T>
void rope_backward(Mat<T>& d, int nheads, int Dh, RopeStyle style, const std::vector<double>& inv_freq,
                   int pos0) {
    if (style == RopeStyle::None) return;
    rotate_pairs("rope_backward", d, nheads, Dh, style, inv_freq, pos0, -1.0);
}

// Twin: component m occupies positions first[m] .. N-1 (components.hpp), so its block of
// rows is rotated from position first[m] on.
template <class T>
void rope_decomposed(Components<T>& x, int nheads, int Dh, RopeStyle style, const std::vector<double>& inv_freq) {
    if (style == RopeStyle::None) return;
    for (int m = 0; m < x.M; ++m) {
        Mat<T> rows = x.block(m);
        rotate_pairs("rope_decomposed", rows, nheads, Dh, style, inv_freq, x.first[m], +1.0);
        x.block(m) = rows;
    }
}

template void rope_decomposed(Components<float>&, int, int, RopeStyle, const std::vector<double>&);
template void rope_decomposed(Components<double>&, int, int, RopeStyle, const std::vector<double>&);
template void rope(Mat<float>&, int, int, RopeStyle, const std::vector<double>&, int);
template void rope(Mat<double>&, int, int, RopeStyle, const std::vector<double>&, int);
template void rope_backward(Mat<float>&, int, int, RopeStyle, const std::vector<double>&, int);
template void rope_backward(Mat<double>&, int, int, RopeStyle, const std::vector<double>&, int);

}  // namespace depass
