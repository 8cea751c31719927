// norm.cpp -- RMSNorm and LayerNorm.
//
// DePass freezes the per-token factor of every norm (1/rms, or 1/std and the
// mean for LayerNorm) from the true state; the factors are returned here so the
// trace can record them.
#include "depass/decompose.hpp"
#include "depass/ops.hpp"
#include "check.hpp"

#include <cmath>

namespace depass {

// Norms are memory-bound (a fraction of a nanosecond per element): below this many
// elements waking the threads costs more than it saves.
constexpr long kParallelElements = 1L << 18;

// RMSNorm:  r[n] = 1 / sqrt( (1/D) sum_d x[n,d]^2 + eps ),   y[n,d] = g[d] * x[n,d] * r[n]
template <class T>
Mat<T> rms_norm(const Mat<T>& x, const Vec<T>& g, double eps, NormFactors<T>* factors) {
    const long N = x.rows(), D = x.cols();
    detail::check_dim("rms_norm", "gain length", g.size(), D);
    Vec<T> inv(N);
    Mat<T> y(N, D);
#pragma omp parallel for if (N * D > kParallelElements)
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

// Decomposed twin of rms_norm. With the factor r[n] frozen from the true state the
// norm is linear in its input:   Y_m[n] = g * X_m[n] * r[n].
// Identity kept: sum_m Y_m[n] = g * (sum_m X_m[n]) * r[n] = rms_norm(S)[n].
template <class T>
Mat<T> rms_norm_decomposed(const Components<T>& c, const Vec<T>& g, const Vec<T>& inv) {
    detail::check_dim("rms_norm_decomposed", "gain length", g.size(), c.D);
    detail::check_dim("rms_norm_decomposed", "factor length", inv.size(), c.N);
    const int64_t R = c.rows();
    Mat<T> y(R, c.D);
#pragma omp parallel for if (R * c.D > kParallelElements)
    for (int64_t r = 0; r < R; ++r) y.row(r) = c.X.row(r).cwiseProduct(g.transpose()) * inv[c.row_pos[r]];
    return y;
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
#pragma omp parallel for if (N * D > kParallelElements)
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

// Decomposed twin of layer_norm. Centring is linear (each component subtracts its
// own mean); the 1/std factor r[n] is frozen from the true state; beta goes to the rest:
//   Y_m[n] = g * (X_m[n] - mean_d X_m[n]) * r[n]   (+ b for the rest).
// Identity kept: sum_m Y_m[n] = g * (S[n] - mean S[n]) * r[n] + b = layer_norm(S)[n].
template <class T>
Mat<T> layer_norm_decomposed(const Components<T>& c, const Vec<T>& g, const Vec<T>& b, const Vec<T>& inv) {
    detail::check_dim("layer_norm_decomposed", "gain length", g.size(), c.D);
    detail::check_dim("layer_norm_decomposed", "bias length", b.size(), c.D);
    detail::check_dim("layer_norm_decomposed", "factor length", inv.size(), c.N);
    const int64_t R = c.rows();
    Mat<T> y(R, c.D);
#pragma omp parallel for if (R * c.D > kParallelElements)
    for (int64_t r = 0; r < R; ++r) {
        const T mean = c.X.row(r).sum() / T(c.D);
        y.row(r) = (c.X.row(r).array() - mean).matrix().cwiseProduct(g.transpose()) * inv[c.row_pos[r]];
    }
    y.middleRows(c.offset[c.rest()], c.N).rowwise() += b.transpose();
    return y;
}

template <class T>
Mat<T> apply_norm(const Config& cfg, const Mat<T>& x, const Vec<T>& g, const Vec<T>& b,
                  NormFactors<T>* factors) {
    return cfg.norm == NormKind::RMSNorm ? rms_norm(x, g, cfg.norm_eps, factors)
                                         : layer_norm(x, g, b, cfg.norm_eps, factors);
}

template <class T>
Mat<T> apply_norm_decomposed(const Config& cfg, const Components<T>& c, const Vec<T>& g, const Vec<T>& b,
                             const NormFactors<T>& f) {
    return cfg.norm == NormKind::RMSNorm ? rms_norm_decomposed(c, g, f.inv) : layer_norm_decomposed(c, g, b, f.inv);
}

#define DEPASS_INSTANTIATE(T)                                                                  \
    template Mat<T> rms_norm(const Mat<T>&, const Vec<T>&, double, NormFactors<T>*);           \
    template Mat<T> layer_norm(const Mat<T>&, const Vec<T>&, const Vec<T>&, double, NormFactors<T>*); \
    template Mat<T> apply_norm(const Config&, const Mat<T>&, const Vec<T>&, const Vec<T>&, NormFactors<T>*); \
    template Mat<T> rms_norm_decomposed(const Components<T>&, const Vec<T>&, const Vec<T>&);      \
    template Mat<T> layer_norm_decomposed(const Components<T>&, const Vec<T>&, const Vec<T>&, const Vec<T>&); \
    template Mat<T> apply_norm_decomposed(const Config&, const Components<T>&, const Vec<T>&, const Vec<T>&, \
                                          const NormFactors<T>&);
DEPASS_INSTANTIATE(float)
DEPASS_INSTANTIATE(double)
#undef DEPASS_INSTANTIATE

}  // namespace depass
