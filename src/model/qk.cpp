// qk.cpp -- the QK circuit decomposed (qk.hpp, docs/levels/qk.md).
#include "depass/qk.hpp"

#include <algorithm>
#include <cmath>
#include <set>

namespace depass {

void check_qk_request(const Config& cfg, int N, const QkRequest& rq) {
    if (rq.layer < 0 || rq.layer >= cfg.L)
        throw Error("qk: layer " + std::to_string(rq.layer) + " is out of range [0, " + std::to_string(cfg.L - 1) +
                    "] for this " + std::to_string(cfg.L) + "-layer model");
    std::set<int> seen;
    for (int h : rq.heads) {
        if (h < 0 || h >= cfg.H)
            throw Error("qk: head " + std::to_string(h) + " is out of range [0, " + std::to_string(cfg.H) + ")");
        if (!seen.insert(h).second) throw Error("qk: head " + std::to_string(h) + " is given twice");
    }
    seen.clear();
    for (int n : rq.queries) {
        if (n < 0 || n >= N)
            throw Error("qk: query position " + std::to_string(n) + " is out of range [0, " + std::to_string(N) +
                        ") for " + std::to_string(N) + " tokens");
        if (!seen.insert(n).second) throw Error("qk: query position " + std::to_string(n) + " is given twice");
    }
}

uint64_t qk_bytes(const Config& cfg, int M, int N, const QkRequest& rq, int scalar_bytes) {
    const uint64_t heads = rq.heads.empty() ? uint64_t(cfg.H) : rq.heads.size();
    const uint64_t queries = rq.queries.empty() ? uint64_t(N) : rq.queries.size();
    return heads * uint64_t(M) * uint64_t(M) * queries * uint64_t(N) * uint64_t(scalar_bytes);
}

namespace {

// The split's arithmetic is done in double whatever T is. In float the pairs of a large block
// cancel: the custom level on stories260K gives components as large as the state and logits up
// to 48, and float arithmetic then moves the softmax of the summed pairs by 1.2e-5, over the
// 1e-5 bar, where the same float components split in double stay within 5e-7. The result is
// stored in T (one rounding per pair).
template <class T>
Components<double> widened(const Components<T>& c) {
    Components<double> w = Components<double>::zeros(c.N, c.D, c.first, c.names);
    w.X = c.X.template cast<double>();
    return w;
}
template <class T>
NormFactors<double> widened(const NormFactors<T>& f) {
    return {f.inv.template cast<double>(), f.mean.template cast<double>()};
}

}  // namespace

template <class T>
QkSplit<T> qk_split(const Model<T>& model, const Trace<T>& trace, const Components<T>& x, const QkRequest& rq) {
    const Config& cfg = model.cfg;
    check_qk_request(cfg, trace.N(), rq);
    if (x.N != trace.N() || x.D != cfg.D)
        throw Error("qk: components are [" + std::to_string(x.N) + ", " + std::to_string(x.D) +
                    "] per component, the trace is [" + std::to_string(trace.N()) + ", " + std::to_string(cfg.D) + "]");
    LayerWeights<T> scratch;
    const LayerWeights<T>& lw = model.layer(rq.layer, scratch);
    const LayerTrace<T>& lt = trace.layers[size_t(rq.layer)];
    const std::vector<double> inv_freq = rope_inv_freq(cfg);
    // The input norm with its recorded per-token factors: linear in the components (the
    // LayerNorm bias goes to the rest).
    const Components<double> u =
        apply_norm_decomposed(cfg.norm, widened(x), Vec<double>(lw.norm1_g.template cast<double>()),
                              Vec<double>(lw.norm1_b.template cast<double>()), widened(lt.norm1));
    // Queries and keys: the projections' twins (b_Q, b_K to the rest), then RoPE per position.
    Components<double> q = linear_decomposed(u, Mat<double>(lw.wq.template cast<double>()),
                                             Vec<double>(lw.bq.template cast<double>()));
    Components<double> k = linear_decomposed(u, Mat<double>(lw.wk.template cast<double>()),
                                             Vec<double>(lw.bk.template cast<double>()));
    rope_decomposed(q, cfg.H, cfg.Dh, cfg.rope, inv_freq);
    rope_decomposed(k, cfg.Hkv, cfg.Dh, cfg.rope, inv_freq);
    // Every pair's logits (the bilinear twin), one head at a time so that only one head's
    // pairs are ever held in double.
    QkSplit<T> s;
    s.layer = rq.layer;
    s.heads = rq.heads;
    s.queries = rq.queries;
    if (s.heads.empty())
        for (int h = 0; h < cfg.H; ++h) s.heads.push_back(h);
    if (s.queries.empty())
        for (int n = 0; n < trace.N(); ++n) s.queries.push_back(n);
    s.M = x.M;
    s.N = x.N;
    const int Hs = int(s.heads.size()), Nq = int(s.queries.size());
    s.logits = Tensor<T>({Hs, s.M, s.M, Nq, s.N});
    const size_t per_head = size_t(s.M) * s.M * Nq * s.N;
    for (int hi = 0; hi < Hs; ++hi) {
        const Tensor<double> one = qk_logits_decomposed(q, k, cfg.H, cfg.Hkv, cfg.Dh, {s.heads[size_t(hi)]}, s.queries);
        for (size_t i = 0; i < per_head; ++i) s.logits.data[size_t(hi) * per_head + i] = T(one.data[i]);
    }
    return s;
}

template <class T>
Mat<T> attention_logits(const Model<T>& model, const Trace<T>& trace, int layer, int head) {
    const Config& cfg = model.cfg;
    check_qk_request(cfg, trace.N(), QkRequest{layer, {head}, {}});
    LayerWeights<T> scratch;
    const LayerWeights<T>& lw = model.layer(layer, scratch);
    const Mat<T> x = apply_norm(cfg.norm, cfg.norm_eps, trace.h[size_t(layer)], lw.norm1_g, lw.norm1_b);
    const AttentionInputs<T> a = attention_inputs(cfg, lw, x, rope_inv_freq(cfg));
    const int g = head / cfg.kv_group();
    Mat<T> s = a.q.middleCols(long(head) * cfg.Dh, cfg.Dh) * a.k.middleCols(long(g) * cfg.Dh, cfg.Dh).transpose();
    s *= T(1) / std::sqrt(T(cfg.Dh));
    for (long i = 0; i < s.rows(); ++i) s.row(i).tail(s.cols() - i - 1).setZero();
    return s;
}

template <class T>
QkCheck check_qk_split(const Model<T>& model, const Trace<T>& trace, const QkSplit<T>& split) {
    QkCheck c;
    const int N = split.N, M = split.M, Nq = int(split.queries.size());
    for (size_t hi = 0; hi < split.heads.size(); ++hi) {
        const int h = split.heads[hi];
        const Mat<T> ref = attention_logits(model, trace, split.layer, h);
        const Mat<T>& probs = trace.layers[size_t(split.layer)].probs[size_t(h)];
        const double scale = std::max<double>(1e-30, ref.cwiseAbs().maxCoeff());
        // Every logit of the head summed over its pairs, in double whatever T is (the sum itself
        // must not add rounding to the check); pair after pair, in the order the split is stored.
        std::vector<double> sums(size_t(Nq) * N, 0.0);
        const T* pairs = split.logits.data.data() + hi * size_t(M) * M * Nq * N;
        for (int mm = 0; mm < M * M; ++mm)
            for (int i = 0; i < Nq; ++i)
                for (int j = 0; j <= split.queries[size_t(i)]; ++j)
                    sums[size_t(i) * N + j] += double(pairs[(size_t(mm) * Nq + i) * N + j]);
        for (int i = 0; i < Nq; ++i) {
            const int qpos = split.queries[size_t(i)];
            const double* sum = &sums[size_t(i) * N];
            double mx = -INFINITY, z = 0;
            for (int j = 0; j <= qpos; ++j) {
                c.logits_max_rel = std::max(c.logits_max_rel, std::abs(sum[size_t(j)] - double(ref(qpos, j))) / scale);
                mx = std::max(mx, sum[size_t(j)]);
            }
            for (int j = 0; j <= qpos; ++j) z += std::exp(sum[size_t(j)] - mx);
            for (int j = 0; j <= qpos; ++j)
                c.probs_max_abs =
                    std::max(c.probs_max_abs, std::abs(std::exp(sum[size_t(j)] - mx) / z - double(probs(qpos, j))));
            if (!std::isfinite(c.logits_max_rel) || !std::isfinite(c.probs_max_abs)) {
                c.logits_max_rel = c.probs_max_abs = INFINITY;
                return c;
            }
        }
    }
    return c;
}

#define DEPASS_INSTANTIATE(T)                                                                               \
    template QkSplit<T> qk_split(const Model<T>&, const Trace<T>&, const Components<T>&, const QkRequest&); \
    template Mat<T> attention_logits(const Model<T>&, const Trace<T>&, int, int);                           \
    template QkCheck check_qk_split(const Model<T>&, const Trace<T>&, const QkSplit<T>&);
DEPASS_INSTANTIATE(float)
DEPASS_INSTANTIATE(double)
#undef DEPASS_INSTANTIATE

}  // namespace depass
