// mlp.cpp -- the two MLP kinds: SwiGLU (LLaMA, Mistral, Qwen2) and GELU (GPT-2).
#include "depass/decompose.hpp"
#include "depass/ops.hpp"
#include "check.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

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

// d act / dx, written from the definitions above:
//   SiLU:  silu(x) = x s(x), s = sigmoid  ->  s + x s (1 - s) = s (1 + x (1 - s))
//   GELU:  0.5 x (1 + t), t = tanh(z), z = c (x + 0.044715 x^3)
//          -> 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 * 0.044715 x^2)
template <class T>
T act_derivative(Activation act, T x) {
    if (act == Activation::SiLU) {
        const T s = T(1) / (T(1) + std::exp(-x));
        return s * (T(1) + x * (T(1) - s));
    }
    const T c = T(0.7978845608028654);
    const T t = std::tanh(c * (x + T(0.044715) * x * x * x));
    return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * c * (T(1) + T(3 * 0.044715) * x * x);
}

// SwiGLU:  g = x W_g^T,  u = x W_u^T,  a = silu(g) * u,  out = a W_d^T
template <class T>
Mat<T> swiglu_mlp(const Mat<T>& x, const Mat<T>& w_gate, const Mat<T>& w_up, const Mat<T>& w_down, Mat<T>* pre,
                  Mat<T>* up, Mat<T>* act) {
    detail::check_dim("swiglu_mlp", "input width", x.cols(), w_gate.cols());
    detail::check_shape("swiglu_mlp", "w_up", w_up, w_gate.rows(), w_gate.cols());
    detail::check_shape("swiglu_mlp", "w_down", w_down, w_gate.cols(), w_gate.rows());
    Mat<T> g = linear(x, w_gate, Vec<T>());
    Mat<T> u = linear(x, w_up, Vec<T>());
    // a = silu(g) * u = g / (1 + e^-g) * u, vectorised (silu() above is the same, one value at a time)
    Mat<T> a = (g.array() / (T(1) + (-g.array()).exp()) * u.array()).matrix();
    Mat<T> out = linear(a, w_down, Vec<T>());
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

// Backward of swiglu_mlp (from the recorded gate pre-activation g and up projection u):
//   out = a W_d^T              ->  da = dout W_d
//   a = silu(g) * u            ->  dg = da * u * silu'(g),   du = da * silu(g)
//   g = x W_g^T, u = x W_u^T   ->  dx = dg W_g + du W_u
template <class T>
Mat<T> swiglu_mlp_backward(const Mat<T>& w_gate, const Mat<T>& w_up, const Mat<T>& w_down, const Mat<T>& pre,
                           const Mat<T>& up, const Mat<T>& dout, Mat<T>* dact) {
    detail::check_shape("swiglu_mlp_backward", "w_up", w_up, w_gate.rows(), w_gate.cols());
    detail::check_shape("swiglu_mlp_backward", "w_down", w_down, w_gate.cols(), w_gate.rows());
    detail::check_shape("swiglu_mlp_backward", "pre", pre, dout.rows(), w_gate.rows());
    detail::check_shape("swiglu_mlp_backward", "up", up, dout.rows(), w_gate.rows());
    const Mat<T> da = linear_backward(pre, w_down, dout);
    Mat<T> dg(pre.rows(), pre.cols()), du(pre.rows(), pre.cols());
    for (long n = 0; n < pre.rows(); ++n)
        for (long i = 0; i < pre.cols(); ++i) {
            const T gv = pre(n, i);
            dg(n, i) = da(n, i) * up(n, i) * act_derivative(Activation::SiLU, gv);
            du(n, i) = da(n, i) * silu(gv);
        }
    Mat<T> dx = dg * w_gate + du * w_up;
    if (dact) *dact = da;
    return dx;
}

// Backward of gelu_mlp (from the recorded pre-activation p):
//   out = a W_2^T + b_2        ->  da = dout W_2
//   a = gelu(p)                ->  dp = da * gelu'(p)
//   p = x W_1^T + b_1          ->  dx = dp W_1
template <class T>
Mat<T> gelu_mlp_backward(const Mat<T>& w1, const Mat<T>& w2, const Mat<T>& pre, const Mat<T>& dout, Mat<T>* dact) {
    detail::check_shape("gelu_mlp_backward", "w2", w2, w1.cols(), w1.rows());
    detail::check_shape("gelu_mlp_backward", "pre", pre, dout.rows(), w1.rows());
    const Mat<T> da = linear_backward(pre, w2, dout);
    const Mat<T> dp = da.cwiseProduct(pre.unaryExpr([](T v) { return act_derivative(Activation::GeluTanh, v); }));
    Mat<T> dx = dp * w1;
    if (dact) *dact = da;
    return dx;
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

namespace {

// The per-position kernels below work on the shares of the K components present at
// one position n: g [K, I] row-major (row k = component comp[k], in component order,
// so the rest, which is present everywhere, is the last row). They are vectorised
// over the neurons i; rule_weights() above is the same computation one neuron at a time.

// Section 5 preparation, steps 1-3, in place (`any` is scratch of length I):
//   1. ignore-special-token: the shares of component 0 are 0;
//   2. at position 0 the shares of opt.pos0_component are 1;
//   3. the rest's shares with |G| < 1e-5 are 0; where every share is 0 the rest's is 1.
template <class T>
void prepare_shares(T* g, const int* comp, int K, int I, int n, const DecomposeOptions& opt, T* any) {
    if (opt.ignore_special_token && comp[0] == 0) std::fill(g, g + I, T(0));
    if (n == 0)
        for (int k = 0; k < K; ++k)
            if (comp[k] == opt.pos0_component) std::fill(g + long(k) * I, g + long(k + 1) * I, T(1));
    T* rest = g + long(K - 1) * I;
#pragma omp simd
    for (int i = 0; i < I; ++i) rest[i] = std::abs(rest[i]) < T(1e-5) ? T(0) : rest[i];
    std::fill(any, any + I, T(0));
    for (int k = 0; k < K; ++k) {
        const T* gk = g + long(k) * I;
#pragma omp simd
        for (int i = 0; i < I; ++i) any[i] = gk[i] != T(0) ? T(1) : any[i];
    }
#pragma omp simd
    for (int i = 0; i < I; ++i) rest[i] = any[i] == T(0) ? T(1) : rest[i];
}

// Softmax rule (step 4), in place: over the non-zero shares G_k[i] of neuron i
//   mx[i] = max_k G_k[i],  e_k[i] = exp((G_k[i] - mx[i]) / T),  w_k[i] = e_k[i] / sum_k e_k[i]
// and w_k[i] = 0 where G_k[i] == 0. `mx`, `z`, `e` are scratch of length I; `e` must be
// aligned for Eigen's packets, so that the vectorised exp covers the same neurons (all
// but the last I mod packet-size) whatever the buffer's address: Eigen computes a peeled
// head and tail with the scalar exp, which can differ from the packet exp by one ulp.
template <class T>
void softmax_shares(T* g, int K, int I, T temperature, T* mx, T* z, T* e) {
    using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;
    std::fill(mx, mx + I, -std::numeric_limits<T>::infinity());
    for (int k = 0; k < K; ++k) {
        const T* gk = g + long(k) * I;
#pragma omp simd
        for (int i = 0; i < I; ++i) mx[i] = gk[i] != T(0) && gk[i] > mx[i] ? gk[i] : mx[i];
    }
    std::fill(z, z + I, T(0));
    for (int k = 0; k < K; ++k) {
        T* gk = g + long(k) * I;
        Eigen::Map<Arr, Eigen::AlignedMax>(e, I) = ((Eigen::Map<const Arr>(gk, I) - Eigen::Map<const Arr>(mx, I)) / temperature).exp();
#pragma omp simd
        for (int i = 0; i < I; ++i) {
            gk[i] = gk[i] != T(0) ? e[i] : T(0);
            z[i] += gk[i];
        }
    }
    for (int k = 0; k < K; ++k) {
        T* gk = g + long(k) * I;
#pragma omp simd
        for (int i = 0; i < I; ++i) gk[i] /= z[i];
    }
}

// The other rules (step 4), in place, one neuron at a time through rule_weights():
// the non-zero shares participate, a zero share gets weight 0. `col`, `w` have length K.
template <class T>
void rule_shares_by_neuron(MlpRule rule, double temperature, T* g, int K, int I, T* col, T* w) {
    for (int i = 0; i < I; ++i) {
        int P = 0;
        for (int k = 0; k < K; ++k)
            if (g[long(k) * I + i] != T(0)) col[P++] = g[long(k) * I + i];
        rule_weights(rule, temperature, col, P, w);
        for (int k = 0, p = 0; k < K; ++k) {
            T& v = g[long(k) * I + i];
            v = v != T(0) ? w[p++] : T(0);
        }
    }
}

}  // namespace

// The MLP twin, in chunks of consecutive positions (the rules act per position and
// neuron, so a chunk holds every component present at its positions):
//   gather   Xc = the normed rows of the chunk, position-major   [rows, D]
//   shares   G  = Xc W_share^T (+ b_1 on the rest's rows)         [rows, I]
//   rule     A  = w(G) * a   per position, in place of G          (taylor: A = G * act(p)/p * up)
//   down     Yc = A W_d^T, scattered back to the stored rows       [rows, D]
// Each thread takes whole chunks with its own buffers, sized for ~kChunkRows rows, so
// the intermediates stay in cache; the result does not depend on the number of threads.
template <class T>
Mat<T> mlp_decomposed(const Config& cfg, const LayerWeights<T>& lw, const LayerTrace<T>& lt,
                      const Components<T>& c, const Mat<T>& normed_rows, const DecomposeOptions& opt) {
    const int N = c.N, M = c.M, I = cfg.I, D = c.D;
    const bool gated = cfg.mlp == MlpKind::SwiGLU;
    const Mat<T>& W_share = gated ? lw.w_gate : lw.w_up;  // produces the pre-activation shares G
    const Vec<T>& b_share = gated ? Vec<T>() : lw.b_up;
    detail::check_shape("mlp_decomposed", "normed rows", normed_rows, c.rows(), c.D);
    detail::check_shape("mlp_decomposed", "recorded activations", lt.mlp_act, N, I);

    // K[n] = number of components present at position n (first[m] <= n).
    std::vector<int> K(N, 0);
    for (int m = 0; m < M; ++m)
        if (c.first[m] < N) ++K[c.first[m]];
    for (int n = 1; n < N; ++n) K[n] += K[n - 1];

    // Chunk boundaries: opt.mlp_chunk positions each, or (automatic) about kChunkRows rows.
    constexpr int64_t kChunkRows = 512;
    std::vector<int> bounds{0};
    int64_t max_rows = 0, rows = 0;
    for (int n = 0; n < N; ++n) {
        rows += K[n];
        const bool full = opt.mlp_chunk > 0 ? n + 1 - bounds.back() >= opt.mlp_chunk : rows >= kChunkRows;
        if (full || n + 1 == N) {
            bounds.push_back(n + 1);
            max_rows = std::max(max_rows, rows);
            rows = 0;
        }
    }
    const int chunks = int(bounds.size()) - 1;

    Mat<T> Y(c.rows(), D);  // every stored row is written exactly once below
#pragma omp parallel
    {
        Mat<T> Xc(max_rows, D), G(max_rows, I), Yc(max_rows, D);
        std::vector<int> comp(max_rows);       // component of each chunk row
        std::vector<int64_t> src(max_rows);    // stored row of each chunk row
        std::vector<T> scratch(3 * size_t(I)), col(M), w(M);
        Eigen::Array<T, Eigen::Dynamic, 1> exps(I);  // Eigen-aligned, see softmax_shares

#pragma omp for schedule(dynamic)
        for (int ci = 0; ci < chunks; ++ci) {
            const int p0 = bounds[ci], p1 = bounds[ci + 1];
            int64_t rc = 0;
            for (int n = p0; n < p1; ++n)
                for (int m = 0; m < M; ++m)
                    if (c.first[m] <= n) {
                        comp[rc] = m;
                        src[rc] = c.row(m, n);
                        Xc.row(rc) = normed_rows.row(src[rc]);
                        ++rc;
                    }
            G.topRows(rc).noalias() = Xc.topRows(rc) * W_share.transpose();
            if (b_share.size())
                for (int64_t r = 0; r < rc; ++r)
                    if (comp[r] == c.rest()) G.row(r) += b_share.transpose();

            // Distribute a[n, i] over the components present at n.
            for (int n = p0, r0 = 0; n < p1; r0 += K[n], ++n) {
                T* g = G.data() + int64_t(r0) * I;
                const T* a = lt.mlp_act.data() + int64_t(n) * I;
                if (opt.rule == MlpRule::Taylor) {
                    // First-order split of the activation along the pre-activation:
                    //   A_m = G_m * act(p)/p * up   (sum_m G_m = p, so sum_m A_m = a)
                    T* s = scratch.data();
                    for (int i = 0; i < I; ++i)
                        s[i] = act_over_x(cfg.act, lt.mlp_pre(n, i)) * (gated ? lt.mlp_up(n, i) : T(1));
                    for (int k = 0; k < K[n]; ++k) {
                        T* gk = g + int64_t(k) * I;
#pragma omp simd
                        for (int i = 0; i < I; ++i) gk[i] *= s[i];
                    }
                    continue;
                }
                T* sc = scratch.data();
                prepare_shares(g, comp.data() + r0, K[n], I, n, opt, sc);
                if (opt.rule == MlpRule::Softmax)
                    softmax_shares(g, K[n], I, T(opt.temperature), sc, sc + I, exps.data());
                else
                    rule_shares_by_neuron(opt.rule, opt.temperature, g, K[n], I, col.data(), w.data());
                // A_m[n, i] = w_m[n, i] * a[n, i]
                for (int k = 0; k < K[n]; ++k) {
                    T* gk = g + int64_t(k) * I;
#pragma omp simd
                    for (int i = 0; i < I; ++i) gk[i] *= a[i];
                }
            }
            Yc.topRows(rc).noalias() = G.topRows(rc) * lw.w_down.transpose();
            for (int64_t r = 0; r < rc; ++r) Y.row(src[r]) = Yc.row(r);
        }
    }
    if (lw.b_down.size()) Y.middleRows(c.offset[c.rest()], N).rowwise() += lw.b_down.transpose();
    return Y;
}

#define DEPASS_INSTANTIATE(T)                                                                         \
    template T silu(T);                                                                               \
    template T gelu_tanh(T);                                                                          \
    template T act_over_x(Activation, T);                                                             \
    template T act_derivative(Activation, T);                                                         \
    template Mat<T> swiglu_mlp_backward(const Mat<T>&, const Mat<T>&, const Mat<T>&, const Mat<T>&,     \
                                        const Mat<T>&, const Mat<T>&, Mat<T>*);                         \
    template Mat<T> gelu_mlp_backward(const Mat<T>&, const Mat<T>&, const Mat<T>&, const Mat<T>&, Mat<T>*); \
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
