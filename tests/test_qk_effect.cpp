// The QK path of a token (eval_qk.hpp): the first-order pattern change against finite
// differences of the softmax, and, on the shipped stories260K in double, the experiments
// whose exact answer is known in closed form. At block 0 a token's component is its whole
// embedding row, so removing it from the keys zeroes that key (no biases, RoPE of 0 is 0) and
// removing it from the queries zeroes that query's logits: a naive recomputation of block 0
// from the recorded input gives the exact pattern, the real network after it gives the exact
// logit, and a decomposed pass (taylor) of the head's output change gives the frozen one.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "depass/attribute.hpp"
#include "depass/eval_qk.hpp"
#include "depass/io.hpp"
#include "depass/ops.hpp"
#include "test_support.hpp"

using namespace depass;
using namespace depass::eval;

TEST_CASE("pattern_change_first_order is the derivative of the causal softmax", "[qk][eval]") {
    std::mt19937_64 rng(7);
    std::normal_distribution<double> nd;
    for (int n : {1, 2, 5, 17}) {
        const size_t len = size_t(n);
        std::vector<double> s(len), ds(len), eps_ds(len), a;
        for (int k = 0; k < n; ++k) {
            s[size_t(k)] = 3 * nd(rng);
            ds[size_t(k)] = nd(rng);
        }
        const std::vector<double> zero(size_t(n), 0.0);
        const std::vector<double> d0 = pattern_change_exact(s, zero);
        for (double v : d0) CHECK(v == 0.0);
        // A = softmax(s), from the exact change against a logit row of -inf... i.e. directly:
        double mx = s[0], z = 0;
        for (double v : s) mx = std::max(mx, v);
        for (double v : s) z += std::exp(v - mx);
        for (double v : s) a.push_back(std::exp(v - mx) / z);
        const double eps = 1e-6;
        for (int k = 0; k < n; ++k) eps_ds[size_t(k)] = eps * ds[size_t(k)];
        const std::vector<double> d1 = pattern_change_first_order(a, ds);
        const std::vector<double> dx = pattern_change_exact(s, eps_ds);
        double sum = 0;
        for (int k = 0; k < n; ++k) {
            CHECK(std::abs(dx[size_t(k)] / eps - d1[size_t(k)]) <= 1e-5 * (1 + std::abs(d1[size_t(k)])));
            sum += d1[size_t(k)];
        }
        CHECK(std::abs(sum) <= 1e-15 * n);  // the pattern stays a distribution
        // A shift of the whole row changes nothing, to first order and exactly.
        const std::vector<double> shift(size_t(n), 2.5);
        for (double v : pattern_change_first_order(a, shift)) CHECK(std::abs(v) <= 1e-15);
        for (double v : pattern_change_exact(s, shift)) CHECK(std::abs(v) <= 1e-15);
    }
}

TEST_CASE("pearson: exact values", "[qk][eval]") {
    CHECK(pearson({1, 2, 3}, {2, 4, 6}) == Approx(1.0));
    CHECK(pearson({1, 2, 3}, {3, 2, 1}) == Approx(-1.0));
    CHECK(pearson({1, 2, 3, 4}, {1, 3, 2, 4}) == Approx(0.8));  // cov 1.0, var 1.25 each
    CHECK(pearson({1, 1, 1}, {1, 2, 3}) == 0.0);
}

namespace {

// Block 0 of the model, recomputed naively from the recorded h[0], with head h's logits
// edited by `edit` (query, key, logit) -> logit; every other head uses its recorded pattern.
// Returns m[0].
template <class Edit>
Mat<double> block0_attention(const Model<double>& model, const Trace<double>& tr, int head, Edit edit,
                             Mat<double>* ctx_out, Mat<double>* logits_out = nullptr, Mat<double>* v_out = nullptr) {
    const Config& c = model.cfg;
    const LayerWeights<double>& lw = model.w.layers[0];
    const int N = tr.N(), Dh = c.Dh;
    const Mat<double> x = apply_norm(c.norm, c.norm_eps, tr.h[0], lw.norm1_g, lw.norm1_b);
    Mat<double> q = x * lw.wq.transpose(), k = x * lw.wk.transpose(), v = x * lw.wv.transpose();
    rope(q, c.H, Dh, c.rope, rope_inv_freq(c));
    rope(k, c.Hkv, Dh, c.rope, rope_inv_freq(c));
    Mat<double> ctx = Mat<double>::Zero(N, c.H * Dh);
    if (logits_out) *logits_out = Mat<double>::Zero(N, N);
    if (v_out) *v_out = v;
    for (int h = 0; h < c.H; ++h) {
        const int g = h / c.kv_group();
        for (int i = 0; i < N; ++i) {
            std::vector<double> p(size_t(i) + 1);
            if (h == head) {
                double mx = -INFINITY, z = 0;
                for (int j = 0; j <= i; ++j) {
                    double s = 0;
                    for (int d = 0; d < Dh; ++d) s += q(i, h * Dh + d) * k(j, g * Dh + d);
                    if (logits_out) (*logits_out)(i, j) = s / std::sqrt(double(Dh));
                    p[size_t(j)] = edit(i, j, s / std::sqrt(double(Dh)));
                    mx = std::max(mx, p[size_t(j)]);
                }
                for (double& e : p) z += e = std::exp(e - mx);
                for (double& e : p) e /= z;
            } else {
                for (int j = 0; j <= i; ++j) p[size_t(j)] = tr.layers[0].probs[size_t(h)](i, j);
            }
            for (int j = 0; j <= i; ++j)
                for (int d = 0; d < Dh; ++d) ctx(i, h * Dh + d) += p[size_t(j)] * v(j, g * Dh + d);
        }
    }
    if (ctx_out) *ctx_out = ctx;
    return tr.h[0] + ctx * lw.wo.transpose();
}

// The target logit at the last position of the real network from m[0].
double logit_from_m0(const Model<double>& model, const Mat<double>& m, int target) {
    const Config& c = model.cfg;
    const LayerWeights<double>& lw = model.w.layers[0];
    const Mat<double> y = apply_norm(c.norm, c.norm_eps, m, lw.norm2_g, lw.norm2_b);
    const Mat<double> h1 = m + swiglu_mlp(y, lw.w_gate, lw.w_up, lw.w_down);
    const Mat<double> hL = forward_blocks(model, h1, 1);
    const Mat<double> xf = apply_norm(c.norm, c.norm_eps, Mat<double>(hL.bottomRows(1)), model.w.normf_g,
                                      model.w.normf_b);
    return xf.row(0).dot(model.w.unembedding().row(target));
}

// The target logit of a change dm of m[0], through the frozen network (taylor decomposed pass).
double frozen_logit_from_m0(const Model<double>& model, const Trace<double>& tr, const Mat<double>& dm,
                            int target) {
    const int N = tr.N();
    Components<double> c = Components<double>::zeros(N, model.cfg.D, {0, 0}, {"change", "rest"});
    c.block(0) = dm;
    c.block(1) = tr.layers[0].m - dm;  // the two add up to the recorded state
    DecomposeOptions opt;
    opt.rule = MlpRule::Taylor;
    const Components<double> out = propagate(model, tr, c, CutPoint{0, true}, opt);
    const Components<double> f = apply_norm_decomposed(model.cfg.norm, out, model.w.normf_g, model.w.normf_b,
                                                       tr.normf);
    return f.component(0).row(N - 1).dot(model.w.unembedding().row(target));
}

}  // namespace

TEST_CASE("qk_effects on stories260K: block 0's closed forms, the token table", "[qk][eval]") {
    const Model<double> model = load_model<double>(depass_test::source_dir() + "/weights/stories260K.bin");
    const Config& c = model.cfg;
    REQUIRE(c.L >= 2);
    const std::vector<int> ids = {1, 403, 407, 261, 378, 298, 263, 400};
    const QkEffectSummary s = qk_effects(model, {ids});
    const Trace<double> tr = forward(model, ids);
    const int N = tr.N();
    REQUIRE(s.prompts.size() == 1);
    const int target = s.prompts[0].target;
    Eigen::Index best;
    tr.logits.row(N - 1).maxCoeff(&best);
    CHECK(target == int(best));
    const double z = tr.logits(N - 1, target);
    REQUIRE(s.rows.size() == size_t(c.L) * c.H * N * 3);
    REQUIRE(s.tokens.size() == size_t(N));

    auto row = [&](int layer, int head, int m, QkSide side) -> const QkEffectRow& {
        for (const QkEffectRow& r : s.rows)
            if (r.layer == layer && r.head == head && r.component == m && r.side == side) return r;
        FAIL("no row");
        return s.rows[0];
    };
    Mat<double> ctx0;
    block0_attention(model, tr, -1, [](int, int, double v) { return v; }, &ctx0);
    int checked = 0;
    for (int head : {0, c.H - 1})
        for (int j : {0, 2, N - 1}) {
            INFO("head " << head << " token " << j);
            // Key side: key j is gone (logit 0 at every query that sees it).
            Mat<double> ctx;
            Mat<double> m = block0_attention(
                model, tr, head, [j](int, int k, double v) { return k == j ? 0.0 : v; }, &ctx);
            const QkEffectRow& rk = row(0, head, j, QkSide::Key);
            CHECK(std::abs(rk.logit_exact - (logit_from_m0(model, m, target) - z)) <= 1e-10 * (1 + std::abs(z)));
            CHECK(std::abs(rk.ctx_exact - (ctx - ctx0).norm()) <= 1e-12 * (1 + ctx0.norm()));
            const double frozen = frozen_logit_from_m0(model, tr, m - tr.layers[0].m, target);
            CHECK(std::abs(rk.logit_exact_pattern - frozen) <= 1e-10 * (1 + std::abs(frozen)));
            // First order: dA = A (dS - sum A dS) with dS = -S[., j], its context change, and the
            // real network's derivative along it by central differences.
            Mat<double> S, V;
            block0_attention(model, tr, head, [](int, int, double v) { return v; }, nullptr, &S, &V);
            const Mat<double>& A = tr.layers[0].probs[size_t(head)];
            const int g = head / c.kv_group();
            Mat<double> dctx = Mat<double>::Zero(N, c.H * c.Dh);
            for (int i = j; i < N; ++i) {
                const double mean = -A(i, j) * S(i, j);
                for (int k = 0; k <= i; ++k) {
                    const double da = A(i, k) * ((k == j ? -S(i, j) : 0.0) - mean);
                    dctx.block(i, head * c.Dh, 1, c.Dh) += da * V.block(k, g * c.Dh, 1, c.Dh);
                }
            }
            const Mat<double> dm = dctx * model.w.layers[0].wo.transpose();
            const double eps = 1e-4;
            const double fd = (logit_from_m0(model, tr.layers[0].m + eps * dm, target) -
                               logit_from_m0(model, tr.layers[0].m - eps * dm, target)) /
                              (2 * eps);
            CHECK(std::abs(rk.logit_first_grad - fd) <= 1e-6 * (1 + std::abs(fd)));
            CHECK(std::abs(rk.ctx_first - dctx.norm()) <= 1e-12 * (1 + dctx.norm()));
            // Query side: query j's logits are all 0 (a uniform pattern on its row).
            m = block0_attention(
                model, tr, head, [j](int i, int, double v) { return i == j ? 0.0 : v; }, &ctx);
            const QkEffectRow& rq = row(0, head, j, QkSide::Query);
            CHECK(std::abs(rq.logit_exact - (logit_from_m0(model, m, target) - z)) <= 1e-10 * (1 + std::abs(z)));
            CHECK(std::abs(rq.ctx_exact - (ctx - ctx0).norm()) <= 1e-12 * (1 + ctx0.norm()));
            // Both: row j and column j.
            m = block0_attention(
                model, tr, head, [j](int i, int k, double v) { return i == j || k == j ? 0.0 : v; }, &ctx);
            const QkEffectRow& rb = row(0, head, j, QkSide::Both);
            CHECK(std::abs(rb.logit_exact - (logit_from_m0(model, m, target) - z)) <= 1e-10 * (1 + std::abs(z)));
            // First order and exact agree as far as a linearisation can: same sign where large.
            CHECK(rb.pattern_first > 0);
            ++checked;
        }
    CHECK(checked == 6);

    // The token table: ablation is a re-run without the token's embedding row; DePass sums
    // to the logit with the rest (which is 0 here: no biases).
    double sum_taylor = 0, sum_softmax = 0;
    for (const QkTokenRow& t : s.tokens) {
        Mat<double> h0 = tr.h[0];
        h0.row(t.position).setZero();
        const Trace<double> ab = forward_from_embeddings(model, h0, ids);
        CHECK(std::abs(t.ablation - (z - ab.logits(N - 1, target))) <= 1e-12 * (1 + std::abs(z)));
        sum_taylor += t.depass_taylor;
        sum_softmax += t.depass_softmax;
        // qk_first is minus the sum of the both-side first-order rows of the token.
        double q = 0;
        for (const QkEffectRow& r : s.rows)
            if (r.component == t.position && r.side == QkSide::Both) q -= r.logit_first;
        CHECK(std::abs(t.qk_first - q) <= 1e-12 * (1 + std::abs(q)));
    }
    CHECK(std::abs(sum_taylor - z) <= 1e-10 * std::abs(z));
    CHECK(std::abs(sum_softmax - z) <= 1e-10 * std::abs(z));
}

TEST_CASE("depass eval qk: the files, and one clear error for each bad input with nothing written", "[qk][eval][cli]") {
    const std::string model = depass_test::shell_quoted(depass_test::source_dir() + "/weights/stories260K.bin");
    const std::string dir = depass_test::temp_path("qk_eval_out");
    const std::string base = "eval qk --quiet -m " + model + " --out " + depass_test::shell_quoted(dir) + " ";
    std::string out;
    REQUIRE(depass_test::run_cli(base + "--ids 1,403,407,261", &out) == 0);
    {
        std::ifstream f(dir + "/qk_tokens.csv");
        std::string line;
        int lines = 0;
        while (std::getline(f, line)) ++lines;
        CHECK(lines == 1 + 4);  // header + one row per token
    }
    CHECK(std::filesystem::exists(dir + "/qk_effects.csv"));
    CHECK(std::filesystem::exists(dir + "/qk_summary.json"));
    CHECK(out.find("QK path of each token on 1 prompts") != std::string::npos);

    const std::string fresh = depass_test::temp_path("qk_eval_none");
    const std::string b2 = "eval qk --quiet -m " + model + " --out " + depass_test::shell_quoted(fresh) + " ";
    CHECK(depass_test::run_cli(b2, &out) == 2);
    CHECK(out.find("give --prompts FILE, or one prompt with --prompt / --ids") != std::string::npos);
    CHECK(depass_test::run_cli(b2 + "--ids 1,2 --prompts " + model, &out) == 2);
    CHECK(out.find("exclude each other") != std::string::npos);
    CHECK(depass_test::run_cli(b2 + "--ids 1,999", &out) == 1);
    CHECK(out.find("id 999 at position 1") != std::string::npos);
    CHECK(depass_test::run_cli("eval qk --quiet -m /nonexistent/model.bin --ids 1,2 --out " +
                                   depass_test::shell_quoted(fresh),
                               &out) == 1);
    CHECK(out.find("/nonexistent/model.bin") != std::string::npos);
    CHECK(depass_test::run_command("DEPASS_FREE_MEMORY=16K " + depass_test::shell_quoted(depass_test::cli_path()) +
                                       " " + b2 + "--ids 1,403,407,261 2>&1",
                                   &out) == 1);
    CHECK(out.find("eval qk: a prompt of 4 tokens needs about") != std::string::npos);
    CHECK(!std::filesystem::exists(fresh));
}
