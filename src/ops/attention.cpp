// attention.cpp -- causal softmax attention with grouped KV heads.
#include <algorithm>
#include <cmath>

#include "check.hpp"
#include "depass/ops.hpp"

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
    if (Hkv <= 0 || H % Hkv)
        throw Error("attention: " + std::to_string(H) + " query heads cannot share " + std::to_string(Hkv) +
                    " KV heads");
    const int group = H / Hkv;
    const T scale = T(1) / std::sqrt(T(Dh));
    Mat<T> ctx(N, long(H) * Dh);
    if (probs) probs->assign(H, Mat<T>());
#pragma omp parallel for schedule(static) if (worth_threads(double(H) * N * N * Dh))
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
            //   A[i, j] = exp(s[i, j] - max_j s[i, j]) / sum_j exp(s[i, j] - max_j s[i, j]),  s = S /
            //   sqrt(Dh)
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

// Backward of attention, per query head h reading KV head g (scale = 1/sqrt(Dh)):
//   ctx_h = A v_g                     ->  dA = dctx_h v_g^T,   dv_g += A^T dctx_h
//   A[i, :] = softmax(s[i, :])        ->  ds[i, j] = A[i, j] (dA[i, j] - sum_k A[i, k] dA[i, k])
//                                         (masked entries have A = 0, so ds = 0 there)
//   s = scale q_h k_g^T               ->  dq_h = scale ds k_g,  dk_g += scale ds^T q_h
// The query heads of a group share k_g and v_g, so their gradients add up.
template <class T>
void attention_backward(const Mat<T>& q, const Mat<T>& k, const Mat<T>& v, const std::vector<Mat<T>>& probs,
                        const Mat<T>& dctx, int H, int Hkv, int Dh, Mat<T>& dq, Mat<T>& dk, Mat<T>& dv) {
    const long N = q.rows();
    detail::check_shape("attention_backward", "q", q, N, long(H) * Dh);
    detail::check_shape("attention_backward", "k", k, N, long(Hkv) * Dh);
    detail::check_shape("attention_backward", "v", v, N, long(Hkv) * Dh);
    detail::check_shape("attention_backward", "dctx", dctx, N, long(H) * Dh);
    detail::check_dim("attention_backward", "number of heads in probs", long(probs.size()), H);
    if (Hkv <= 0 || H % Hkv)
        throw Error("attention_backward: " + std::to_string(H) + " query heads cannot share " +
                    std::to_string(Hkv) + " KV heads");
    const int group = H / Hkv;
    const T scale = T(1) / std::sqrt(T(Dh));
    dq = Mat<T>::Zero(N, long(H) * Dh);
    dk = Mat<T>::Zero(N, long(Hkv) * Dh);
    dv = Mat<T>::Zero(N, long(Hkv) * Dh);
    for (int h = 0; h < H; ++h) {
        const int g = h / group;
        const Mat<T>& A = probs[h];
        detail::check_shape("attention_backward", "probs[h]", A, N, N);
        const auto q_h = q.middleCols(long(h) * Dh, Dh);
        const auto k_g = k.middleCols(long(g) * Dh, Dh), v_g = v.middleCols(long(g) * Dh, Dh);
        const auto dctx_h = dctx.middleCols(long(h) * Dh, Dh);
        const Mat<T> dA = dctx_h * v_g.transpose();  // [N, N]
        dv.middleCols(long(g) * Dh, Dh) += A.transpose() * dctx_h;
        const Vec<T> row_dot = A.cwiseProduct(dA).rowwise().sum();                  // sum_k A[i,k] dA[i,k]
        const Mat<T> ds = (A.array() * (dA.colwise() - row_dot).array()).matrix();  // [N, N]
        dq.middleCols(long(h) * Dh, Dh) = scale * (ds * k_g);
        dk.middleCols(long(g) * Dh, Dh) += scale * (ds.transpose() * q_h);
    }
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
Components<T> attention_decomposed(const Components<T>& c, const std::vector<Mat<T>>& probs, int H, int Hkv,
                                   int Dh) {
    const Mat<T>& v_rows = c.X;
    detail::check_shape("attention_decomposed", "values", v_rows, c.rows(), long(Hkv) * Dh);
    detail::check_dim("attention_decomposed", "number of heads in probs", long(probs.size()), H);
    const int group = H / Hkv;
    Mat<T> ctx(c.rows(), long(H) * Dh);
#pragma omp parallel for collapse(2) schedule(dynamic) if (worth_threads(0.5 * c.rows() * c.N * H * Dh))
    for (int m = 0; m < c.M; ++m) {
        for (int h = 0; h < H; ++h) {
            const int f = c.first[m], n = c.N - f, kv = h / group;
            const auto A = probs[h].bottomRightCorner(n, n);                 // [n, n]
            const auto V = v_rows.block(c.offset[m], long(kv) * Dh, n, Dh);  // [n, Dh]
            ctx.block(c.offset[m], long(h) * Dh, n, Dh).noalias() =
                A.template triangularView<Eigen::Lower>() * V;
        }
    }
    return c.like(std::move(ctx));
}

// The QK twin (ops.hpp). Per query head h: the query rows of every component at the chosen
// positions, stacked [M * Nq, Dh], times the key rows of every component, stacked [M * N, Dh],
// transposed: one product gives every pair's logits at once,
//   G[(m, i), (m', j)] = Q_m,h[queries[i]] . K_m',g[j] / sqrt(Dh),
// and the causal entries (j <= queries[i]) are kept. A component's rows before its first
// position are zero (components.hpp), so they are zero here too.
template <class T>
Tensor<T> qk_logits_decomposed(const Components<T>& q, const Components<T>& k, int H, int Hkv, int Dh,
                               const std::vector<int>& heads_in, const std::vector<int>& queries_in) {
    const int M = q.M, N = q.N;
    if (k.M != M || k.N != N)
        throw Error("qk_logits_decomposed: " + std::to_string(M) + " query components over " +
                    std::to_string(N) + " positions but " + std::to_string(k.M) + " key components over " +
                    std::to_string(k.N));
    detail::check_dim("qk_logits_decomposed", "query width", q.D, long(H) * Dh);
    detail::check_dim("qk_logits_decomposed", "key width", k.D, long(Hkv) * Dh);
    if (Hkv <= 0 || H % Hkv)
        throw Error("qk_logits_decomposed: " + std::to_string(H) + " query heads cannot share " +
                    std::to_string(Hkv) + " KV heads");
    std::vector<int> heads = heads_in, queries = queries_in;
    if (heads.empty())
        for (int h = 0; h < H; ++h) heads.push_back(h);
    if (queries.empty())
        for (int n = 0; n < N; ++n) queries.push_back(n);
    for (int h : heads)
        if (h < 0 || h >= H)
            throw Error("qk_logits_decomposed: head " + std::to_string(h) + " is out of range [0, " +
                        std::to_string(H) + ")");
    for (int n : queries)
        if (n < 0 || n >= N)
            throw Error("qk_logits_decomposed: query position " + std::to_string(n) + " is out of range [0, " +
                        std::to_string(N) + ")");
    const int Hs = int(heads.size()), Nq = int(queries.size()), group = H / Hkv;
    const T scale = T(1) / std::sqrt(T(Dh));
    Tensor<T> out({Hs, M, M, Nq, N});
    const size_t per_head = size_t(M) * M * Nq * N;
#pragma omp parallel for schedule(static) if (worth_threads(double(Hs) * M * Nq * M * N * Dh))
    for (int hi = 0; hi < Hs; ++hi) {
        const int h = heads[size_t(hi)], g = h / group;
        Mat<T> Q = Mat<T>::Zero(long(M) * Nq, Dh), K = Mat<T>::Zero(long(M) * N, Dh);
        for (int m = 0; m < M; ++m) {
            for (int i = 0; i < Nq; ++i) {
                const int64_t r = q.row(m, queries[size_t(i)]);
                if (r >= 0) Q.row(long(m) * Nq + i) = q.X.row(r).segment(long(h) * Dh, Dh);
            }
            for (int j = 0; j < N; ++j) {
                const int64_t r = k.row(m, j);
                if (r >= 0) K.row(long(m) * N + j) = k.X.row(r).segment(long(g) * Dh, Dh);
            }
        }
        Mat<T> G(long(M) * Nq, long(M) * N);
        G.noalias() = Q * K.transpose();
        T* o = out.data.data() + size_t(hi) * per_head;
        for (int m = 0; m < M; ++m)
            for (int m2 = 0; m2 < M; ++m2)
                for (int i = 0; i < Nq; ++i)
                    for (int j = 0; j <= queries[size_t(i)]; ++j)
                        o[((size_t(m) * M + m2) * Nq + i) * N + j] =
                            scale * G(long(m) * Nq + i, long(m2) * N + j);
    }
    return out;
}

template Mat<float> attention(const Mat<float>&, const Mat<float>&, const Mat<float>&, int, int, int,
                              std::vector<Mat<float>>*);
template Mat<double> attention(const Mat<double>&, const Mat<double>&, const Mat<double>&, int, int, int,
                               std::vector<Mat<double>>*);
template void attention_backward(const Mat<float>&, const Mat<float>&, const Mat<float>&,
                                 const std::vector<Mat<float>>&, const Mat<float>&, int, int, int,
                                 Mat<float>&, Mat<float>&, Mat<float>&);
template void attention_backward(const Mat<double>&, const Mat<double>&, const Mat<double>&,
                                 const std::vector<Mat<double>>&, const Mat<double>&, int, int, int,
                                 Mat<double>&, Mat<double>&, Mat<double>&);
template Components<float> attention_decomposed(const Components<float>&, const std::vector<Mat<float>>&, int,
                                                int, int);
template Components<double> attention_decomposed(const Components<double>&, const std::vector<Mat<double>>&,
                                                 int, int, int);

template Tensor<float> qk_logits_decomposed(const Components<float>&, const Components<float>&, int, int, int,
                                            const std::vector<int>&, const std::vector<int>&);
template Tensor<double> qk_logits_decomposed(const Components<double>&, const Components<double>&, int, int,
                                             int, const std::vector<int>&, const std::vector<int>&);

}  // namespace depass
