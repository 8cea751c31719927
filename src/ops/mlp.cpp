// mlp.cpp -- the two MLP kinds: SwiGLU (LLaMA, Mistral, Qwen2) and GELU (GPT-2).
#include "depass/decompose.hpp"
#include "depass/ops.hpp"
#include "check.hpp"

#include <algorithm>
#include <cmath>

namespace depass {

// silu(x) = x * sigmoid(x) = x / (1 + e^-x)
template <class T>
T silu(T x) {
    return x / (T(1) + std::exp(-x));
}

// gelu_tanh(x) = 0.5 x (1 + tanh( sqrt(2/pi) (x + 0.044715 x^3) ))
template <class T>
T gelu_tanh(T x) {
    const T c = T(0.7978845608028654);  // sqrt(2/pi)
    return T(0.5) * x * (T(1) + std::tanh(c * (x + T(0.044715) * x * x * x)));
}

// act(x)/x without dividing by x:  SiLU -> sigmoid(x);  GELU -> 0.5 (1 + tanh(..)).
template <class T>
T act_over_x(Activation act, T x) {
    if (act == Activation::SiLU) return T(1) / (T(1) + std::exp(-x));
    const T c = T(0.7978845608028654);
    return T(0.5) * (T(1) + std::tanh(c * (x + T(0.044715) * x * x * x)));
}

// SwiGLU:  g = x W_g^T,  u = x W_u^T,  a = silu(g) * u,  out = a W_d^T
template <class T>
Mat<T> swiglu_mlp(const Mat<T>& x, const Mat<T>& w_gate, const Mat<T>& w_up, const Mat<T>& w_down, Mat<T>* pre,
                  Mat<T>* up, Mat<T>* act) {
    detail::check_dim("swiglu_mlp", "input width", x.cols(), w_gate.cols());
    detail::check_shape("swiglu_mlp", "w_up", w_up, w_gate.rows(), w_gate.cols());
    detail::check_shape("swiglu_mlp", "w_down", w_down, w_gate.cols(), w_gate.rows());
    Mat<T> g = x * w_gate.transpose();
    Mat<T> u = x * w_up.transpose();
    Mat<T> a = g.unaryExpr([](T v) { return silu(v); }).cwiseProduct(u);
    Mat<T> out = a * w_down.transpose();
    if (pre) *pre = std::move(g);
    if (up) *up = std::move(u);
    if (act) *act = std::move(a);
    return out;
}

// GELU MLP:  p = x W_1^T + b_1,  a = gelu_tanh(p),  out = a W_2^T + b_2
template <class T>
Mat<T> gelu_mlp(const Mat<T>& x, const Mat<T>& w1, const Vec<T>& b1, const Mat<T>& w2, const Vec<T>& b2,
                Mat<T>* pre, Mat<T>* act) {
    detail::check_shape("gelu_mlp", "w2", w2, w1.cols(), w1.rows());
    Mat<T> p = linear(x, w1, b1);
    Mat<T> a = p.unaryExpr([](T v) { return gelu_tanh(v); });
    Mat<T> out = linear(a, w2, b2);
    if (pre) *pre = std::move(p);
    if (act) *act = std::move(a);
    return out;
}

// ---- decomposed twin of the MLPs -----------------------------------------------------
//
// The MLP is not linear, so DePass freezes the true activation a[n, i] of every
// (position, neuron) and distributes it over the components:
//   Y_m[n] = sum_i w_m[n, i] * a[n, i] * W_d[:, i]          (+ b_d for the rest)
// with weights w_m[n, i] that sum to 1 over m. The weights come from each
// component's share of the pre-activation that decides the neuron:
//   G_m = Norm2_m(X_m) W_g^T            (SwiGLU gate)
//   G_m = Norm2_m(X_m) W_1^T (+ b_1)    (GELU MLP; the bias is the rest's)
// Identity kept: sum_m Y_m[n] = sum_i a[n, i] W_d[:, i] (+ b_d) = MLP output.

// Weights of the rules over the participating components (G already prepared).
// Each rule's weights sum to 1; where a rule's normaliser would be zero the value
// is split equally, so nothing is lost.
template <class T>
void rule_weights(MlpRule rule, double temperature, const T* G, int count, T* w) {
    if (count <= 0) return;
    switch (rule) {
        case MlpRule::Softmax: {  // w = softmax(G / T)
            T mx = G[0];
            for (int k = 1; k < count; ++k) mx = std::max(mx, G[k]);
            T z = 0;
            for (int k = 0; k < count; ++k) z += (w[k] = std::exp((G[k] - mx) / T(temperature)));
            for (int k = 0; k < count; ++k) w[k] /= z;
            return;
        }
        case MlpRule::Max: {  // all to the largest share (first on ties)
            int best = 0;
            for (int k = 1; k < count; ++k)
                if (G[k] > G[best]) best = k;
            for (int k = 0; k < count; ++k) w[k] = k == best ? T(1) : T(0);
            return;
        }
        case MlpRule::Relu:     // w proportional to max(G, 0)
        case MlpRule::Linear: { // w proportional to G - min G
            T mn = G[0];
            for (int k = 1; k < count; ++k) mn = std::min(mn, G[k]);
            T z = 0;
            for (int k = 0; k < count; ++k)
                z += (w[k] = rule == MlpRule::Relu ? std::max(G[k], T(0)) : G[k] - mn);
            if (z > T(0)) {
                for (int k = 0; k < count; ++k) w[k] /= z;
            } else {
                for (int k = 0; k < count; ++k) w[k] = T(1) / T(count);
            }
            return;
        }
        case MlpRule::Taylor:
            throw Error("rule_weights: the taylor rule splits the activation directly, it has no weights");
    }
}

template <class T>
Mat<T> mlp_decomposed(const Config& cfg, const LayerWeights<T>& lw, const LayerTrace<T>& lt,
                      const Components<T>& c, const Mat<T>& normed_rows, const DecomposeOptions& opt) {
    const int N = c.N, M = c.M, I = cfg.I;
    const bool gated = cfg.mlp == MlpKind::SwiGLU;
    const Mat<T>& W_share = gated ? lw.w_gate : lw.w_up;  // produces the pre-activation shares G
    const Vec<T>& b_share = gated ? Vec<T>() : lw.b_up;
    detail::check_shape("mlp_decomposed", "normed rows", normed_rows, c.rows(), c.D);
    detail::check_shape("mlp_decomposed", "recorded activations", lt.mlp_act, N, I);

    // Positions per chunk: the [rows, I] intermediates stay within ~64 MiB.
    int chunk = opt.mlp_chunk;
    if (chunk <= 0) {
        const double rows_per_pos = double(c.rows()) / N + 1.0;
        const double bytes_per_pos = rows_per_pos * I * sizeof(T) * 2.0;
        chunk = std::max(1, int((64.0 * (1 << 20)) / bytes_per_pos));
    }

    Mat<T> Y = Mat<T>::Zero(c.rows(), c.D);
    std::vector<int64_t> base(M), start(M), count(M);
    for (int p0 = 0; p0 < N; p0 += chunk) {
        const int p1 = std::min(N, p0 + chunk);
        // Gather the rows of every component at positions [p0, p1).
        int64_t rc = 0;
        for (int m = 0; m < M; ++m) {
            const int s = std::max(p0, c.first[m]);
            count[m] = std::max(0, p1 - s);
            start[m] = s;
            base[m] = rc;
            rc += count[m];
        }
        Mat<T> Xc(rc, c.D);
        for (int m = 0; m < M; ++m)
            if (count[m]) Xc.middleRows(base[m], count[m]) = normed_rows.middleRows(c.row(m, int(start[m])), count[m]);
        Mat<T> G(rc, I);
        G.noalias() = Xc * W_share.transpose();
        if (b_share.size()) G.middleRows(base[c.rest()], count[c.rest()]).rowwise() += b_share.transpose();

        // Distribute a[n, i] over the components present at n.
        Mat<T> A(rc, I);  // share of the activation, per stored row
#pragma omp parallel for schedule(dynamic)
        for (int n = p0; n < p1; ++n) {
            std::vector<int64_t> rows;
            std::vector<int> comps;
            for (int m = 0; m < M; ++m)
                if (c.first[m] <= n) {
                    rows.push_back(base[m] + (n - start[m]));
                    comps.push_back(m);
                }
            const int K = int(rows.size());  // the rest is always present, and last
            std::vector<T> g(K), pg(K), pw(K);
            for (int i = 0; i < I; ++i) {
                const T a = lt.mlp_act(n, i);
                if (opt.rule == MlpRule::Taylor) {
                    // First-order split of the activation along the pre-activation:
                    //   a_m = G_m * act(p)/p * up   (sum_m G_m = p, so sum_m a_m = a)
                    const T s = act_over_x(cfg.act, lt.mlp_pre(n, i)) * (gated ? lt.mlp_up(n, i) : T(1));
                    for (int k = 0; k < K; ++k) A(rows[k], i) = G(rows[k], i) * s;
                    continue;
                }
                for (int k = 0; k < K; ++k) g[k] = G(rows[k], i);
                // Preparation (depass-math.md section 5, steps 1-4).
                if (opt.ignore_special_token && comps[0] == 0) g[0] = T(0);
                if (n == 0)
                    for (int k = 0; k < K; ++k)
                        if (comps[k] == opt.pos0_component) g[k] = T(1);
                if (std::abs(g[K - 1]) < T(1e-5)) g[K - 1] = T(0);
                bool all_zero = true;
                for (int k = 0; k < K; ++k) all_zero = all_zero && g[k] == T(0);
                if (all_zero) g[K - 1] = T(1);
                // Components with an exactly zero share do not participate.
                int P = 0;
                for (int k = 0; k < K; ++k)
                    if (g[k] != T(0)) pg[P++] = g[k];
                rule_weights(opt.rule, opt.temperature, pg.data(), P, pw.data());
                for (int k = 0, p = 0; k < K; ++k) A(rows[k], i) = g[k] != T(0) ? pw[p++] * a : T(0);
            }
        }
        Mat<T> Yc(rc, c.D);
        Yc.noalias() = A * lw.w_down.transpose();
        for (int m = 0; m < M; ++m)
            if (count[m]) Y.middleRows(c.row(m, int(start[m])), count[m]) = Yc.middleRows(base[m], count[m]);
    }
    if (lw.b_down.size()) Y.middleRows(c.offset[c.rest()], N).rowwise() += lw.b_down.transpose();
    return Y;
}

#define DEPASS_INSTANTIATE(T)                                                                         \
    template T silu(T);                                                                               \
    template T gelu_tanh(T);                                                                          \
    template T act_over_x(Activation, T);                                                             \
    template Mat<T> swiglu_mlp(const Mat<T>&, const Mat<T>&, const Mat<T>&, const Mat<T>&, Mat<T>*, Mat<T>*, \
                               Mat<T>*);                                                              \
    template Mat<T> gelu_mlp(const Mat<T>&, const Mat<T>&, const Vec<T>&, const Mat<T>&, const Vec<T>&, Mat<T>*, \
                             Mat<T>*);                                                                \
    template void rule_weights(MlpRule, double, const T*, int, T*);                                   \
    template Mat<T> mlp_decomposed(const Config&, const LayerWeights<T>&, const LayerTrace<T>&,         \
                                   const Components<T>&, const Mat<T>&, const DecomposeOptions&);
DEPASS_INSTANTIATE(float)
DEPASS_INSTANTIATE(double)
#undef DEPASS_INSTANTIATE

}  // namespace depass
