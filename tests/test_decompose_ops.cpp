// The decomposed twins of every op and the invariants of the decomposed pass:
//   * each twin keeps its identity (sum over components of the twin = plain op on the sum),
//     and with a single component it is the plain op;
//   * a second way of computing the attention and MLP twins (naive loops written here
//     from depass-math.md sections 3 and 5);
//   * the MLP rule weights on hand-derived cases;
//   * the packed (causal-skip) storage equals dense storage; MLP chunking is invisible;
//   * completeness at every residual point for every level and rule, logit attribution;
//   * the initialisers' error messages.
// Every case uses random models or random tensors with fixed seeds.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "depass/config.hpp"
#include "depass/decompose.hpp"
#include "depass/forward.hpp"
#include "depass/initialisers.hpp"
#include "depass/ops.hpp"
#include "depass/tolerance.hpp"
#include "depass/weights.hpp"
#include "test_support.hpp"

using namespace depass;

namespace {

// ---- small helpers ------------------------------------------------------------------------

template <class T>
const char* type_name() {
    return std::is_same<T, double>::value ? "double" : "float";
}

using depass_test::randn;

template <class T>
Vec<T> randv(long n, std::mt19937_64& rng, double mean = 0.0, double s = 1.0) {
    Vec<T> v(n);
    std::normal_distribution<double> nd(mean, s);
    for (long i = 0; i < n; ++i) v[i] = T(nd(rng));
    return v;
}

// max |a - b| / max |b|  (b is the reference; errors are relative to the tensor's magnitude).
template <class A, class B>
double rel_err(const Eigen::MatrixBase<A>& a, const Eigen::MatrixBase<B>& b) {
    REQUIRE(a.rows() == b.rows());
    REQUIRE(a.cols() == b.cols());
    if (a.size() == 0) return 0.0;
    const Mat<double> da = a.template cast<double>(), db = b.template cast<double>();
    const double num = (da - db).cwiseAbs().maxCoeff();
    const double den = db.cwiseAbs().maxCoeff();
    return den > 0 ? num / den : num;
}

template <class A, class B>
bool bitwise_equal(const Eigen::MatrixBase<A>& a, const Eigen::MatrixBase<B>& b) {
    return a.rows() == b.rows() && a.cols() == b.cols() && (a.array() == b.array()).all();
}

// The worst error of a family of checks, with where it happened, for the report lines.
struct Worst {
    double rel = 0;
    std::string where;
    void add(double r, const std::string& w) {
        if (!(r <= rel)) {  // NaN becomes the worst
            rel = r;
            where = w;
        }
    }
};

void report(const char* what, const char* type, const Worst& w) {
    std::printf("  %-58s %-6s worst rel %.3e  at %s\n", what, type, w.rel, w.where.c_str());
}

// Components with random values: component m starts at first[m] (first.back() == 0, the rest).
template <class T>
Components<T> random_components(int N, int D, const std::vector<int>& first, std::mt19937_64& rng,
                                double scale = 1.0) {
    std::vector<std::string> names;
    for (size_t m = 0; m + 1 < first.size(); ++m) names.push_back("c" + std::to_string(m));
    names.push_back("rest");
    Components<T> c = Components<T>::zeros(N, D, first, names);
    c.X = randn<T>(c.rows(), D, rng, scale);
    return c;
}

// First positions for M components over N tokens: component 0 starts at 0, component 1 is
// empty (first = N) when M >= 3, the others start anywhere in [0, N-1]; the rest starts at 0.
std::vector<int> mixed_first(int N, int M, std::mt19937_64& rng) {
    std::vector<int> first(M, 0);
    std::uniform_int_distribution<int> pos(0, N - 1);
    for (int m = 1; m + 1 < M; ++m) first[m] = (m == 1 && M >= 3) ? N : pos(rng);
    return first;
}

// Components whose sum is `state`: random values in the first M-1 components (mixed first
// positions), the rest holds the difference.
template <class T>
Components<T> random_split(const Mat<T>& state, int M, std::mt19937_64& rng) {
    const int N = int(state.rows()), D = int(state.cols());
    // Each of the M-1 random components is ~max|state| / sqrt(M-1), so that their sum is of the
    // state's magnitude (float rounding grows with the cancellation between components).
    const double scale = double(state.cwiseAbs().maxCoeff()) / std::sqrt(double(std::max(1, M - 1)));
    Components<T> c = random_components<T>(N, D, mixed_first(N, M, rng), rng, scale);
    Mat<T> others = Mat<T>::Zero(N, D);
    for (int m = 0; m < c.rest(); ++m) others.bottomRows(N - c.first[m]) += c.block(m);
    c.block(c.rest()) = state - others;
    return c;
}

// ---- the three architectures -------------------------------------------------------------------

using TArch = depass_test::TinyArch;
const TArch kArchs[] = {TArch::Llama, TArch::Qwen2, TArch::Gpt2};
const char* arch_name(TArch a) { return depass_test::tiny_arch_name(a); }
Config make_config(TArch a) { return depass_test::tiny_config(a); }

uint64_t arch_seed(TArch a) {
    switch (a) {
        case TArch::Qwen2:
            return 1017;
        case TArch::Gpt2:
            return 1034;
        default:
            return 1000;
    }
}

std::vector<int> random_ids(int N, int V, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int> id(0, V - 1);
    std::vector<int> ids(N);
    for (int& x : ids) x = id(rng);
    ids[0] = 1;  // a BOS-like first token
    return ids;
}

const MlpRule kRules[] = {MlpRule::Softmax, MlpRule::Max, MlpRule::Relu, MlpRule::Linear, MlpRule::Taylor};

// ---- naive references (second way of computing) -----------------------------------------------

// ctx_m[q] (head h) = sum_{k = first[m]..q} A_h[q, k] V_m[k] (KV head of h), one loop per term.
template <class T>
Mat<double> naive_attention_decomposed(const Components<T>& c, const Mat<T>& v_rows,
                                       const std::vector<Mat<T>>& probs, int H, int Hkv, int Dh) {
    Mat<double> out = Mat<double>::Zero(c.rows(), long(H) * Dh);
    const int group = H / Hkv;
    for (int m = 0; m < c.M; ++m)
        for (int h = 0; h < H; ++h) {
            const int g = h / group;
            for (int q = c.first[m]; q < c.N; ++q)
                for (int d = 0; d < Dh; ++d) {
                    double s = 0;
                    for (int k = c.first[m]; k <= q; ++k)
                        s += double(probs[h](q, k)) * double(v_rows(c.row(m, k), long(g) * Dh + d));
                    out(c.row(m, q), long(h) * Dh + d) = s;
                }
        }
    return out;
}

// act(p)/p, written from the definitions: SiLU -> sigmoid(p); GELU (tanh) -> 0.5 (1 + tanh(..)).
double naive_act_over_x(Activation act, double p) {
    if (act == Activation::SiLU) return 1.0 / (1.0 + std::exp(-p));
    return 0.5 * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (p + 0.044715 * p * p * p)));
}

// The MLP twin with a model layer's weights and record (as mlp_block_decomposed passes them).
template <class T>
Components<T> mlp_twin(const Config& cfg, const LayerWeights<T>& lw, const LayerTrace<T>& lt,
                       const Components<T>& z, const DecomposeOptions& opt) {
    const bool gated = cfg.mlp == MlpKind::SwiGLU;
    return mlp_decomposed(z, gated ? lw.w_gate : lw.w_up, gated ? Vec<T>() : lw.b_up, lw.w_down, lw.b_down,
                          cfg.act, lt.mlp_pre, lt.mlp_up, lt.mlp_act, opt);
}

struct NaiveMlpStats {
    long equal_splits = 0;  // (position, neuron) pairs split equally (relu / linear with zero normaliser)
    long excluded = 0;      // component shares excluded because G == 0 exactly
};

// The decomposed MLP per (component, position, neuron), following depass-math.md:
//   G_m[n, i] = Norm2_m(X_m)[n] . W_share[i]   (+ b_1[i] for the rest of a GELU MLP)
//   preparation (section 5): 1. ignore-special zeroes component 0; 2. position 0 goes to
//   pos0_component (G = 1); 3. the rest's |G| < 1e-5 becomes 0, and 1 if every G is 0;
//   4. components with G == 0 do not participate;
//   weights: softmax(G / T) | all to the largest | max(G, 0) normalised | G - min G normalised,
//   equal split among the participants where the normaliser is zero;
//   taylor: share_m = G_m * act(p)/p * up.
//   Y_m[n] = sum_i share_m[n, i] W_d[:, i]   (+ b_d for the rest).
template <class T>
Mat<double> naive_mlp_decomposed(const Config& cfg, const LayerWeights<T>& lw, const LayerTrace<T>& lt,
                                 const Components<T>& c, const Mat<T>& normed, const DecomposeOptions& opt,
                                 NaiveMlpStats* stats) {
    const bool gated = cfg.mlp == MlpKind::SwiGLU;
    const Mat<T>& W = gated ? lw.w_gate : lw.w_up;
    Mat<double> Y = Mat<double>::Zero(c.rows(), c.D);
    const int rest = c.M - 1;
    for (int n = 0; n < c.N; ++n) {
        std::vector<int> present;
        for (int m = 0; m < c.M; ++m)
            if (c.first[m] <= n) present.push_back(m);
        const int K = int(present.size());
        for (int i = 0; i < cfg.I; ++i) {
            std::vector<double> G(K, 0.0), share(K, 0.0);
            for (int k = 0; k < K; ++k) {
                const int m = present[k];
                double s = 0;
                for (int d = 0; d < c.D; ++d) s += double(normed(c.row(m, n), d)) * double(W(i, d));
                if (!gated && m == rest && lw.b_up.size()) s += double(lw.b_up[i]);
                G[k] = s;
            }
            const double a = double(lt.mlp_act(n, i));
            if (opt.rule == MlpRule::Taylor) {
                const double f = naive_act_over_x(cfg.act, double(lt.mlp_pre(n, i))) *
                                 (gated ? double(lt.mlp_up(n, i)) : 1.0);
                for (int k = 0; k < K; ++k) share[k] = G[k] * f;
            } else {
                // Step 1: ignore the special (first) token's component.
                if (opt.ignore_special_token)
                    for (int k = 0; k < K; ++k)
                        if (present[k] == 0) G[k] = 0;
                // Step 2: position 0 goes to one component.
                if (n == 0)
                    for (int k = 0; k < K; ++k)
                        if (present[k] == opt.pos0_component) G[k] = 1;
                // Step 3: the rest's negligible share is dropped; if nothing is left it takes all.
                if (std::abs(G[K - 1]) < 1e-5) G[K - 1] = 0;
                bool all_zero = true;
                for (double g : G) all_zero = all_zero && g == 0;
                if (all_zero) G[K - 1] = 1;
                // Step 4: only non-zero shares participate.
                std::vector<int> part;
                for (int k = 0; k < K; ++k) {
                    if (G[k] != 0)
                        part.push_back(k);
                    else if (stats)
                        ++stats->excluded;
                }
                std::vector<double> w(part.size(), 0.0);
                const size_t P = part.size();
                if (opt.rule == MlpRule::Softmax) {
                    double mx = -1e300, z = 0;
                    for (int k : part) mx = std::max(mx, G[k]);
                    for (size_t j = 0; j < P; ++j)
                        z += (w[j] = std::exp((G[part[j]] - mx) / opt.temperature));
                    for (double& x : w) x /= z;
                } else if (opt.rule == MlpRule::Max) {
                    size_t best = 0;
                    for (size_t j = 1; j < P; ++j)
                        if (G[part[j]] > G[part[best]]) best = j;
                    w[best] = 1;
                } else {
                    double mn = 1e300, z = 0;
                    for (int k : part) mn = std::min(mn, G[k]);
                    for (size_t j = 0; j < P; ++j) {
                        const double g = G[part[j]];
                        w[j] = opt.rule == MlpRule::Relu ? std::max(g, 0.0) : g - mn;
                        z += w[j];
                    }
                    if (z > 0) {
                        for (double& x : w) x /= z;
                    } else {
                        for (double& x : w) x = 1.0 / double(P);
                        if (stats) ++stats->equal_splits;
                    }
                }
                for (size_t j = 0; j < P; ++j) share[part[j]] = w[j] * a;
            }
            for (int k = 0; k < K; ++k) {
                const int64_t r = c.row(present[k], n);
                for (int d = 0; d < c.D; ++d) Y(r, d) += share[k] * double(lw.w_down(d, i));
            }
        }
    }
    if (lw.b_down.size())
        for (int n = 0; n < c.N; ++n)
            for (int d = 0; d < c.D; ++d) Y(c.row(rest, n), d) += double(lw.b_down[d]);
    return Y;
}

// Final norm + unembedding for one component row (the rest adds LayerNorm's beta).
template <class T>
double naive_logit(const Model<T>& model, const Trace<T>& trace, const Components<T>& c, int m, int n,
                   int v) {
    const Config& cfg = model.cfg;
    const Mat<T>& WU = model.w.unembedding();
    const int64_t r = c.row(m, n);
    double mean = 0;
    if (cfg.norm == NormKind::LayerNorm) {
        for (int d = 0; d < c.D; ++d) mean += double(c.X(r, d));
        mean /= c.D;
    }
    double s = 0;
    for (int d = 0; d < c.D; ++d) {
        double y = double(model.w.normf_g[d]) * (double(c.X(r, d)) - mean) * double(trace.normf.inv[n]);
        if (cfg.norm == NormKind::LayerNorm && m == c.rest()) y += double(model.w.normf_b[d]);
        s += y * double(WU(v, d));
    }
    return s;
}

// ---- the levels of section 4 as requests -------------------------------------------------------

struct NamedRequest {
    std::string label;
    LevelRequest req;
};

template <class T>
std::vector<NamedRequest> all_requests(const Config& cfg, const Trace<T>& trace, std::mt19937_64& rng) {
    std::vector<NamedRequest> out;
    auto add = [&](std::string label, LevelRequest r) { out.push_back({std::move(label), std::move(r)}); };
    for (int l = 0; l <= cfg.L; ++l) {
        LevelRequest r;
        r.level = Level::Token;
        r.layer = l;
        add("token h[" + std::to_string(l) + "]", r);
    }
    for (int l = 0; l < cfg.L; ++l) {
        const std::string L = std::to_string(l);
        LevelRequest r;
        r.layer = l;
        r.level = Level::Module;
        r.module_mlp = false;
        add("module attn L" + L, r);
        r.module_mlp = true;
        add("module mlp L" + L, r);
        r = LevelRequest();
        r.layer = l;
        r.level = Level::Head;
        add("head all L" + L, r);
        r.heads = {0, cfg.H - 1};
        add("head {0,H-1} L" + L, r);
        r = LevelRequest();
        r.layer = l;
        r.level = Level::Neuron;
        add("neuron all L" + L, r);
        r.neurons = {0, cfg.I / 2, cfg.I - 1};
        add("neuron list L" + L, r);
        r.neurons.clear();
        r.neuron_groups = 5;
        add("neuron groups(5) L" + L, r);
    }
    const Mat<double> P1 = projector_from(randn<double>(cfg.D, 3, rng), cfg.D, "random basis (3)");
    const Mat<double> P2 = projector_from(randn<double>(cfg.D, 1, rng), cfg.D, "random basis (1)");
    for (int l = 0; l <= cfg.L; ++l) {
        LevelRequest r;
        r.level = Level::Subspace;
        r.layer = l;
        r.projectors = {P1, P2};
        add("subspace h[" + std::to_string(l) + "]", r);
    }
    {
        // Custom: three components summing to h[1] (two random, one the difference).
        const int N = trace.N(), D = cfg.D, K = 3;
        const Mat<double> x = trace.h[1].template cast<double>();
        LevelRequest r;
        r.level = Level::Custom;
        r.layer = 1;
        r.custom = Tensor<double>({K, N, D});
        Mat<double> left = x;
        for (int k = 0; k < K; ++k) {
            Mat<double> ck = k + 1 < K ? randn<double>(N, D, rng, x.cwiseAbs().maxCoeff()) : left;
            left -= ck;
            std::copy(ck.data(), ck.data() + ck.size(), r.custom.data.begin() + size_t(k) * N * D);
        }
        add("custom h[1]", r);
    }
    return out;
}

}  // namespace

// =====================================================================================
// 1. Each twin keeps its identity on random components.
// =====================================================================================

TEMPLATE_TEST_CASE(
    "decomposed twins: sum over components equals the plain op on the sum; M = 1 is the plain op",
    "[decompose][twins]", float, double) {
    using T = TestType;
    const double tol = tolerance::completeness_rel<T>();
    std::mt19937_64 rng(42);
    Worst w_rms, w_ln, w_lin, w_att, w_rms1, w_ln1, w_lin1, w_att1;
    bool bit_rms1 = true, bit_ln1 = true, bit_lin1 = true, bit_att1 = true;
    const int D = 24;
    for (int N : {1, 2, 7, 40}) {
        for (int M : {1, 2, 5, 41}) {
            const std::string where = "N=" + std::to_string(N) + " M=" + std::to_string(M);
            INFO(where);
            Components<T> c = random_components<T>(N, D, mixed_first(N, M, rng), rng);
            const Mat<T> S = c.sum();
            // The same sum as the single component of an M = 1 decomposition.
            Components<T> one = Components<T>::zeros(N, D, {0}, {"rest"});
            one.X = S;

            // RMSNorm with the factors recorded from the true sum.
            const Vec<T> g = randv<T>(D, rng, 1.0, 0.2), b = randv<T>(D, rng, 0.0, 0.3);
            NormFactors<T> f;
            const Mat<T> y_rms = rms_norm(S, g, 1e-5, &f);
            const double e_rms = rel_err(rms_norm_decomposed(c, g, f.inv).sum(), y_rms);
            w_rms.add(e_rms, where);
            CHECK(e_rms <= tol);
            const Mat<T> y1_rms = rms_norm_decomposed(one, g, f.inv).X;
            w_rms1.add(rel_err(y1_rms, y_rms), where);
            bit_rms1 = bit_rms1 && bitwise_equal(y1_rms, y_rms);
            CHECK(rel_err(y1_rms, y_rms) <= tol);

            // LayerNorm: beta to the rest.
            NormFactors<T> fl;
            const Mat<T> y_ln = layer_norm(S, g, b, 1e-5, &fl);
            const double e_ln = rel_err(layer_norm_decomposed(c, g, b, fl.inv).sum(), y_ln);
            w_ln.add(e_ln, where);
            CHECK(e_ln <= tol);
            const Mat<T> y1_ln = layer_norm_decomposed(one, g, b, fl.inv).X;
            w_ln1.add(rel_err(y1_ln, y_ln), where);
            bit_ln1 = bit_ln1 && bitwise_equal(y1_ln, y_ln);
            CHECK(rel_err(y1_ln, y_ln) <= tol);

            // Linear, with and without a bias (the bias goes to the rest).
            const Mat<T> W = randn<T>(20, D, rng, 0.3);
            for (bool with_bias : {true, false}) {
                const Vec<T> bias = with_bias ? randv<T>(20, rng) : Vec<T>();
                const Mat<T> y_lin = linear(S, W, bias);
                const double e_lin = rel_err(linear_decomposed(c, W, bias).sum(), y_lin);
                w_lin.add(e_lin, where);
                CHECK(e_lin <= tol);
                const Mat<T> y1_lin = linear_decomposed(one, W, bias).X;
                w_lin1.add(rel_err(y1_lin, y_lin), where);
                bit_lin1 = bit_lin1 && bitwise_equal(y1_lin, y_lin);
                CHECK(rel_err(y1_lin, y_lin) <= tol);
            }

            // Attention: value components summing to the true values, probabilities from attention().
            const int H = 4, Dh = 5;
            for (int Hkv : {4, 2, 1}) {
                INFO("Hkv=" << Hkv);
                const Mat<T> q = randn<T>(N, H * Dh, rng), k = randn<T>(N, Hkv * Dh, rng);
                const Components<T> vc = c.like(randn<T>(c.rows(), Hkv * Dh, rng));
                const Mat<T> v = vc.sum();
                std::vector<Mat<T>> probs;
                const Mat<T> ctx = attention(q, k, v, H, Hkv, Dh, &probs);
                const double e_att = rel_err(attention_decomposed(vc, probs, H, Hkv, Dh).sum(), ctx);
                w_att.add(e_att, where + " Hkv=" + std::to_string(Hkv));
                CHECK(e_att <= tol);
                const Mat<T> y1_att = attention_decomposed(one.like(v), probs, H, Hkv, Dh).X;
                w_att1.add(rel_err(y1_att, ctx), where + " Hkv=" + std::to_string(Hkv));
                bit_att1 = bit_att1 && bitwise_equal(y1_att, ctx);
                CHECK(rel_err(y1_att, ctx) <= tol);
            }
        }
    }
    const char* tn = type_name<T>();
    report("rms_norm_decomposed: sum == rms_norm(sum)", tn, w_rms);
    report("layer_norm_decomposed: sum == layer_norm(sum)", tn, w_ln);
    report("linear_decomposed: sum == linear(sum)", tn, w_lin);
    report("attention_decomposed: sum == attention(q, k, sum V)", tn, w_att);
    std::printf(
        "  M = 1 equals the plain op: rms %s (%.1e), layer_norm %s (%.1e), linear %s (%.1e), attention %s "
        "(%.1e)\n",
        bit_rms1 ? "bitwise" : "to rounding", w_rms1.rel, bit_ln1 ? "bitwise" : "to rounding", w_ln1.rel,
        bit_lin1 ? "bitwise" : "to rounding", w_lin1.rel, bit_att1 ? "bitwise" : "to rounding", w_att1.rel);
}

TEMPLATE_TEST_CASE("mlp_decomposed: sum over components equals the recorded MLP output, every rule",
                   "[decompose][twins][mlp]", float, double) {
    using T = TestType;
    const double tol = tolerance::completeness_rel<T>();
    Worst w_all, w_one;
    bool bit_one = true;
    for (TArch arch : kArchs) {
        const Model<T> model = random_model<T>(make_config(arch), arch_seed(arch));
        const Config& cfg = model.cfg;
        std::mt19937_64 rng(7 + int(arch));
        for (int N : {1, 2, 7, 40}) {
            const Trace<T> trace = forward(model, random_ids(N, cfg.V, 100 + N));
            for (int l = 0; l < cfg.L; ++l) {
                const LayerWeights<T>& lw = model.w.layers[l];
                const LayerTrace<T>& lt = trace.layers[l];
                for (int M : {1, 2, 5, 41}) {
                    // Components at m[l] (random, mixed first positions) summing to the true state.
                    const Components<T> c = random_split(lt.m, M, rng);
                    const Components<T> normed =
                        apply_norm_decomposed(cfg.norm, c, lw.norm2_g, lw.norm2_b, lt.norm2);
                    for (MlpRule rule : kRules)
                        for (bool ign : {false, true}) {
                            DecomposeOptions opt;
                            opt.rule = rule;
                            opt.ignore_special_token = ign;
                            opt.pos0_component = M > 1 ? 0 : c.rest();
                            const std::string where = std::string(arch_name(arch)) +
                                                      " N=" + std::to_string(N) + " L" + std::to_string(l) +
                                                      " M=" + std::to_string(M) + " " + rule_name(rule) +
                                                      (ign ? " ignore-special" : "");
                            INFO(where);
                            const Mat<T> Y = mlp_twin(cfg, lw, lt, normed, opt).X;
                            const double e = rel_err(c.like(Y).sum(), lt.mlp_out);
                            (M == 1 ? w_one : w_all).add(e, where);
                            CHECK(e <= tol);
                            if (M == 1 && rule != MlpRule::Taylor)
                                bit_one = bit_one && bitwise_equal(Y, lt.mlp_out);
                        }
                }
            }
        }
    }
    report("mlp_decomposed: sum == recorded MLP output (M > 1)", type_name<T>(), w_all);
    report("mlp_decomposed: M = 1 == recorded MLP output", type_name<T>(), w_one);
    std::printf("  mlp_decomposed with M = 1 (softmax/max/relu/linear) is %s the plain MLP\n",
                bit_one ? "bitwise" : "to rounding");
}

// =====================================================================================
// 2. A second way of computing: naive per-component loops.
// =====================================================================================

TEMPLATE_TEST_CASE("attention_decomposed equals the naive per-component loop sum_k A[q,k] V_m[k]",
                   "[decompose][naive]", float, double) {
    using T = TestType;
    const double tol = std::is_same<T, double>::value ? 1e-13 : 1e-6;
    std::mt19937_64 rng(5);
    Worst worst;
    const int H = 4, Dh = 3;
    for (int N : {1, 2, 7, 40})
        for (int Hkv : {4, 2, 1}) {
            // Token-like layout (first[j] = j), mixed layouts, and 45 components sharing
            // first = 0 (more than one stack of 32 in the kernel).
            std::vector<std::vector<int>> layouts;
            std::vector<int> tok(N + 1);
            for (int j = 0; j < N; ++j) tok[j] = j;
            tok[N] = 0;
            layouts.push_back(tok);
            layouts.push_back(mixed_first(N, 6, rng));
            layouts.push_back(mixed_first(N, 41, rng));
            layouts.push_back(std::vector<int>(45, 0));
            for (const auto& first : layouts) {
                const std::string where = "N=" + std::to_string(N) + " Hkv=" + std::to_string(Hkv) +
                                          " M=" + std::to_string(first.size());
                INFO(where);
                const Components<T> c = random_components<T>(N, 4, first, rng);
                const Mat<T> v_rows = randn<T>(c.rows(), Hkv * Dh, rng);
                const Mat<T> q = randn<T>(N, H * Dh, rng), k = randn<T>(N, Hkv * Dh, rng);
                std::vector<Mat<T>> probs;
                attention(q, k, c.like(v_rows).sum(), H, Hkv, Dh, &probs);
                const Mat<T> fast = attention_decomposed(c.like(v_rows), probs, H, Hkv, Dh).X;
                const double e = rel_err(fast, naive_attention_decomposed(c, v_rows, probs, H, Hkv, Dh));
                worst.add(e, where);
                CHECK(e <= tol);
            }
        }
    report("attention_decomposed vs naive loop", type_name<T>(), worst);
}

TEMPLATE_TEST_CASE(
    "mlp_decomposed equals a naive per-(component, position, neuron) implementation of the rules",
    "[decompose][naive][mlp]", float, double) {
    using T = TestType;
    // float: G differs from the double recomputation by float rounding, amplified by 1/T = 10 in
    // the softmax weights; relative to max |Y| this stays within the float completeness bound.
    const double tol = tolerance::completeness_rel<T>();
    Worst worst[5];
    NaiveMlpStats stats[5];
    long cases = 0;
    for (TArch arch : kArchs) {
        const Model<T> model = random_model<T>(make_config(arch), arch_seed(arch));
        const Config& cfg = model.cfg;
        std::mt19937_64 rng(11 + int(arch));
        for (int N : {1, 2, 7, 40}) {
            const Trace<T> trace = forward(model, random_ids(N, cfg.V, 200 + N));
            for (int l = 0; l < cfg.L; ++l) {
                const LayerWeights<T>& lw = model.w.layers[l];
                const LayerTrace<T>& lt = trace.layers[l];
                // Layouts at m[l]: token level (propagated from h[l] through the attention block,
                // so the future tokens are exactly zero), head level, module level, random mixed.
                struct Layout {
                    std::string name;
                    Components<T> c;
                    int pos0;
                    std::vector<bool> ignore;
                };
                std::vector<Layout> layouts;
                {
                    Initialised<T> tok = init_tokens(model, trace, l);
                    Components<T> at_m;
                    DecomposeOptions o;
                    o.pos0_component = 0;
                    propagate<T>(model, trace, tok.comps, tok.cut, o,
                                 [&](const CutPoint& p, const Components<T>& cc) {
                                     if (p.layer == l && p.after_attention) at_m = cc;
                                 });
                    REQUIRE(at_m.M == N + 1);
                    layouts.push_back({"token", at_m, 0, {true, false}});
                }
                {
                    Initialised<T> hd = init_heads(model, trace, l, {});
                    layouts.push_back({"head", hd.comps, hd.pos0_component, {false}});
                    Initialised<T> md = init_module(model, trace, l, false);
                    layouts.push_back({"module", md.comps, md.pos0_component, {false}});
                }
                {
                    Components<T> c = random_split(lt.m, 6, rng);
                    layouts.push_back({"mixed pos0=0", c, 0, {false, true}});
                    // pos0 on a component that does not exist at position 0 (first > 0), when there is one.
                    int late = 0;
                    for (int m = 0; m < c.rest(); ++m)
                        if (c.first[m] > 0) late = m;
                    layouts.push_back({"mixed pos0=late", c, late, {false}});
                }
                for (const Layout& lay : layouts) {
                    const Components<T> normed =
                        apply_norm_decomposed(cfg.norm, lay.c, lw.norm2_g, lw.norm2_b, lt.norm2);
                    for (int r = 0; r < 5; ++r)
                        for (bool ign : lay.ignore) {
                            DecomposeOptions opt;
                            opt.rule = kRules[r];
                            opt.ignore_special_token = ign;
                            opt.pos0_component = lay.pos0;
                            const std::string where = std::string(arch_name(arch)) +
                                                      " N=" + std::to_string(N) + " L" + std::to_string(l) +
                                                      " " + lay.name + (ign ? " ignore-special" : "");
                            INFO(where << " rule " << rule_name(kRules[r]));
                            const Mat<T> fast = mlp_twin(cfg, lw, lt, normed, opt).X;
                            const Mat<double> ref =
                                naive_mlp_decomposed(cfg, lw, lt, lay.c, normed.X, opt, &stats[r]);
                            const double e = rel_err(fast, ref);
                            worst[r].add(e, where);
                            CHECK(e <= tol);
                            ++cases;
                        }
                }
            }
        }
    }
    for (int r = 0; r < 5; ++r) {
        const std::string what = std::string("mlp_decomposed vs naive rules: ") + rule_name(kRules[r]);
        report(what.c_str(), type_name<T>(), worst[r]);
    }
    std::printf("  %ld cases; equal splits used: relu %ld, linear %ld; zero shares excluded (softmax) %ld\n",
                cases, stats[2].equal_splits, stats[3].equal_splits, stats[0].excluded);
    // The equal-split and exclusion branches were exercised, not just present.
    CHECK(stats[2].equal_splits > 0);
    CHECK(stats[0].excluded > 0);
}

// =====================================================================================
// 3. The rules, one neuron (I = 1) at a time.
// =====================================================================================

TEMPLATE_TEST_CASE("softmax/max/relu/linear_rule: weights sum to 1; hand-derived cases; zero shares excluded",
                   "[decompose][rules]", float, double) {
    using T = TestType;
    const double tol = std::is_same<T, double>::value ? 1e-15 : 1e-6;
    auto weights = [](MlpRule r, std::vector<T> G, double temp = 0.1) {
        // The shares of K components for one neuron: a [K, 1] block, weights in place.
        const int K = int(G.size());
        std::vector<T> scratch(3);
        std::vector<int> comp(static_cast<size_t>(K)), at(1);
        for (int k = 0; k < K; ++k) comp[size_t(k)] = k;
        Eigen::Array<T, Eigen::Dynamic, 1> e(1);
        switch (r) {
            case MlpRule::Softmax:
                softmax_rule(G.data(), K, 1, T(temp), scratch.data(), e.data());
                break;
            case MlpRule::Max:
                max_rule(G.data(), comp.data(), K, 1, scratch.data(), at.data());
                break;
            case MlpRule::Relu:
                relu_rule(G.data(), K, 1, scratch.data());
                break;
            case MlpRule::Linear:
                linear_rule(G.data(), K, 1, scratch.data());
                break;
            case MlpRule::Taylor:
                FAIL("taylor has no weights");
                break;
        }
        return G;
    };
    auto near = [&](const std::vector<T>& w, const std::vector<double>& e) {
        REQUIRE(w.size() == e.size());
        for (size_t k = 0; k < e.size(); ++k) CHECK(std::abs(double(w[k]) - e[k]) <= tol);
    };

    // Random inputs of several sizes and scales: non-negative weights summing to 1.
    std::mt19937_64 rng(3);
    double worst_sum = 0;
    for (MlpRule r : {MlpRule::Softmax, MlpRule::Max, MlpRule::Relu, MlpRule::Linear})
        for (int count : {1, 2, 3, 7, 41})
            for (double scale : {1e-3, 1.0, 30.0})
                for (int rep = 0; rep < 20; ++rep) {
                    std::vector<T> G(count);
                    std::normal_distribution<double> nd(rep % 3 == 0 ? -scale : 0.0,
                                                        scale);  // some all-negative
                    for (T& g : G) g = T(nd(rng));
                    const std::vector<T> w = weights(r, G);
                    double s = 0;
                    for (T x : w) {
                        CHECK(x >= T(0));
                        s += double(x);
                    }
                    worst_sum = std::max(worst_sum, std::abs(s - 1.0));
                    CHECK(std::abs(s - 1.0) <= tol * count);
                }
    std::printf("  rules %-6s worst |sum - 1| %.3e\n", type_name<T>(), worst_sum);

    // softmax of {0.2, 0.3} at T = 0.1: {1, e} / (1 + e).
    const double e = std::exp(1.0);
    near(weights(MlpRule::Softmax, {T(0.2), T(0.3)}), {1 / (1 + e), e / (1 + e)});
    // Temperature 1: softmax of {1, 1 + log 3} = {1/4, 3/4}.
    near(weights(MlpRule::Softmax, {T(1), T(1 + std::log(3.0))}, 1.0), {0.25, 0.75});
    // max picks the largest (the first on ties).
    near(weights(MlpRule::Max, {T(1), T(5), T(3), T(-9)}), {0, 1, 0, 0});
    near(weights(MlpRule::Max, {T(-4), T(-2), T(-3)}), {0, 1, 0});
    near(weights(MlpRule::Max, {T(2), T(2)}), {1, 0});
    // relu of {-1, 2, 3} = {0, 2/5, 3/5}; all negative = equal split.
    near(weights(MlpRule::Relu, {T(-1), T(2), T(3)}), {0, 0.4, 0.6});
    near(weights(MlpRule::Relu, {T(-1), T(-2), T(-3)}), {1.0 / 3, 1.0 / 3, 1.0 / 3});
    // linear of {1, 1} = equal split (normaliser zero); {1, 2, 4} -> {0, 1, 3} / 4.
    near(weights(MlpRule::Linear, {T(1), T(1)}), {0.5, 0.5});
    near(weights(MlpRule::Linear, {T(1), T(2), T(4)}), {0, 0.25, 0.75});
    // A single participant takes everything under every rule.
    for (MlpRule r : {MlpRule::Softmax, MlpRule::Max, MlpRule::Relu, MlpRule::Linear})
        near(weights(r, {T(-0.5)}), {1.0});
    // A share that is exactly 0 does not participate (section 5 step 4): weight 0, the
    // others share the neuron as if it were absent.
    near(weights(MlpRule::Softmax, {T(0), T(0.3), T(0.3)}), {0, 0.5, 0.5});
    near(weights(MlpRule::Max, {T(0), T(-1), T(-2)}), {0, 1, 0});
    near(weights(MlpRule::Relu, {T(0), T(-1), T(-1)}), {0, 0.5, 0.5});
    near(weights(MlpRule::Linear, {T(0), T(1), T(3)}), {0, 0, 1});

    // taylor: A_m = G_m * act(p)/p * up, for SiLU act(p)/p = sigmoid(p); GELU has no up.
    std::vector<T> G{T(1), T(-2)}, s(1);
    const T p = T(0.7), u = T(1.5);
    taylor_rule(G.data(), 2, 1, Activation::SiLU, &p, &u, s.data());
    const double sig = 1 / (1 + std::exp(-0.7));
    near(G, {sig * 1.5, -2 * sig * 1.5});
    std::vector<T> G2{T(3)};
    taylor_rule(G2.data(), 1, 1, Activation::GeluTanh, &p, static_cast<const T*>(nullptr), s.data());
    near(G2, {3 * 0.5 * (1 + std::tanh(std::sqrt(2 / M_PI) * (0.7 + 0.044715 * 0.343)))});
}

// =====================================================================================
// 4. The causal skip (packed storage) is exact.
// =====================================================================================

TEST_CASE("token level: packed storage (first[j] = j) equals dense storage, every architecture and rule",
          "[decompose][packed]") {
    using T = double;
    Worst worst;
    bool all_bitwise = true, dense_zero = true;
    for (TArch arch : kArchs) {
        const Model<T> model = random_model<T>(make_config(arch), arch_seed(arch));
        const int N = 40;
        const Trace<T> trace = forward(model, random_ids(N, model.cfg.V, 300));
        for (int layer : {0, 1}) {
            const Initialised<T> init = init_tokens(model, trace, layer);
            const Components<T>& packed = init.comps;
            REQUIRE(packed.first[5] == 5);
            Components<T> dense =
                Components<T>::zeros(N, model.cfg.D, std::vector<int>(packed.M, 0), packed.names);
            for (int m = 0; m < packed.M; ++m) dense.block(m) = packed.component(m);
            for (MlpRule rule : kRules) {
                DecomposeOptions opt;
                opt.rule = rule;
                opt.ignore_special_token = init.ignore_special_default;
                opt.pos0_component = init.pos0_component;
                const std::string where =
                    std::string(arch_name(arch)) + " h[" + std::to_string(layer) + "] " + rule_name(rule);
                INFO(where);
                const Components<T> a = propagate(model, trace, packed, init.cut, opt);
                const Components<T> b = propagate(model, trace, dense, init.cut, opt);
                double max_abs = 0, max_ref = 0;
                for (int m = 0; m < a.M; ++m) {
                    const Mat<T> xa = a.component(m), xb = b.component(m);
                    max_abs = std::max(max_abs, (xa - xb).cwiseAbs().maxCoeff());
                    max_ref = std::max(max_ref, xb.cwiseAbs().maxCoeff());
                    all_bitwise = all_bitwise && bitwise_equal(xa, xb);
                    // The dense rows before a token's position stay exactly zero.
                    if (a.first[m] > 0)
                        dense_zero = dense_zero && (xb.topRows(a.first[m]).array() == 0).all();
                }
                worst.add(max_abs / max_ref, where);
                CHECK(max_abs / max_ref <= 1e-13);
            }
        }
    }
    CHECK(dense_zero);
    report("token level: packed vs dense storage", "double", worst);
    std::printf("  packed and dense results are %s; dense rows before first[m] stay exactly zero: %s\n",
                all_bitwise ? "bitwise identical" : "equal to rounding", dense_zero ? "yes" : "NO");
}

// =====================================================================================
// 5. MLP chunking does not change the result.
// =====================================================================================

TEST_CASE("MLP chunking: mlp_chunk = 1, 3, N and 0 (auto) give the same components", "[decompose][chunk]") {
    using T = double;
    Worst worst;
    bool all_bitwise = true;
    for (TArch arch : kArchs) {
        const Model<T> model = random_model<T>(make_config(arch), arch_seed(arch));
        for (int N : {7, 40}) {
            const Trace<T> trace = forward(model, random_ids(N, model.cfg.V, 400 + N));
            for (const char* level : {"token", "head"}) {
                LevelRequest req;
                req.level = parse_level(level);
                req.layer = 0;
                const Initialised<T> init = initialise(model, trace, req);
                for (MlpRule rule : kRules) {
                    DecomposeOptions opt;
                    opt.rule = rule;
                    opt.ignore_special_token = init.ignore_special_default;
                    opt.pos0_component = init.pos0_component;
                    opt.mlp_chunk = N;
                    const Components<T> ref = propagate(model, trace, init.comps, init.cut, opt);
                    for (int chunk : {1, 3, 0}) {
                        opt.mlp_chunk = chunk;
                        const Components<T> got = propagate(model, trace, init.comps, init.cut, opt);
                        const std::string where = std::string(arch_name(arch)) + " N=" + std::to_string(N) +
                                                  " " + level + " " + rule_name(rule) +
                                                  " chunk=" + std::to_string(chunk);
                        INFO(where);
                        const double e = rel_err(got.X, ref.X);
                        worst.add(e, where);
                        all_bitwise = all_bitwise && bitwise_equal(got.X, ref.X);
                        CHECK(e <= 1e-14);
                    }
                }
            }
        }
    }
    report("MLP chunk 1 / 3 / auto vs chunk N", "double", worst);
    std::printf("  chunked results are %s\n", all_bitwise ? "bitwise identical" : "equal to rounding only");
}

// =====================================================================================
// 6. Completeness at every residual point, every level, every rule.
// =====================================================================================

TEMPLATE_TEST_CASE(
    "completeness: components sum to the true state at every residual point, every level and rule",
    "[decompose][completeness]", float, double) {
    using T = TestType;
    const double tol = tolerance::completeness_rel<T>();
    Worst worst;
    long runs = 0, points_checked = 0;
    for (TArch arch : kArchs) {
        const Model<T> model = random_model<T>(make_config(arch), arch_seed(arch));
        const Config& cfg = model.cfg;
        std::mt19937_64 rng(21 + int(arch));
        for (int N : {1, 2, 7, 40}) {
            const Trace<T> trace = forward(model, random_ids(N, cfg.V, 500 + N));
            for (const NamedRequest& nr : all_requests(cfg, trace, rng)) {
                const Initialised<T> init = initialise(model, trace, nr.req);
                REQUIRE(init.comps.names.back() == "rest");
                for (MlpRule rule : kRules) {
                    DecomposeOptions opt;
                    opt.rule = rule;
                    opt.ignore_special_token = init.ignore_special_default;
                    opt.pos0_component = init.pos0_component;
                    const std::string where = std::string(arch_name(arch)) + " N=" + std::to_string(N) + " " +
                                              nr.label + " " + rule_name(rule);
                    INFO(where);
                    std::vector<CutPoint> seen;
                    const Components<T> out =
                        propagate<T>(model, trace, init.comps, init.cut, opt,
                                     [&](const CutPoint& p, const Components<T>& c) {
                                         seen.push_back(p);
                                         const double e = rel_err(c.sum(), state_at(trace, p));
                                         worst.add(e, where + " at " + p.str());
                                         ++points_checked;
                                         if (!(e <= tol))
                                             FAIL_CHECK("completeness " << e << " at " << p.str());
                                     });
                    // Every residual point from the cut to h[L], in forward order.
                    std::vector<CutPoint> expect{init.cut};
                    for (int l = init.cut.layer; l < cfg.L; ++l) {
                        if (!(l == init.cut.layer && init.cut.after_attention)) expect.push_back({l, true});
                        expect.push_back({l + 1, false});
                    }
                    REQUIRE(seen.size() == expect.size());
                    for (size_t i = 0; i < seen.size(); ++i) CHECK(seen[i].str() == expect[i].str());
                    CHECK(rel_err(out.sum(), trace.h[cfg.L]) <= tol);
                    ++runs;
                }
            }
        }
    }
    std::printf("  completeness %-6s %ld propagations, %ld residual points checked\n", type_name<T>(), runs,
                points_checked);
    report("completeness: max |sum - state| / max |state|", type_name<T>(), worst);
}

// =====================================================================================
// 7. Logit attribution.
// =====================================================================================

TEMPLATE_TEST_CASE(
    "logit attribution sums to the logits at the targets and matches a per-component recomputation",
    "[decompose][logits]", float, double) {
    using T = TestType;
    const double tol = tolerance::completeness_rel<T>();  // 1e-12 double, 1e-5 float
    Worst w_sum, w_naive;
    for (TArch arch : kArchs) {
        const Model<T> model = random_model<T>(make_config(arch), arch_seed(arch));
        const Config& cfg = model.cfg;
        std::mt19937_64 rng(31 + int(arch));
        std::uniform_int_distribution<int> vid(0, cfg.V - 1);
        for (int N : {1, 7, 40}) {
            const Trace<T> trace = forward(model, random_ids(N, cfg.V, 600 + N));
            // Targets: the argmax, the input token, a random id.
            std::vector<std::vector<int>> targets(N);
            for (int n = 0; n < N; ++n) {
                Eigen::Index best;
                trace.logits.row(n).maxCoeff(&best);
                targets[n] = {int(best), trace.ids[n], vid(rng)};
            }
            const double scale = double(trace.logits.cwiseAbs().maxCoeff());
            for (const char* level : {"token", "head", "neuron"}) {
                LevelRequest req;
                req.level = parse_level(level);
                req.layer = 0;
                if (std::string(level) == "neuron") req.neuron_groups = 4;
                const Initialised<T> init = initialise(model, trace, req);
                DecomposeOptions opt;
                opt.ignore_special_token = init.ignore_special_default;
                opt.pos0_component = init.pos0_component;
                const Components<T> c = propagate(model, trace, init.comps, init.cut, opt);
                const Tensor<T> attr = logit_attribution(model, trace, c, targets);
                REQUIRE(attr.shape == std::vector<int64_t>{c.M, N, 3});
                const std::string where =
                    std::string(arch_name(arch)) + " N=" + std::to_string(N) + " " + level;
                INFO(where);
                double max_sum = 0, max_naive = 0;
                for (int n = 0; n < N; ++n)
                    for (int k = 0; k < 3; ++k) {
                        double s = 0;
                        for (int m = 0; m < c.M; ++m) {
                            const double a = double(attr.data[(size_t(m) * N + n) * 3 + k]);
                            s += a;
                            if (n < c.first[m]) {
                                CHECK(a == 0.0);  // the component does not exist there yet
                            } else {
                                max_naive =
                                    std::max(max_naive,
                                             std::abs(a - naive_logit(model, trace, c, m, n, targets[n][k])));
                            }
                        }
                        max_sum = std::max(max_sum, std::abs(s - double(trace.logits(n, targets[n][k]))));
                    }
                w_sum.add(max_sum / scale, where);
                w_naive.add(max_naive / scale, where);
                CHECK(max_sum / scale <= tol);
                CHECK(max_naive / scale <= tol);
            }
        }
    }
    report("logit attribution: sum over m vs logits", type_name<T>(), w_sum);
    report("logit attribution vs per-component recomputation", type_name<T>(), w_naive);
}

// =====================================================================================
// 8. Initialiser errors name the bad value.
// =====================================================================================

using depass_test::error_of;

TEST_CASE("initialisers reject bad requests with a depass::Error naming the value", "[decompose][errors]") {
    using Catch::Matchers::Contains;
    const Model<double> model = random_model<double>(make_config(TArch::Llama), arch_seed(TArch::Llama));
    const Config& cfg = model.cfg;  // L = 2, H = 4, I = 48, D = 24
    const Trace<double> trace = forward(model, random_ids(6, cfg.V, 700));

    // Layers out of range.
    CHECK_THAT(error_of([&] { init_tokens(model, trace, 3); }), Contains("layer 3"));
    CHECK_THAT(error_of([&] { init_tokens(model, trace, -1); }), Contains("layer -1"));
    CHECK_THAT(error_of([&] { init_module(model, trace, 2, true); }), Contains("layer 2"));
    CHECK_THAT(error_of([&] { init_heads(model, trace, 5, {}); }), Contains("layer 5"));
    CHECK_THAT(error_of([&] { init_neurons(model, trace, 2, {}, 0); }), Contains("layer 2"));
    CHECK_THAT(error_of([&] { init_subspaces(model, trace, 3, {Mat<double>::Identity(24, 24)}, {}); }),
               Contains("layer 3"));
    // Heads and neurons out of range.
    CHECK_THAT(error_of([&] { init_heads(model, trace, 0, {1, 4}); }), Contains("head 4"));
    CHECK_THAT(error_of([&] { init_heads(model, trace, 1, {-1}); }), Contains("head -1"));
    CHECK_THAT(error_of([&] { init_neurons(model, trace, 0, {0, 48}, 0); }), Contains("neuron 48"));
    CHECK_THAT(error_of([&] { init_neurons(model, trace, 1, {-3}, 0); }), Contains("neuron -3"));
    // More groups than neurons.
    CHECK_THAT(error_of([&] { init_neurons(model, trace, 0, {}, 49); }), Contains("49 groups"));
    CHECK_NOTHROW(init_neurons(model, trace, 0, {}, 48));

    // Custom components that do not sum to the state (one entry off by 0.5).
    const int N = trace.N(), D = cfg.D;
    Tensor<double> C({2, N, D});
    const Mat<double>& h1 = trace.h[1];
    std::copy(h1.data(), h1.data() + h1.size(), C.data.begin());  // component 0 = h[1], component 1 = 0
    CHECK_NOTHROW(init_custom(model, trace, 1, C, 1e-5, "comps.npy"));
    C.data[size_t(N) * D + 7] = 0.5;
    CHECK_THAT(error_of([&] { init_custom(model, trace, 1, C, 1e-5, "comps.npy"); }),
               Contains("comps.npy") && Contains("do not sum") && Contains("0.5"));
    // Custom components of the wrong shape.
    CHECK_THAT(error_of([&] {
                   init_custom(model, trace, 1, Tensor<double>({2, N, D + 1}), 1e-5, "comps.npy");
               }),
               Contains("[2, 6, 25]"));

    // A basis with dependent columns: column 2 = column 0 + 2 column 1.
    std::mt19937_64 rng(9);
    Mat<double> B = randn<double>(D, 3, rng);
    B.col(2) = B.col(0) + 2.0 * B.col(1);
    CHECK_THAT(error_of([&] { projector_from(B, D, "basis.npy"); }),
               Contains("basis.npy") && Contains("column 2") && Contains("dependent"));
    // A basis with the wrong number of rows.
    CHECK_THAT(error_of([&] { projector_from(randn<double>(D - 1, 2, rng), D, "basis.npy"); }),
               Contains("basis.npy") && Contains("23 rows") && Contains("24"));
    // A valid basis gives a symmetric idempotent projector of rank k that fixes the basis.
    const Mat<double> B2 = randn<double>(D, 3, rng);
    const Mat<double> P = projector_from(B2, D, "basis.npy");
    CHECK((P - P.transpose()).cwiseAbs().maxCoeff() <= 1e-14);
    CHECK((P * P - P).cwiseAbs().maxCoeff() <= 1e-14);
    CHECK(std::abs(P.trace() - 3.0) <= 1e-12);
    CHECK((P * B2 - B2).cwiseAbs().maxCoeff() <= 1e-13 * B2.cwiseAbs().maxCoeff());
    // A projector of the wrong size for init_subspaces.
    CHECK_THAT(error_of([&] { init_subspaces(model, trace, 0, {Mat<double>::Identity(D + 1, D + 1)}, {}); }),
               Contains("projector 0"));
    // Unknown level.
    CHECK_THAT(error_of([&] { parse_level("layers"); }), Contains("'layers'"));
}

TEST_CASE("projector_from does not depend on the scale of the basis", "[decompose][subspace]") {
    std::mt19937_64 rng(1);
    std::normal_distribution<double> nd;
    Mat<double> B(24, 3);
    for (long i = 0; i < B.size(); ++i) B.data()[i] = nd(rng);
    const Mat<double> P = projector_from(B, 24, "basis");
    for (double s : {1e-11, 1e-3, 1e6}) {
        INFO("scale " << s);
        Mat<double> Ps = projector_from(Mat<double>(B * s), 24, "basis");
        CHECK((Ps - P).cwiseAbs().maxCoeff() <= 1e-12);
        CHECK(std::abs(Ps.trace() - 3.0) <= 1e-12);
    }
    Mat<double> Z = B;
    Z.col(1).setZero();
    CHECK_THROWS_WITH(projector_from(Z, 24, "basis"),
                      Catch::Contains("column 1") && Catch::Contains("zeros"));
}
