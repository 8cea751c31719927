// attention.cpp -- causal softmax attention with grouped KV heads.
#include "depass/decompose.hpp"
#include "depass/ops.hpp"
#include "check.hpp"

#include <algorithm>
#include <cmath>

namespace depass {

// Query rows per block in attention(): each block of rows is one dense product over
// the keys it can see (the lower triangle plus the masked half of the diagonal block).
constexpr long kCausalBlock = 64;

// For each query head h (KV head g = h / (H/Hkv)):
//   S = q_h k_g^T / sqrt(Dh)          [N, N], entries with key > query masked out
//   A_h[q, :] = softmax(S[q, 0..q])   (zero for key > query)
//   context_h = A_h v_g               [N, Dh]
template <class T>
Mat<T> attention(const Mat<T>& q, const Mat<T>& k, const Mat<T>& v, int H, int Hkv, int Dh,
                 std::vector<Mat<T>>* probs) {
    const long N = q.rows();
    detail::check_shape("attention", "q", q, N, long(H) * Dh);
    detail::check_shape("attention", "k", k, N, long(Hkv) * Dh);
    detail::check_shape("attention", "v", v, N, long(Hkv) * Dh);
    if (Hkv <= 0 || H % Hkv) throw Error("attention: " + std::to_string(H) + " query heads cannot share " +
                                         std::to_string(Hkv) + " KV heads");
    const int group = H / Hkv;
    const T scale = T(1) / std::sqrt(T(Dh));
    Mat<T> ctx(N, long(H) * Dh);
    if (probs) probs->assign(H, Mat<T>());
#pragma omp parallel for schedule(static)
    for (int h = 0; h < H; ++h) {
        const int g = h / group;
        const auto q_h = q.middleCols(long(h) * Dh, Dh);
        const auto k_g = k.middleCols(long(g) * Dh, Dh), v_g = v.middleCols(long(g) * Dh, Dh);
        Mat<T> A = Mat<T>::Zero(N, N);
        // Causal: query rows [r0, r1) only see keys [0, r1). Each block of rows is a product
        // over those keys alone; inside the diagonal block the masked entries are zeroed.
        for (long r0 = 0; r0 < N; r0 += kCausalBlock) {
            const long b = std::min<long>(kCausalBlock, N - r0), r1 = r0 + b;
            auto S = A.block(r0, 0, b, r1);
            S.noalias() = q_h.middleRows(r0, b) * k_g.topRows(r1).transpose();
            // Row softmax over the keys j <= i:
            //   A[i, j] = exp(s[i, j] - max_j s[i, j]) / sum_j exp(s[i, j] - max_j s[i, j]),  s = S / sqrt(Dh)
            for (long i = r0; i < r1; ++i) {
                auto row = A.row(i).head(i + 1).array();
                row *= scale;
                row = (row - row.maxCoeff()).exp();
                row /= row.sum();
                A.row(i).segment(i + 1, r1 - i - 1).setZero();
            }
            // context_h[i] = sum_{j <= i} A[i, j] v_g[j]
            ctx.block(r0, long(h) * Dh, b, Dh).noalias() = S * v_g.topRows(r1);
        }
        if (probs) (*probs)[h] = std::move(A);
    }
    return ctx;
}

// Decomposed twin of attention: only the value path is decomposed; queries, keys,
// RoPE and the softmax are frozen in the recorded probabilities A_h.
//   ctx_m[q] (head h) = sum_k A_h[q, k] V_m[k] (KV head of h)
// Identity kept: sum_m ctx_m = sum_k A_h[q, k] (sum_m V_m[k]) = attention context,
// because the value projection (bias to the rest) already sums to the true values.
//
// Component m is stored for positions first[m].. only; since A is causal, rows and
// keys before first[m] contribute nothing, so the product for m is the lower
// triangle of A_h[f:, f:] (f = first[m]) times the component's values, read and
// written in place: one triangular product per (component, head), no copies.
template <class T>
Mat<T> attention_decomposed(const Components<T>& c, const Mat<T>& v_rows, const std::vector<Mat<T>>& probs,
                            int H, int Hkv, int Dh) {
    detail::check_shape("attention_decomposed", "values", v_rows, c.rows(), long(Hkv) * Dh);
    detail::check_dim("attention_decomposed", "number of heads in probs", long(probs.size()), H);
    const int group = H / Hkv;
    Mat<T> ctx(c.rows(), long(H) * Dh);
#pragma omp parallel for collapse(2) schedule(dynamic)
    for (int m = 0; m < c.M; ++m) {
        for (int h = 0; h < H; ++h) {
            const int f = c.first[m], n = c.N - f, kv = h / group;
            const auto A = probs[h].bottomRightCorner(n, n);                 // [n, n]
            const auto V = v_rows.block(c.offset[m], long(kv) * Dh, n, Dh);  // [n, Dh]
            ctx.block(c.offset[m], long(h) * Dh, n, Dh).noalias() = A.template triangularView<Eigen::Lower>() * V;
        }
    }
    return ctx;
}

template Mat<float> attention(const Mat<float>&, const Mat<float>&, const Mat<float>&, int, int, int,
                              std::vector<Mat<float>>*);
template Mat<double> attention(const Mat<double>&, const Mat<double>&, const Mat<double>&, int, int, int,
                               std::vector<Mat<double>>*);
template Mat<float> attention_decomposed(const Components<float>&, const Mat<float>&,
                                         const std::vector<Mat<float>>&, int, int, int);
template Mat<double> attention_decomposed(const Components<double>&, const Mat<double>&,
                                          const std::vector<Mat<double>>&, int, int, int);

}  // namespace depass
