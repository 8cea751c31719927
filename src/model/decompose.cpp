// decompose.cpp -- the decomposed state and the decomposed block loop.
//
// propagate() mirrors forward() (src/model/forward.cpp) line by line, calling the
// decomposed twin of every op. It reads every frozen quantity from the trace.
#include "depass/decompose.hpp"

#include "depass/ops.hpp"

namespace depass {

// ---- Components ------------------------------------------------------------------------

template <class T>
Components<T> Components<T>::zeros(int N, int D, std::vector<int> first, std::vector<std::string> names) {
    Components c;
    c.M = int(first.size());
    c.N = N;
    c.D = D;
    if (c.M < 1) throw Error("components: at least the rest component is needed");
    if (int(names.size()) != c.M) throw Error("components: " + std::to_string(names.size()) + " names for " +
                                              std::to_string(c.M) + " components");
    if (first.back() != 0) throw Error("components: the rest (last component) must start at position 0");
    c.offset.resize(c.M + 1);
    c.offset[0] = 0;
    for (int m = 0; m < c.M; ++m) {
        if (first[m] < 0 || first[m] > N)
            throw Error("components: first position " + std::to_string(first[m]) + " of component " +
                        std::to_string(m) + " is outside [0, " + std::to_string(N) + "]");
        c.offset[m + 1] = c.offset[m] + (N - first[m]);
    }
    c.row_pos.resize(c.offset[c.M]);
    for (int m = 0; m < c.M; ++m)
        for (int n = first[m]; n < N; ++n) c.row_pos[c.offset[m] + (n - first[m])] = n;
    c.first = std::move(first);
    c.names = std::move(names);
    c.X = Mat<T>::Zero(c.offset[c.M], D);
    return c;
}

template <class T>
Mat<T> Components<T>::sum() const {
    Mat<T> s = Mat<T>::Zero(N, D);
    for (int m = 0; m < M; ++m) s.bottomRows(N - first[m]) += block(m);
    return s;
}

template <class T>
Mat<T> Components<T>::component(int m) const {
    Mat<T> x = Mat<T>::Zero(N, D);
    x.bottomRows(N - first[m]) = block(m);
    return x;
}

template <class T>
Components<T> Components<T>::like(Mat<T> newX) const {
    if (newX.rows() != rows()) throw Error("components: new rows do not match the layout");
    Components c = *this;  // copies the layout (and X, replaced below)
    c.X = std::move(newX);
    c.D = int(c.X.cols());
    return c;
}

// ---- options -------------------------------------------------------------------------

MlpRule parse_mlp_rule(const std::string& s) {
    if (s == "softmax") return MlpRule::Softmax;
    if (s == "max") return MlpRule::Max;
    if (s == "relu") return MlpRule::Relu;
    if (s == "linear") return MlpRule::Linear;
    if (s == "taylor") return MlpRule::Taylor;
    throw Error("unknown MLP rule '" + s + "' (expected softmax, max, relu, linear or taylor)");
}

const char* rule_name(MlpRule r) {
    switch (r) {
        case MlpRule::Softmax: return "softmax";
        case MlpRule::Max: return "max";
        case MlpRule::Relu: return "relu";
        case MlpRule::Linear: return "linear";
        case MlpRule::Taylor: return "taylor";
    }
    return "?";
}

std::string CutPoint::str() const {
    return std::string(after_attention ? "m[" : "h[") + std::to_string(layer) + "]";
}

// ---- the decomposed block loop ---------------------------------------------------------

template <class T>
Components<T> propagate(const Model<T>& model, const Trace<T>& trace, Components<T> c, CutPoint cut,
                        const DecomposeOptions& opt, const ComponentObserver<T>& observe) {
    const Config& cfg = model.cfg;
    if (cut.layer < 0 || cut.layer > cfg.L || (cut.layer == cfg.L && cut.after_attention))
        throw Error("propagate: cut point " + cut.str() + " is not a residual point of a " +
                    std::to_string(cfg.L) + "-layer model");
    if (c.N != trace.N() || c.D != cfg.D)
        throw Error("propagate: components are [" + std::to_string(c.N) + ", " + std::to_string(c.D) +
                    "] per component, the trace is [" + std::to_string(trace.N()) + ", " + std::to_string(cfg.D) + "]");
    if (observe) observe(cut, c);

    for (int l = cut.layer; l < cfg.L; ++l) {
        const LayerWeights<T>& lw = model.w.layers[l];
        const LayerTrace<T>& lt = trace.layers[l];

        if (!(l == cut.layer && cut.after_attention)) {
            // Attention block: X_m += W_O ( A V_m )   with V_m = Norm1_m(X_m) W_V^T (+ b_V, rest)
            Mat<T> x = apply_norm_decomposed(cfg, c, lw.norm1_g, lw.norm1_b, lt.norm1);
            Mat<T> v = linear_decomposed(c, x, lw.wv, lw.bv);
            Mat<T> ctx = attention_decomposed(c, v, lt.probs, cfg.H, cfg.Hkv, cfg.Dh);
            c.X += linear_decomposed(c, ctx, lw.wo, lw.bo);
            if (observe) observe(CutPoint{l, true}, c);
        }

        // MLP block: X_m += the component's share of every neuron's frozen activation.
        Mat<T> y = apply_norm_decomposed(cfg, c, lw.norm2_g, lw.norm2_b, lt.norm2);
        c.X += mlp_decomposed(cfg, lw, lt, c, y, opt);
        if (observe) observe(CutPoint{l + 1, false}, c);
    }
    return c;
}

template struct Components<float>;
template struct Components<double>;
template Components<float> propagate(const Model<float>&, const Trace<float>&, Components<float>, CutPoint,
                                     const DecomposeOptions&, const ComponentObserver<float>&);
template Components<double> propagate(const Model<double>&, const Trace<double>&, Components<double>, CutPoint,
                                      const DecomposeOptions&, const ComponentObserver<double>&);

}  // namespace depass
