// decompose.cpp -- the decomposed block loop.
//
// propagate() mirrors forward() (src/model/forward.cpp) line by line, calling the
// decomposed twin of every op (src/ops/, each beside its op). It reads every frozen
// quantity from the trace and never recomputes queries, keys, softmax or norm statistics.
#include "depass/decompose.hpp"

namespace depass {

std::string CutPoint::str() const {
    return std::string(after_attention ? "m[" : "h[") + std::to_string(layer) + "]";
}

// Attention block:  Y_m = W_O ( A V_m ),   V_m = Norm1_m(X_m) W_V^T   (b_V and b_O to the rest)
template <class T>
Components<T> attention_block_decomposed(const Config& cfg, const LayerWeights<T>& lw,
                                         const LayerTrace<T>& lt, const Components<T>& x) {
    const Components<T> u = apply_norm_decomposed(cfg.norm, x, lw.norm1_g, lw.norm1_b, lt.norm1);
    const Components<T> v = linear_decomposed(u, lw.wv, lw.bv);
    const Components<T> ctx = attention_decomposed(v, lt.probs, cfg.H, cfg.Hkv, cfg.Dh);
    return linear_decomposed(ctx, lw.wo, lw.bo);
}

// MLP block:  Y_m = the component's share of every neuron's frozen activation, through W_down.
template <class T>
Components<T> mlp_block_decomposed(const Config& cfg, const LayerWeights<T>& lw, const LayerTrace<T>& lt,
                                   const Components<T>& x, const DecomposeOptions& opt, const Group& group) {
    const Components<T> z = apply_norm_decomposed(cfg.norm, x, lw.norm2_g, lw.norm2_b, lt.norm2);
    const bool gated = cfg.mlp == MlpKind::SwiGLU;
    static const Vec<T> none;
    // The shares G_m come from the gate (SwiGLU) or from W_1 with b_1 as the rest's share (GELU).
    return mlp_decomposed(z, gated ? lw.w_gate : lw.w_up, gated ? none : lw.b_up, lw.w_down, lw.b_down,
                          cfg.act, lt.mlp_pre, lt.mlp_up, lt.mlp_act, opt, group);
}

template <class T>
Components<T> propagate(const Model<T>& model, const Trace<T>& trace, Components<T> c, CutPoint cut,
                        const DecomposeOptions& opt, const ComponentObserver<T>& observe,
                        const Group& group) {
    const Config& cfg = model.cfg;
    if (cut.layer < 0 || cut.layer > cfg.L || (cut.layer == cfg.L && cut.after_attention))
        throw Error("propagate: cut point " + cut.str() + " is not a residual point of a " +
                    std::to_string(cfg.L) + "-layer model");
    if (c.N != trace.N() || c.D != cfg.D)
        throw Error("propagate: components are [" + std::to_string(c.N) + ", " + std::to_string(c.D) +
                    "] per component, the trace is [" + std::to_string(trace.N()) + ", " +
                    std::to_string(cfg.D) + "]");
    if (observe) observe(cut, c);

    LayerWeights<T> scratch;  // the block being passed, when the blocks are streamed
    for (int l = cut.layer; l < cfg.L; ++l) {
        const LayerWeights<T>& lw = model.layer(l, scratch);
        const LayerTrace<T>& lt = trace.layers[l];
        if (!(l == cut.layer && cut.after_attention)) {
            residual_add(c, attention_block_decomposed(cfg, lw, lt, c));  // m[l] = h[l] + Attn
            if (observe) observe(CutPoint{l, true}, c);
        }
        residual_add(c, mlp_block_decomposed(cfg, lw, lt, c, opt, group));  // h[l+1] = m[l] + MLP
        if (observe) observe(CutPoint{l + 1, false}, c);
    }
    return c;
}

// The twin of the final norm, then of the unembedding at the targets.
template <class T>
Tensor<T> logit_attribution(const Model<T>& model, const Trace<T>& trace, const Components<T>& c,
                            const std::vector<std::vector<int>>& targets) {
    const Components<T> z =
        apply_norm_decomposed(model.cfg.norm, c, model.w.normf_g, model.w.normf_b, trace.normf);
    return unembed_decomposed(z, model.w.unembedding(), targets);
}

#define DEPASS_INSTANTIATE(T)                                                                                \
    template Components<T> attention_block_decomposed(const Config&, const LayerWeights<T>&,                 \
                                                      const LayerTrace<T>&, const Components<T>&);           \
    template Components<T> mlp_block_decomposed(const Config&, const LayerWeights<T>&, const LayerTrace<T>&, \
                                                const Components<T>&, const DecomposeOptions&,               \
                                                const Group&);                                               \
    template Components<T> propagate(const Model<T>&, const Trace<T>&, Components<T>, CutPoint,              \
                                     const DecomposeOptions&, const ComponentObserver<T>&, const Group&);    \
    template Tensor<T> logit_attribution(const Model<T>&, const Trace<T>&, const Components<T>&,             \
                                         const std::vector<std::vector<int>>&);
DEPASS_INSTANTIATE(float)
DEPASS_INSTANTIATE(double)
#undef DEPASS_INSTANTIATE

}  // namespace depass
