// report_runs.hpp -- attribution reports built from real decompositions of the
// shipped model with the library's own calls, for the report tests (test_report
// reads the page as written, test_report_browser the page a browser drew), and a
// small report whose every piece of text needs escaping.
#pragma once

#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include "depass/attribute.hpp"
#include "depass/decompose.hpp"
#include "depass/io.hpp"
#include "depass/report.hpp"
#include "depass/tokenizer.hpp"
#include "test_support.hpp"

namespace depass_test {

using namespace depass;

inline std::string report_model_path() { return source_dir() + "/weights/stories260K.bin"; }
inline std::string report_tok_path() { return source_dir() + "/weights/tok512.bin"; }

// A decomposition of the shipped model, done here with the library's calls, and
// the report built from it. Targets: the two largest logits at every position.
template <class T>
struct RealRun {
    AttributionReport rep;
    Mat<double> logits;  // [N, V] of the recorded pass
    std::vector<std::vector<int>> targets;
};

inline std::string display(const Tokenizer& tok, int id) {
    std::string s = tok.piece(id);
    if (s.size() > 2 && s.front() == '\n' && s.back() == '\n') s = s.substr(1, s.size() - 2);
    return s;
}

template <class T>
RealRun<T> real_run(const std::string& level, int layer, const std::string& prompt) {
    Model<T> model = load_model<T>(report_model_path());
    auto tok = Llama2cTokenizer::load(report_tok_path(), model.cfg.V);
    std::vector<int> ids = tok.encode(prompt, true, false);
    const Mat<double> logits = forward(model, ids).logits.template cast<double>();
    const int N = int(ids.size()), K = 2;
    RealRun<T> r;
    r.logits = logits;
    for (int n = 0; n < N; ++n) {
        std::vector<int> order(size_t(model.cfg.V));
        std::iota(order.begin(), order.end(), 0);
        std::partial_sort(order.begin(), order.begin() + K, order.end(),
                          [&](int a, int b) { return r.logits(n, a) > r.logits(n, b); });
        r.targets.push_back({order[0], order[1]});
    }
    AttributionRequest rq;
    rq.start.level = parse_level(level);
    rq.start.layer = layer;
    rq.targets = r.targets;
    const Attribution<T> a = attribute(model, ids, rq);
    const Components<T>& out = a.components;
    const DecomposeOptions& opt = a.options;
    const Tensor<T>& attr = a.logit_attribution;

    AttributionReport& rep = r.rep;
    rep.model = "stories260K <shipped> & \"friends\"";
    rep.dtype = sizeof(T) == 8 ? "f64" : "f32";
    rep.level = level_name(a.level);
    rep.rule = rule_name(opt.rule);
    rep.cut = a.cut.str();
    rep.metadata["temperature"] = "0.1";
    rep.N = N;
    rep.M = out.M;
    rep.K = K;
    rep.component_names = out.names;
    if (level == "head" || level == "neuron") {
        rep.sites.assign(size_t(out.M), ComponentSite{});
        for (int m = 0; m < out.rest(); ++m) rep.sites[size_t(m)] = {layer, m};
        rep.heads_per_layer = model.cfg.H;
    }
    rep.input_ids = ids;
    for (int id : ids) rep.token_pieces.push_back(display(tok, id));
    for (int n = 0; n < N; ++n)
        for (int v : r.targets[size_t(n)]) {
            rep.targets.push_back(v);
            rep.target_pieces.push_back(display(tok, v));
            rep.target_logits.push_back(r.logits(n, v));
        }
    rep.logit_attribution.assign(attr.data.begin(), attr.data.end());
    rep.completeness_max_abs = a.completeness_max_abs;
    rep.completeness_max_rel = a.completeness_max_rel;
    rep.completeness_worst_point = a.completeness_worst_point;
    return r;
}

// Three tokens and their targets whose pieces (and the model name) hold everything
// that must be escaped, and a byte that is not UTF-8.
inline AttributionReport escaping_report() {
    AttributionReport r;
    r.model = "m</title><script>alert(1)</script>";
    r.dtype = "f64";
    r.level = "token";
    r.rule = "softmax";
    r.cut = "h[0]";
    r.N = 3;
    r.M = 4;
    r.K = 1;
    r.component_names = {"token 0", "token 1", "token 2", "rest"};
    r.input_ids = {1, 7, 9};
    r.token_pieces = {"<s>", " a&b \"q\" 'x'", "</script><script>alert(2)</script>\xff"};
    r.targets = {5, 6, 7};
    r.target_pieces = {"<b>", "&amp;", "]]></x>"};
    r.target_logits = {1.0, 2.0, 3.0};
    // [M, N, K]: token j's share at position n, zero for j > n.
    r.logit_attribution = {1.0,           0.5, 2.5,  /*token 1*/ 0, 1.5, -0.25,
                           /*token 2*/ 0, 0,   0.75, /*rest*/ 0,    0,   0};
    return r;
}

}  // namespace depass_test
