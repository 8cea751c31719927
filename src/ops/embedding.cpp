// embedding.cpp -- token (+ learned position) embedding and the unembedding.
#include "check.hpp"
#include "depass/ops.hpp"

namespace depass {

// x[n] = E[ids[n]]  (+ P[n] for models with learned positions, GPT-2).
template <class T>
Mat<T> embed(const Mat<T>& tok_emb, const Mat<T>& pos_emb, const std::vector<int>& ids) {
    const long N = static_cast<long>(ids.size()), D = tok_emb.cols();
    if (pos_emb.size()) {
        detail::check_dim("embed", "pos_emb columns", pos_emb.cols(), D);
        if (pos_emb.rows() < N) detail::check_dim("embed", "number of positions", N, pos_emb.rows());
    }
    Mat<T> x(N, D);
    for (long n = 0; n < N; ++n) {
        const int id = ids[n];
        if (id < 0 || id >= tok_emb.rows())
            throw Error("embed: token id " + std::to_string(id) + " at position " + std::to_string(n) +
                        " is outside the vocabulary [0, " + std::to_string(tok_emb.rows()) + ")");
        x.row(n) = tok_emb.row(id);
        if (pos_emb.size()) x.row(n) += pos_emb.row(n);
    }
    return x;
}

// Backward of embed. x[n] = E[ids[n]] (+ P[n]) is a row lookup, so each input row's
// gradient lands on the embedding row it was read from:
//   df/dE[v] = sum_{n : ids[n] = v} df/dx[n]
// (a token that occurs twice collects both gradients; df/dP[n] = df/dx[n]).
template <class T>
Mat<T> embed_backward(const Mat<T>& dx, const std::vector<int>& ids, long V) {
    detail::check_dim("embed_backward", "gradient rows", dx.rows(), long(ids.size()));
    Mat<T> dE = Mat<T>::Zero(V, dx.cols());
    for (size_t n = 0; n < ids.size(); ++n) {
        if (ids[n] < 0 || ids[n] >= V)
            throw Error("embed_backward: token id " + std::to_string(ids[n]) + " at position " +
                        std::to_string(n) + " is outside the vocabulary [0, " + std::to_string(V) + ")");
        dE.row(ids[n]) += dx.row(long(n));
    }
    return dE;
}

// logits[n, v] = W_U[v] . x[n]
template <class T>
Mat<T> unembed(const Mat<T>& x, const Mat<T>& W_U) {
    detail::check_dim("unembed", "x columns", x.cols(), W_U.cols());
    // The product of linear(): tiled over the threads (and through BLAS, depass/blas.hpp) when large.
    return linear(x, W_U, Vec<T>());
}

// Backward of unembed. logits[n, v] = sum_d x[n, d] W_U[v, d], so
//   df/dx[n, d] = sum_v df/dlogits[n, v] W_U[v, d],   i.e.  dx = dlogits W_U.
template <class T>
Mat<T> unembed_backward(const Mat<T>& dlogits, const Mat<T>& W_U) {
    detail::check_dim("unembed_backward", "gradient columns", dlogits.cols(), W_U.rows());
    return dlogits * W_U;
}

// Decomposed twin of the unembedding at the requested targets (with the final norm's
// twin before it, this is the logit attribution). Component m's logit for token v at n:
//   attr[m, n, v] = W_U[v] . Z_m[n]
// Identity kept: sum_m attr[m, n, v] = W_U[v] . (sum_m Z_m[n]) = logits[n, v]
// (minus an unembedding bias, which no supported model has). Only the requested
// target rows of W_U are used, never the full [M, N, V].
template <class T>
Tensor<T> unembed_decomposed(const Components<T>& c, const Mat<T>& W_U,
                             const std::vector<std::vector<int>>& targets) {
    const long V = W_U.rows();
    detail::check_dim("logit_attribution", "target rows", long(targets.size()), c.N);
    detail::check_dim("logit_attribution", "component width", c.D, W_U.cols());
    const int K = targets.empty() ? 0 : int(targets[0].size());
    for (int n = 0; n < c.N; ++n) {
        detail::check_dim("logit_attribution", "targets per position", long(targets[n].size()), K);
        for (int v : targets[n])
            if (v < 0 || v >= V)
                throw Error("logit_attribution: target id " + std::to_string(v) + " at position " +
                            std::to_string(n) + " is outside the vocabulary [0, " + std::to_string(V) + ")");
    }
    const Mat<T>& normed = c.X;
    Tensor<T> out({int64_t(c.M), int64_t(c.N), int64_t(K)});
#pragma omp parallel for if (worth_threads(double(c.M) * c.N * K * c.D))
    for (int m = 0; m < c.M; ++m)
        for (int n = c.first[m]; n < c.N; ++n)
            for (int k = 0; k < K; ++k)
                out.data[(size_t(m) * c.N + n) * K + k] = normed.row(c.row(m, n)).dot(W_U.row(targets[n][k]));
    return out;
}

template Mat<float> embed(const Mat<float>&, const Mat<float>&, const std::vector<int>&);
template Mat<double> embed(const Mat<double>&, const Mat<double>&, const std::vector<int>&);
template Mat<float> unembed(const Mat<float>&, const Mat<float>&);
template Mat<double> unembed(const Mat<double>&, const Mat<double>&);
template Mat<float> embed_backward(const Mat<float>&, const std::vector<int>&, long);
template Mat<double> embed_backward(const Mat<double>&, const std::vector<int>&, long);
template Mat<float> unembed_backward(const Mat<float>&, const Mat<float>&);
template Mat<double> unembed_backward(const Mat<double>&, const Mat<double>&);
template Tensor<float> unembed_decomposed(const Components<float>&, const Mat<float>&,
                                          const std::vector<std::vector<int>>&);
template Tensor<double> unembed_decomposed(const Components<double>&, const Mat<double>&,
                                           const std::vector<std::vector<int>>&);

}  // namespace depass
