// initialisers.cpp -- the initialisers of section 4 of the method.
#include "depass/initialisers.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <sstream>

#include "depass/distributed.hpp"
#include "depass/enum_names.hpp"
#include "depass/threading.hpp"

namespace depass {

namespace {

void check_layer(const Config& cfg, int layer, int max_layer, const char* what) {
    if (layer < 0 || layer > max_layer)
        throw Error(std::string(what) + ": layer " + std::to_string(layer) + " is out of range [0, " +
                    std::to_string(max_layer) + "] for this " + std::to_string(cfg.L) + "-layer model");
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

// A decomposition before its rows are computed: every component's first position and
// description (the rest last), the true state at the cut, and fill(m, rows), which writes
// component m's rows (positions first[m] .. N-1, m < M - 1) into a zeroed block.
template <class T>
struct Plan {
    int N = 0, D = 0;
    std::vector<int> first;           // [M]
    std::vector<ComponentInfo> info;  // [M], the rest last
    CutPoint cut;
    int pos0_component = 0;
    bool ignore_special_default = false;
    Level level = Level::Token;
    const Mat<T>* state = nullptr;  // the true state at the cut
    std::function<void(int, Eigen::Ref<Mat<T>>)> fill;
    double fill_work = 0;  // multiply-adds of all the fills: > 0 spreads them over threads
};

template <class T>
Plan<T> plan(const Trace<T>& t, int D, std::vector<int> first, std::vector<ComponentInfo> info, CutPoint cut,
             int pos0_component, bool ignore_special_default, Level level) {
    info.push_back({ComponentInfo::Kind::Rest, -1, -1, -1, "rest"});
    first.push_back(0);
    Plan<T> p;
    p.N = t.N();
    p.D = D;
    p.first = std::move(first);
    p.info = std::move(info);
    p.cut = cut;
    p.pos0_component = pos0_component;
    p.ignore_special_default = ignore_special_default;
    p.level = level;
    p.state = &state_at(t, cut);
    return p;
}

// Components begin .. end-1 of the plan (a slice, components.hpp), every one but the rest
// filled, and when the slice ends with the rest:
//   rest = state - sum_{m < M-1} X_m,
// summed in component order, the components of other slices computed again one at a time
// for the sum, so that the rest is the same to the last bit whatever the split.
template <class T>
Initialised<T> build(const Plan<T>& p, int begin, int end) {
    const int M = int(p.first.size()), N = p.N;
    std::vector<std::string> names;
    for (int m = begin; m < end; ++m) names.push_back(p.info[size_t(m)].label);
    Initialised<T> r{
        Components<T>::slice_zeros(N, p.D, std::vector<int>(p.first.begin() + begin, p.first.begin() + end),
                                   std::move(names), begin, M),
        p.cut,
        p.pos0_component,
        p.ignore_special_default,
        p.level,
        p.info};
    Components<T>& c = r.comps;
    const int filled = std::min(end, M - 1);  // the rest is not filled
#pragma omp parallel for schedule(dynamic) if (p.fill_work > 0 && worth_threads(p.fill_work))
    for (int m = begin; m < filled; ++m) p.fill(m, c.block(m - begin));
    if (end == M && end > begin) {  // the slice holds the rest (an empty last slice holds nothing)
        Mat<T> s = Mat<T>::Zero(N, p.D), other;
        for (int m = 0; m < M - 1; ++m) {
            const int rows = N - p.first[size_t(m)];
            if (m >= begin) {
                s.bottomRows(rows) += c.block(m - begin);
            } else {
                other = Mat<T>::Zero(rows, p.D);
                p.fill(m, other);
                s.bottomRows(rows) += other;
            }
        }
        c.block(c.rest()) = *p.state - s;
    }
    return r;
}

}  // namespace

template <class T>
const Mat<T>& state_at(const Trace<T>& t, const CutPoint& p) {
    return p.after_attention ? t.layers.at(p.layer).m : t.h.at(p.layer);
}

namespace {

// Token level: component j is row j of h[layer] at position j (its first stored row).
template <class T>
Plan<T> plan_tokens(const Model<T>& model, const Trace<T>& t, int layer) {
    check_layer(model.cfg, layer, model.cfg.L, "token level");
    const int N = t.N();
    std::vector<int> first(N);
    std::vector<ComponentInfo> info;
    for (int j = 0; j < N; ++j) {
        first[j] = j;
        info.push_back({ComponentInfo::Kind::Token, layer, j, -1,
                        "token " + std::to_string(j) + " (id " + std::to_string(t.ids[j]) + ")"});
    }
    Plan<T> p = plan<T>(t, model.cfg.D, first, info, CutPoint{layer, false}, 0, true, Level::Token);
    const Mat<T>& h = t.h[layer];
    p.fill = [&h](int j, Eigen::Ref<Mat<T>> rows) { rows.row(0) = h.row(j); };
    return p;
}

template <class T>
Plan<T> plan_module(const Model<T>& model, const Trace<T>& t, int layer, bool mlp) {
    check_layer(model.cfg, layer, model.cfg.L - 1, mlp ? "module level (mlp)" : "module level (attn)");
    const LayerTrace<T>& lt = t.layers[layer];
    CutPoint cut = mlp ? CutPoint{layer + 1, false} : CutPoint{layer, true};
    std::string name = (mlp ? "mlp_out[" : "attn_out[") + std::to_string(layer) + "]";
    const ComponentInfo info{mlp ? ComponentInfo::Kind::Mlp : ComponentInfo::Kind::Attention, layer, -1, -1,
                             name};
    Plan<T> p = plan<T>(t, model.cfg.D, {0}, {info}, cut, 1, false, Level::Module);
    const Mat<T>& out = mlp ? lt.mlp_out : lt.attn_out;
    p.fill = [&out](int, Eigen::Ref<Mat<T>> rows) { rows = out; };
    return p;
}

// `lw` holds the block's weights while the plan is used (`scratch` when they are streamed).
template <class T>
Plan<T> plan_heads(const Model<T>& model, const Trace<T>& t, int layer, std::vector<int> heads,
                   LayerWeights<T>& scratch) {
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
    const LayerWeights<T>& lw = model.layer(layer, scratch);
    CutPoint cut{layer, true};
    Plan<T> p = plan<T>(t, cfg.D, std::vector<int>(K, 0), info, cut, K, false, Level::Head);
    const int Dh = cfg.Dh, group = cfg.kv_group();
    p.fill = [&lt, &lw, heads, Dh, group](int k, Eigen::Ref<Mat<T>> rows) {
        const int h = heads[k];
        // Head context without the value bias: rows of A sum to 1, so A (V + b_V) = A V + b_V.
        Mat<T> ctx = lt.attn_ctx.middleCols(long(h) * Dh, Dh);
        if (lw.bv.size()) ctx.rowwise() -= lw.bv.segment(long(h / group) * Dh, Dh).transpose();
        rows = ctx * lw.wo.middleCols(long(h) * Dh, Dh).transpose();
    };
    return p;
}

template <class T>
Plan<T> plan_neurons(const Model<T>& model, const Trace<T>& t, int layer, std::vector<int> neurons,
                     int groups, LayerWeights<T>& scratch) {
    const Config& cfg = model.cfg;
    check_layer(cfg, layer, cfg.L - 1, "neuron level");
    const LayerTrace<T>& lt = t.layers[layer];
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
    Plan<T> p = plan<T>(t, cfg.D, std::vector<int>(K, 0), info, cut, K, false, Level::Neuron);
    p.fill = [&lt, &lw, sets = std::move(sets)](int k, Eigen::Ref<Mat<T>> rows) {
        for (int i : sets[k]) rows += lt.mlp_act.col(i) * lw.w_down.col(i).transpose();
    };
    p.fill_work = double(cfg.I) * t.N() * cfg.D;
    return p;
}

}  // namespace

template <class T>
Initialised<T> init_tokens(const Model<T>& model, const Trace<T>& t, int layer) {
    const Plan<T> p = plan_tokens(model, t, layer);
    return build(p, 0, int(p.first.size()));
}

template <class T>
Initialised<T> init_module(const Model<T>& model, const Trace<T>& t, int layer, bool mlp) {
    const Plan<T> p = plan_module(model, t, layer, mlp);
    return build(p, 0, int(p.first.size()));
}

template <class T>
Initialised<T> init_heads(const Model<T>& model, const Trace<T>& t, int layer, std::vector<int> heads) {
    LayerWeights<T> scratch;
    const Plan<T> p = plan_heads(model, t, layer, std::move(heads), scratch);
    return build(p, 0, int(p.first.size()));
}

template <class T>
Initialised<T> init_neurons(const Model<T>& model, const Trace<T>& t, int layer, std::vector<int> neurons,
                            int groups) {
    LayerWeights<T> scratch;
    const Plan<T> p = plan_neurons(model, t, layer, std::move(neurons), groups, scratch);
    return build(p, 0, int(p.first.size()));
}

Mat<double> projector_from(const Tensor<double>& t, int D, const std::string& what) {
    if (t.shape.size() != 1 && t.shape.size() != 2)
        throw Error(what + ": basis has shape " + shape_str(t.shape) + ", expected [D, k] or [D, D]");
    const long cols = t.shape.size() == 1 ? 1 : long(t.shape[1]);
    return projector_from(Mat<double>(Eigen::Map<const Mat<double>>(t.data.data(), long(t.shape[0]), cols)),
                          D, what);
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

namespace {

template <class T>
Plan<T> plan_subspaces(const Model<T>& model, const Trace<T>& t, int layer,
                       const std::vector<Mat<double>>& projectors, const std::vector<std::string>& names) {
    const Config& cfg = model.cfg;
    check_layer(cfg, layer, cfg.L, "subspace level");
    if (projectors.empty()) throw Error("subspace level: no subspace given");
    const int K = int(projectors.size());
    std::vector<ComponentInfo> info;
    for (int k = 0; k < K; ++k)
        info.push_back(
            {ComponentInfo::Kind::Subspace, layer, k, -1,
             k < int(names.size()) && !names[k].empty() ? names[k] : "subspace " + std::to_string(k)});
    for (int k = 0; k < K; ++k)
        if (projectors[k].rows() != cfg.D || projectors[k].cols() != cfg.D)
            throw Error("subspace level: projector " + std::to_string(k) +
                        " is not [D, D] with D = " + std::to_string(cfg.D));
    CutPoint cut{layer, false};
    Plan<T> p = plan<T>(t, cfg.D, std::vector<int>(K, 0), info, cut, 0, false, Level::Subspace);
    const Mat<T>& x = *p.state;
    p.fill = [&x, &projectors](int k, Eigen::Ref<Mat<T>> rows) {
        rows = (x.template cast<double>() * projectors[k]).template cast<T>();
    };
    return p;
}

template <class T>
Plan<T> plan_custom(const Model<T>& model, const Trace<T>& t, int layer, const Tensor<double>& C,
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
    Plan<T> p = plan<T>(t, D, std::vector<int>(K, 0), info, cut, 0, false, Level::Custom);
    Mat<double> sum = Mat<double>::Zero(N, D);
    for (int k = 0; k < K; ++k) sum += Eigen::Map<const Mat<double>>(C.data.data() + size_t(k) * N * D, N, D);
    const Mat<T>& x = *p.state;
    const double scale = double(x.cwiseAbs().maxCoeff());
    const double err = (sum - x.template cast<double>()).cwiseAbs().maxCoeff();
    if (!(err <= rel_tol * std::max(scale, 1e-30))) {
        std::ostringstream os;
        os << what << ": components do not sum to the residual state h[" << layer
           << "]: max |sum - state| = " << err << ", allowed " << rel_tol * scale << " (relative " << rel_tol
           << ")";
        throw Error(os.str());
    }
    p.fill = [&C, N, D](int k, Eigen::Ref<Mat<T>> rows) {
        rows = Eigen::Map<const Mat<double>>(C.data.data() + size_t(k) * N * D, N, D).template cast<T>();
    };
    return p;
}

}  // namespace

template <class T>
Initialised<T> init_subspaces(const Model<T>& model, const Trace<T>& t, int layer,
                              const std::vector<Mat<double>>& projectors,
                              const std::vector<std::string>& names) {
    const Plan<T> p = plan_subspaces(model, t, layer, projectors, names);
    return build(p, 0, int(p.first.size()));
}

template <class T>
Initialised<T> init_custom(const Model<T>& model, const Trace<T>& t, int layer, const Tensor<double>& C,
                           double rel_tol, const std::string& what) {
    const Plan<T> p = plan_custom(model, t, layer, C, rel_tol, what);
    return build(p, 0, int(p.first.size()));
}

template <class T>
Initialised<T> initialise(const Model<T>& model, const Trace<T>& t, const LevelRequest& q, int rank,
                          int ranks) {
    LayerWeights<T> scratch;  // the block's weights of head and neuron levels, when streamed
    Plan<T> p;
    switch (q.level) {
        case Level::Token:
            p = plan_tokens(model, t, q.layer);
            break;
        case Level::Module:
            p = plan_module(model, t, q.layer, q.module_mlp);
            break;
        case Level::Head:
            p = plan_heads(model, t, q.layer, q.heads, scratch);
            break;
        case Level::Neuron:
            p = plan_neurons(model, t, q.layer, q.neurons, q.neuron_groups, scratch);
            break;
        case Level::Subspace:
            p = plan_subspaces(model, t, q.layer, q.projectors, q.projector_names);
            break;
        case Level::Custom:
            p = plan_custom(model, t, q.layer, q.custom, q.custom_rel_tol, q.custom_source);
            break;
    }
    if (!p.fill) throw Error("initialise: unknown level");
    const ComponentBlock b = split_components(p.first, p.N, rank, ranks);
    return build(p, b.begin, b.end);
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

template Initialised<float> initialise(const Model<float>&, const Trace<float>&, const LevelRequest&, int,
                                       int);
template Initialised<double> initialise(const Model<double>&, const Trace<double>&, const LevelRequest&, int,
                                        int);

}  // namespace depass
