// qk_effect.cpp -- the QK path of each token, first order against exact (eval_qk.hpp).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "depass/adjoint.hpp"
#include "depass/attribute.hpp"
#include "depass/backward.hpp"
#include "depass/eval_qk.hpp"
#include "depass/ops.hpp"
#include "depass/qk.hpp"

namespace depass::eval {

const char* qk_side_name(QkSide s) {
    switch (s) {
        case QkSide::Query: return "query";
        case QkSide::Key: return "key";
        case QkSide::Both: return "both";
    }
    return "?";
}

std::vector<double> pattern_change_first_order(const std::vector<double>& a, const std::vector<double>& ds) {
    // d softmax = A * (dS - E_A[dS]): the Jacobian of the softmax applied to dS.
    double mean = 0;
    for (size_t k = 0; k < a.size(); ++k) mean += a[k] * ds[k];
    std::vector<double> da(a.size());
    for (size_t k = 0; k < a.size(); ++k) da[k] = a[k] * (ds[k] - mean);
    return da;
}

std::vector<double> pattern_change_exact(const std::vector<double>& s, const std::vector<double>& ds) {
    // softmax(S + dS) - softmax(S), each shifted by its own maximum.
    auto softmax = [](const std::vector<double>& x) {
        const double mx = *std::max_element(x.begin(), x.end());
        std::vector<double> e(x.size());
        double z = 0;
        for (size_t k = 0; k < x.size(); ++k) z += e[k] = std::exp(x[k] - mx);
        for (double& v : e) v /= z;
        return e;
    };
    std::vector<double> s2(s.size());
    for (size_t k = 0; k < s.size(); ++k) s2[k] = s[k] + ds[k];
    const std::vector<double> a = softmax(s), a2 = softmax(s2);
    std::vector<double> da(s.size());
    for (size_t k = 0; k < s.size(); ++k) da[k] = a2[k] - a[k];
    return da;
}

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
    const size_t n = a.size();
    if (n < 2 || b.size() != n) return 0;
    const double ma = std::accumulate(a.begin(), a.end(), 0.0) / double(n);
    const double mb = std::accumulate(b.begin(), b.end(), 0.0) / double(n);
    double sab = 0, saa = 0, sbb = 0;
    for (size_t i = 0; i < n; ++i) {
        sab += (a[i] - ma) * (b[i] - mb);
        saa += (a[i] - ma) * (a[i] - ma);
        sbb += (b[i] - mb) * (b[i] - mb);
    }
    return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0;
}

namespace {

// The target logit at the last position from a final residual state.
template <class T>
double last_logit(const Model<T>& model, const Mat<T>& hL, int target) {
    const Config& c = model.cfg;
    const Mat<T> last = hL.bottomRows(1);
    const Mat<T> x = apply_norm(c.norm, c.norm_eps, last, model.w.normf_g, model.w.normf_b);
    return double((x * model.w.unembedding().row(target).transpose())(0, 0));
}

template <class T>
const Components<T>& components_at(const Attribution<T>& a, const CutPoint& p) {
    for (size_t i = 0; i < a.points.size(); ++i)
        if (a.points[i].layer == p.layer && a.points[i].after_attention == p.after_attention) return a.at_points[i];
    throw Error("qk effects: no components kept at " + p.str());
}

// One prompt's rows and tokens.
template <class T>
void prompt_effects(const Model<T>& model, const std::vector<int>& ids, int prompt, QkEffectSummary& out) {
    const Config& cfg = model.cfg;
    const Trace<T> tr = forward(model, ids);
    const int N = tr.N();
    Eigen::Index target_index;
    tr.logits.row(N - 1).maxCoeff(&target_index);
    const int target = int(target_index);
    const double z = double(tr.logits(N - 1, target));
    out.prompts.push_back({ids, target, z});

    // Plain DePass at token level from h[0]: the taylor rule (the linear one, whose components
    // the QK split reads at every block input) and the default softmax rule.
    AttributionRequest rq;
    rq.rule = MlpRule::Taylor;
    rq.targets = {{target}};
    rq.keep_points = true;
    const Attribution<T> taylor = attribute(model, tr, rq);
    AttributionRequest rs;
    rs.targets = {{target}};
    const Attribution<T> soft = attribute(model, tr, rs);
    const int M = taylor.M();
    const int K = taylor.K();

    // lambda at every m[l]: the frozen network's gradient of the target logit.
    std::vector<Mat<T>> lambda(size_t(cfg.L));
    adjoint_pass<T>(model, tr, {LogitTarget{N - 1, target}}, CutPoint{0, false},
                    [&](const CutPoint& p, const Cotangents<T>& c) {
                        if (p.after_attention) lambda[size_t(p.layer)] = c.block(0);
                    });

    // The real network's gradient of the target logit at every head's context.
    const Gradients<T> grad = logit_backward(model, tr, N - 1, target);

    const std::vector<double> inv_freq = rope_inv_freq(cfg);
    const int Dh = cfg.Dh;
    std::vector<double> qk_credit(size_t(N), 0.0), qk_credit_grad(size_t(N), 0.0);
    for (int l = 0; l < cfg.L; ++l) {
        const Components<T>& x = components_at(taylor, CutPoint{l, false});
        const QkSplit<T> split = qk_split(model, tr, x, QkRequest{l, {}, {}});
        LayerWeights<T> scratch;
        const LayerWeights<T>& lw = model.layer(l, scratch);
        const LayerTrace<T>& lt = tr.layers[size_t(l)];
        const Mat<T> xn = apply_norm(cfg.norm, cfg.norm_eps, tr.h[size_t(l)], lw.norm1_g, lw.norm1_b);
        const AttentionInputs<T> ai = attention_inputs(cfg, lw, xn, inv_freq);
        for (int h = 0; h < cfg.H; ++h) {
            const int g = h / cfg.kv_group();
            const Mat<double> S = attention_logits(model, tr, l, h).template cast<double>();
            const Mat<double> A = lt.probs[size_t(h)].template cast<double>();
            const Mat<double> V = ai.v.middleCols(long(g) * Dh, Dh).template cast<double>();
            const Mat<T> WOh = lw.wo.middleCols(long(h) * Dh, Dh);  // [D, Dh]
            // G[q, k] = (lambda[q] W_O,h) . v[k]: a unit of attention from q to k, on the target.
            const Mat<double> G =
                (lambda[size_t(l)].template cast<double>() * WOh.template cast<double>()) * V.transpose();
            // The same with the real network's gradient at the head's context.
            const Mat<double> Gt =
                grad.attn_ctx[size_t(l)].middleCols(long(h) * Dh, Dh).template cast<double>() * V.transpose();
            // Each component's query-side and key-side sums of the split, and its diagonal pair.
            std::vector<Mat<double>> qsum(size_t(M), Mat<double>::Zero(N, N)), ksum = qsum, diag = qsum;
            for (int m = 0; m < M; ++m)
                for (int m2 = 0; m2 < M; ++m2)
                    for (int i = 0; i < N; ++i)
                        for (int j = 0; j <= i; ++j) {
                            const double v = double(split.at(h, m, m2, i, j));
                            qsum[size_t(m)](i, j) += v;
                            ksum[size_t(m2)](i, j) += v;
                            if (m == m2) diag[size_t(m)](i, j) = v;
                        }
            for (int m = 0; m + 1 < M; ++m)  // the tokens (the rest, last, is left out)
                for (QkSide side : {QkSide::Query, QkSide::Key, QkSide::Both}) {
                    QkEffectRow r;
                    r.prompt = prompt;
                    r.layer = l;
                    r.head = h;
                    r.component = m;
                    r.side = side;
                    Mat<double> dctx1 = Mat<double>::Zero(N, Dh), dctxx = dctx1;
                    for (int q = 0; q < N; ++q) {
                        std::vector<double> a(size_t(q) + 1), s(a.size()), ds(a.size());
                        for (int k = 0; k <= q; ++k) {
                            a[size_t(k)] = A(q, k);
                            s[size_t(k)] = S(q, k);
                            const double qs = qsum[size_t(m)](q, k), ks = ksum[size_t(m)](q, k);
                            ds[size_t(k)] = side == QkSide::Query ? -qs
                                            : side == QkSide::Key ? -ks
                                                                  : -(qs + ks - diag[size_t(m)](q, k));
                        }
                        const std::vector<double> d1 = pattern_change_first_order(a, ds);
                        const std::vector<double> dx = pattern_change_exact(s, ds);
                        for (int k = 0; k <= q; ++k) {
                            r.pattern_first += std::abs(d1[size_t(k)]);
                            r.pattern_exact += std::abs(dx[size_t(k)]);
                            r.pattern_error += std::abs(d1[size_t(k)] - dx[size_t(k)]);
                            dctx1.row(q) += d1[size_t(k)] * V.row(k);
                            dctxx.row(q) += dx[size_t(k)] * V.row(k);
                            r.logit_first += d1[size_t(k)] * G(q, k);
                            r.logit_first_grad += d1[size_t(k)] * Gt(q, k);
                            r.logit_exact_pattern += dx[size_t(k)] * G(q, k);
                        }
                    }
                    r.ctx_first = dctx1.norm();
                    r.ctx_exact = dctxx.norm();
                    r.ctx_error = (dctx1 - dctxx).norm();
                    // The real network after the head, from m[l] + W_O,h dctx.
                    const Mat<T> m_new = lt.m + dctxx.template cast<T>() * WOh.transpose();
                    r.logit_exact = last_logit(model, forward_blocks_from_mid(model, m_new, l), target) - z;
                    if (side == QkSide::Both) {
                        qk_credit[size_t(m)] -= r.logit_first;
                        qk_credit_grad[size_t(m)] -= r.logit_first_grad;
                    }
                    out.rows.push_back(r);
                }
        }
    }

    // Each token's whole effect: its component removed from h[0] and the model re-run.
    const Components<T>& x0 = components_at(taylor, CutPoint{0, false});
    for (int j = 0; j < N; ++j) {
        QkTokenRow t;
        t.prompt = prompt;
        t.position = j;
        t.id = ids[size_t(j)];
        const Trace<T> ab = forward_from_embeddings(model, Mat<T>(tr.h[0] - x0.component(j)), ids, N - 1);
        t.ablation = z - double(ab.logits(N - 1, target));
        t.depass_taylor = double(taylor.logit_attribution.data[(size_t(j) * N + (N - 1)) * K]);
        t.depass_softmax = double(soft.logit_attribution.data[(size_t(j) * N + (N - 1)) * K]);
        t.qk_first = qk_credit[size_t(j)];
        t.qk_first_grad = qk_credit_grad[size_t(j)];
        out.tokens.push_back(t);
    }
}

}  // namespace

template <class T>
QkEffectSummary qk_effects(const Model<T>& model, const std::vector<std::vector<int>>& prompts,
                           const Progress& progress) {
    const auto t0 = std::chrono::steady_clock::now();
    QkEffectSummary s;
    for (size_t p = 0; p < prompts.size(); ++p) {
        prompt_effects(model, prompts[p], int(p), s);
        if (progress) progress(int(p) + 1, int(prompts.size()));
    }
    s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return s;
}

uint64_t qk_effects_bytes(const Config& cfg, int N, int scalar_bytes) {
    const uint64_t n = uint64_t(N), m = n + 1, sb = uint64_t(scalar_bytes);
    const uint64_t split = uint64_t(cfg.H) * m * m * n * n * sb;
    const uint64_t one_head_double = m * m * n * n * 8;
    const uint64_t sums = 3 * m * n * n * 8;
    const uint64_t points = uint64_t(2 * cfg.L + 1) * m * n * uint64_t(cfg.D) * sb;
    return split + one_head_double + sums + points;
}

std::vector<QkSideStats> qk_side_stats(const QkEffectSummary& s) {
    std::vector<QkSideStats> out;
    for (QkSide side : {QkSide::Query, QkSide::Key, QkSide::Both}) {
        QkSideStats st;
        st.side = side;
        std::vector<double> first, exact, frozen, first_grad;
        double pe = 0, px = 0, ce = 0, cx = 0, le = 0, lx = 0, lf = 0, lg = 0;
        for (const QkEffectRow& r : s.rows) {
            if (r.side != side) continue;
            ++st.rows;
            pe += r.pattern_error;
            px += r.pattern_exact;
            ce += r.ctx_error;
            cx += r.ctx_exact;
            first.push_back(r.logit_first);
            exact.push_back(r.logit_exact);
            frozen.push_back(r.logit_exact_pattern);
            first_grad.push_back(r.logit_first_grad);
            lg += std::abs(r.logit_first_grad - r.logit_exact);
            le += std::abs(r.logit_first - r.logit_exact);
            lf += std::abs(r.logit_first - r.logit_exact_pattern);
            lx += std::abs(r.logit_exact);
        }
        double lxf = 0;
        for (double v : frozen) lxf += std::abs(v);
        st.pattern_rel_error = px > 0 ? pe / px : 0;
        st.ctx_rel_error = cx > 0 ? ce / cx : 0;
        st.logit_pearson = pearson(first, exact);
        st.logit_spearman = spearman(first, exact);
        st.logit_rel_error = lx > 0 ? le / lx : 0;
        st.logit_pearson_frozen = pearson(first, frozen);
        st.logit_rel_error_frozen = lxf > 0 ? lf / lxf : 0;
        st.logit_pearson_grad = pearson(first_grad, exact);
        st.logit_rel_error_grad = lx > 0 ? lg / lx : 0;
        st.mean_abs_exact = st.rows ? lx / st.rows : 0;
        out.push_back(st);
    }
    return out;
}

QkTokenStats qk_token_stats(const QkEffectSummary& s, bool skip_first) {
    QkTokenStats st;
    std::vector<double> abl, taylor, with_qk, miss, qk, qk_grad;
    double sa = 0, mt = 0, ms = 0, mq = 0, rr = 0, mm = 0, rg = 0;
    for (const QkTokenRow& t : s.tokens) {
        if (skip_first && t.position == 0) continue;
        ++st.tokens;
        const double m = t.ablation - t.depass_taylor;
        abl.push_back(t.ablation);
        taylor.push_back(t.depass_taylor);
        with_qk.push_back(t.depass_taylor + t.qk_first);
        miss.push_back(m);
        qk.push_back(t.qk_first);
        qk_grad.push_back(t.qk_first_grad);
        rg += (m - t.qk_first_grad) * (m - t.qk_first_grad);
        sa += std::abs(t.ablation);
        mt += std::abs(m);
        ms += std::abs(t.ablation - t.depass_softmax);
        mq += std::abs(m - t.qk_first);
        rr += (m - t.qk_first) * (m - t.qk_first);
        mm += m * m;
    }
    st.mean_abs_ablation = st.tokens ? sa / st.tokens : 0;
    st.miss_taylor = sa > 0 ? mt / sa : 0;
    st.miss_softmax = sa > 0 ? ms / sa : 0;
    st.miss_with_qk = sa > 0 ? mq / sa : 0;
    st.qk_explained = mm > 0 ? 1 - rr / mm : 0;
    st.miss_qk_pearson = pearson(miss, qk);
    st.qk_explained_grad = mm > 0 ? 1 - rg / mm : 0;
    st.miss_qk_pearson_grad = pearson(miss, qk_grad);
    st.pearson_taylor = pearson(abl, taylor);
    st.pearson_with_qk = pearson(abl, with_qk);
    return st;
}

template QkEffectSummary qk_effects(const Model<float>&, const std::vector<std::vector<int>>&, const Progress&);
template QkEffectSummary qk_effects(const Model<double>&, const std::vector<std::vector<int>>&, const Progress&);

}  // namespace depass::eval
