// token_eval.cpp -- token-level faithfulness: DePass and baselines rank the input
// tokens, then the top-ranked ones are deleted (or kept alone) and the model re-run.
//
// For a prompt of N tokens, BOS (position 0) and the last token are always kept; the
// N - 2 tokens between them are the candidates. At p percent, k = max(1, floor(p (N-2)/100))
// candidates are masked:
//   deletion: the k highest-ranked tokens are removed from the ids;
//   keeping:  only BOS, the k highest-ranked tokens and the last token remain.
// score = min(100, |P_clean - P_masked| / P_clean * 100) for the target (the model's greedy
// next token on the clean prompt). A faithful ranking has a HIGH deletion score (removing
// what matters hurts) and a LOW keeping score (what matters alone suffices).
#include <chrono>
#include <cmath>
#include <map>
#include <numeric>

#include "depass/attribute.hpp"
#include "depass/backward.hpp"
#include "depass/enum_names.hpp"
#include "depass/eval.hpp"
#include "parallel.hpp"

namespace depass::eval {

namespace {
const NamedValue<TokenMethod> kTokenMethods[] = {
    {TokenMethod::DePass, "depass"},
    {TokenMethod::Random, "random"},
    {TokenMethod::AttentionLast, "attn_last"},
    {TokenMethod::AttentionMean, "attn_mean"},
    {TokenMethod::Rollout, "rollout"},
    {TokenMethod::EmbeddingNorm, "embed_norm"},
    {TokenMethod::Occlusion, "occlusion"},
    {TokenMethod::IntegratedGradients, "integrated_gradients"},
    {TokenMethod::InputXGradient, "input_x_gradient"},
    {TokenMethod::GradientNorm, "gradient_norm"},
};
}  // namespace

const char* method_name(TokenMethod m) { return name_in(kTokenMethods, m); }

std::vector<TokenMethod> all_token_methods() { return values_in(kTokenMethods); }

TokenMethod parse_token_method(const std::string& s) {
    TokenMethod m;
    if (value_in(kTokenMethods, s, &m)) return m;
    throw Error("unknown token attribution method '" + s + "' (expected " + names_in(kTokenMethods, " or ") +
                ")");
}

// p = exp(l_t - max) / sum_v exp(l_v - max), in double
template <class T>
double softmax_probability(const Mat<T>& logits, int row, int target) {
    if (row < 0 || row >= logits.rows() || target < 0 || target >= logits.cols())
        throw Error("softmax_probability: row " + std::to_string(row) + " / target " +
                    std::to_string(target) + " outside the logits [" + std::to_string(logits.rows()) + ", " +
                    std::to_string(logits.cols()) + "]");
    const auto r = logits.row(row);
    const double mx = double(r.maxCoeff());
    double z = 0;
    for (Eigen::Index v = 0; v < r.size(); ++v) z += std::exp(double(r[v]) - mx);
    return std::exp(double(r[target]) - mx) / z;
}

template <class T>
double target_probability(const Model<T>& model, const std::vector<int>& ids, int target) {
    const Trace<T> t = forward(model, ids);
    return softmax_probability(t.logits, t.N() - 1, target);
}

template <class T>
std::vector<double> depass_token_scores(const Model<T>& model, const Trace<T>& trace, int target,
                                        double temperature) {
    const int N = trace.N();
    AttributionRequest rq;  // token level at h[0], softmax rule, ignore-special-token on
    rq.temperature = temperature;
    rq.targets = {{target}};
    const Tensor<T> attr = attribute(model, trace, rq).logit_attribution;
    std::vector<double> s(N);
    for (int j = 0; j < N; ++j) s[j] = double(attr.data[size_t(j) * N + (N - 1)]);  // [M, N, 1], component j
    return s;
}

template <class T>
std::vector<double> attention_last_scores(const Trace<T>& trace) {
    const int N = trace.N();
    const auto& probs = trace.layers.back().probs;
    std::vector<double> s(N, 0.0);
    for (const Mat<T>& A : probs)
        for (int j = 0; j < N; ++j) s[j] += double(A(N - 1, j)) / double(probs.size());
    return s;
}

template <class T>
std::vector<double> attention_mean_scores(const Trace<T>& trace) {
    const int N = trace.N();
    std::vector<double> s(N, 0.0);
    for (const LayerTrace<T>& lt : trace.layers)
        for (const Mat<T>& A : lt.probs)
            for (int j = 0; j < N; ++j)
                s[j] += double(A(N - 1, j)) / double(lt.probs.size() * trace.layers.size());
    return s;
}

// B_l = rownorm(0.5 A_l + 0.5 I);  R = B_{L-1} ... B_0
Mat<double> attention_rollout(const std::vector<Mat<double>>& head_mean) {
    if (head_mean.empty()) throw Error("attention_rollout: no layers");
    const long N = head_mean[0].rows();
    Mat<double> R = Mat<double>::Identity(N, N);
    for (size_t l = 0; l < head_mean.size(); ++l) {
        if (head_mean[l].rows() != N || head_mean[l].cols() != N)
            throw Error("attention_rollout: layer " + std::to_string(l) +
                        " attention is not [N, N] with N = " + std::to_string(N));
        Mat<double> B = 0.5 * head_mean[l] + 0.5 * Mat<double>::Identity(N, N);
        for (long i = 0; i < N; ++i) {
            const double z = B.row(i).sum();
            if (z > 0) B.row(i) /= z;
        }
        R = B * R;
    }
    return R;
}

template <class T>
std::vector<double> rollout_scores(const Trace<T>& trace) {
    const int N = trace.N();
    std::vector<Mat<double>> mean;
    for (const LayerTrace<T>& lt : trace.layers) {
        Mat<double> A = Mat<double>::Zero(N, N);
        for (const Mat<T>& P : lt.probs) A += P.template cast<double>();
        mean.push_back(A / double(lt.probs.size()));
    }
    const Mat<double> R = attention_rollout(mean);
    std::vector<double> s(N);
    for (int j = 0; j < N; ++j) s[j] = R(N - 1, j);
    return s;
}

template <class T>
std::vector<double> embedding_norm_scores(const Trace<T>& trace) {
    std::vector<double> s(trace.N());
    for (int j = 0; j < trace.N(); ++j) s[j] = trace.h[0].row(j).template cast<double>().norm();
    return s;
}

template <class T>
std::vector<double> occlusion_scores(const Model<T>& model, const std::vector<int>& ids, int target,
                                     double p_clean) {
    const int N = int(ids.size());
    std::vector<double> s(N, 0.0);
    for (int j = 1; j + 1 < N; ++j)
        s[j] = p_clean - target_probability(model, delete_positions(ids, {j}), target);
    return s;
}

// The integration path h[0](alpha) = alpha x + P (P: learned positions, or 0) at the midpoints
// alpha_s = (s + 1/2) / S; the gradients are summed in double.
template <class T>
IntegratedGradientsResult integrated_gradients(const Model<T>& model, const std::vector<int>& ids, int target,
                                               int steps) {
    if (steps < 1) throw Error("integrated_gradients: " + std::to_string(steps) + " steps (expected >= 1)");
    check_ids(model.cfg, ids);
    const int N = int(ids.size()), pos = N - 1;
    const Mat<T> x = token_embeddings(model, ids);
    const Mat<T> P =
        model.w.pos_emb.size() ? Mat<T>(model.w.pos_emb.topRows(N)) : Mat<T>(Mat<T>::Zero(N, model.cfg.D));
    IntegratedGradientsResult r;
    r.f_x = log_prob_from_embeddings(model, Mat<T>(x + P), ids, pos, target);
    r.f_0 = log_prob_from_embeddings(model, P, ids, pos, target);
    Mat<double> gsum = Mat<double>::Zero(N, model.cfg.D);
    for (int s = 0; s < steps; ++s) {
        const T alpha = T((s + 0.5) / steps);
        const Trace<T> t = forward_from_embeddings(model, Mat<T>(alpha * x + P), ids, pos);
        gsum += backward(model, t, pos, target).h0.template cast<double>();
    }
    const Mat<double> attr = x.template cast<double>().cwiseProduct(gsum) / double(steps);
    r.scores.resize(N);
    for (int j = 0; j < N; ++j) {
        r.scores[j] = attr.row(j).sum();
        r.sum += r.scores[j];
    }
    return r;
}

template <class T>
std::vector<double> input_x_gradient_scores(const Model<T>& model, const Trace<T>& trace, int target) {
    const int N = trace.N();
    const Mat<double> g = backward(model, trace, N - 1, target).h0.template cast<double>();
    const Mat<double> x = token_embeddings(model, trace.ids).template cast<double>();
    std::vector<double> s(N);
    for (int j = 0; j < N; ++j) s[j] = x.row(j).dot(g.row(j));
    return s;
}

template <class T>
std::vector<double> gradient_norm_scores(const Model<T>& model, const Trace<T>& trace, int target) {
    const int N = trace.N();
    const Mat<double> g = backward(model, trace, N - 1, target).h0.template cast<double>();
    std::vector<double> s(N);
    for (int j = 0; j < N; ++j) s[j] = g.row(j).norm();
    return s;
}

namespace {

// Candidates 1..N-2 ordered by descending score (ties: earlier position first).
std::vector<int> rank_candidates(const std::vector<double>& scores) {
    const int N = int(scores.size());
    std::vector<double> mid(scores.begin() + 1, scores.end() - 1);
    std::vector<int> order = order_descending(mid);
    for (int& p : order) p += 1;
    (void)N;
    return order;
}

}  // namespace

template <class T>
PromptTokenResult token_faithfulness(const Model<T>& model, const std::vector<int>& ids,
                                     const TokenEvalOptions& opt, uint64_t prompt_index) {
    const int N = int(ids.size());
    if (N < 3)
        throw Error("token_faithfulness: the prompt has " + std::to_string(N) +
                    " tokens; needs at least 3 (BOS, one maskable token, the last token)");
    if (opt.percents.size() < 2) throw Error("token_faithfulness: needs at least two percents for a curve");
    const Trace<T> trace = forward(model, ids);
    PromptTokenResult r;
    r.N = N;
    Eigen::Index best;
    trace.logits.row(N - 1).maxCoeff(&best);
    r.target = int(best);
    r.p_clean = softmax_probability(trace.logits, N - 1, r.target);

    // Masked runs repeat across methods (e.g. every method at 100%): one forward per id list.
    std::map<std::vector<int>, double> cache;
    auto prob = [&](const std::vector<int>& masked) {
        auto it = cache.find(masked);
        if (it != cache.end()) return it->second;
        const double p = target_probability(model, masked, r.target);
        cache.emplace(masked, p);
        return p;
    };
    auto curves = [&](const std::vector<int>& order, std::vector<double>& del, std::vector<double>& keep) {
        del.assign(opt.percents.size(), 0.0);
        keep.assign(opt.percents.size(), 0.0);
        for (size_t i = 0; i < opt.percents.size(); ++i) {
            const int k = masked_count(opt.percents[i], N - 2);
            const std::vector<int> top(order.begin(), order.begin() + k);
            del[i] = mask_score(r.p_clean, prob(delete_positions(ids, top)));
            keep[i] = mask_score(r.p_clean, prob(keep_positions(ids, top)));
        }
    };

    std::vector<double> xs(opt.percents.begin(), opt.percents.end());
    for (TokenMethod m : opt.methods) {
        std::vector<double> del, keep;
        if (m == TokenMethod::Random) {
            const int draws = std::max(1, opt.random_draws);
            std::vector<double> d(opt.percents.size(), 0.0), k(opt.percents.size(), 0.0);
            for (int draw = 0; draw < draws; ++draw) {
                std::vector<int> order(N - 2);
                std::iota(order.begin(), order.end(), 1);
                Rng rng(mix_seed(opt.seed, prompt_index, uint64_t(draw)));
                rng.shuffle(order.begin(), order.end());
                curves(order, del, keep);
                for (size_t i = 0; i < d.size(); ++i) {
                    d[i] += del[i] / draws;
                    k[i] += keep[i] / draws;
                }
            }
            del = d;
            keep = k;
        } else {
            std::vector<double> s;
            switch (m) {
                case TokenMethod::DePass:
                    s = depass_token_scores(model, trace, r.target, opt.temperature);
                    break;
                case TokenMethod::AttentionLast:
                    s = attention_last_scores(trace);
                    break;
                case TokenMethod::AttentionMean:
                    s = attention_mean_scores(trace);
                    break;
                case TokenMethod::Rollout:
                    s = rollout_scores(trace);
                    break;
                case TokenMethod::EmbeddingNorm:
                    s = embedding_norm_scores(trace);
                    break;
                case TokenMethod::Occlusion:
                    s = occlusion_scores(model, ids, r.target, r.p_clean);
                    break;
                case TokenMethod::IntegratedGradients: {
                    const IntegratedGradientsResult ig =
                        integrated_gradients(model, ids, r.target, opt.ig_steps);
                    s = ig.scores;
                    r.ig_f_x = ig.f_x;
                    r.ig_f_0 = ig.f_0;
                    r.ig_gap = ig.gap();
                    break;
                }
                case TokenMethod::InputXGradient:
                    s = input_x_gradient_scores(model, trace, r.target);
                    break;
                case TokenMethod::GradientNorm:
                    s = gradient_norm_scores(model, trace, r.target);
                    break;
                case TokenMethod::Random:
                    break;
            }
            curves(rank_candidates(s), del, keep);
        }
        r.deletion.push_back(del);
        r.keeping.push_back(keep);
        r.deletion_area.push_back(curve_area(xs, del));
        r.keeping_area.push_back(curve_area(xs, keep));
    }
    return r;
}

template <class T>
TokenEvalSummary token_eval(const Model<T>& model, const std::vector<std::vector<int>>& prompts,
                            const TokenEvalOptions& opt, const Progress& progress, const Group& group) {
    const auto t0 = std::chrono::steady_clock::now();
    TokenEvalSummary s;
    s.options = opt;
    const int P = int(prompts.size());
    std::vector<PromptTokenResult> res(P);
    std::vector<char> ok(P, 0);
    for (int i = 0; i < P; ++i) ok[i] = prompts[i].size() >= 3;
    const auto [begin, end] = detail::prompt_block(P, group);
    detail::for_each_prompt("token_eval", begin, end, progress, [&](int i) {
        if (ok[i]) res[i] = token_faithfulness(model, prompts[i], opt, uint64_t(i));
    });

    const size_t M = opt.methods.size(), Q = opt.percents.size();
    if (group.size() > 1) {
        // Every rank's results on every rank: per evaluated prompt N, target, P_clean, the
        // deletion and keeping curves [M][Q], their areas [M] and the three IG figures.
        const size_t per = 3 + 2 * M * Q + 2 * M + 3;
        std::vector<double> mine;
        for (int i = begin; i < end; ++i) {
            if (!ok[i]) continue;
            const PromptTokenResult& r = res[i];
            mine.insert(mine.end(), {double(r.N), double(r.target), r.p_clean});
            for (const auto* curves : {&r.deletion, &r.keeping})
                for (size_t m = 0; m < M; ++m)
                    mine.insert(mine.end(), (*curves)[m].begin(), (*curves)[m].end());
            mine.insert(mine.end(), r.deletion_area.begin(), r.deletion_area.end());
            mine.insert(mine.end(), r.keeping_area.begin(), r.keeping_area.end());
            mine.insert(mine.end(), {r.ig_f_x, r.ig_f_0, r.ig_gap});
            if (mine.size() % per)
                throw Error("token_eval: prompt " + std::to_string(i) + ": unexpected result sizes");
        }
        const std::vector<double> all = detail::exchange_prompt_values(mine, group);
        size_t at = 0;
        for (int i = 0; i < P; ++i) {
            if (!ok[i]) continue;
            if (at + per > all.size()) throw Error("token_eval: a rank sent too few results");
            PromptTokenResult r;
            const double* v = all.data() + at;
            r.N = int(v[0]);
            r.target = int(v[1]);
            r.p_clean = v[2];
            v += 3;
            for (auto* curves : {&r.deletion, &r.keeping})
                for (size_t m = 0; m < M; ++m, v += Q) curves->emplace_back(v, v + Q);
            r.deletion_area.assign(v, v + M);
            r.keeping_area.assign(v + M, v + 2 * M);
            v += 2 * M;
            r.ig_f_x = v[0];
            r.ig_f_0 = v[1];
            r.ig_gap = v[2];
            res[i] = std::move(r);
            at += per;
        }
    }
    s.deletion.assign(M, std::vector<double>(Q, 0.0));
    s.keeping.assign(M, std::vector<double>(Q, 0.0));
    for (int i = 0; i < P; ++i) {
        if (!ok[i]) {
            ++s.skipped;
            continue;
        }
        ++s.prompts;
        s.prompt_index.push_back(i);
        s.per_prompt.push_back(std::move(res[i]));
    }
    if (s.prompts == 0) throw Error("token_eval: no prompt has at least 3 tokens");
    for (const PromptTokenResult& r : s.per_prompt)
        for (size_t m = 0; m < M; ++m)
            for (size_t q = 0; q < Q; ++q) {
                s.deletion[m][q] += r.deletion[m][q] / s.prompts;
                s.keeping[m][q] += r.keeping[m][q] / s.prompts;
            }
    std::vector<double> xs(opt.percents.begin(), opt.percents.end());
    for (size_t m = 0; m < M; ++m) {
        s.deletion_area.push_back(curve_area(xs, s.deletion[m]));
        s.keeping_area.push_back(curve_area(xs, s.keeping[m]));
        // standard error of the mean of the per-prompt areas (their mean is the area above)
        double vd = 0, vk = 0;
        for (const PromptTokenResult& r : s.per_prompt) {
            vd += std::pow(r.deletion_area[m] - s.deletion_area.back(), 2);
            vk += std::pow(r.keeping_area[m] - s.keeping_area.back(), 2);
        }
        const double n = s.prompts;
        s.deletion_area_se.push_back(n > 1 ? std::sqrt(vd / (n - 1) / n) : 0.0);
        s.keeping_area_se.push_back(n > 1 ? std::sqrt(vk / (n - 1) / n) : 0.0);
    }
    s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return s;
}

template <class T>
TokenCostResult token_cost(const Model<T>& model, const std::vector<int>& ids, int ig_steps,
                           double temperature) {
    using clock = std::chrono::steady_clock;
    auto since = [](clock::time_point t0) {
        return std::chrono::duration<double>(clock::now() - t0).count();
    };
    TokenCostResult r;
    r.N = int(ids.size());
    r.ig_steps = ig_steps;
    {
        const Trace<T> t = forward(model, ids);
        Eigen::Index best;
        t.logits.row(r.N - 1).maxCoeff(&best);
        r.target = int(best);
    }
    double sink = 0;  // keeps the results alive
    auto t0 = clock::now();
    {
        const Trace<T> t = forward(model, ids);
        sink += depass_token_scores(model, t, r.target, temperature)[0];
    }
    r.depass_seconds = since(t0);
    t0 = clock::now();
    {
        // integrated_gradients runs its own forwards: f(x) and f(0) from forward_from_embeddings
        const IntegratedGradientsResult ig = integrated_gradients(model, ids, r.target, ig_steps);
        sink += ig.scores[0];
        r.ig_gap = ig.gap();
    }
    r.ig_seconds = since(t0);
    t0 = clock::now();
    {
        const Trace<T> t = forward(model, ids);
        sink += input_x_gradient_scores(model, t, r.target)[0];
    }
    r.ixg_seconds = since(t0);
    if (std::isnan(sink)) throw Error("token_cost: NaN attribution");
    return r;
}

#define DEPASS_INSTANTIATE(T)                                                                              \
    template double softmax_probability(const Mat<T>&, int, int);                                          \
    template double target_probability(const Model<T>&, const std::vector<int>&, int);                     \
    template std::vector<double> depass_token_scores(const Model<T>&, const Trace<T>&, int, double);       \
    template std::vector<double> attention_last_scores(const Trace<T>&);                                   \
    template std::vector<double> attention_mean_scores(const Trace<T>&);                                   \
    template std::vector<double> rollout_scores(const Trace<T>&);                                          \
    template std::vector<double> embedding_norm_scores(const Trace<T>&);                                   \
    template std::vector<double> occlusion_scores(const Model<T>&, const std::vector<int>&, int, double);  \
    template IntegratedGradientsResult integrated_gradients(const Model<T>&, const std::vector<int>&, int, \
                                                            int);                                          \
    template std::vector<double> input_x_gradient_scores(const Model<T>&, const Trace<T>&, int);           \
    template std::vector<double> gradient_norm_scores(const Model<T>&, const Trace<T>&, int);              \
    template TokenCostResult token_cost(const Model<T>&, const std::vector<int>&, int, double);            \
    template PromptTokenResult token_faithfulness(const Model<T>&, const std::vector<int>&,                \
                                                  const TokenEvalOptions&, uint64_t);                      \
    template TokenEvalSummary token_eval(const Model<T>&, const std::vector<std::vector<int>>&,            \
                                         const TokenEvalOptions&, const Progress&, const Group&);
DEPASS_INSTANTIATE(float)
DEPASS_INSTANTIATE(double)
#undef DEPASS_INSTANTIATE

}  // namespace depass::eval
