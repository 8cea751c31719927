// weights.cpp -- shape checks, random models and scalar-type conversion of Weights.
#include "depass/weights.hpp"

#include <random>

namespace depass {

namespace {

std::string where_of(const Config& cfg) { return cfg.source.empty() ? std::string("model") : cfg.source; }

template <class M>
void check_mat(const Config& cfg, const std::string& name, const M& m, int rows, int cols) {
    if (m.rows() != rows || m.cols() != cols) {
        throw Error(where_of(cfg) + ": weight '" + name + "' has shape " + shape_str({m.rows(), m.cols()}) +
                    ", expected " + shape_str({rows, cols}));
    }
}

template <class V>
void check_vec(const Config& cfg, const std::string& name, const V& v, int n) {
    if (v.size() != n) {
        throw Error(where_of(cfg) + ": weight '" + name + "' has shape " + shape_str({v.size()}) +
                    ", expected " + shape_str({n}));
    }
}

template <class X>
void check_empty(const Config& cfg, const std::string& name, const X& x, const char* why) {
    if (x.size() != 0) {
        throw Error(where_of(cfg) + ": weight '" + name + "' must be empty (" + why + ") but has " +
                    std::to_string(x.size()) + " values");
    }
}

// Draws in double so that float and double models from one seed agree.
class Filler {
public:
    explicit Filler(uint64_t seed) : gen_(seed) {}
    template <class T>
    void mat(Mat<T>& m, int rows, int cols, double sd) {
        m.resize(rows, cols);
        T* p = m.data();
        for (Eigen::Index i = 0; i < m.size(); ++i) p[i] = static_cast<T>(sd * nd_(gen_));
    }
    template <class T>
    void vec(Vec<T>& v, int n, double mean, double sd) {
        v.resize(n);
        for (int i = 0; i < n; ++i) v[i] = static_cast<T>(mean + sd * nd_(gen_));
    }

private:
    std::mt19937_64 gen_;
    std::normal_distribution<double> nd_{0.0, 1.0};
};

template <class To, class From>
Mat<To> cast_mat(const Mat<From>& m) {
    return m.template cast<To>();
}
template <class To, class From>
Vec<To> cast_vec(const Vec<From>& v) {
    return v.template cast<To>();
}

}  // namespace

template <class T>
void check_layer_weights(const Config& c, int l, const LayerWeights<T>& ly) {
    const int D = c.D, I = c.I, QD = c.H * c.Dh, KVD = c.Hkv * c.Dh;
    const bool ln = c.norm == NormKind::LayerNorm;
    const bool swiglu = c.mlp == MlpKind::SwiGLU;
    const std::string p = "layers." + std::to_string(l) + ".";
    check_vec(c, p + "norm1_g", ly.norm1_g, D);
    check_vec(c, p + "norm2_g", ly.norm2_g, D);
    if (ln) {
        check_vec(c, p + "norm1_b", ly.norm1_b, D);
        check_vec(c, p + "norm2_b", ly.norm2_b, D);
    } else {
        check_empty(c, p + "norm1_b", ly.norm1_b, "RMSNorm has no bias");
        check_empty(c, p + "norm2_b", ly.norm2_b, "RMSNorm has no bias");
    }
    check_mat(c, p + "wq", ly.wq, QD, D);
    check_mat(c, p + "wk", ly.wk, KVD, D);
    check_mat(c, p + "wv", ly.wv, KVD, D);
    check_mat(c, p + "wo", ly.wo, D, QD);
    if (c.qkv_bias) {
        check_vec(c, p + "bq", ly.bq, QD);
        check_vec(c, p + "bk", ly.bk, KVD);
        check_vec(c, p + "bv", ly.bv, KVD);
    } else {
        check_empty(c, p + "bq", ly.bq, "qkv_bias is off");
        check_empty(c, p + "bk", ly.bk, "qkv_bias is off");
        check_empty(c, p + "bv", ly.bv, "qkv_bias is off");
    }
    if (c.o_bias) {
        check_vec(c, p + "bo", ly.bo, D);
    } else {
        check_empty(c, p + "bo", ly.bo, "o_bias is off");
    }
    if (swiglu) {
        check_mat(c, p + "w_gate", ly.w_gate, I, D);
    } else {
        check_empty(c, p + "w_gate", ly.w_gate, "ungated MLP");
    }
    check_mat(c, p + "w_up", ly.w_up, I, D);
    check_mat(c, p + "w_down", ly.w_down, D, I);
    if (c.mlp_bias) {
        check_vec(c, p + "b_up", ly.b_up, I);
        check_vec(c, p + "b_down", ly.b_down, D);
    } else {
        check_empty(c, p + "b_up", ly.b_up, "mlp_bias is off");
        check_empty(c, p + "b_down", ly.b_down, "mlp_bias is off");
    }
}

template <class T>
void check_weights(const Config& c, const Weights<T>& w, bool layers_streamed) {
    const int D = c.D, V = c.V;
    const bool ln = c.norm == NormKind::LayerNorm;

    check_mat(c, "tok_emb", w.tok_emb, V, D);
    if (c.learned_positions) {
        check_mat(c, "pos_emb", w.pos_emb, c.max_positions, D);
    } else {
        check_empty(c, "pos_emb", w.pos_emb, "no learned positions");
    }
    const int expected_layers = layers_streamed ? 0 : c.L;
    if (static_cast<int>(w.layers.size()) != expected_layers) {
        throw Error(where_of(c) + ": weights have " + std::to_string(w.layers.size()) + " layers, expected " +
                    std::to_string(expected_layers) + (layers_streamed ? " (the blocks are streamed)" : ""));
    }
    for (int l = 0; l < expected_layers; ++l) check_layer_weights(c, l, w.layers[static_cast<size_t>(l)]);
    check_vec(c, "normf_g", w.normf_g, D);
    if (ln) {
        check_vec(c, "normf_b", w.normf_b, D);
    } else {
        check_empty(c, "normf_b", w.normf_b, "RMSNorm has no bias");
    }
    if (c.tied_embeddings) {
        check_empty(c, "lm_head", w.lm_head, "tied embeddings");
    } else {
        check_mat(c, "lm_head", w.lm_head, V, D);
    }
}

template <class T>
Model<T> random_model(const Config& cfg, uint64_t seed, double sd) {
    validate_config(cfg);
    Model<T> m;
    m.cfg = cfg;
    const Config& c = m.cfg;
    Weights<T>& w = m.w;
    const int D = c.D, I = c.I, V = c.V, QD = c.H * c.Dh, KVD = c.Hkv * c.Dh;
    const bool ln = c.norm == NormKind::LayerNorm;
    Filler f(seed);

    f.mat(w.tok_emb, V, D, sd);
    if (c.learned_positions) f.mat(w.pos_emb, c.max_positions, D, sd);
    w.layers.resize(static_cast<size_t>(c.L));
    for (LayerWeights<T>& ly : w.layers) {
        f.vec(ly.norm1_g, D, 1.0, 0.1);
        if (ln) f.vec(ly.norm1_b, D, 0.0, 0.1);
        f.mat(ly.wq, QD, D, sd);
        f.mat(ly.wk, KVD, D, sd);
        f.mat(ly.wv, KVD, D, sd);
        f.mat(ly.wo, D, QD, sd);
        if (c.qkv_bias) {
            f.vec(ly.bq, QD, 0.0, sd);
            f.vec(ly.bk, KVD, 0.0, sd);
            f.vec(ly.bv, KVD, 0.0, sd);
        }
        if (c.o_bias) f.vec(ly.bo, D, 0.0, sd);
        f.vec(ly.norm2_g, D, 1.0, 0.1);
        if (ln) f.vec(ly.norm2_b, D, 0.0, 0.1);
        if (c.mlp == MlpKind::SwiGLU) f.mat(ly.w_gate, I, D, sd);
        f.mat(ly.w_up, I, D, sd);
        f.mat(ly.w_down, D, I, sd);
        if (c.mlp_bias) {
            f.vec(ly.b_up, I, 0.0, sd);
            f.vec(ly.b_down, D, 0.0, sd);
        }
    }
    f.vec(w.normf_g, D, 1.0, 0.1);
    if (ln) f.vec(w.normf_b, D, 0.0, 0.1);
    if (!c.tied_embeddings) f.mat(w.lm_head, V, D, sd);
    check_weights(c, w);
    return m;
}

template <class To, class From>
Model<To> cast_model(const Model<From>& m) {
    if (m.streamed)
        throw Error(where_of(m.cfg) +
                    ": a model with streamed blocks cannot change its scalar type; load it again "
                    "in the other type");
    Model<To> o;
    o.cfg = m.cfg;
    const Weights<From>& a = m.w;
    Weights<To>& b = o.w;
    b.tok_emb = cast_mat<To>(a.tok_emb);
    b.pos_emb = cast_mat<To>(a.pos_emb);
    b.layers.resize(a.layers.size());
    for (size_t l = 0; l < a.layers.size(); ++l) {
        const LayerWeights<From>& x = a.layers[l];
        LayerWeights<To>& y = b.layers[l];
        y.norm1_g = cast_vec<To>(x.norm1_g);
        y.norm1_b = cast_vec<To>(x.norm1_b);
        y.wq = cast_mat<To>(x.wq);
        y.wk = cast_mat<To>(x.wk);
        y.wv = cast_mat<To>(x.wv);
        y.wo = cast_mat<To>(x.wo);
        y.bq = cast_vec<To>(x.bq);
        y.bk = cast_vec<To>(x.bk);
        y.bv = cast_vec<To>(x.bv);
        y.bo = cast_vec<To>(x.bo);
        y.norm2_g = cast_vec<To>(x.norm2_g);
        y.norm2_b = cast_vec<To>(x.norm2_b);
        y.w_gate = cast_mat<To>(x.w_gate);
        y.w_up = cast_mat<To>(x.w_up);
        y.w_down = cast_mat<To>(x.w_down);
        y.b_up = cast_vec<To>(x.b_up);
        y.b_down = cast_vec<To>(x.b_down);
    }
    b.normf_g = cast_vec<To>(a.normf_g);
    b.normf_b = cast_vec<To>(a.normf_b);
    b.lm_head = cast_mat<To>(a.lm_head);
    return o;
}

template void check_weights<float>(const Config&, const Weights<float>&, bool);
template void check_weights<double>(const Config&, const Weights<double>&, bool);
template void check_layer_weights<float>(const Config&, int, const LayerWeights<float>&);
template void check_layer_weights<double>(const Config&, int, const LayerWeights<double>&);
Config stories_shape(const std::string& name) {
    const bool big = name == "stories110M";
    if (!big && name != "stories15M")
        throw Error("unknown model shape '" + name + "' (known: stories15M, stories110M)");
    Config c = preset(Arch::Llama);
    c.source = name + " shape";
    c.D = big ? 768 : 288;
    c.L = big ? 12 : 6;
    c.H = c.Hkv = big ? 12 : 6;
    c.Dh = c.D / c.H;
    c.I = big ? 2048 : 768;
    c.V = 32000;
    c.max_positions = big ? 1024 : 256;
    c.rope = RopeStyle::Interleaved;  // llama2.c's layout
    c.tied_embeddings = true;
    return c;
}

template Model<float> random_model<float>(const Config&, uint64_t, double);
template Model<double> random_model<double>(const Config&, uint64_t, double);
template Model<float> cast_model<float, double>(const Model<double>&);
template Model<double> cast_model<double, float>(const Model<float>&);
template Model<float> cast_model<float, float>(const Model<float>&);
template Model<double> cast_model<double, double>(const Model<double>&);

}  // namespace depass
