// unit_eval.cpp -- head- and neuron-level faithfulness: rank every head (L x H) or every
// MLP neuron (L x I) by DePass and by baselines, zero the top (or bottom) fraction in a
// working copy of the model and see whether the greedy next token survives.
//
// Zeroing a head = zeroing its Dh columns of W_O (its output never reaches the residual);
// zeroing a neuron = zeroing its column of W_down (a[:, i] W_down[:, i] is removed from
// the MLP output; the activation itself is unchanged).
#include <chrono>
#include <cmath>
#include <numeric>

#include "depass/adjoint.hpp"
#include "depass/attribute.hpp"
#include "depass/backward.hpp"
#include "depass/enum_names.hpp"
#include "depass/eval.hpp"
#include "parallel.hpp"

namespace depass::eval {

const char* unit_name(UnitKind k) { return k == UnitKind::Head ? "head" : "neuron"; }

int units_per_layer(const Config& cfg, UnitKind k) { return k == UnitKind::Head ? cfg.H : cfg.I; }

namespace {
const NamedValue<UnitMethod> kUnitMethods[] = {{UnitMethod::DePassSigned, "depass_signed"},
                                               {UnitMethod::DePassAbs, "depass_abs"},
                                               {UnitMethod::Random, "random"},
                                               {UnitMethod::Magnitude, "magnitude"},
                                               {UnitMethod::Atp, "atp"}};
}  // namespace

const char* method_name(UnitMethod m) { return name_in(kUnitMethods, m); }

std::vector<UnitMethod> all_unit_methods() { return values_in(kUnitMethods); }

int zeroed_count(double fraction, int total) {
    if (!(fraction > 0 && fraction <= 1))
        throw Error("zeroed_count: fraction " + std::to_string(fraction) + " is outside (0, 1]");
    return std::max(1, int(std::floor(fraction * total + 1e-9)));
}

template <class T>
std::vector<double> depass_unit_scores(const Model<T>& model, const Trace<T>& trace, UnitKind kind,
                                       int target, double temperature, MlpRule rule, bool adjoint) {
    const Config& cfg = model.cfg;
    const int N = trace.N(), U = units_per_layer(cfg, kind);
    std::vector<double> s(size_t(cfg.L) * U);
    if (adjoint) {
        if (rule != MlpRule::Taylor)
            throw Error(std::string("depass_unit_scores: the adjoint path needs the taylor rule, not '") +
                        rule_name(rule) + "' (only taylor is linear in the components)");
        // One reverse pass for the one target; each block's units are scored where their
        // components start: m[l] for heads, h[l+1] for neurons.
        std::vector<int> heads;
        std::vector<std::vector<int>> sets;
        for (int u = 0; u < U; ++u) {
            heads.push_back(u);
            sets.push_back({u});
        }
        const bool head = kind == UnitKind::Head;
        const CotangentObserver<T> at = [&](const CutPoint& p, const Cotangents<T>& lam) {
            if (p.after_attention != head || (!head && p.layer == 0)) return;
            const int l = head ? p.layer : p.layer - 1;
            const Tensor<T> sc = head ? adjoint_head_scores(model, trace, l, heads, lam)
                                      : adjoint_neuron_scores(model, trace, l, sets, lam);
            for (int u = 0; u < U; ++u) s[size_t(l) * U + u] = double(sc.data[size_t(u)]);
        };
        adjoint_pass(model, trace, {LogitTarget{N - 1, target}},
                     head ? CutPoint{0, true} : CutPoint{1, false}, at);
        return s;
    }
    for (int l = 0; l < cfg.L; ++l) {
        AttributionRequest rq;  // every head / neuron of block l
        rq.start.level = kind == UnitKind::Head ? Level::Head : Level::Neuron;
        rq.start.layer = l;
        rq.rule = rule;
        rq.temperature = temperature;
        rq.targets = {{target}};
        const Tensor<T> attr = attribute(model, trace, rq).logit_attribution;
        for (int u = 0; u < U; ++u) s[size_t(l) * U + u] = double(attr.data[size_t(u) * N + (N - 1)]);
    }
    return s;
}

template <class T>
std::vector<double> magnitude_unit_scores(const Model<T>& model, const Trace<T>& trace, UnitKind kind) {
    const Config& cfg = model.cfg;
    const int N = trace.N(), U = units_per_layer(cfg, kind);
    std::vector<double> s(size_t(cfg.L) * U);
    LayerWeights<T> scratch;
    for (int l = 0; l < cfg.L; ++l) {
        const LayerTrace<T>& lt = trace.layers[l];
        const LayerWeights<T>& lw = model.layer(l, scratch);
        for (int u = 0; u < U; ++u) {
            if (kind == UnitKind::Neuron) {
                s[size_t(l) * U + u] = std::abs(double(lt.mlp_act(N - 1, u)));
            } else {
                // head output at the last position: W_O[:, head cols] ctx_h[N-1]
                const auto ctx = lt.attn_ctx.row(N - 1).segment(long(u) * cfg.Dh, cfg.Dh);
                const Vec<T> out = lw.wo.middleCols(long(u) * cfg.Dh, cfg.Dh) * ctx.transpose();
                s[size_t(l) * U + u] = double(out.norm());
            }
        }
    }
    return s;
}

// Zeroing head h of layer l replaces its context c_h (columns h*Dh .. h*Dh+Dh-1 of attn_ctx)
// by 0 at every position, so to first order  f(zeroed) - f = sum_n (0 - c_h[n]) . g_h[n];
// the same for a neuron's activation column. Score = |that estimate|.
template <class T>
std::vector<double> atp_unit_scores(const Model<T>& model, const Trace<T>& trace, UnitKind kind, int target) {
    const Config& cfg = model.cfg;
    const int N = trace.N(), U = units_per_layer(cfg, kind);
    const Gradients<T> g = backward(model, trace, N - 1, target);
    std::vector<double> s(size_t(cfg.L) * U);
    for (int l = 0; l < cfg.L; ++l) {
        const LayerTrace<T>& lt = trace.layers[l];
        for (int u = 0; u < U; ++u) {
            double est = 0;
            if (kind == UnitKind::Head) {
                for (int n = 0; n < N; ++n)
                    for (int d = 0; d < cfg.Dh; ++d) {
                        const long col = long(u) * cfg.Dh + d;
                        est -= double(lt.attn_ctx(n, col)) * double(g.attn_ctx[l](n, col));
                    }
            } else {
                for (int n = 0; n < N; ++n) est -= double(lt.mlp_act(n, u)) * double(g.mlp_act[l](n, u));
            }
            s[size_t(l) * U + u] = std::abs(est);
        }
    }
    return s;
}

// Ablation edits the weights in memory: the blocks must be resident (WeightMode::Resident).
template <class T>
void require_resident(const Model<T>& model, const char* what) {
    if (model.streamed)
        throw Error(std::string(what) +
                    ": ablation edits the weights in memory and needs them resident; load the " +
                    "model with resident weights (--weights resident)");
}

template <class T>
void zero_head(Model<T>& model, int layer, int head) {
    const Config& c = model.cfg;
    if (layer < 0 || layer >= c.L || head < 0 || head >= c.H)
        throw Error("zero_head: layer " + std::to_string(layer) + " head " + std::to_string(head) +
                    " is outside the model (" + std::to_string(c.L) + " layers, " + std::to_string(c.H) +
                    " heads)");
    require_resident(model, "zero_head");
    model.w.layers[layer].wo.middleCols(long(head) * c.Dh, c.Dh).setZero();
}

template <class T>
void zero_neuron(Model<T>& model, int layer, int neuron) {
    const Config& c = model.cfg;
    if (layer < 0 || layer >= c.L || neuron < 0 || neuron >= c.I)
        throw Error("zero_neuron: layer " + std::to_string(layer) + " neuron " + std::to_string(neuron) +
                    " is outside the model (" + std::to_string(c.L) + " layers, " + std::to_string(c.I) +
                    " neurons)");
    require_resident(model, "zero_neuron");
    model.w.layers[layer].w_down.col(neuron).setZero();
}

template <class T>
void restore_unit(Model<T>& model, const Model<T>& original, UnitKind kind, int layer, int unit) {
    const int Dh = model.cfg.Dh;
    if (kind == UnitKind::Head)
        model.w.layers[layer].wo.middleCols(long(unit) * Dh, Dh) =
            original.w.layers[layer].wo.middleCols(long(unit) * Dh, Dh);
    else
        model.w.layers[layer].w_down.col(unit) = original.w.layers[layer].w_down.col(unit);
}

namespace {

struct Outcome {
    double survived = 0, drop = 0, rel_drop = 0;
};

// Zeroes `units` (flat indices l * U + u), runs the prompt, restores the weights.
template <class T>
Outcome masked_outcome(Model<T>& work, const Model<T>& model, UnitKind kind, const std::vector<int>& ids,
                       const std::vector<int>& units, int target, double p_clean) {
    const int U = units_per_layer(model.cfg, kind);
    for (int f : units)
        kind == UnitKind::Head ? zero_head(work, f / U, f % U) : zero_neuron(work, f / U, f % U);
    const Trace<T> t = forward(work, ids);
    for (int f : units) restore_unit(work, model, kind, f / U, f % U);
    const int N = t.N();
    Eigen::Index best;
    t.logits.row(N - 1).maxCoeff(&best);
    const double p = softmax_probability(t.logits, N - 1, target);
    return {int(best) == target ? 1.0 : 0.0, (p_clean - p) * 100.0, (p_clean - p) / p_clean * 100.0};
}

}  // namespace

template <class T>
UnitEvalSummary unit_eval(const Model<T>& model, const std::vector<std::vector<int>>& prompts, UnitKind kind,
                          const UnitEvalOptions& opt, const Progress& progress, const Group& group) {
    const auto t0 = std::chrono::steady_clock::now();
    const Config& cfg = model.cfg;
    const int U = units_per_layer(cfg, kind), total = cfg.L * U, P = int(prompts.size());
    if (P == 0) throw Error("unit_eval: no prompts");
    UnitEvalSummary s;
    s.kind = kind;
    s.options = opt;
    s.total_units = total;
    // The rows of the summary, in order.
    for (UnitMethod m : opt.methods)
        for (bool top : {true, false})
            for (double f : opt.fractions) s.rows.push_back({m, top, f, zeroed_count(f, total), 0, 0, 0});
    const size_t R = s.rows.size();

    std::vector<std::vector<Outcome>> per(P, std::vector<Outcome>(R));
    std::vector<double> p_clean(P, 0);
    const int threads = detail::max_threads();
    std::vector<Model<T>> work(threads, model);  // one working copy per thread, zeroed and restored in place
    const auto [begin, end] = detail::prompt_block(P, group);
    detail::for_each_prompt("unit_eval", begin, end, progress, [&](int i) {
        const std::vector<int>& ids = prompts[i];
        Model<T>& w = work[detail::thread_index()];
        const Trace<T> trace = forward(model, ids);
        const int N = trace.N();
        Eigen::Index best;
        trace.logits.row(N - 1).maxCoeff(&best);
        const int target = int(best);
        const double pc = softmax_probability(trace.logits, N - 1, target);
        p_clean[i] = pc;
        std::vector<double> dep, mag, atp;
        for (UnitMethod m : opt.methods) {
            if ((m == UnitMethod::DePassSigned || m == UnitMethod::DePassAbs) && dep.empty())
                dep = depass_unit_scores(model, trace, kind, target, opt.temperature, opt.rule, opt.adjoint);
            if (m == UnitMethod::Magnitude && mag.empty()) mag = magnitude_unit_scores(model, trace, kind);
            if (m == UnitMethod::Atp && atp.empty()) atp = atp_unit_scores(model, trace, kind, target);
        }
        size_t row = 0;
        for (UnitMethod m : opt.methods) {
            // One ordering per draw (a single one for the deterministic methods).
            std::vector<std::vector<int>> orders;
            if (m == UnitMethod::Random) {
                for (int d = 0; d < std::max(1, opt.random_draws); ++d) {
                    std::vector<int> o(total);
                    std::iota(o.begin(), o.end(), 0);
                    Rng rng(mix_seed(opt.seed, uint64_t(i), uint64_t(d),
                                     uint64_t(kind == UnitKind::Head ? 1 : 2)));
                    rng.shuffle(o.begin(), o.end());
                    orders.push_back(std::move(o));
                }
            } else if (m == UnitMethod::DePassSigned) {
                orders.push_back(order_descending(dep));
            } else if (m == UnitMethod::DePassAbs) {
                std::vector<double> a(dep.size());
                for (size_t k = 0; k < a.size(); ++k) a[k] = std::abs(dep[k]);
                orders.push_back(order_descending(a));
            } else if (m == UnitMethod::Atp) {
                orders.push_back(order_descending(atp));
            } else {
                orders.push_back(order_descending(mag));
            }
            for (bool top : {true, false})
                for (double f : opt.fractions) {
                    const int k = zeroed_count(f, total);
                    Outcome acc;
                    for (const std::vector<int>& o : orders) {
                        std::vector<int> units = top ? std::vector<int>(o.begin(), o.begin() + k)
                                                     : std::vector<int>(o.end() - k, o.end());
                        const Outcome oc = masked_outcome(w, model, kind, ids, units, target, pc);
                        acc.survived += oc.survived / double(orders.size());
                        acc.drop += oc.drop / double(orders.size());
                        acc.rel_drop += oc.rel_drop / double(orders.size());
                    }
                    per[i][row++] = acc;
                }
        }
    });

    if (group.size() > 1) {
        // Every rank's results on every rank: per prompt P_clean, then each row's outcome.
        const size_t stride = 1 + 3 * R;
        std::vector<double> mine;
        for (int i = begin; i < end; ++i) {
            mine.push_back(p_clean[i]);
            for (const Outcome& o : per[i]) mine.insert(mine.end(), {o.survived, o.drop, o.rel_drop});
        }
        const std::vector<double> all = detail::exchange_prompt_values(mine, group);
        if (all.size() != size_t(P) * stride)
            throw Error("unit_eval: the ranks sent " + std::to_string(all.size()) + " values for " +
                        std::to_string(P) + " prompts");
        for (int i = 0; i < P; ++i) {
            const double* v = all.data() + size_t(i) * stride;
            p_clean[i] = v[0];
            for (size_t r = 0; r < R; ++r) per[i][r] = Outcome{v[1 + 3 * r], v[2 + 3 * r], v[3 + 3 * r]};
        }
    }

    s.prompts = P;
    for (int i = 0; i < P; ++i) {
        s.mean_p_clean += p_clean[i] / P;
        for (size_t r = 0; r < R; ++r) {
            s.rows[r].survival += per[i][r].survived * 100.0 / P;
            s.rows[r].mean_drop += per[i][r].drop / P;
            s.rows[r].mean_rel_drop += per[i][r].rel_drop / P;
        }
    }
    s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return s;
}

#define DEPASS_INSTANTIATE(T)                                                                                \
    template std::vector<double> depass_unit_scores(const Model<T>&, const Trace<T>&, UnitKind, int, double, \
                                                    MlpRule, bool);                                          \
    template std::vector<double> magnitude_unit_scores(const Model<T>&, const Trace<T>&, UnitKind);          \
    template std::vector<double> atp_unit_scores(const Model<T>&, const Trace<T>&, UnitKind, int);           \
    template void zero_head(Model<T>&, int, int);                                                            \
    template void zero_neuron(Model<T>&, int, int);                                                          \
    template void restore_unit(Model<T>&, const Model<T>&, UnitKind, int, int);                              \
    template UnitEvalSummary unit_eval(const Model<T>&, const std::vector<std::vector<int>>&, UnitKind,      \
                                       const UnitEvalOptions&, const Progress&, const Group&);
DEPASS_INSTANTIATE(float)
DEPASS_INSTANTIATE(double)
#undef DEPASS_INSTANTIATE

}  // namespace depass::eval
