// adjoint.cpp -- the taylor rule's logit attribution by one reverse pass of the frozen network.
//
// The decomposed pass with the taylor rule, one block l, for one component X (biases to the rest):
//   u = Norm1(X)        frozen factor r1          v = u W_V^T            ctx_h = A_h v_g
//   y = ctx W_O^T       M = X + y (= m[l])        z = Norm2(M)           G = z W_g^T
//   A = G * s,  s = act(p)/p * up (frozen)        Y = A W_d^T            X' = M + Y (= h[l+1])
// Every line is linear in X, so its transpose carries the cotangent lambda = d logit / d X back:
//   lambda_A = lambda' W_d     lambda_G = lambda_A * s     lambda_z = lambda_G W_g
//   lambda_M = lambda' + Norm2^T(lambda_z)
//   lambda_ctx = lambda_M W_O  lambda_v_g = sum_{h in g} A_h^T lambda_ctx_h   lambda_u = lambda_v W_V
//   lambda_X = lambda_M + Norm1^T(lambda_u)
// and a bias b added at a point whose cotangent is lambda adds lambda . b to the rest's share.
// At the top, the target (n, v): lambda_{h[L]} = NormF^T(W_U[v]) at row n (zero elsewhere),
// with W_U[v] . beta_F for a LayerNorm's bias.
#include "depass/adjoint.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "depass/threading.hpp"
#include "depass/tolerance.hpp"

namespace depass {

template <class T>
Cotangents<T> Cotangents<T>::like(Mat<T> newX) const {
    if (newX.rows() != rows()) throw Error("cotangents: new rows do not match the layout");
    Cotangents c;
    c.R = R;
    c.N = N;
    c.D = int(newX.cols());
    c.targets = targets;
    c.offset = offset;
    c.row_pos = row_pos;
    c.X = std::move(newX);
    c.bias = bias;
    return c;
}

// ---- the transposed frozen ops ---------------------------------------------------------

// RMSNorm twin  y = g * x * r[n]             ->  dx = g * dy * r[n]
// LayerNorm twin y = g * (x - mean x) * r[n]  ->  dx = r[n] (u - mean u),  u = g * dy
// (centring is a symmetric projection, so it is its own transpose).
template <class T>
Mat<T> norm_frozen_backward(NormKind kind, const Mat<T>& dy, const Vec<T>& g, const Vec<T>& inv,
                            const std::vector<int>& row_pos) {
    if (g.size() != dy.cols() || int64_t(row_pos.size()) != dy.rows())
        throw Error("norm_frozen_backward: gain or rows do not match the cotangents");
    Mat<T> dx(dy.rows(), dy.cols());
#pragma omp parallel for if (worth_threads(double(dy.size())))
    for (Eigen::Index r = 0; r < dy.rows(); ++r) {
        const T f = inv[row_pos[r]];
        if (kind == NormKind::RMSNorm) {
            dx.row(r) = dy.row(r).cwiseProduct(g.transpose()) * f;
        } else {
            const auto u = dy.row(r).cwiseProduct(g.transpose());
            const T mean = u.sum() / T(dy.cols());
            dx.row(r) = (u.array() - mean).matrix() * f;
        }
    }
    return dx;
}

// ctx_h[q] = sum_{k <= q} A_h[q, k] v_g[k]  ->  dv_g[k] = sum_{h in g} sum_{q >= k} A_h[q, k] dctx_h[q]:
// for target r (positions 0 .. n) the upper triangle of the transposed corner A_h[0..n, 0..n].
template <class T>
Mat<T> attention_frozen_backward(const Cotangents<T>& dctx, const std::vector<Mat<T>>& probs, int H, int Hkv,
                                 int Dh) {
    if (dctx.D != H * Dh || int(probs.size()) != H || Hkv <= 0 || H % Hkv)
        throw Error("attention_frozen_backward: cotangents, heads and probabilities do not match");
    const int group = H / Hkv;
    Mat<T> dv = Mat<T>::Zero(dctx.rows(), int64_t(Hkv) * Dh);
#pragma omp parallel for collapse(2) \
    schedule(dynamic) if (worth_threads(0.5 * double(dctx.rows()) * dctx.N * H * Dh))
    for (int r = 0; r < dctx.R; ++r)
        for (int g = 0; g < Hkv; ++g) {
            const int64_t o = dctx.offset[r], n = dctx.offset[r + 1] - o;
            auto out = dv.block(o, int64_t(g) * Dh, n, Dh);
            for (int h = g * group; h < (g + 1) * group; ++h) {
                const auto At = probs[h].topLeftCorner(n, n).transpose();  // [n, n], upper triangular
                out.noalias() +=
                    At.template triangularView<Eigen::Upper>() * dctx.X.block(o, int64_t(h) * Dh, n, Dh);
            }
        }
    return dv;
}

// A = G * s, Y = A W_down^T, G = z W_share^T  ->  dA = dY W_down, dG = dA * s, dz = dG W_share.
template <class T>
Mat<T> taylor_mlp_frozen_backward(const Mat<T>& dY, const Mat<T>& W_share, const Mat<T>& W_down,
                                  const Mat<T>& s, const std::vector<int>& row_pos, Mat<T>* dG_out) {
    if (W_down.rows() != dY.cols() || W_down.cols() != W_share.rows() || s.cols() != W_share.rows() ||
        int64_t(row_pos.size()) != dY.rows())
        throw Error("taylor_mlp_frozen_backward: weights, factors or rows do not match the cotangents");
    Mat<T> dG(dY.rows(), W_down.cols());
    dG.noalias() = dY * W_down;  // dA
    for (Eigen::Index r = 0; r < dG.rows(); ++r) dG.row(r).array() *= s.row(row_pos[r]).array();
    Mat<T> dz(dY.rows(), W_share.cols());
    dz.noalias() = dG * W_share;
    if (dG_out) *dG_out = std::move(dG);
    return dz;
}

namespace {

// bias[r] += sum over target r's rows of  lambda[row] . b.
template <class T>
void add_bias_share(Cotangents<T>& c, const Mat<T>& lambda, const Vec<T>& b) {
    if (!b.size()) return;
    const Vec<T> per_row = lambda * b;
    for (int r = 0; r < c.R; ++r)
        for (int64_t i = c.offset[r]; i < c.offset[r + 1]; ++i) c.bias[r] += double(per_row[i]);
}

// The frozen per-(position, neuron) factor of the taylor rule: s = act(p)/p * up (up = 1 for GELU).
template <class T>
Mat<T> taylor_factor(const Config& cfg, const LayerTrace<T>& lt) {
    Mat<T> s(lt.mlp_pre.rows(), lt.mlp_pre.cols());
    const bool gated = cfg.mlp == MlpKind::SwiGLU;
    for (Eigen::Index n = 0; n < s.rows(); ++n)
        for (Eigen::Index i = 0; i < s.cols(); ++i)
            s(n, i) = act_over_x(cfg.act, lt.mlp_pre(n, i)) * (gated ? lt.mlp_up(n, i) : T(1));
    return s;
}

bool same_point(const CutPoint& a, const CutPoint& b) {
    return a.layer == b.layer && a.after_attention == b.after_attention;
}

}  // namespace

template <class T>
void adjoint_pass(const Model<T>& model, const Trace<T>& trace, const std::vector<LogitTarget>& targets,
                  CutPoint stop, const CotangentObserver<T>& observe) {
    const Config& cfg = model.cfg;
    const int N = trace.N(), D = cfg.D;
    if (stop.layer < 0 || stop.layer > cfg.L || (stop.layer == cfg.L && stop.after_attention))
        throw Error("adjoint_pass: stop point " + stop.str() + " is not a residual point of a " +
                    std::to_string(cfg.L) + "-layer model");
    const Mat<T>& W_U = model.w.unembedding();

    // Layout: target r holds positions 0 .. pos[r].
    Cotangents<T> lam;
    lam.R = int(targets.size());
    lam.N = N;
    lam.D = D;
    lam.targets = targets;
    lam.offset.assign(size_t(lam.R) + 1, 0);
    for (int r = 0; r < lam.R; ++r) {
        const LogitTarget& t = targets[r];
        if (t.pos < 0 || t.pos >= N || t.token < 0 || t.token >= cfg.V)
            throw Error("adjoint_pass: target " + std::to_string(r) + " (position " + std::to_string(t.pos) +
                        ", token " + std::to_string(t.token) + ") is outside the sequence or the vocabulary");
        lam.offset[r + 1] = lam.offset[r] + t.pos + 1;
    }
    lam.row_pos.resize(size_t(lam.rows()));
    for (int r = 0; r < lam.R; ++r)
        for (int n = 0; n <= targets[r].pos; ++n) lam.row_pos[size_t(lam.offset[r] + n)] = n;
    lam.bias.assign(size_t(lam.R), 0.0);

    // Top: logit(n, v) = W_U[v] . NormF(h[L][n])  ->  lambda_{h[L]}[n] = NormF^T(W_U[v]); the
    // final LayerNorm's bias gives W_U[v] . beta_F.
    Mat<T> X = Mat<T>::Zero(lam.rows(), D);
    {
        Mat<T> w(lam.R, D);
        std::vector<int> at(size_t(lam.R));
        for (int r = 0; r < lam.R; ++r) {
            w.row(r) = W_U.row(targets[r].token);
            at[size_t(r)] = targets[r].pos;
            if (cfg.norm == NormKind::LayerNorm && model.w.normf_b.size())
                lam.bias[r] += double(w.row(r).dot(model.w.normf_b.transpose()));
        }
        const Mat<T> top = norm_frozen_backward(cfg.norm, w, model.w.normf_g, trace.normf.inv, at);
        for (int r = 0; r < lam.R; ++r) X.row(lam.offset[r] + targets[r].pos) = top.row(r);
    }
    lam.X = std::move(X);
    if (observe) observe(CutPoint{cfg.L, false}, lam);
    if (same_point(stop, CutPoint{cfg.L, false})) return;

    LayerWeights<T> scratch;  // the block being passed, when the blocks are streamed
    for (int l = cfg.L - 1; l >= stop.layer; --l) {
        const LayerWeights<T>& lw = model.layer(l, scratch);
        const LayerTrace<T>& lt = trace.layers[l];
        const bool gated = cfg.mlp == MlpKind::SwiGLU;

        // MLP block, h[l+1] = m[l] + Y: b_down, b_1 (GELU) and beta2 (LayerNorm) are the rest's.
        add_bias_share(lam, lam.X, lw.b_down);
        Mat<T> dG;
        const Mat<T> dz = taylor_mlp_frozen_backward(lam.X, gated ? lw.w_gate : lw.w_up, lw.w_down,
                                                     taylor_factor(cfg, lt), lam.row_pos, &dG);
        if (!gated) add_bias_share(lam, dG, lw.b_up);
        if (cfg.norm == NormKind::LayerNorm) add_bias_share(lam, dz, lw.norm2_b);
        lam.X += norm_frozen_backward(cfg.norm, dz, lw.norm2_g, lt.norm2.inv, lam.row_pos);  // lambda_{m[l]}
        if (observe) observe(CutPoint{l, true}, lam);
        if (same_point(stop, CutPoint{l, true})) return;

        // Attention block, m[l] = h[l] + ctx W_O^T: b_O, b_V and beta1 (LayerNorm) are the rest's.
        add_bias_share(lam, lam.X, lw.bo);
        const Cotangents<T> dctx = lam.like(lam.X * lw.wo);  // [rows, H*Dh]
        const Mat<T> dv = attention_frozen_backward(dctx, lt.probs, cfg.H, cfg.Hkv, cfg.Dh);
        add_bias_share(lam, dv, lw.bv);
        const Mat<T> du = dv * lw.wv;  // [rows, D]
        if (cfg.norm == NormKind::LayerNorm) add_bias_share(lam, du, lw.norm1_b);
        lam.X += norm_frozen_backward(cfg.norm, du, lw.norm1_g, lt.norm1.inv, lam.row_pos);  // lambda_{h[l]}
        if (observe) observe(CutPoint{l, false}, lam);
    }
}

// ---- scores ----------------------------------------------------------------------------

// attr[m, r] = sum_{j <= pos[r]} lambda_r[j] . X_m[j], computed position by position as one
// product of the components present at j with the targets that reach j.
template <class T>
Tensor<T> adjoint_scores(const Cotangents<T>& lam, const Components<T>& c) {
    if (c.N != lam.N || c.D != lam.D)
        throw Error("adjoint_scores: components [" + std::to_string(c.N) + ", " + std::to_string(c.D) +
                    "] do not match the cotangents [" + std::to_string(lam.N) + ", " + std::to_string(lam.D) +
                    "]");
    const int M = c.M, R = lam.R;
    Mat<double> acc = Mat<double>::Zero(M, R);
    for (int j = 0; j < c.N; ++j) {
        std::vector<int> ms, rs;
        for (int m = 0; m < M; ++m)
            if (c.first[m] <= j) ms.push_back(m);
        for (int r = 0; r < R; ++r)
            if (lam.targets[r].pos >= j) rs.push_back(r);
        if (ms.empty() || rs.empty()) continue;
        Mat<T> Cj(ms.size(), c.D), Lj(rs.size(), c.D);
        for (size_t a = 0; a < ms.size(); ++a) Cj.row(a) = c.X.row(c.row(ms[a], j));
        for (size_t b = 0; b < rs.size(); ++b) Lj.row(b) = lam.X.row(lam.offset[rs[b]] + j);
        const Mat<T> P = Cj * Lj.transpose();
        for (size_t a = 0; a < ms.size(); ++a)
            for (size_t b = 0; b < rs.size(); ++b) acc(ms[a], rs[b]) += double(P(a, b));
    }
    Tensor<T> out({int64_t(M), int64_t(R)});
    for (int m = 0; m < M; ++m)
        for (int r = 0; r < R; ++r)
            out.data[size_t(m) * R + r] = T(acc(m, r) + (m == c.rest() ? lam.bias[r] : 0.0));
    return out;
}

namespace {

// rest = lambda . state + bias - sum of the units' scores (the rest is state - sum of the units).
template <class T>
void finish_rest(Tensor<T>& out, const Cotangents<T>& lam, const Mat<T>& state, int units) {
    const int R = lam.R;
    for (int r = 0; r < R; ++r) {
        double s = lam.bias[r];
        for (int64_t i = lam.offset[r]; i < lam.offset[r + 1]; ++i)
            s += double(lam.X.row(i).dot(state.row(lam.row_pos[i])));
        for (int u = 0; u < units; ++u) s -= double(out.data[size_t(u) * R + r]);
        out.data[size_t(units) * R + r] = T(s);
    }
}

}  // namespace

// Head h's component is ctx_h W_O,h^T (its context without the value bias), so
//   score_h = sum_n lambda[n] . (ctx_h[n] W_O,h^T) = sum_n (lambda[n] W_O)_h . ctx_h[n].
template <class T>
Tensor<T> adjoint_head_scores(const Model<T>& model, const Trace<T>& trace, int layer,
                              const std::vector<int>& heads, const Cotangents<T>& lam) {
    const Config& cfg = model.cfg;
    LayerWeights<T> scratch;
    const LayerWeights<T>& lw = model.layer(layer, scratch);
    const LayerTrace<T>& lt = trace.layers[layer];
    const int Dh = cfg.Dh, group = cfg.kv_group(), K = int(heads.size()), R = lam.R;
    Mat<T> ctx = lt.attn_ctx;  // [N, H*Dh] without the value bias
    if (lw.bv.size())
        for (int h = 0; h < cfg.H; ++h)
            ctx.middleCols(int64_t(h) * Dh, Dh).rowwise() -=
                lw.bv.segment(int64_t(h / group) * Dh, Dh).transpose();
    const Mat<T> Q = lam.X * lw.wo;  // [rows, H*Dh]: lambda at the heads' contexts
    Tensor<T> out({int64_t(K + 1), int64_t(R)});
#pragma omp parallel for if (worth_threads(double(lam.rows()) * cfg.H * Dh))
    for (int r = 0; r < R; ++r)
        for (int k = 0; k < K; ++k) {
            double s = 0;
            for (int64_t i = lam.offset[r]; i < lam.offset[r + 1]; ++i)
                s += double(Q.row(i)
                                .segment(int64_t(heads[k]) * Dh, Dh)
                                .dot(ctx.row(lam.row_pos[i]).segment(int64_t(heads[k]) * Dh, Dh)));
            out.data[size_t(k) * R + r] = T(s);
        }
    finish_rest(out, lam, lt.m, K);
    return out;
}

// Neuron i's component is a[:, i] W_down[:, i]^T, so
//   score_i = sum_n a[n, i] (lambda[n] . W_down[:, i]) = sum_n a[n, i] (lambda W_down)[n, i].
template <class T>
Tensor<T> adjoint_neuron_scores(const Model<T>& model, const Trace<T>& trace, int layer,
                                const std::vector<std::vector<int>>& sets, const Cotangents<T>& lam) {
    LayerWeights<T> scratch;
    const LayerWeights<T>& lw = model.layer(layer, scratch);
    const LayerTrace<T>& lt = trace.layers[layer];
    const int I = int(lw.w_down.cols()), K = int(sets.size()), R = lam.R;
    const Mat<T> P = lam.X * lw.w_down;  // [rows, I]: lambda at the activations
    Tensor<T> out({int64_t(K + 1), int64_t(R)});
#pragma omp parallel for if (worth_threads(double(lam.rows()) * I))
    for (int r = 0; r < R; ++r) {
        Eigen::VectorXd per = Eigen::VectorXd::Zero(I);
        for (int64_t i = lam.offset[r]; i < lam.offset[r + 1]; ++i)
            per +=
                (P.row(i).cwiseProduct(lt.mlp_act.row(lam.row_pos[i]))).transpose().template cast<double>();
        for (int k = 0; k < K; ++k) {
            double s = 0;
            for (int i : sets[k]) s += per[i];
            out.data[size_t(k) * R + r] = T(s);
        }
    }
    finish_rest(out, lam, state_at(trace, CutPoint{layer + 1, false}), K);
    return out;
}

// ---- the entry point -------------------------------------------------------------------

namespace {

// A level's layout and names without its components (head and neuron level: the same checks
// and names as init_heads / init_neurons); other levels: the initialiser itself (its
// components are few and cheap) -- `formed` says which.
template <class T>
struct Start {
    Initialised<T> init;
    bool formed = false;
    std::vector<int> heads;              // head level
    std::vector<std::vector<int>> sets;  // neuron level
};

template <class T>
Start<T> start_of(const Model<T>& model, const Trace<T>& trace, const LevelRequest& q) {
    const Config& cfg = model.cfg;
    Start<T> s;
    if (q.level != Level::Head && q.level != Level::Neuron) {
        s.init = initialise(model, trace, q);
        s.formed = true;
        return s;
    }
    if (q.layer < 0 || q.layer > cfg.L - 1)
        throw Error(std::string(q.level == Level::Head ? "head level" : "neuron level") + ": layer " +
                    std::to_string(q.layer) + " is out of range [0, " + std::to_string(cfg.L - 1) +
                    "] for this " + std::to_string(cfg.L) + "-layer model");
    const int l = q.layer;
    std::vector<ComponentInfo> info;
    Initialised<T>& in = s.init;
    if (q.level == Level::Head) {
        s.heads = q.heads;
        if (s.heads.empty())
            for (int h = 0; h < cfg.H; ++h) s.heads.push_back(h);
        for (int h : s.heads) {
            if (h < 0 || h >= cfg.H)
                throw Error("head level: head " + std::to_string(h) + " is out of range [0, " +
                            std::to_string(cfg.H) + ") in layer " + std::to_string(l));
            info.push_back({ComponentInfo::Kind::Head, l, h, -1,
                            "L" + std::to_string(l) + ".head " + std::to_string(h)});
        }
        in.cut = CutPoint{l, true};
        in.level = Level::Head;
    } else {
        if (q.neuron_groups > 0) {
            if (!q.neurons.empty())
                throw Error("neuron level: give either a neuron list or a number of groups, not both");
            if (q.neuron_groups > cfg.I)
                throw Error("neuron level: " + std::to_string(q.neuron_groups) + " groups exceed the " +
                            std::to_string(cfg.I) + " neurons of the MLP");
            for (int g = 0; g < q.neuron_groups; ++g) {
                const int lo = int(int64_t(cfg.I) * g / q.neuron_groups);
                const int hi = int(int64_t(cfg.I) * (g + 1) / q.neuron_groups);
                std::vector<int> set;
                for (int i = lo; i < hi; ++i) set.push_back(i);
                s.sets.push_back(set);
                info.push_back({ComponentInfo::Kind::NeuronGroup, l, lo, hi,
                                "L" + std::to_string(l) + ".neurons " + std::to_string(lo) + "-" +
                                    std::to_string(hi - 1)});
            }
        } else {
            std::vector<int> neurons = q.neurons;
            if (neurons.empty())
                for (int i = 0; i < cfg.I; ++i) neurons.push_back(i);
            for (int i : neurons) {
                if (i < 0 || i >= cfg.I)
                    throw Error("neuron level: neuron " + std::to_string(i) + " is out of range [0, " +
                                std::to_string(cfg.I) + ") in layer " + std::to_string(l));
                s.sets.push_back({i});
                info.push_back({ComponentInfo::Kind::Neuron, l, i, -1,
                                "L" + std::to_string(l) + ".neuron " + std::to_string(i)});
            }
        }
        in.cut = CutPoint{l + 1, false};
        in.level = Level::Neuron;
    }
    info.push_back({ComponentInfo::Kind::Rest, -1, -1, -1, "rest"});
    in.info = info;
    in.pos0_component = int(info.size()) - 1;
    in.ignore_special_default = false;
    return s;
}

// The targets of attribute(), one right-hand side each: r = n K + k.
std::vector<LogitTarget> as_rhs(const std::vector<std::vector<int>>& targets) {
    std::vector<LogitTarget> t;
    for (size_t n = 0; n < targets.size(); ++n)
        for (int v : targets[n]) t.push_back({int(n), v});
    return t;
}

template <class T>
Attribution<T> shell(const Trace<T>& trace, const AttributionRequest& rq, const Start<T>& s,
                     const std::vector<std::vector<int>>& targets) {
    Attribution<T> a;
    a.level = s.init.level;
    a.cut = s.init.cut;
    a.info = s.init.info;
    a.options = s.init.options(rq.rule, rq.temperature);
    if (rq.ignore_special_token) a.options.ignore_special_token = *rq.ignore_special_token;
    a.options.mlp_chunk = rq.mlp_chunk;
    a.targets = targets;
    // The layout and names of the components, width 0: they are never formed.
    std::vector<int> first;
    std::vector<std::string> names;
    if (s.formed) {
        first = s.init.comps.first;
        names = s.init.comps.names;
    } else {
        first.assign(s.init.info.size(), 0);
        for (const ComponentInfo& c : s.init.info) names.push_back(c.label);
    }
    a.components = Components<T>::zeros(trace.N(), 0, first, names);
    const int N = trace.N(), K = a.K();
    a.target_logits.resize(N, K);
    for (int n = 0; n < N; ++n)
        for (int k = 0; k < K; ++k) a.target_logits(n, k) = double(trace.logits(n, targets[n][k]));
    return a;
}

// The completeness of the adjoint path: the shares of every target sum to its logit,
//   max |sum_m attr[m, n, k] - logit(n, k)| / max(|logit|, |attr|).
template <class T>
void check_sums(Attribution<T>& a) {
    const int M = a.M(), N = a.N(), K = a.K();
    double worst = 0, scale = 1e-30;
    for (int n = 0; n < N; ++n)
        for (int k = 0; k < K; ++k) {
            double s = 0;
            for (int m = 0; m < M; ++m) {
                const double v = double(a.logit_attribution.data[(size_t(m) * N + n) * K + k]);
                s += v;
                scale = std::max(scale, std::abs(v));
            }
            scale = std::max(scale, std::abs(a.target_logits(n, k)));
            const double e = std::abs(s - a.target_logits(n, k));
            if (!(e <= worst)) worst = e;
        }
    a.completeness_max_abs = worst;
    a.completeness_max_rel = worst / scale;
    a.completeness_worst_point = "logits";
    const double tol = tolerance::adjoint_sum_rel<T>();
    if (!(a.completeness_max_rel <= tol)) {
        std::ostringstream os;
        os << "completeness violated: the shares of the adjoint path differ from the target logits by "
           << a.completeness_max_rel << " (relative), above the tolerance " << tol;
        throw Error(os.str());
    }
}

void require_taylor(const AttributionRequest& rq) {
    if (rq.rule != MlpRule::Taylor)
        throw Error(std::string("attribute: the adjoint path needs the taylor rule, not '") +
                    rule_name(rq.rule) +
                    "': only taylor is linear in the components (softmax, max, relu and linear weigh each "
                    "component against the others), so the other rules need the decomposed forward pass");
}

// The attributions of `layers` (all of one level) from one reverse pass, stopped at the lowest cut.
template <class T>
std::vector<Attribution<T>> adjoint_layers(const Model<T>& model, const Trace<T>& trace,
                                           const AttributionRequest& rq, const std::vector<int>& layers) {
    require_taylor(rq);
    const std::vector<std::vector<int>> targets = resolve_targets(rq.targets, trace, model.cfg.V);
    const std::vector<LogitTarget> rhs = as_rhs(targets);
    std::vector<Start<T>> starts;
    std::vector<Attribution<T>> out;
    for (int l : layers) {
        LevelRequest q = rq.start;
        q.layer = l;
        starts.push_back(start_of(model, trace, q));
        out.push_back(shell(trace, rq, starts.back(), targets));
    }
    CutPoint lowest = starts[0].init.cut;
    for (const Start<T>& s : starts)
        if (s.init.cut.layer < lowest.layer ||
            (s.init.cut.layer == lowest.layer && !s.init.cut.after_attention))
            lowest = s.init.cut;
    const CotangentObserver<T> at = [&](const CutPoint& p, const Cotangents<T>& lam) {
        for (size_t i = 0; i < starts.size(); ++i) {
            const Start<T>& s = starts[i];
            if (!same_point(p, s.init.cut)) continue;
            if (s.formed)
                out[i].logit_attribution = adjoint_scores(lam, s.init.comps);
            else if (s.init.level == Level::Head)
                out[i].logit_attribution = adjoint_head_scores(model, trace, layers[i], s.heads, lam);
            else
                out[i].logit_attribution = adjoint_neuron_scores(model, trace, layers[i], s.sets, lam);
        }
    };
    adjoint_pass(model, trace, rhs, lowest, at);
    const int N = trace.N(), K = targets.empty() ? 0 : int(targets[0].size());
    for (Attribution<T>& a : out) {
        a.logit_attribution.shape = {int64_t(a.M()), int64_t(N), int64_t(K)};  // [M, R] with r = n K + k
        check_sums(a);
    }
    return out;
}

}  // namespace

template <class T>
Attribution<T> attribute_adjoint(const Model<T>& model, const Trace<T>& trace, const AttributionRequest& rq) {
    return std::move(adjoint_layers(model, trace, rq, {rq.start.layer})[0]);
}

template <class T>
std::vector<Attribution<T>> attribute_all_layers(const Model<T>& model, const Trace<T>& trace,
                                                 const AttributionRequest& rq, const Group& group) {
    const Level lv = rq.start.level;
    if (lv != Level::Module && lv != Level::Head && lv != Level::Neuron)
        throw Error(
            std::string("attribute: every layer at once applies to the module, head and neuron levels, "
                        "not the ") +
            level_name(lv) + " level");
    std::vector<int> layers;
    for (int l = 0; l < model.cfg.L; ++l) layers.push_back(l);
    if (rq.adjoint && group.size() > 1)
        throw Error("adjoint: the reverse pass forms no components to split over " +
                    std::to_string(group.size()) +
                    " ranks; run it as one process (it costs about one backward pass per target position)");
    if (rq.adjoint) return adjoint_layers(model, trace, rq, layers);
    std::vector<Attribution<T>> out;
    for (int l : layers) {  // one decomposed pass per layer
        AttributionRequest q = rq;
        q.start.layer = l;
        out.push_back(attribute(model, trace, q, {}, group));
    }
    return out;
}

#define DEPASS_INSTANTIATE(T)                                                                               \
    template struct Cotangents<T>;                                                                          \
    template Mat<T> norm_frozen_backward(NormKind, const Mat<T>&, const Vec<T>&, const Vec<T>&,             \
                                         const std::vector<int>&);                                          \
    template Mat<T> attention_frozen_backward(const Cotangents<T>&, const std::vector<Mat<T>>&, int, int,   \
                                              int);                                                         \
    template Mat<T> taylor_mlp_frozen_backward(const Mat<T>&, const Mat<T>&, const Mat<T>&, const Mat<T>&,  \
                                               const std::vector<int>&, Mat<T>*);                           \
    template void adjoint_pass(const Model<T>&, const Trace<T>&, const std::vector<LogitTarget>&, CutPoint, \
                               const CotangentObserver<T>&);                                                \
    template Tensor<T> adjoint_scores(const Cotangents<T>&, const Components<T>&);                          \
    template Tensor<T> adjoint_head_scores(const Model<T>&, const Trace<T>&, int, const std::vector<int>&,  \
                                           const Cotangents<T>&);                                           \
    template Tensor<T> adjoint_neuron_scores(const Model<T>&, const Trace<T>&, int,                         \
                                             const std::vector<std::vector<int>>&, const Cotangents<T>&);   \
    template Attribution<T> attribute_adjoint(const Model<T>&, const Trace<T>&, const AttributionRequest&); \
    template std::vector<Attribution<T>> attribute_all_layers(const Model<T>&, const Trace<T>&,             \
                                                              const AttributionRequest&, const Group&);
DEPASS_INSTANTIATE(float)
DEPASS_INSTANTIATE(double)
#undef DEPASS_INSTANTIATE

}  // namespace depass
