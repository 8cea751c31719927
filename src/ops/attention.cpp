// attention.cpp -- causal softmax attention with grouped KV heads.
#include "depass/decompose.hpp"
#include "depass/ops.hpp"
#include "check.hpp"

#include <cmath>

namespace depass {

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
        Mat<T> A = (q.middleCols(long(h) * Dh, Dh) * k.middleCols(long(g) * Dh, Dh).transpose()) * scale;
        for (long i = 0; i < N; ++i) {
            auto row = A.row(i);
            const T mx = row.head(i + 1).maxCoeff();
            T sum = 0;
            for (long j = 0; j <= i; ++j) sum += (row[j] = std::exp(row[j] - mx));
            row.head(i + 1) /= sum;
            row.tail(N - i - 1).setZero();
        }
        ctx.middleCols(long(h) * Dh, Dh).noalias() = A * v.middleCols(long(g) * Dh, Dh);
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
// keys before first[m] contribute nothing, so the product for m uses the lower
// triangle of A_h[f:, f:]. Consecutive components with the same first position are
// stacked side by side so that each (group, head) is ONE triangular matrix product
// [N-f, N-f] x [N-f, G*Dh] rather than G small ones.
template <class T>
Mat<T> attention_decomposed(const Components<T>& c, const Mat<T>& v_rows, const std::vector<Mat<T>>& probs,
                            int H, int Hkv, int Dh) {
    detail::check_shape("attention_decomposed", "values", v_rows, c.rows(), long(Hkv) * Dh);
    detail::check_dim("attention_decomposed", "number of heads in probs", long(probs.size()), H);
    const int group = H / Hkv;
    constexpr int kMaxStack = 32;  // components stacked per product (bounds the gather buffer)
    struct Group { int m0, m1; };
    std::vector<Group> groups;
    for (int m = 0; m < c.M;) {
        int e = m + 1;
        while (e < c.M && e - m < kMaxStack && c.first[e] == c.first[m]) ++e;
        groups.push_back({m, e});
        m = e;
    }
    Mat<T> ctx(c.rows(), long(H) * Dh);
    const long G = long(groups.size());
#pragma omp parallel for collapse(2) schedule(dynamic)
    for (long gi = 0; gi < G; ++gi) {
        for (int h = 0; h < H; ++h) {
            const Group& grp = groups[gi];
            const int f = c.first[grp.m0], n = c.N - f, kv = h / group;
            const int width = (grp.m1 - grp.m0) * Dh;
            Mat<T> stacked(n, width);
            for (int m = grp.m0; m < grp.m1; ++m)
                stacked.middleCols((m - grp.m0) * Dh, Dh) = v_rows.block(c.offset[m], long(kv) * Dh, n, Dh);
            Mat<T> mixed(n, width);
            mixed.noalias() = probs[h].bottomRightCorner(n, n).template triangularView<Eigen::Lower>() * stacked;
            for (int m = grp.m0; m < grp.m1; ++m)
                ctx.block(c.offset[m], long(h) * Dh, n, Dh) = mixed.middleCols((m - grp.m0) * Dh, Dh);
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
