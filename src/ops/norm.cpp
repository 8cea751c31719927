// norm.cpp -- RMSNorm and LayerNorm.
//
// DePass freezes the per-token factor of every norm (1/rms, or 1/std and the
// mean for LayerNorm) from the true state; the factors are returned here so the
// trace can record them.
#include <cmath>

#include "check.hpp"
#include "depass/ops.hpp"

namespace depass {

// Norms are memory-bound (a fraction of a nanosecond per element): work = elements.

// RMSNorm:  r[n] = 1 / sqrt( (1/D) sum_d x[n,d]^2 + eps ),   y[n,d] = g[d] * x[n,d] * r[n]
template <class T>
Mat<T> rms_norm(const Mat<T>& x, const Vec<T>& g, double eps, NormFactors<T>* factors) {
    const long N = x.rows(), D = x.cols();
    detail::check_dim("rms_norm", "gain length", g.size(), D);
    Vec<T> inv(N);
    Mat<T> y(N, D);
#pragma omp parallel for if (worth_threads(double(N) * D))
    for (long n = 0; n < N; ++n) {
        T ms = x.row(n).squaredNorm() / T(D);
        inv[n] = T(1) / std::sqrt(ms + T(eps));
        y.row(n) = x.row(n).cwiseProduct(g.transpose()) * inv[n];
    }
    if (factors) {
        factors->inv = inv;
        factors->mean.resize(0);
    }
    return y;
}

// Backward of rms_norm. With r = (mean_d x_d^2 + eps)^(-1/2) and u = g * dy (per token):
//   dr/dx_j = -r^3 x_j / D
//   d(x_i r)/dx_j = r delta_ij - r^3 x_i x_j / D
//   df/dx_j = sum_i u_i (r delta_ij - r^3 x_i x_j / D) = r u_j - (r^3 / D) (u . x) x_j
// (with eps = 0 the norm is homogeneous of degree 0 in x, so df/dx . x = 0: the tests check it).
template <class T>
Mat<T> rms_norm_backward(const Mat<T>& x, const Vec<T>& g, double eps, const Mat<T>& dy) {
    const long N = x.rows(), D = x.cols();
    detail::check_dim("rms_norm_backward", "gain length", g.size(), D);
    detail::check_shape("rms_norm_backward", "dy", dy, N, D);
    Mat<T> dx(N, D);
    for (long n = 0; n < N; ++n) {
        const T r = T(1) / std::sqrt(x.row(n).squaredNorm() / T(D) + T(eps));
        const auto u = dy.row(n).cwiseProduct(g.transpose());
        const T ux = u.dot(x.row(n));
        dx.row(n) = r * u - (r * r * r / T(D)) * ux * x.row(n);
    }
    return dx;
}

// Decomposed twin of rms_norm. With the factor r[n] frozen from the true state the
// norm is linear in its input:   Y_m[n] = g * X_m[n] * r[n].
// Identity kept: sum_m Y_m[n] = g * (sum_m X_m[n]) * r[n] = rms_norm(S)[n].
template <class T>
Components<T> rms_norm_decomposed(const Components<T>& c, const Vec<T>& g, const Vec<T>& inv) {
    detail::check_dim("rms_norm_decomposed", "gain length", g.size(), c.D);
    detail::check_dim("rms_norm_decomposed", "factor length", inv.size(), c.N);
    const int64_t R = c.rows();
    Mat<T> y(R, c.D);
#pragma omp parallel for if (worth_threads(double(R) * c.D))
    for (int64_t r = 0; r < R; ++r) y.row(r) = c.X.row(r).cwiseProduct(g.transpose()) * inv[c.row_pos[r]];
    return c.like(std::move(y));
}

// LayerNorm:  mu[n] = mean_d x[n,d],  r[n] = 1 / sqrt( mean_d (x[n,d] - mu[n])^2 + eps ),
//             y[n,d] = g[d] * (x[n,d] - mu[n]) * r[n] + b[d]
template <class T>
Mat<T> layer_norm(const Mat<T>& x, const Vec<T>& g, const Vec<T>& b, double eps, NormFactors<T>* factors) {
    const long N = x.rows(), D = x.cols();
    detail::check_dim("layer_norm", "gain length", g.size(), D);
    detail::check_dim("layer_norm", "bias length", b.size(), D);
    Vec<T> inv(N), mean(N);
    Mat<T> y(N, D);
#pragma omp parallel for if (worth_threads(double(N) * D))
    for (long n = 0; n < N; ++n) {
        mean[n] = x.row(n).sum() / T(D);
        auto centred = (x.row(n).array() - mean[n]).matrix();
        T var = centred.squaredNorm() / T(D);
        inv[n] = T(1) / std::sqrt(var + T(eps));
        y.row(n) = (centred.cwiseProduct(g.transpose()) * inv[n]) + b.transpose();
    }
    if (factors) {
        factors->inv = inv;
        factors->mean = mean;
    }
    return y;
}

// Backward of layer_norm (beta is a constant shift). With xhat = (x - mu) r,
// r = (var + eps)^(-1/2) and u = g * dy (per token):
//   d xhat_i / dx_j = r (delta_ij - 1/D - xhat_i xhat_j / D)
//   df/dx_j = sum_i u_i d xhat_i/dx_j = r ( u_j - mean(u) - xhat_j mean(u * xhat) )
// (the gradient sums to 0 over j: LayerNorm ignores a constant added to every coordinate).
template <class T>
Mat<T> layer_norm_backward(const Mat<T>& x, const Vec<T>& g, double eps, const Mat<T>& dy) {
    const long N = x.rows(), D = x.cols();
    detail::check_dim("layer_norm_backward", "gain length", g.size(), D);
    detail::check_shape("layer_norm_backward", "dy", dy, N, D);
    Mat<T> dx(N, D);
    for (long n = 0; n < N; ++n) {
        const T mean = x.row(n).sum() / T(D);
        const auto centred = (x.row(n).array() - mean).matrix();
        const T r = T(1) / std::sqrt(centred.squaredNorm() / T(D) + T(eps));
        const Mat<T> xhat = centred * r;
        const Mat<T> u = dy.row(n).cwiseProduct(g.transpose());
        const T mean_u = u.sum() / T(D), mean_uxhat = u.cwiseProduct(xhat).sum() / T(D);
        dx.row(n) = r * ((u.array() - mean_u) - xhat.array() * mean_uxhat).matrix();
    }
    return dx;
}

// Decomposed twin of layer_norm. Centring is linear (each component subtracts its
// own mean); the 1/std factor r[n] is frozen from the true state; beta goes to the rest:
//   Y_m[n] = g * (X_m[n] - mean_d X_m[n]) * r[n]   (+ b for the rest).
// Identity kept: sum_m Y_m[n] = g * (S[n] - mean S[n]) * r[n] + b = layer_norm(S)[n].
template <class T>
Components<T> layer_norm_decomposed(const Components<T>& c, const Vec<T>& g, const Vec<T>& b,
                                    const Vec<T>& inv) {
    detail::check_dim("layer_norm_decomposed", "gain length", g.size(), c.D);
    detail::check_dim("layer_norm_decomposed", "bias length", b.size(), c.D);
    detail::check_dim("layer_norm_decomposed", "factor length", inv.size(), c.N);
    const int64_t R = c.rows();
    Mat<T> y(R, c.D);
#pragma omp parallel for if (worth_threads(double(R) * c.D))
    for (int64_t r = 0; r < R; ++r) {
        const T mean = c.X.row(r).sum() / T(c.D);
        y.row(r) = (c.X.row(r).array() - mean).matrix().cwiseProduct(g.transpose()) * inv[c.row_pos[r]];
    }
    c.add_to_rest(y, b);
    return c.like(std::move(y));
}

template <class T>
Mat<T> apply_norm(NormKind kind, double eps, const Mat<T>& x, const Vec<T>& g, const Vec<T>& b,
                  NormFactors<T>* factors) {
    return kind == NormKind::RMSNorm ? rms_norm(x, g, eps, factors) : layer_norm(x, g, b, eps, factors);
}

template <class T>
Mat<T> apply_norm_backward(NormKind kind, double eps, const Mat<T>& x, const Vec<T>& g, const Mat<T>& dy) {
    return kind == NormKind::RMSNorm ? rms_norm_backward(x, g, eps, dy) : layer_norm_backward(x, g, eps, dy);
}

template <class T>
Components<T> apply_norm_decomposed(NormKind kind, const Components<T>& c, const Vec<T>& g, const Vec<T>& b,
                                    const NormFactors<T>& f) {
    return kind == NormKind::RMSNorm ? rms_norm_decomposed(c, g, f.inv)
                                     : layer_norm_decomposed(c, g, b, f.inv);
}

#define DEPASS_INSTANTIATE(T)                                                                           \
    template Mat<T> rms_norm(const Mat<T>&, const Vec<T>&, double, NormFactors<T>*);                    \
    template Mat<T> layer_norm(const Mat<T>&, const Vec<T>&, const Vec<T>&, double, NormFactors<T>*);   \
    template Mat<T> apply_norm(NormKind, double, const Mat<T>&, const Vec<T>&, const Vec<T>&,           \
                               NormFactors<T>*);                                                        \
    template Mat<T> rms_norm_backward(const Mat<T>&, const Vec<T>&, double, const Mat<T>&);             \
    template Mat<T> layer_norm_backward(const Mat<T>&, const Vec<T>&, double, const Mat<T>&);           \
    template Mat<T> apply_norm_backward(NormKind, double, const Mat<T>&, const Vec<T>&, const Mat<T>&); \
    template Components<T> rms_norm_decomposed(const Components<T>&, const Vec<T>&, const Vec<T>&);     \
    template Components<T> layer_norm_decomposed(const Components<T>&, const Vec<T>&, const Vec<T>&,    \
                                                 const Vec<T>&);                                        \
    template Components<T> apply_norm_decomposed(NormKind, const Components<T>&, const Vec<T>&,         \
                                                 const Vec<T>&, const NormFactors<T>&);
DEPASS_INSTANTIATE(float)
DEPASS_INSTANTIATE(double)
#undef DEPASS_INSTANTIATE

}  // namespace depass
