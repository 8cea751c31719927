// backward.cpp -- the reverse of forward(): gradients of f = log softmax(logits[pos])[target].
//
// forward (src/model/forward.cpp), one block l:      reverse, one block l (dX = df/dX):
//   x    = Norm1(h[l])                                  dh[l] = dm + Norm1_backward(h[l], dx)
//   q, k, v = x W^T + b ; RoPE(q), RoPE(k)              dx = dq W_q + dk W_k + dv W_v  (RoPE undone on dq,
//   dk) ctx  = attention(q, k, v)                           dq, dk, dv = attention_backward(dctx) m    = h[l]
//   + ctx W_o^T + b_o                       dctx = dm W_o          (recorded: attn_ctx[l]) y    = Norm2(m) dm
//   = dh[l+1] + Norm2_backward(m, dy) h[l+1] = m + MLP(y)                                 dy =
//   MLP_backward(dh[l+1]); da recorded: mlp_act[l]
// and at the top:
//   logits = NormF(h[L]) W_U^T                          dh[L] = NormF_backward(h[L], dlogits W_U)
//   f = log softmax(logits[pos])[target]                dlogits[pos] = e_target - softmax(logits[pos])
//
// A residual connection copies its gradient to both branches; everything else is one
// `<op>_backward` from src/ops, written beside its forward op.
#include "depass/backward.hpp"

#include <cmath>
#include <string>

#include "depass/ops.hpp"

namespace depass {

namespace {

void check_pos_target(const char* fn, int N, int V, int pos, int target) {
    if (pos < 0 || pos >= N)
        throw Error(std::string(fn) + ": position " + std::to_string(pos) + " is outside the sequence [0, " +
                    std::to_string(N) + ")");
    if (target < 0 || target >= V)
        throw Error(std::string(fn) + ": target id " + std::to_string(target) +
                    " is outside the vocabulary [0, " + std::to_string(V) + ")");
}

}  // namespace

// f = l_t - log sum_v exp(l_v) = (l_t - max) - log sum_v exp(l_v - max)
template <class T>
double target_log_prob(const Trace<T>& trace, int pos, int target) {
    check_pos_target("target_log_prob", int(trace.logits.rows()), int(trace.logits.cols()), pos, target);
    const auto r = trace.logits.row(pos);
    const double mx = double(r.maxCoeff());
    double z = 0;
    for (Eigen::Index v = 0; v < r.size(); ++v) z += std::exp(double(r[v]) - mx);
    return double(r[target]) - mx - std::log(z);
}

// d f / d l_v = [v == t] - exp(l_v) / sum_u exp(l_u) = [v == t] - softmax(l)_v
// Computed in double: for a confident target (p_t near 1) the entry 1 - p_t is taken as
// sum_{v != t} p_v, which keeps its relative precision instead of cancelling.
template <class T>
Vec<T> log_softmax_backward(const Mat<T>& logits, int pos, int target) {
    check_pos_target("log_softmax_backward", int(logits.rows()), int(logits.cols()), pos, target);
    const Eigen::VectorXd r = logits.row(pos).transpose().template cast<double>();
    const Eigen::VectorXd p =
        (r.array() - r.maxCoeff()).exp().matrix() / (r.array() - r.maxCoeff()).exp().sum();
    double others = 0;
    for (Eigen::Index v = 0; v < p.size(); ++v)
        if (v != target) others += p[v];
    Vec<T> d = (-p).template cast<T>();
    d[target] = T(others);
    return d;
}

namespace {

// The reverse pass from the gradient of f with respect to the logits row `pos` ([1, V]).
template <class T>
Gradients<T> backward_from(const Model<T>& model, const Trace<T>& trace, int pos, int target, double f,
                           const Mat<T>& dlogits_pos) {
    const Config& c = model.cfg;
    const Weights<T>& w = model.w;
    const int N = trace.N();
    if (int(trace.layers.size()) != c.L || int(trace.h.size()) != c.L + 1)
        throw Error("backward: the trace has " + std::to_string(trace.layers.size()) + " layers, the model " +
                    std::to_string(c.L));

    Gradients<T> g;
    g.pos = pos;
    g.target = target;
    g.f = f;
    g.attn_ctx.resize(c.L);
    g.mlp_act.resize(c.L);

    // Top: only row `pos` of the logits carries gradient, so only that row of the final-norm
    // output does (the other rows of dlogits W_U are 0 and are not multiplied out).
    Mat<T> dnormed = Mat<T>::Zero(N, c.D);
    dnormed.row(pos) = unembed_backward(dlogits_pos, w.unembedding());
    Mat<T> dh = apply_norm_backward(c.norm, c.norm_eps, trace.h[c.L], w.normf_g, dnormed);  // df/dh[L]

    const std::vector<double> inv_freq = rope_inv_freq(c);  // the same RoPE table as forward()
    LayerWeights<T> scratch;  // the block being passed, when the blocks are streamed
    for (int l = c.L - 1; l >= 0; --l) {
        const LayerWeights<T>& lw = model.layer(l, scratch);
        const LayerTrace<T>& lt = trace.layers[l];

        // h[l+1] = m + MLP(Norm2(m)): the residual passes dh on; the MLP branch adds its part.
        Mat<T> dy =
            c.mlp == MlpKind::SwiGLU
                ? swiglu_mlp_backward(lw.w_gate, lw.w_up, lw.w_down, lt.mlp_pre, lt.mlp_up, dh, &g.mlp_act[l])
                : gelu_mlp_backward(lw.w_up, lw.w_down, lt.mlp_pre, dh, &g.mlp_act[l]);
        Mat<T> dm = dh + apply_norm_backward(c.norm, c.norm_eps, lt.m, lw.norm2_g, dy);

        // m = h[l] + ctx W_o^T + b_o
        g.attn_ctx[l] = linear_backward(lt.attn_ctx, lw.wo, dm);

        // Queries, keys and values again, exactly as forward() computed them.
        const Mat<T> x = apply_norm(c.norm, c.norm_eps, trace.h[l], lw.norm1_g, lw.norm1_b);
        const AttentionInputs<T> a = attention_inputs(c, lw, x, inv_freq);
        Mat<T> dq, dk, dv;
        attention_backward(a.q, a.k, a.v, lt.probs, g.attn_ctx[l], c.H, c.Hkv, c.Dh, dq, dk, dv);
        rope_backward(dq, c.H, c.Dh, c.rope, inv_freq);
        rope_backward(dk, c.Hkv, c.Dh, c.rope, inv_freq);
        const Mat<T> dx =
            linear_backward(x, lw.wq, dq) + linear_backward(x, lw.wk, dk) + linear_backward(x, lw.wv, dv);

        // x = Norm1(h[l]); the residual passes dm on.
        dh = dm + apply_norm_backward(c.norm, c.norm_eps, trace.h[l], lw.norm1_g, dx);
    }
    g.h0 = std::move(dh);
    return g;
}

}  // namespace

template <class T>
Gradients<T> backward(const Model<T>& model, const Trace<T>& trace, int pos, int target) {
    check_pos_target("backward", trace.N(), model.cfg.V, pos, target);
    return backward_from(model, trace, pos, target, target_log_prob(trace, pos, target),
                         Mat<T>(log_softmax_backward(trace.logits, pos, target).transpose()));
}

template <class T>
Gradients<T> logit_backward(const Model<T>& model, const Trace<T>& trace, int pos, int target) {
    check_pos_target("logit_backward", trace.N(), model.cfg.V, pos, target);
    Mat<T> one_hot = Mat<T>::Zero(1, model.cfg.V);
    one_hot(0, target) = T(1);
    return backward_from(model, trace, pos, target, double(trace.logits(pos, target)), one_hot);
}

template <class T>
double log_prob_from_embeddings(const Model<T>& model, const Mat<T>& h0, const std::vector<int>& ids, int pos,
                                int target) {
    return target_log_prob(forward_from_embeddings(model, h0, ids, pos), pos, target);
}

template <class T>
Mat<T> token_embeddings(const Model<T>& model, const std::vector<int>& ids) {
    return embed(model.w.tok_emb, Mat<T>(), ids);
}

#define DEPASS_INSTANTIATE(T)                                                                              \
    template double target_log_prob(const Trace<T>&, int, int);                                            \
    template Vec<T> log_softmax_backward(const Mat<T>&, int, int);                                         \
    template Gradients<T> logit_backward(const Model<T>&, const Trace<T>&, int, int);                                         \
    template Gradients<T> backward(const Model<T>&, const Trace<T>&, int, int);                            \
    template double log_prob_from_embeddings(const Model<T>&, const Mat<T>&, const std::vector<int>&, int, \
                                             int);                                                         \
    template Mat<T> token_embeddings(const Model<T>&, const std::vector<int>&);
DEPASS_INSTANTIATE(float)
DEPASS_INSTANTIATE(double)
#undef DEPASS_INSTANTIATE

}  // namespace depass
