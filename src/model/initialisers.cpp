// initialisers.cpp -- the initialisers of section 4 of the method.
#include "depass/initialisers.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "depass/enum_names.hpp"
#include "depass/threading.hpp"

namespace depass {

namespace {

void check_layer(const Config& cfg, int layer, int max_layer, const char* what) {
    if (layer < 0 || layer > max_layer)
        throw Error(std::string(what) + ": layer " + std::to_string(layer) + " is out of range [0, " +
                    std::to_string(max_layer) + "] for this " + std::to_string(cfg.L) + "-layer model");
}

// rest = state - sum of the other components (written into the last component).
template <class T>
void set_rest(Components<T>& c, const Mat<T>& state) {
    Mat<T> s = Mat<T>::Zero(c.N, c.D);
    for (int m = 0; m < c.rest(); ++m) s.bottomRows(c.N - c.first[m]) += c.block(m);
    c.block(c.rest()) = state - s;
}

}  // namespace

namespace {
const NamedValue<Level> kLevels[] = {{Level::Token, "token"},       {Level::Module, "module"},
                                     {Level::Head, "head"},         {Level::Neuron, "neuron"},
                                     {Level::Subspace, "subspace"}, {Level::Custom, "custom"}};
}  // namespace

Level parse_level(const std::string& s) {
    Level l;
    if (value_in(kLevels, s, &l)) return l;
    throw Error("unknown level '" + s + "' (expected " + names_in(kLevels, " or ") + ")");
}

const char* level_name(Level level) { return name_in(kLevels, level); }

const char* kind_name(ComponentInfo::Kind kind) {
    using K = ComponentInfo::Kind;
    switch (kind) {
        case K::Token:
            return "token";
        case K::Attention:
            return "attention";
        case K::Mlp:
            return "mlp";
        case K::Head:
            return "head";
        case K::Neuron:
            return "neuron";
        case K::NeuronGroup:
            return "neuron_group";
        case K::Subspace:
            return "subspace";
        case K::Custom:
            return "custom";
        case K::Rest:
            return "rest";
    }
    return "?";
}

namespace {

// Components named by their descriptors (the rest last).
template <class T>
Initialised<T> start(int N, int D, std::vector<int> first, std::vector<ComponentInfo> info, CutPoint cut,
                     int pos0_component, bool ignore_special_default, Level level) {
    info.push_back({ComponentInfo::Kind::Rest, -1, -1, -1, "rest"});
    std::vector<std::string> names;
    for (const ComponentInfo& c : info) names.push_back(c.label);
    Initialised<T> r{Components<T>::zeros(N, D, std::move(first), std::move(names)),
                     cut,
                     pos0_component,
                     ignore_special_default,
                     level,
                     std::move(info)};
    return r;
}

}  // namespace

template <class T>
const Mat<T>& state_at(const Trace<T>& t, const CutPoint& p) {
    return p.after_attention ? t.layers.at(p.layer).m : t.h.at(p.layer);
}

template <class T>
Initialised<T> init_tokens(const Model<T>& model, const Trace<T>& t, int layer) {
    check_layer(model.cfg, layer, model.cfg.L, "token level");
    const int N = t.N();
    std::vector<int> first(N + 1);
    std::vector<ComponentInfo> info;
    for (int j = 0; j < N; ++j) {
        first[j] = j;
        info.push_back({ComponentInfo::Kind::Token, layer, j, -1,
                        "token " + std::to_string(j) + " (id " + std::to_string(t.ids[j]) + ")"});
    }
    first[N] = 0;
    Initialised<T> r = start<T>(N, model.cfg.D, first, info, CutPoint{layer, false}, 0, true, Level::Token);
    const Mat<T>& h = t.h[layer];
    for (int j = 0; j < N; ++j) r.comps.X.row(r.comps.row(j, j)) = h.row(j);
    set_rest(r.comps, h);
    return r;
}

template <class T>
Initialised<T> init_module(const Model<T>& model, const Trace<T>& t, int layer, bool mlp) {
    check_layer(model.cfg, layer, model.cfg.L - 1, mlp ? "module level (mlp)" : "module level (attn)");
    const LayerTrace<T>& lt = t.layers[layer];
    CutPoint cut = mlp ? CutPoint{layer + 1, false} : CutPoint{layer, true};
    std::string name = (mlp ? "mlp_out[" : "attn_out[") + std::to_string(layer) + "]";
    const ComponentInfo info{mlp ? ComponentInfo::Kind::Mlp : ComponentInfo::Kind::Attention, layer, -1, -1,
                             name};
    Initialised<T> r = start<T>(t.N(), model.cfg.D, {0, 0}, {info}, cut, 1, false, Level::Module);
    r.comps.block(0) = mlp ? lt.mlp_out : lt.attn_out;
    set_rest(r.comps, state_at(t, cut));
    return r;
}

template <class T>
Initialised<T> init_heads(const Model<T>& model, const Trace<T>& t, int layer, std::vector<int> heads) {
    const Config& cfg = model.cfg;
    check_layer(cfg, layer, cfg.L - 1, "head level");
    if (heads.empty())
        for (int h = 0; h < cfg.H; ++h) heads.push_back(h);
    for (int h : heads)
        if (h < 0 || h >= cfg.H)
            throw Error("head level: head " + std::to_string(h) + " is out of range [0, " +
                        std::to_string(cfg.H) + ") in layer " + std::to_string(layer));
    const int K = int(heads.size());
    std::vector<ComponentInfo> info;
    for (int h : heads)
        info.push_back({ComponentInfo::Kind::Head, layer, h, -1,
                        "L" + std::to_string(layer) + ".head " + std::to_string(h)});
    const LayerTrace<T>& lt = t.layers[layer];
    LayerWeights<T> scratch;
    const LayerWeights<T>& lw = model.layer(layer, scratch);
    CutPoint cut{layer, true};
    Initialised<T> r = start<T>(t.N(), cfg.D, std::vector<int>(K + 1, 0), info, cut, K, false, Level::Head);
    const int Dh = cfg.Dh, group = cfg.kv_group();
    for (int k = 0; k < K; ++k) {
        const int h = heads[k];
        // Head context without the value bias: rows of A sum to 1, so A (V + b_V) = A V + b_V.
        Mat<T> ctx = lt.attn_ctx.middleCols(long(h) * Dh, Dh);
        if (lw.bv.size()) ctx.rowwise() -= lw.bv.segment(long(h / group) * Dh, Dh).transpose();
        r.comps.block(k) = ctx * lw.wo.middleCols(long(h) * Dh, Dh).transpose();
    }
    set_rest(r.comps, state_at(t, cut));
    return r;
}

template <class T>
Initialised<T> init_neurons(const Model<T>& model, const Trace<T>& t, int layer, std::vector<int> neurons,
                            int groups) {
    const Config& cfg = model.cfg;
    check_layer(cfg, layer, cfg.L - 1, "neuron level");
    const LayerTrace<T>& lt = t.layers[layer];
    LayerWeights<T> scratch;
    const LayerWeights<T>& lw = model.layer(layer, scratch);
    // Each component is a set of neurons [lo, hi) or a single listed neuron.
    std::vector<std::vector<int>> sets;
    std::vector<ComponentInfo> info;
    if (groups > 0) {
        if (!neurons.empty())
            throw Error("neuron level: give either a neuron list or a number of groups, not both");
        if (groups > cfg.I)
            throw Error("neuron level: " + std::to_string(groups) + " groups exceed the " +
                        std::to_string(cfg.I) + " neurons of the MLP");
        for (int g = 0; g < groups; ++g) {
            const int lo = int(int64_t(cfg.I) * g / groups), hi = int(int64_t(cfg.I) * (g + 1) / groups);
            std::vector<int> s;
            for (int i = lo; i < hi; ++i) s.push_back(i);
            sets.push_back(s);
            info.push_back({ComponentInfo::Kind::NeuronGroup, layer, lo, hi,
                            "L" + std::to_string(layer) + ".neurons " + std::to_string(lo) + "-" +
                                std::to_string(hi - 1)});
        }
    } else {
        if (neurons.empty())
            for (int i = 0; i < cfg.I; ++i) neurons.push_back(i);
        for (int i : neurons) {
            if (i < 0 || i >= cfg.I)
                throw Error("neuron level: neuron " + std::to_string(i) + " is out of range [0, " +
                            std::to_string(cfg.I) + ") in layer " + std::to_string(layer));
            sets.push_back({i});
            info.push_back({ComponentInfo::Kind::Neuron, layer, i, -1,
                            "L" + std::to_string(layer) + ".neuron " + std::to_string(i)});
        }
    }
    const int K = int(sets.size());
    CutPoint cut{layer + 1, false};
    Initialised<T> r = start<T>(t.N(), cfg.D, std::vector<int>(K + 1, 0), info, cut, K, false, Level::Neuron);
#pragma omp parallel for schedule(dynamic) if (worth_threads(double(cfg.I) * t.N() * cfg.D))
    for (int k = 0; k < K; ++k) {
        auto blk = r.comps.block(k);
        for (int i : sets[k]) blk += lt.mlp_act.col(i) * lw.w_down.col(i).transpose();
    }
    set_rest(r.comps, state_at(t, cut));
    return r;
}

Mat<double> projector_from(const Tensor<double>& t, int D, const std::string& what) {
    if (t.shape.size() != 1 && t.shape.size() != 2)
        throw Error(what + ": basis has shape " + shape_str(t.shape) + ", expected [D, k] or [D, D]");
    const long cols = t.shape.size() == 1 ? 1 : long(t.shape[1]);
    return projector_from(Mat<double>(Eigen::Map<const Mat<double>>(t.data.data(), long(t.shape[0]), cols)), D,
                          what);
}

Mat<double> projector_from(const Mat<double>& B, int D, const std::string& what) {
    if (B.rows() != D)
        throw Error(what + ": basis has " + std::to_string(B.rows()) + " rows, expected the hidden size " +
                    std::to_string(D) + " (shape [D, k] or [D, D])");
    if (B.cols() < 1)  // before any reduction: maxCoeff of an empty matrix is undefined
        throw Error(what + ": basis has shape [" + std::to_string(B.rows()) +
                    ", 0], it needs between 1 and " + std::to_string(D) + " columns");
    if (!B.allFinite()) throw Error(what + ": contains non-finite values");
    const double scale = std::max(1.0, B.cwiseAbs().maxCoeff());
    if (B.cols() == D) {
        // Taken as a projector: must be symmetric and idempotent.
        const double asym = (B - B.transpose()).cwiseAbs().maxCoeff();
        const double idem = (B * B - B).cwiseAbs().maxCoeff();
        if (asym <= 1e-6 * scale && idem <= 1e-6 * scale) return B;
        // Otherwise a full basis of D vectors: its span is everything.
    }
    if (B.cols() < 1 || B.cols() > D)
        throw Error(what + ": a basis needs between 1 and " + std::to_string(D) + " columns, got " +
                    std::to_string(B.cols()));
    for (long j = 0; j < B.cols(); ++j)
        if (B.col(j).norm() == 0.0)
            throw Error(what + ": basis column " + std::to_string(j) + " is all zeros");
    // Rank check relative to each column's own length, so the scale of the basis does not matter.
    Eigen::HouseholderQR<Mat<double>> qr(B);
    Mat<double> R = qr.matrixQR().topRows(B.cols()).triangularView<Eigen::Upper>();
    for (long j = 0; j < B.cols(); ++j)
        if (std::abs(R(j, j)) <= 1e-10 * B.col(j).norm())
            throw Error(what + ": basis column " + std::to_string(j) +
                        " is linearly dependent on the others");
    Mat<double> Q = qr.householderQ() * Mat<double>::Identity(D, B.cols());
    return Q * Q.transpose();
}

template <class T>
Initialised<T> init_subspaces(const Model<T>& model, const Trace<T>& t, int layer,
                              const std::vector<Mat<double>>& projectors,
                              const std::vector<std::string>& names) {
    const Config& cfg = model.cfg;
    check_layer(cfg, layer, cfg.L, "subspace level");
    if (projectors.empty()) throw Error("subspace level: no subspace given");
    const int K = int(projectors.size());
    std::vector<ComponentInfo> info;
    for (int k = 0; k < K; ++k)
        info.push_back(
            {ComponentInfo::Kind::Subspace, layer, k, -1,
             k < int(names.size()) && !names[k].empty() ? names[k] : "subspace " + std::to_string(k)});
    CutPoint cut{layer, false};
    Initialised<T> r =
        start<T>(t.N(), cfg.D, std::vector<int>(K + 1, 0), info, cut, 0, false, Level::Subspace);
    const Mat<T>& x = state_at(t, cut);
    for (int k = 0; k < K; ++k) {
        if (projectors[k].rows() != cfg.D || projectors[k].cols() != cfg.D)
            throw Error("subspace level: projector " + std::to_string(k) +
                        " is not [D, D] with D = " + std::to_string(cfg.D));
        r.comps.block(k) = (x.template cast<double>() * projectors[k]).template cast<T>();
    }
    set_rest(r.comps, x);
    return r;
}

template <class T>
Initialised<T> init_custom(const Model<T>& model, const Trace<T>& t, int layer, const Tensor<double>& C,
                           double rel_tol, const std::string& what) {
    const Config& cfg = model.cfg;
    check_layer(cfg, layer, cfg.L, "custom level");
    const int N = t.N(), D = cfg.D;
    if (C.shape.size() != 3 || C.shape[1] != N || C.shape[2] != D)
        throw Error(what + ": components have shape " + shape_str(C.shape) + ", expected [K, " +
                    std::to_string(N) + ", " + std::to_string(D) + "] (K components, N tokens, D hidden)");
    const int K = int(C.shape[0]);
    if (K < 1) throw Error(what + ": no components");
    std::vector<ComponentInfo> info;
    for (int k = 0; k < K; ++k)
        info.push_back({ComponentInfo::Kind::Custom, layer, k, -1, "custom " + std::to_string(k)});
    CutPoint cut{layer, false};
    Initialised<T> r = start<T>(N, D, std::vector<int>(K + 1, 0), info, cut, 0, false, Level::Custom);
    Mat<double> sum = Mat<double>::Zero(N, D);
    for (int k = 0; k < K; ++k) {
        Eigen::Map<const Mat<double>> ck(C.data.data() + size_t(k) * N * D, N, D);
        sum += ck;
        r.comps.block(k) = ck.template cast<T>();
    }
    const Mat<T>& x = state_at(t, cut);
    const double scale = double(x.cwiseAbs().maxCoeff());
    const double err = (sum - x.template cast<double>()).cwiseAbs().maxCoeff();
    if (!(err <= rel_tol * std::max(scale, 1e-30))) {
        std::ostringstream os;
        os << what << ": components do not sum to the residual state h[" << layer
           << "]: max |sum - state| = " << err << ", allowed " << rel_tol * scale << " (relative " << rel_tol
           << ")";
        throw Error(os.str());
    }
    set_rest(r.comps, x);
    return r;
}

#define DEPASS_INSTANTIATE(T)                                                                           \
    template const Mat<T>& state_at(const Trace<T>&, const CutPoint&);                                  \
    template Initialised<T> init_tokens(const Model<T>&, const Trace<T>&, int);                         \
    template Initialised<T> init_module(const Model<T>&, const Trace<T>&, int, bool);                   \
    template Initialised<T> init_heads(const Model<T>&, const Trace<T>&, int, std::vector<int>);        \
    template Initialised<T> init_neurons(const Model<T>&, const Trace<T>&, int, std::vector<int>, int); \
    template Initialised<T> init_subspaces(const Model<T>&, const Trace<T>&, int,                       \
                                           const std::vector<Mat<double>>&,                             \
                                           const std::vector<std::string>&);                            \
    template Initialised<T> init_custom(const Model<T>&, const Trace<T>&, int, const Tensor<double>&,   \
                                        double, const std::string&);
DEPASS_INSTANTIATE(float)
DEPASS_INSTANTIATE(double)
#undef DEPASS_INSTANTIATE

}  // namespace depass

namespace depass {

template <class T>
Initialised<T> initialise(const Model<T>& model, const Trace<T>& t, const LevelRequest& q) {
    switch (q.level) {
        case Level::Token:
            return init_tokens(model, t, q.layer);
        case Level::Module:
            return init_module(model, t, q.layer, q.module_mlp);
        case Level::Head:
            return init_heads(model, t, q.layer, q.heads);
        case Level::Neuron:
            return init_neurons(model, t, q.layer, q.neurons, q.neuron_groups);
        case Level::Subspace:
            return init_subspaces(model, t, q.layer, q.projectors, q.projector_names);
        case Level::Custom:
            return init_custom(model, t, q.layer, q.custom, q.custom_rel_tol, q.custom_source);
    }
    throw Error("initialise: unknown level");
}

template Initialised<float> initialise(const Model<float>&, const Trace<float>&, const LevelRequest&);
template Initialised<double> initialise(const Model<double>&, const Trace<double>&, const LevelRequest&);

}  // namespace depass
