// attribution_files.cpp -- the files of an attribution (attribution_files.hpp).
#include "depass/attribution_files.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

namespace depass {

namespace {

// Every component as a dense [N, D] block, component after component.
template <class T>
void append_dense(std::vector<double>& out, const Components<T>& c) {
    for (int m = 0; m < c.M; ++m) {
        Mat<T> x = c.component(m);
        for (Eigen::Index i = 0; i < x.size(); ++i) out.push_back(double(x.data()[i]));
    }
}

// The views of a QK split one looks at: each side's share of every logit (the pairs summed
// over the other side) and the largest pairs of every logit. The files and the HTML page
// both take them from here.
struct QkViews {
    std::vector<double> key, query;  // [H', M, Nq, N]: key-side m' summed over m; query-side m over m'
    int top = 0;                     // pairs kept per logit: min(5, M * M)
    std::vector<int> top_pairs;      // [H', Nq, N, top, 2] (query-side, key-side component)
    std::vector<double> top_values;  // [H', Nq, N, top]
};

template <class T>
QkViews qk_views(const QkSplit<T>& q) {
    const int Hs = int(q.heads.size()), M = q.M, Nq = int(q.queries.size()), N = q.N;
    constexpr int kTop = 5;
    QkViews v;
    v.key.assign(size_t(Hs) * M * Nq * N, 0.0);
    v.query = v.key;
    v.top = std::min(kTop, M * M);
    std::vector<std::pair<double, int>> pairs(size_t(M) * M);
    for (int h = 0; h < Hs; ++h)
        for (int i = 0; i < Nq; ++i)
            for (int j = 0; j < N; ++j) {
                for (int m = 0; m < M; ++m)
                    for (int m2 = 0; m2 < M; ++m2) {
                        const double x = double(q.at(h, m, m2, i, j));
                        v.key[((size_t(h) * M + m2) * Nq + i) * N + j] += x;
                        v.query[((size_t(h) * M + m) * Nq + i) * N + j] += x;
                        pairs[size_t(m) * M + m2] = {x, m * M + m2};
                    }
                // By |value|, ties to the lower pair index (the order is fixed: the files do not
                // depend on the sort's implementation).
                std::partial_sort(pairs.begin(), pairs.begin() + v.top, pairs.end(), [](auto& x, auto& y) {
                    return std::abs(x.first) != std::abs(y.first) ? std::abs(x.first) > std::abs(y.first)
                                                                  : x.second < y.second;
                });
                for (int t = 0; t < v.top; ++t) {
                    v.top_pairs.push_back(pairs[size_t(t)].second / M);
                    v.top_pairs.push_back(pairs[size_t(t)].second % M);
                    v.top_values.push_back(pairs[size_t(t)].first);
                }
            }
    return v;
}

}  // namespace

template <class T>
std::vector<NamedTensor> attribution_tensors(const Attribution<T>& a, const Config& cfg,
                                             const AttributionRun& run) {
    const Components<T>& out = a.components;
    const int N = a.N(), K = a.K();
    std::vector<NamedTensor> tensors;
    if (!run.adjoint && run.layers == 1) {  // the adjoint path never forms the components
        NamedTensor comps{"components", {out.M, N, cfg.D}, {}, false};
        append_dense(comps.values, out);
        tensors.push_back(std::move(comps));
    }
    const Tensor<T>& attr = a.logit_attribution;
    std::vector<double> values(attr.data.begin(), attr.data.end());
    if (run.layers > 1)
        tensors.push_back(
            {"logit_attribution_by_layer", {run.layers, out.M / run.layers, N, K}, std::move(values), false});
    else
        tensors.push_back({"logit_attribution", {out.M, N, K}, std::move(values), false});
    NamedTensor tg{"targets", {N, K}, {}, true}, tl{"target_logits", {N, K}, {}, false};
    for (int n = 0; n < N; ++n)
        for (int k = 0; k < K; ++k) {
            tg.values.push_back(a.targets[n][k]);
            tl.values.push_back(a.target_logits(n, k));
        }
    tensors.push_back(std::move(tg));
    tensors.push_back(std::move(tl));
    NamedTensor idt{"input_ids", {int64_t(run.ids.size())}, {}, true};
    for (int id : run.ids) idt.values.push_back(id);
    tensors.push_back(std::move(idt));
    if (!a.points.empty()) {
        std::vector<double> by_point;
        for (const Components<T>& c : a.at_points) append_dense(by_point, c);
        tensors.push_back(
            {"components_by_point", {int64_t(a.points.size()), out.M, N, cfg.D}, std::move(by_point), false});
    }
    if (a.qk) {
        // The QK split (qk.hpp) and the views of it one looks at (qk_views).
        const QkSplit<T>& q = *a.qk;
        const int Hs = int(q.heads.size()), M = q.M, Nq = int(q.queries.size());
        tensors.push_back({"qk_logits", {Hs, M, M, Nq, N},
                           std::vector<double>(q.logits.data.begin(), q.logits.data.end()), false});
        QkViews v = qk_views(q);
        NamedTensor key{"qk_key_share", {Hs, M, Nq, N}, std::move(v.key), false};
        NamedTensor query{"qk_query_share", {Hs, M, Nq, N}, std::move(v.query), false};
        NamedTensor top_pairs{"qk_top_pairs", {Hs, Nq, N, v.top, 2}, {}, true};
        top_pairs.values.assign(v.top_pairs.begin(), v.top_pairs.end());
        NamedTensor top_values{"qk_top_values", {Hs, Nq, N, v.top}, std::move(v.top_values), false};
        tensors.push_back(std::move(key));
        tensors.push_back(std::move(query));
        tensors.push_back(std::move(top_pairs));
        tensors.push_back(std::move(top_values));
        NamedTensor heads{"qk_heads", {Hs}, {}, true}, queries{"qk_queries", {Nq}, {}, true};
        for (int h : q.heads) heads.values.push_back(h);
        for (int n : q.queries) queries.values.push_back(n);
        tensors.push_back(std::move(heads));
        tensors.push_back(std::move(queries));
    }
    return tensors;
}

template <class T>
std::map<std::string, std::string> attribution_metadata(const Attribution<T>& a, const AttributionRun& run) {
    std::vector<std::string> points;
    for (const CutPoint& p : a.points) points.push_back(p.str());
    const nlohmann::json names = a.components.names, point_names = points;
    std::ostringstream worst;
    worst << a.completeness_max_rel;
    std::map<std::string, std::string> meta = {
        {"format", "depass-attribution"},
        {"model", run.model},
        {"dtype", run.dtype},
        {"level", level_name(a.level)},
        {"cut", a.cut.str()},
        {"rule", rule_name(a.options.rule)},
        {"temperature", std::to_string(a.options.temperature)},
        {"ignore_special_token", a.options.ignore_special_token ? "on" : "off"},
        {"component_names", names.dump()},
        {"points", point_names.dump()},
        {"completeness_max_rel", worst.str()},
    };
    if (run.adjoint) meta["path"] = "adjoint";  // (a forward run's metadata is unchanged)
    if (run.layers > 1) meta["layer"] = "all";
    if (a.qk) {
        std::ostringstream l, p;
        l << a.qk_check.logits_max_rel;
        p << a.qk_check.probs_max_abs;
        meta["qk_layer"] = std::to_string(a.qk->layer);
        meta["qk_logits_max_rel"] = l.str();
        meta["qk_probs_max_abs"] = p.str();
    }
    return meta;
}

template <class T>
AttributionReport attribution_report(const Attribution<T>& a, const Config& cfg, const AttributionRun& run) {
    const Components<T>& out = a.components;
    const int N = a.N(), K = a.K();
    AttributionReport rep;
    rep.model = run.model;
    rep.dtype = run.dtype;
    rep.level = level_name(a.level);
    rep.rule = rule_name(a.options.rule);
    rep.cut = a.cut.str();
    std::ostringstream temp;
    temp << a.options.temperature;
    rep.metadata = {{"temperature", temp.str()},
                    {"ignore_special_token", a.options.ignore_special_token ? "on" : "off"}};
    if (a.level != Level::Token) rep.metadata["layer"] = run.layers > 1 ? "all" : std::to_string(run.layer);
    if (run.adjoint) rep.metadata["path"] = "adjoint (one reverse pass, no components formed)";
    if (run.layers > 1) rep.metadata["layers"] = "every layer; each layer's shares sum to the target logit";
    rep.N = N;
    rep.M = out.M;
    rep.K = K;
    rep.component_names = out.names;
    if (a.level == Level::Head || a.level == Level::Neuron) {
        // The layer x head grid and the neuron table place each component by its descriptor.
        rep.sites.assign(size_t(out.M), ComponentSite{});
        for (int m = 0; m < out.rest(); ++m) {
            const ComponentInfo& ci = a.info[size_t(m)];
            const bool single =
                ci.kind == ComponentInfo::Kind::Head || ci.kind == ComponentInfo::Kind::Neuron;
            rep.sites[size_t(m)] = {ci.layer, single ? ci.index : -1};
        }
        rep.heads_per_layer = cfg.H;
    }
    rep.input_ids = run.ids;
    for (int id : run.ids) rep.token_pieces.push_back(show_piece(run.tokenizer, id));
    for (int n = 0; n < N; ++n)
        for (int k = 0; k < K; ++k) {
            rep.targets.push_back(a.targets[n][k]);
            rep.target_pieces.push_back(show_piece(run.tokenizer, a.targets[n][k]));
            rep.target_logits.push_back(a.target_logits(n, k));
        }
    rep.logit_attribution.assign(a.logit_attribution.data.begin(), a.logit_attribution.data.end());
    rep.completeness_max_abs = a.completeness_max_abs;
    rep.completeness_max_rel = a.completeness_max_rel;
    rep.completeness_worst_point = a.completeness_worst_point;
    if (!a.points.empty()) {
        std::vector<std::string> points;
        for (const CutPoint& p : a.points) points.push_back(p.str());
        rep.metadata["points"] = nlohmann::json(points).dump();
    }
    if (a.qk) {
        // The page's QK section: the key-side shares and the top pairs of the files, and each
        // logit row with its causal softmax (summed in double from every pair).
        const QkSplit<T>& q = *a.qk;
        QkViews v = qk_views(q);
        QkReport& r = rep.qk;
        r.layer = q.layer;
        r.heads = q.heads;
        r.queries = q.queries;
        r.top = v.top;
        r.key_share = std::move(v.key);
        r.top_pairs = std::move(v.top_pairs);
        r.top_values = std::move(v.top_values);
        r.logits_max_rel = a.qk_check.logits_max_rel;
        r.probs_max_abs = a.qk_check.probs_max_abs;
        const int Hs = int(q.heads.size()), M = q.M, Nq = int(q.queries.size());
        r.logits.assign(size_t(Hs) * Nq * N, 0.0);
        r.probs = r.logits;
        for (int h = 0; h < Hs; ++h)
            for (int i = 0; i < Nq; ++i) {
                const int qpos = q.queries[size_t(i)];
                double* s = &r.logits[(size_t(h) * Nq + i) * N];
                double* p = &r.probs[(size_t(h) * Nq + i) * N];
                for (int m = 0; m < M; ++m)
                    for (int m2 = 0; m2 < M; ++m2)
                        for (int j = 0; j <= qpos; ++j) s[j] += double(q.at(h, m, m2, i, j));
                // softmax over j <= qpos: p_j = exp(s_j - max s) / sum_k exp(s_k - max s)
                const double mx = *std::max_element(s, s + qpos + 1);
                double z = 0;
                for (int j = 0; j <= qpos; ++j) z += (p[j] = std::exp(s[j] - mx));
                for (int j = 0; j <= qpos; ++j) p[j] /= z;
            }
    }
    return rep;
}

AttributionFormat parse_attribution_format(const std::string& s) {
    if (s == "safetensors") return AttributionFormat::Safetensors;
    if (s == "json") return AttributionFormat::Json;
    if (s == "npy") return AttributionFormat::Npy;
    throw Error("output format '" + s + "' is not known (expected safetensors, json or npy)");
}

template <class T>
void write_attribution(const Attribution<T>& a, const Config& cfg, const AttributionRun& run,
                       const AttributionOutputs& where) {
    if (!where.out.empty() && where.out == where.html)
        throw Error("the attribution output and the HTML report name the same file: " + where.out);
    if (int64_t(run.ids.size()) != a.N())
        throw Error("write_attribution: " + std::to_string(run.ids.size()) + " input ids for " +
                    std::to_string(a.N()) + " positions");
    const DType float_dtype = sizeof(T) == 8 ? DType::F64 : DType::F32;
    // Every output is written under a temporary name first and renamed into place only
    // when all of them are complete.
    OutputBatch batch;
    std::optional<AttributionReport> report;  // made once, for whichever outputs need it
    const auto rep = [&]() -> const AttributionReport& {
        if (!report) report = attribution_report(a, cfg, run);
        return *report;
    };
    if (!where.out.empty()) {
        std::vector<NamedTensor> tensors = attribution_tensors(a, cfg, run);
        if (where.format == AttributionFormat::Safetensors) {
            write_safetensors(batch.stage_file(where.out), tensors, float_dtype, attribution_metadata(a, run));
        } else if (where.format == AttributionFormat::Json) {
            std::vector<NamedTensor> extra;
            if (where.json_components)
                for (NamedTensor& t : tensors)
                    if (t.name == "components" || t.name == "components_by_point") extra.push_back(std::move(t));
            for (NamedTensor& t : tensors)  // a QK split is what was asked for: always in the document
                if (t.name.rfind("qk_", 0) == 0) extra.push_back(std::move(t));
            write_file_atomic(batch.stage_file(where.out), render_report_json(rep(), extra));
        } else {
            check_npy_directory_target(where.out);
            write_npy_directory(batch.stage_dir(where.out), tensors, float_dtype, report_meta_json(rep()));
        }
    }
    if (!where.html.empty())
        write_file_atomic(batch.stage_file(where.html), render_report_html(rep()));
    batch.commit();
}

#define DEPASS_INSTANTIATE(T)                                                                               \
    template std::vector<NamedTensor> attribution_tensors(const Attribution<T>&, const Config&,             \
                                                          const AttributionRun&);                           \
    template std::map<std::string, std::string> attribution_metadata(const Attribution<T>&,                 \
                                                                     const AttributionRun&);                \
    template AttributionReport attribution_report(const Attribution<T>&, const Config&,                     \
                                                  const AttributionRun&);                                   \
    template void write_attribution(const Attribution<T>&, const Config&, const AttributionRun&,            \
                                    const AttributionOutputs&);
DEPASS_INSTANTIATE(float)
DEPASS_INSTANTIATE(double)
#undef DEPASS_INSTANTIATE

}  // namespace depass
