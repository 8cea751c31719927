// mlp.cpp -- the two MLP kinds: SwiGLU (LLaMA, Mistral, Qwen2) and GELU (GPT-2).
#include <algorithm>
#include <cmath>
#include <limits>

#include "blas_product.hpp"
#include "check.hpp"
#include "depass/ops.hpp"

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
Mat<T> swiglu_mlp(const Mat<T>& x, const Mat<T>& w_gate, const Mat<T>& w_up, const Mat<T>& w_down,
                  Mat<T>* pre, Mat<T>* up, Mat<T>* act) {
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
Mat<T> gelu_mlp_backward(const Mat<T>& w1, const Mat<T>& w2, const Mat<T>& pre, const Mat<T>& dout,
                         Mat<T>* dact) {
    detail::check_shape("gelu_mlp_backward", "w2", w2, w1.cols(), w1.rows());
    detail::check_shape("gelu_mlp_backward", "pre", pre, dout.rows(), w1.rows());
    const Mat<T> da = linear_backward(pre, w2, dout);
    const Mat<T> dp =
        da.cwiseProduct(pre.unaryExpr([](T v) { return act_derivative(Activation::GeluTanh, v); }));
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
//
// The steps below work on the shares of the K components present at one position n:
// g [K, I] row-major (row k = component comp[k], in component order, so the rest,
// which is present everywhere, is the last row), in place, vectorised over the neurons.
//
// When the components are split over ranks (distributed.hpp) each rank holds a block of
// them: its rows are its components present at n, and wherever a step needs something of
// every component of a neuron (whether any share is non-zero, the largest share, a sum) it
// computes that over its own rows, then reduces the vector of I values over the ranks
// (`group.max(...)`, `group.sum(...)`; nothing for one process) before it goes on. The
// reductions are elementwise over neurons, so one process computes exactly what it did
// before the split existed.

// Section 5 preparation, steps 1-3 (`any` is scratch of length I):
//   1. ignore-special-token: the shares of component 0 are 0;
//   2. at position 0 the shares of opt.pos0_component are 1;
//   3. the rest's shares with |G| < 1e-5 are 0; where every share is 0 the rest's is 1.
template <class T>
void prepare_gate_shares(T* g, const int* comp, int K, int I, int n, const DecomposeOptions& opt, int rest,
                         T* any, const Group& group) {
    if (K > 0 && opt.ignore_special_token && comp[0] == 0) std::fill(g, g + I, T(0));
    if (n == 0)
        for (int k = 0; k < K; ++k)
            if (comp[k] == opt.pos0_component) std::fill(g + long(k) * I, g + long(k + 1) * I, T(1));
    // The rest's row: the last, on the rank that holds the rest.
    T* rest_row = K > 0 && comp[K - 1] == rest ? g + long(K - 1) * I : nullptr;
    if (rest_row) {
#pragma omp simd
        for (int i = 0; i < I; ++i) rest_row[i] = std::abs(rest_row[i]) < T(1e-5) ? T(0) : rest_row[i];
    }
    std::fill(any, any + I, T(0));
    for (int k = 0; k < K; ++k) {
        const T* gk = g + long(k) * I;
#pragma omp simd
        for (int i = 0; i < I; ++i) any[i] = gk[i] != T(0) ? T(1) : any[i];
    }
    group.max(any, I);  // a non-zero share on any rank
    if (rest_row) {
#pragma omp simd
        for (int i = 0; i < I; ++i) rest_row[i] = any[i] == T(0) ? T(1) : rest_row[i];
    }
}

// Softmax rule (step 4): over the non-zero shares G_k[i] of neuron i
//   mx[i] = max_k G_k[i],  e_k[i] = exp((G_k[i] - mx[i]) / T),  w_k[i] = e_k[i] / sum_k e_k[i]
// and w_k[i] = 0 where G_k[i] == 0. `scratch` holds mx and the sums z (2I); `e` (length I)
// must be aligned for Eigen's packets, so that the vectorised exp covers the same neurons
// (all but the last I mod packet-size) whatever the buffer's address: Eigen computes a
// peeled head and tail with the scalar exp, which can differ from the packet exp by one ulp.
template <class T>
void softmax_rule(T* g, int K, int I, T temperature, T* scratch, T* e, const Group& group) {
    using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;
    T* mx = scratch;
    T* z = scratch + I;
    std::fill(mx, mx + I, -std::numeric_limits<T>::infinity());
    for (int k = 0; k < K; ++k) {
        const T* gk = g + long(k) * I;
#pragma omp simd
        for (int i = 0; i < I; ++i) mx[i] = gk[i] != T(0) && gk[i] > mx[i] ? gk[i] : mx[i];
    }
    group.max(mx, I);
    std::fill(z, z + I, T(0));
    for (int k = 0; k < K; ++k) {
        T* gk = g + long(k) * I;
        Eigen::Map<Arr, Eigen::AlignedMax>(e, I) =
            ((Eigen::Map<const Arr>(gk, I) - Eigen::Map<const Arr>(mx, I)) / temperature).exp();
#pragma omp simd
        for (int i = 0; i < I; ++i) {
            gk[i] = gk[i] != T(0) ? e[i] : T(0);
            z[i] += gk[i];
        }
    }
    group.sum(z, I);
    for (int k = 0; k < K; ++k) {
        T* gk = g + long(k) * I;
#pragma omp simd
        for (int i = 0; i < I; ++i) gk[i] /= z[i];
    }
}

// Max rule (step 4): neuron i goes wholly to the largest non-zero share (the first on ties).
// value[i], at[i]: the largest share so far and its component (INT_MAX: none yet).
template <class T>
void max_rule(T* g, const int* comp, int K, int I, T* value, int* at, const Group& group) {
    constexpr int kNone = std::numeric_limits<int>::max();
    std::fill(value, value + I, -std::numeric_limits<T>::infinity());
    std::fill(at, at + I, kNone);
    for (int k = 0; k < K; ++k) {
        const T* gk = g + long(k) * I;
        for (int i = 0; i < I; ++i)
            if (gk[i] != T(0) && (at[i] == kNone || gk[i] > value[i])) {
                value[i] = gk[i];
                at[i] = comp[k];
            }
    }
    group.max_at(value, at, I);  // the largest over the ranks; on ties the first component
    for (int k = 0; k < K; ++k) {
        T* gk = g + long(k) * I;
        for (int i = 0; i < I; ++i) gk[i] = comp[k] == at[i] ? T(1) : T(0);
    }
}

// Relu rule (step 4): w_k[i] = max(G_k[i], 0) / sum_k max(G_k[i], 0) over the non-zero
// shares; when that sum is 0 (every share negative) the P participating components get 1/P.
// scratch: z[i] and P[i] side by side (one reduction of 2I values).
template <class T>
void relu_rule(T* g, int K, int I, T* scratch, const Group& group) {
    T* z = scratch;
    T* P = scratch + I;
    std::fill(scratch, scratch + 2 * long(I), T(0));
    for (int k = 0; k < K; ++k) {
        const T* gk = g + long(k) * I;
        for (int i = 0; i < I; ++i)
            if (gk[i] != T(0)) {
                z[i] += std::max(gk[i], T(0));
                P[i] += T(1);
            }
    }
    group.sum(scratch, 2 * int64_t(I));
    for (int k = 0; k < K; ++k) {
        T* gk = g + long(k) * I;
        for (int i = 0; i < I; ++i)
            if (gk[i] != T(0)) gk[i] = z[i] > T(0) ? std::max(gk[i], T(0)) / z[i] : T(1) / P[i];
    }
}

// Linear rule (step 4): w_k[i] = (G_k[i] - mn) / sum_k (G_k[i] - mn) with mn the smallest
// non-zero share; when that sum is 0 (one participant, or all equal) the P participating
// components get 1/P. scratch: mn[i], then z[i] and P[i] side by side.
template <class T>
void linear_rule(T* g, int K, int I, T* scratch, const Group& group) {
    T* mn = scratch;
    T* z = scratch + I;
    T* P = scratch + 2 * long(I);
    std::fill(mn, mn + I, std::numeric_limits<T>::infinity());
    for (int k = 0; k < K; ++k) {
        const T* gk = g + long(k) * I;
        for (int i = 0; i < I; ++i)
            if (gk[i] != T(0)) mn[i] = std::min(mn[i], gk[i]);
    }
    group.min(mn, I);
    std::fill(z, z + 2 * long(I), T(0));
    for (int k = 0; k < K; ++k) {
        const T* gk = g + long(k) * I;
        for (int i = 0; i < I; ++i)
            if (gk[i] != T(0)) {
                z[i] += gk[i] - mn[i];
                P[i] += T(1);
            }
    }
    group.sum(z, 2 * int64_t(I));
    for (int k = 0; k < K; ++k) {
        T* gk = g + long(k) * I;
        for (int i = 0; i < I; ++i)
            if (gk[i] != T(0)) gk[i] = z[i] > T(0) ? (gk[i] - mn[i]) / z[i] : T(1) / P[i];
    }
}

// Taylor rule: first-order split of the activation along the pre-activation p,
//   A_m = G_m * act(p)/p * up   (sum_m G_m = p, so sum_m A_m = a)
// in place of the shares; `s` is scratch of length I; up is null for the GELU MLP.
template <class T>
void taylor_rule(T* g, int K, int I, Activation act, const T* pre, const T* up, T* s) {
    for (int i = 0; i < I; ++i) s[i] = act_over_x(act, pre[i]) * (up ? up[i] : T(1));
    for (int k = 0; k < K; ++k) {
        T* gk = g + int64_t(k) * I;
#pragma omp simd
        for (int i = 0; i < I; ++i) gk[i] *= s[i];
    }
}

// The MLP twin, in chunks of consecutive positions (the rules act per position and
// neuron, so a chunk holds every component present at its positions):
//   gather   Zc = the normed rows of the chunk, position-major   [rows, D]
//   shares   G  = Zc W_share^T (+ b_1 on the rest's rows)         [rows, I]
//   rule     A  = w(G) * a   per position, in place of G          (taylor: A = taylor_rule(G))
//   down     Yc = A W_d^T, scattered back to the stored rows       [rows, D]
// Each thread takes whole chunks with its own buffers, sized for ~kChunkRows rows, so
// the intermediates stay in cache; the result does not depend on the number of threads.
//
// On a slice of the components split over ranks (distributed.hpp), the rules reduce over
// the ranks at every position (see the rules above): the chunks then run one after another
// on the calling thread, so that every rank reaches the reductions in the same order
// (positions 0, 1, ..., N-1) and they are made from one thread only.
template <class T>
Components<T> mlp_decomposed(const Components<T>& z, const Mat<T>& W_share, const Vec<T>& b_share,
                             const Mat<T>& W_down, const Vec<T>& b_down, Activation act, const Mat<T>& pre,
                             const Mat<T>& up, const Mat<T>& a, const DecomposeOptions& opt,
                             const Group& group) {
    const int N = z.N, M = z.M, I = int(W_share.rows()), D = int(W_down.rows());
    const bool gated = up.size() > 0;
    detail::check_dim("mlp_decomposed", "share weight columns", W_share.cols(), z.D);
    detail::check_dim("mlp_decomposed", "down weight columns", W_down.cols(), I);
    detail::check_shape("mlp_decomposed", "recorded activations", a, N, I);
    detail::check_shape("mlp_decomposed", "recorded pre-activations", pre, N, I);
    if (gated) detail::check_shape("mlp_decomposed", "recorded up projection", up, N, I);
    if (b_share.size()) detail::check_dim("mlp_decomposed", "share bias length", b_share.size(), I);
    if (b_down.size()) detail::check_dim("mlp_decomposed", "down bias length", b_down.size(), D);

    // K[n] = number of components present at position n (first[m] <= n).
    std::vector<int> K(N, 0);
    for (int m = 0; m < M; ++m)
        if (z.first[m] < N) ++K[z.first[m]];
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
    const int rest = z.total - 1;  // the rest's component index (on the slice that holds it)
    const bool split = group.size() > 1;

    Mat<T> Y(z.rows(), D);  // every stored row is written exactly once below
#pragma omp parallel if (!split && worth_threads(double(z.rows()) * D * I))
    {
        Mat<T> Zc(max_rows, z.D), G(max_rows, I), Yc(max_rows, D);
        std::vector<int> comp(max_rows);     // component (index in the whole decomposition) of each chunk row
        std::vector<int64_t> src(max_rows);  // stored row of each chunk row
        std::vector<T> scratch(3 * size_t(I));
        std::vector<int> at(static_cast<size_t>(I));  // max_rule's winners
        Eigen::Array<T, Eigen::Dynamic, 1> exps(I);   // Eigen-aligned, see softmax_rule

#pragma omp for schedule(dynamic)
        for (int ci = 0; ci < chunks; ++ci) {
            const int p0 = bounds[ci], p1 = bounds[ci + 1];
            int64_t rc = 0;
            for (int n = p0; n < p1; ++n)
                for (int m = 0; m < M; ++m)
                    if (z.first[m] <= n) {
                        comp[rc] = z.m0 + m;
                        src[rc] = z.row(m, n);
                        Zc.row(rc) = z.X.row(src[rc]);
                        ++rc;
                    }
            detail::product_nt(G.topRows(rc), Zc.topRows(rc), W_share);
            if (b_share.size())
                for (int64_t r = 0; r < rc; ++r)
                    if (comp[r] == rest) G.row(r) += b_share.transpose();

            // Distribute a[n, i] over the components present at n.
            for (int n = p0, r0 = 0; n < p1; r0 += K[n], ++n) {
                T* g = G.data() + int64_t(r0) * I;
                T* sc = scratch.data();
                if (opt.rule == MlpRule::Taylor) {
                    taylor_rule(g, K[n], I, act, pre.data() + int64_t(n) * I,
                                gated ? up.data() + int64_t(n) * I : nullptr, sc);
                    continue;
                }
                prepare_gate_shares(g, comp.data() + r0, K[n], I, n, opt, rest, sc, group);
                switch (opt.rule) {
                    case MlpRule::Softmax:
                        softmax_rule(g, K[n], I, T(opt.temperature), sc, exps.data(), group);
                        break;
                    case MlpRule::Max:
                        max_rule(g, comp.data() + r0, K[n], I, sc, at.data(), group);
                        break;
                    case MlpRule::Relu:
                        relu_rule(g, K[n], I, sc, group);
                        break;
                    case MlpRule::Linear:
                        linear_rule(g, K[n], I, sc, group);
                        break;
                    case MlpRule::Taylor:
                        break;
                }
                // A_m[n, i] = w_m[n, i] * a[n, i]
                const T* an = a.data() + int64_t(n) * I;
                for (int k = 0; k < K[n]; ++k) {
                    T* gk = g + int64_t(k) * I;
#pragma omp simd
                    for (int i = 0; i < I; ++i) gk[i] *= an[i];
                }
            }
            detail::product_nt(Yc.topRows(rc), G.topRows(rc), W_down);
            for (int64_t r = 0; r < rc; ++r) Y.row(src[r]) = Yc.row(r);
        }
    }
    if (b_down.size()) z.add_to_rest(Y, b_down);
    return z.like(std::move(Y));
}

#define DEPASS_INSTANTIATE(T)                                                                                \
    template T silu(T);                                                                                      \
    template T gelu_tanh(T);                                                                                 \
    template T act_over_x(Activation, T);                                                                    \
    template T act_derivative(Activation, T);                                                                \
    template Mat<T> swiglu_mlp_backward(const Mat<T>&, const Mat<T>&, const Mat<T>&, const Mat<T>&,          \
                                        const Mat<T>&, const Mat<T>&, Mat<T>*);                              \
    template Mat<T> gelu_mlp_backward(const Mat<T>&, const Mat<T>&, const Mat<T>&, const Mat<T>&, Mat<T>*);  \
    template Mat<T> swiglu_mlp(const Mat<T>&, const Mat<T>&, const Mat<T>&, const Mat<T>&, Mat<T>*, Mat<T>*, \
                               Mat<T>*);                                                                     \
    template Mat<T> gelu_mlp(const Mat<T>&, const Mat<T>&, const Vec<T>&, const Mat<T>&, const Vec<T>&,      \
                             Mat<T>*, Mat<T>*);                                                              \
    template void prepare_gate_shares(T*, const int*, int, int, int, const DecomposeOptions&, int, T*,       \
                                      const Group&);                                                         \
    template void softmax_rule(T*, int, int, T, T*, T*, const Group&);                                       \
    template void max_rule(T*, const int*, int, int, T*, int*, const Group&);                                \
    template void relu_rule(T*, int, int, T*, const Group&);                                                 \
    template void linear_rule(T*, int, int, T*, const Group&);                                               \
    template void taylor_rule(T*, int, int, Activation, const T*, const T*, T*);                             \
    template Components<T> mlp_decomposed(const Components<T>&, const Mat<T>&, const Vec<T>&, const Mat<T>&, \
                                          const Vec<T>&, Activation, const Mat<T>&, const Mat<T>&,           \
                                          const Mat<T>&, const DecomposeOptions&, const Group&);
DEPASS_INSTANTIATE(float)
DEPASS_INSTANTIATE(double)
#undef DEPASS_INSTANTIATE

}  // namespace depass
