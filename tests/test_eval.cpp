// The evaluation harness (include/depass/eval.hpp): its arithmetic on hand-derived cases,
// the zeroing of heads and neurons against what it must change in the recorded pass,
// the forward-from-a-layer used by ablation against the full forward, and a short
// end-to-end run of every `depass eval` command on the shipped stories260K model.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "depass/backward.hpp"
#include "depass/eval.hpp"
#include "depass/initialisers.hpp"
#include "depass/io.hpp"
#include "depass/ops.hpp"
#include "depass/tolerance.hpp"
#include "test_support.hpp"

using namespace depass;
namespace ev = depass::eval;
namespace fs = std::filesystem;

namespace {

std::string model_path() { return depass_test::source_dir() + "/weights/stories260K.bin"; }

const Model<double>& model_f64() {
    static const Model<double> m = load_model<double>(model_path());
    return m;
}

// A short natural sequence from the model itself: BOS then greedy tokens.
std::vector<int> greedy_ids(const Model<double>& m, int n) {
    std::vector<int> ids{m.cfg.bos_id};
    std::vector<int> more = generate_greedy(m, ids, n - 1);
    ids.insert(ids.end(), more.begin(), more.end());
    return ids;
}

double max_abs(const Mat<double>& a) { return a.cwiseAbs().maxCoeff(); }

const auto q = depass_test::shell_quoted;
using depass_test::run_cli;

std::vector<std::vector<std::string>> read_csv(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::vector<std::string>> rows;
    std::string line;
    while (std::getline(in, line)) {
        std::vector<std::string> cells;
        std::string cell;
        bool quoted = false;
        for (size_t i = 0; i < line.size(); ++i) {
            const char c = line[i];
            if (c == '"') {
                if (quoted && i + 1 < line.size() && line[i + 1] == '"') {
                    cell += '"';
                    ++i;
                } else {
                    quoted = !quoted;
                }
            } else if (c == ',' && !quoted) {
                cells.push_back(cell);
                cell.clear();
            } else {
                cell += c;
            }
        }
        cells.push_back(cell);
        rows.push_back(cells);
    }
    return rows;
}

bool is_svg(const std::string& path) {
    if (!fs::is_regular_file(path)) return false;
    const std::string s = read_text_file(path);
    return s.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0) == 0 &&
           s.find("</svg>") != std::string::npos && s.find("nan") == std::string::npos;
}

}  // namespace

// ---- arithmetic -------------------------------------------------------------------------

TEST_CASE("masked_count: k = max(1, floor(p (N-2) / 100)) without rounding error", "[eval]") {
    CHECK(ev::masked_count(10, 9) == 1);
    CHECK(ev::masked_count(50, 9) == 4);
    CHECK(ev::masked_count(100, 9) == 9);
    CHECK(ev::masked_count(30, 10) == 3);  // 0.3 * 10 is 2.9999999999999996 in floating point
    CHECK(ev::masked_count(70, 10) == 7);
    CHECK(ev::masked_count(10, 1) == 1);  // never zero
    CHECK(ev::masked_count(10, 25) == 2);
    CHECK(ev::masked_count(90, 25) == 22);
    // Against exact rational arithmetic: k * 100 <= p * c < (k + 1) * 100 unless clamped to 1.
    for (int p = 1; p <= 100; ++p)
        for (int c = 1; c <= 120; ++c) {
            const int k = ev::masked_count(p, c);
            if (p * c < 100) {
                REQUIRE(k == 1);
            } else {
                REQUIRE(k * 100 <= p * c);
                REQUIRE(p * c < (k + 1) * 100);
            }
        }
    CHECK_THROWS_AS(ev::masked_count(0, 5), Error);
    CHECK_THROWS_AS(ev::masked_count(101, 5), Error);
    CHECK_THROWS_AS(ev::masked_count(10, 0), Error);
}

TEST_CASE("mask_score: relative change of the target probability, capped at 100", "[eval]") {
    CHECK(ev::mask_score(0.5, 0.25) == Approx(50.0));
    CHECK(ev::mask_score(0.5, 0.75) == Approx(50.0));  // a rise counts as a change too
    CHECK(ev::mask_score(0.4, 0.4) == 0.0);
    CHECK(ev::mask_score(0.2, 0.9) == 100.0);  // 350% capped
    CHECK(ev::mask_score(0.8, 0.0) == Approx(100.0));
    CHECK_THROWS_AS(ev::mask_score(0.0, 0.1), Error);
}

TEST_CASE("curve_area: trapezoid divided by the width", "[eval]") {
    std::vector<double> x{10, 20, 30, 40, 50, 60, 70, 80, 90, 100};
    CHECK(ev::curve_area(x, std::vector<double>(10, 42.0)) == Approx(42.0));
    CHECK(ev::curve_area(x, x) == Approx(55.0));  // y = x: mean over [10, 100]
    // Uneven steps: (1 * (0 + 2) / 2 + 2 * (2 + 2) / 2) / 3 = 5 / 3
    CHECK(ev::curve_area({0, 1, 3}, {0, 2, 2}) == Approx(5.0 / 3.0));
    // A spike at one point: half a step on each side
    CHECK(ev::curve_area({0, 1, 2}, {0, 90, 0}) == Approx(45.0));
    CHECK_THROWS_AS(ev::curve_area({0, 0, 1}, {1, 1, 1}), Error);
    CHECK_THROWS_AS(ev::curve_area({0}, {1}), Error);
    CHECK_THROWS_AS(ev::curve_area({0, 1}, {1}), Error);
}

TEST_CASE("Spearman: known ranks, ties averaged", "[eval]") {
    CHECK(ev::average_ranks({10, 20, 20, 5}) == std::vector<double>{2, 3.5, 3.5, 1});
    CHECK(ev::average_ranks({3, 3, 3}) == std::vector<double>{2, 2, 2});
    // Monotone but not linear: exactly 1; reversed: exactly -1.
    CHECK(ev::spearman({1, 2, 3, 4, 5}, {1, 8, 27, 64, 125}) == Approx(1.0));
    CHECK(ev::spearman({1, 2, 3, 4, 5}, {5, 3, 1, -7, -100}) == Approx(-1.0));
    // No ties: 1 - 6 sum d^2 / (n (n^2 - 1)) with d = (-1, 1, -1, 1, 0): 1 - 24 / 120 = 0.8
    CHECK(ev::spearman({1, 2, 3, 4, 5}, {2, 1, 4, 3, 5}) == Approx(0.8));
    // Ties: ranks (1, 2.5, 2.5, 4) against (1, 3, 2, 4): 4.5 / sqrt(4.5 * 5) = sqrt(0.9)
    CHECK(ev::spearman({1, 2, 2, 3}, {1, 3, 2, 4}) == Approx(std::sqrt(0.9)));
    CHECK(ev::spearman({1, 1, 1}, {1, 2, 3}) == 0.0);
    CHECK_THROWS_AS(ev::spearman({1, 2}, {1}), Error);
}

TEST_CASE("order, masking of token positions, seeded generator", "[eval]") {
    CHECK(ev::order_descending({0.5, 0.9, 0.5, 0.1}) == std::vector<int>{1, 0, 2, 3});
    const std::vector<int> ids{1, 10, 11, 12, 13};
    CHECK(ev::delete_positions(ids, {2, 3}) == std::vector<int>{1, 10, 13});
    CHECK(ev::keep_positions(ids, {3}) == std::vector<int>{1, 12, 13});
    CHECK(ev::keep_positions(ids, {3, 1}) == std::vector<int>{1, 10, 12, 13});  // original order
    CHECK_THROWS_AS(ev::delete_positions(ids, {5}), Error);
    // each names itself and the position outside [0, N)
    CHECK(depass_test::error_of([&] {
              ev::delete_positions(ids, {1, 5});
          }) == "delete_positions: position 5 is outside [0, 5)");
    CHECK(depass_test::error_of([&] { ev::keep_positions(ids, {-1}); }) ==
          "keep_positions: position -1 is outside [0, 5)");

    ev::Rng a(7), b(7), c(8);
    const uint64_t a1 = a.next();
    CHECK(a1 == b.next());
    CHECK(a1 != c.next());
    std::vector<int> perm(50);
    for (int i = 0; i < 50; ++i) perm[i] = i;
    ev::Rng r(3);
    r.shuffle(perm.begin(), perm.end());
    CHECK(std::set<int>(perm.begin(), perm.end()).size() == 50);
    int moved = 0;
    for (int i = 0; i < 50; ++i) moved += perm[i] != i;
    CHECK(moved > 30);
    for (int i = 0; i < 1000; ++i) {
        const double u = r.uniform();
        REQUIRE((u >= 0 && u < 1));
    }
    CHECK(ev::mix_seed(1, 0) != ev::mix_seed(1, 1));
    CHECK(ev::mix_seed(1, 0, 1) != ev::mix_seed(1, 1, 0));
}

TEST_CASE("attention rollout on hand-computed 2 x 2 layers", "[eval]") {
    Mat<double> A0(2, 2), A1(2, 2);
    A0 << 1, 0, 0.5, 0.5;
    A1 << 1, 0, 0.2, 0.8;
    // B0 = [[1, 0], [0.25, 0.75]], B1 = [[1, 0], [0.1, 0.9]], R = B1 B0
    Mat<double> R = ev::attention_rollout({A0, A1});
    CHECK(R(0, 0) == Approx(1.0));
    CHECK(R(0, 1) == Approx(0.0).margin(1e-15));
    CHECK(R(1, 0) == Approx(0.325));
    CHECK(R(1, 1) == Approx(0.675));
    // Rows are renormalised: A = [[1, 0], [1, 1]] gives B = [[1, 0], [1/3, 2/3]].
    Mat<double> U(2, 2);
    U << 1, 0, 1, 1;
    Mat<double> S = ev::attention_rollout({U});
    CHECK(S(1, 0) == Approx(1.0 / 3.0));
    CHECK(S(1, 1) == Approx(2.0 / 3.0));
}

// ---- attribution methods on the real model ---------------------------------------------------

TEST_CASE("token scores: DePass sums to the target logit; baselines from independent recomputation",
          "[eval]") {
    const Model<double>& m = model_f64();
    const std::vector<int> ids = greedy_ids(m, 14);
    const Trace<double> t = forward(m, ids);
    const int N = t.N();
    Eigen::Index best;
    t.logits.row(N - 1).maxCoeff(&best);
    const int target = int(best);

    // The token components at h[0] cover the whole state (the rest is zero there), so the
    // token scores add up to the logit.
    const std::vector<double> s = ev::depass_token_scores(m, t, target);
    REQUIRE(int(s.size()) == N);
    double sum = 0;
    for (double v : s) sum += v;
    CHECK(std::abs(sum - t.logits(N - 1, target)) <= tolerance::spec_f64_rel * max_abs(t.logits));

    // Attention of the last layer: a mean of probability rows, so it sums to 1.
    const std::vector<double> al = ev::attention_last_scores(t);
    double asum = 0, manual = 0;
    for (double v : al) asum += v;
    CHECK(asum == Approx(1.0));
    for (int h = 0; h < m.cfg.H; ++h) manual += t.layers.back().probs[h](N - 1, 2) / m.cfg.H;
    CHECK(al[2] == Approx(manual));
    // Rollout rows are stochastic.
    const std::vector<double> ro = ev::rollout_scores(t);
    double rsum = 0;
    for (double v : ro) rsum += v;
    CHECK(rsum == Approx(1.0));
    // Embedding norm straight from the weights.
    const std::vector<double> en = ev::embedding_norm_scores(t);
    CHECK(en[3] == Approx(m.w.tok_emb.row(ids[3]).norm()));
    // Occlusion: the probability drop without token j.
    const double pc = ev::softmax_probability(t.logits, N - 1, target);
    const std::vector<double> oc = ev::occlusion_scores(m, ids, target, pc);
    std::vector<int> without5 = ids;
    without5.erase(without5.begin() + 5);
    CHECK(oc[5] == Approx(pc - ev::target_probability(m, without5, target)));
    CHECK(oc[0] == 0.0);
    CHECK(oc[N - 1] == 0.0);
}

TEST_CASE("token_faithfulness: the 10% deletion / keeping points recomputed by hand", "[eval]") {
    const Model<double>& m = model_f64();
    const std::vector<int> ids = greedy_ids(m, 23);  // N - 2 = 21 candidates: k(10%) = 2, k(50%) = 10
    ev::TokenEvalOptions opt;
    opt.methods = {ev::TokenMethod::DePass, ev::TokenMethod::EmbeddingNorm, ev::TokenMethod::Random};
    const ev::PromptTokenResult r = ev::token_faithfulness(m, ids, opt, 0);
    const Trace<double> t = forward(m, ids);
    const int N = t.N();
    REQUIRE(r.N == N);
    const double pc = ev::softmax_probability(t.logits, N - 1, r.target);
    CHECK(r.p_clean == Approx(pc));

    // DePass: the two candidates (positions 1..N-2) with the highest scores.
    const std::vector<double> s = ev::depass_token_scores(m, t, r.target);
    std::vector<std::pair<double, int>> cand;
    for (int j = 1; j <= N - 2; ++j) cand.push_back({s[j], j});
    std::sort(cand.begin(), cand.end(), [](auto& a, auto& b) { return a.first > b.first; });
    std::vector<int> del = ids, keep{ids[0]};
    const int j1 = std::min(cand[0].second, cand[1].second), j2 = std::max(cand[0].second, cand[1].second);
    del.erase(del.begin() + j2);
    del.erase(del.begin() + j1);
    keep.push_back(ids[j1]);
    keep.push_back(ids[j2]);
    keep.push_back(ids.back());
    const double pd = ev::target_probability(m, del, r.target),
                 pk = ev::target_probability(m, keep, r.target);
    CHECK(r.deletion[0][0] == Approx(std::min(100.0, std::abs(pc - pd) / pc * 100)));
    CHECK(r.keeping[0][0] == Approx(std::min(100.0, std::abs(pc - pk) / pc * 100)));

    // At 100% every method deletes (keeps) the same tokens.
    const double p_all_deleted = ev::target_probability(m, {ids.front(), ids.back()}, r.target);
    for (size_t k = 0; k < opt.methods.size(); ++k) {
        CHECK(r.deletion[k].back() == Approx(std::min(100.0, std::abs(pc - p_all_deleted) / pc * 100)));
        CHECK(r.keeping[k].back() == Approx(0.0).margin(1e-9));
        CHECK(r.deletion_area[k] ==
              Approx(ev::curve_area({10, 20, 30, 40, 50, 60, 70, 80, 90, 100}, r.deletion[k])));
    }
    // The random baseline is seeded: the same prompt index gives the same curve.
    const ev::PromptTokenResult again = ev::token_faithfulness(m, ids, opt, 0);
    CHECK(again.deletion[2] == r.deletion[2]);
    CHECK_THROWS_AS(ev::token_faithfulness(m, std::vector<int>{1, 5}, opt, 0), Error);
}

// ---- zeroing units and the forward from a layer ------------------------------------------------

TEST_CASE("zeroing a neuron's W_down column removes exactly a[:, i] W_down[:, i] from h[l+1]", "[eval]") {
    const Model<double>& m = model_f64();
    const std::vector<int> ids = greedy_ids(m, 12);
    const Trace<double> t = forward(m, ids);
    const int L = m.cfg.L;
    for (auto [l, i] : {std::pair{0, 0}, std::pair{2, 17}, std::pair{L - 1, m.cfg.I - 1}}) {
        INFO("layer " << l << " neuron " << i);
        Model<double> z = m;
        ev::zero_neuron(z, l, i);
        CHECK(z.w.layers[l].w_down.col(i).isZero(0));
        CHECK(z.w.layers[l].w_down.col((i + 1) % m.cfg.I) == m.w.layers[l].w_down.col((i + 1) % m.cfg.I));
        const Trace<double> tz = forward(z, ids);
        for (int j = 0; j <= l; ++j) CHECK(tz.h[j] == t.h[j]);  // nothing before changes
        CHECK(tz.layers[l].mlp_act == t.layers[l].mlp_act);     // the activation itself is intact
        const Mat<double> removed = t.layers[l].mlp_act.col(i) * m.w.layers[l].w_down.col(i).transpose();
        CHECK(max_abs(tz.h[l + 1] - (t.h[l + 1] - removed)) <=
              tolerance::golden_f64_exact_rel * max_abs(t.h[l + 1]));
        CHECK(max_abs(removed) > 0);
        // The ablation path of neuron_speed: the later blocks from the edited h[l+1].
        const Mat<double> hL = forward_blocks(m, Mat<double>(t.h[l + 1] - removed), l + 1);
        CHECK(max_abs(hL - tz.h[L]) <= tolerance::golden_f64_exact_rel * max_abs(tz.h[L]));
        ev::restore_unit(z, m, ev::UnitKind::Neuron, l, i);
        CHECK(z.w.layers[l].w_down == m.w.layers[l].w_down);
    }
    Model<double> z = m;
    CHECK_THROWS_AS(ev::zero_neuron(z, L, 0), Error);
    CHECK_THROWS_AS(ev::zero_head(z, 0, m.cfg.H), Error);
}

TEST_CASE("zeroing a head's W_O columns removes exactly its output from m[l]", "[eval]") {
    const Model<double>& m = model_f64();
    const std::vector<int> ids = greedy_ids(m, 10);
    const Trace<double> t = forward(m, ids);
    const int Dh = m.cfg.Dh;
    for (auto [l, h] : {std::pair{0, 3}, std::pair{m.cfg.L - 1, m.cfg.H - 1}}) {
        INFO("layer " << l << " head " << h);
        Model<double> z = m;
        ev::zero_head(z, l, h);
        const Trace<double> tz = forward(z, ids);
        CHECK(tz.h[l] == t.h[l]);
        CHECK(tz.layers[l].probs[h] == t.layers[l].probs[h]);  // Q, K untouched
        // head output = (sum_k A_h[., k] v_h[k]) W_O[:, h cols]^T, from the recorded context
        const Mat<double> head = t.layers[l].attn_ctx.middleCols(long(h) * Dh, Dh) *
                                 m.w.layers[l].wo.middleCols(long(h) * Dh, Dh).transpose();
        CHECK(max_abs(tz.layers[l].m - (t.layers[l].m - head)) <=
              tolerance::golden_f64_exact_rel * max_abs(t.layers[l].m));
        // The magnitude baseline is the norm of that output at the last position.
        const std::vector<double> mag = ev::magnitude_unit_scores(m, t, ev::UnitKind::Head);
        CHECK(mag[size_t(l) * m.cfg.H + h] == Approx(head.row(t.N() - 1).norm()));
    }
}

TEST_CASE("forward_blocks from any layer reproduces the recorded forward", "[eval]") {
    const Model<double>& m = model_f64();
    const std::vector<int> ids = greedy_ids(m, 9);
    const Trace<double> t = forward(m, ids);
    const int L = m.cfg.L, N = t.N();
    for (int l = 0; l <= L; ++l) {
        INFO("from layer " << l);
        const Mat<double> hL = forward_blocks(m, t.h[l], l);
        CHECK(max_abs(hL - t.h[L]) <= tolerance::golden_f64_exact_rel * max_abs(t.h[L]));
    }
    for (int v : {0, 7, 300})
        CHECK(ev::last_target_logit(m, t.h[L], v) ==
              Approx(t.logits(N - 1, v)).margin(tolerance::golden_f64_exact_rel * max_abs(t.logits)));
}

TEST_CASE("neuron_speed: last-layer scores and effects against closed forms; naive ablation agrees",
          "[eval]") {
    const Model<double>& m = model_f64();
    const std::vector<int> ids = greedy_ids(m, 8);
    const ev::NeuronSpeedResult r = ev::neuron_speed(m, ids, true, 0.1, 20);
    const Trace<double> t = forward(m, ids);
    const int L = m.cfg.L, I = m.cfg.I, N = t.N(), l = L - 1;
    REQUIRE(r.depass_scores.size() == size_t(L) * I);
    const Vec<double> u =
        m.w.normf_g.cwiseProduct(m.w.unembedding().row(r.target).transpose());  // g * W_U[t]
    const double inv = t.normf.inv[N - 1];
    double worst_score = 0, worst_effect = 0;
    for (int i = 0; i < I; ++i) {
        const Vec<double> w = m.w.layers[l].w_down.col(i);
        const double a = t.layers[l].mlp_act(N - 1, i);
        // The last layer's neurons meet only the frozen final norm: score = a * inv * (g * W_U[t]) . w
        worst_score =
            std::max(worst_score, std::abs(r.depass_scores[size_t(l) * I + i] - a * inv * u.dot(w)));
        // Ablation re-normalises: effect = logit(h) - logit(h - a w) with the norm recomputed.
        const Vec<double> h = t.h[L].row(N - 1).transpose(), hz = h - a * w;
        const double rz = 1.0 / std::sqrt(hz.squaredNorm() / m.cfg.D + m.cfg.norm_eps);
        const double r0 = 1.0 / std::sqrt(h.squaredNorm() / m.cfg.D + m.cfg.norm_eps);
        worst_effect = std::max(
            worst_effect, std::abs(r.ablation_effects[size_t(l) * I + i] - (u.dot(h) * r0 - u.dot(hz) * rz)));
    }
    const double scale = std::abs(r.target_logit);
    CHECK(worst_score <= tolerance::spec_f64_rel * scale);
    CHECK(worst_effect <= tolerance::spec_f64_rel * scale);
    CHECK(r.naive_sample == 20);
    CHECK(r.naive_max_effect_diff <= tolerance::spec_f64_rel * scale);
    CHECK(r.spearman == Approx(ev::spearman(r.depass_scores, r.ablation_effects)));
    CHECK(r.spearman > 0.2);  // the scores track the measured effects
    CHECK(r.depass_seconds >= r.forward_seconds);
    CHECK(r.ablation_seconds >= r.forward_seconds);
}

// ---- gradient baselines --------------------------------------------------------------------------

namespace {

// Five-point central difference of a scalar function of t at 0.
double fd5(const std::function<double(double)>& f) {
    const double h = tolerance::gradient_fd_step;
    return (8 * (f(h) - f(-h)) - (f(2 * h) - f(-2 * h))) / (12 * h);
}

}  // namespace

TEST_CASE("integrated gradients: the completeness gap vanishes as the steps grow", "[eval][gradients]") {
    // A GPT-2-like random model: the baseline keeps the learned positions, so h[0] never
    // reaches 0 on the path and f(alpha) is smooth. (With no positions the path ends at
    // h[0] = 0, where every norm divides by sqrt(eps): see docs/results.md, "Gradient baselines".)
    Config c;
    c.model_type = "gpt2";
    c.D = 32;
    c.I = 48;
    c.L = 2;
    c.H = c.Hkv = 4;
    c.Dh = 8;
    c.V = 50;
    c.max_positions = 64;
    c.norm = NormKind::LayerNorm;
    c.mlp = MlpKind::GeluMLP;
    c.act = Activation::GeluTanh;
    c.rope = RopeStyle::None;
    c.learned_positions = c.qkv_bias = c.o_bias = c.mlp_bias = c.tied_embeddings = true;
    const Model<double> m = random_model<double>(c, 4242);
    const std::vector<int> ids{1, 17, 3, 44, 9, 23, 31, 5};
    const Trace<double> t = forward(m, ids);
    const int N = t.N();
    Eigen::Index best;
    t.logits.row(N - 1).maxCoeff(&best);
    const int target = int(best);
    const ev::IntegratedGradientsResult ig40 = ev::integrated_gradients(m, ids, target, 40);
    const ev::IntegratedGradientsResult ig400 = ev::integrated_gradients(m, ids, target, 400);
    // f at the input is the recorded forward's log-probability; f(0) is the model with every
    // token embedding zeroed and the positions kept.
    CHECK(ig40.f_x == Approx(target_log_prob(t, N - 1, target)).epsilon(1e-12));
    const double f0 = log_prob_from_embeddings(m, Mat<double>(m.w.pos_emb.topRows(N)), ids, N - 1, target);
    CHECK(ig40.f_0 == Approx(f0).epsilon(1e-12));
    double sum = 0;
    for (double v : ig400.scores) sum += v;
    CHECK(ig400.sum == Approx(sum));
    // The midpoint rule's error falls as 1/S^2 (once S resolves the path: from about 40 steps
    // here): 10x more steps, ~100x smaller gap. Ask for 50x.
    INFO("gap at 40 steps " << ig40.gap() << ", at 400 steps " << ig400.gap() << ", f(x) - f(0) "
                            << ig40.f_x - ig40.f_0);
    CHECK(std::abs(ig40.gap()) > 0);
    CHECK(std::abs(ig400.gap()) < std::abs(ig40.gap()) / 50);
    CHECK(std::abs(ig400.gap()) < 1e-4 * std::abs(ig400.f_x - ig400.f_0));
    CHECK_THROWS_AS(ev::integrated_gradients(m, ids, target, 0), Error);
}

TEST_CASE("input x gradient and gradient norm against finite differences of the model", "[eval][gradients]") {
    const Model<double>& m = model_f64();
    const std::vector<int> ids = greedy_ids(m, 9);
    const Trace<double> t = forward(m, ids);
    const int N = t.N(), target = 300;
    const std::vector<double> ixg = ev::input_x_gradient_scores(m, t, target);
    const std::vector<double> gn = ev::gradient_norm_scores(m, t, target);
    const Gradients<double> g = backward(m, t, N - 1, target);
    for (int j = 0; j < N; ++j) {
        INFO("token " << j);
        // x_j . g_j = d/ds f(h0 with row j scaled by 1 + s) at s = 0
        const double fd = fd5([&](double s) {
            Mat<double> h0 = t.h[0];
            h0.row(j) *= 1 + s;
            return log_prob_from_embeddings(m, h0, ids, N - 1, target);
        });
        CHECK(std::abs(ixg[j] - fd) <= tolerance::gradient_fd_rel * std::max(std::abs(fd), 1e-6));
        CHECK(gn[j] == Approx(g.h0.row(j).norm()).epsilon(1e-14));
    }
}

TEST_CASE("input x gradient with learned positions: only the token embedding is the input",
          "[eval][gradients]") {
    // GPT-2: h0[j] = E[ids[j]] + P[j] and x_j = E[ids[j]], so x_j . g_j is the derivative of f
    // when the token part of row j alone is scaled: h0[j] = (1 + s) E[ids[j]] + P[j].
    const Model<double> m = random_model<double>(depass_test::tiny_config(depass_test::TinyArch::Gpt2), 4242);
    const std::vector<int> ids{3, 17, 5, 41, 8, 22, 9};
    const Trace<double> t = forward(m, ids);
    const int N = t.N(), target = 11;
    const Mat<double> x = token_embeddings(m, ids);
    REQUIRE((t.h[0] - x).cwiseAbs().maxCoeff() > 0.1);  // the positions are really there
    const std::vector<double> ixg = ev::input_x_gradient_scores(m, t, target);
    for (int j = 0; j < N; ++j) {
        INFO("token " << j);
        const double fd = fd5([&](double s) {
            Mat<double> h0 = t.h[0];
            h0.row(j) += s * x.row(j);
            return log_prob_from_embeddings(m, h0, ids, N - 1, target);
        });
        CHECK(std::abs(ixg[j] - fd) <= tolerance::gradient_fd_rel * std::max(std::abs(fd), 1e-6));
    }
}

TEST_CASE("AtP: the first-order effect of zeroing, against finite differences on scaled weights",
          "[eval][gradients]") {
    const Model<double>& m = model_f64();
    const std::vector<int> ids = greedy_ids(m, 11);
    const Trace<double> t = forward(m, ids);
    const int N = t.N(), L = m.cfg.L, Dh = m.cfg.Dh;
    Eigen::Index best;
    t.logits.row(N - 1).maxCoeff(&best);
    const int target = int(best);
    // Scaling a head's W_O columns (a neuron's W_down column) by 1 - s scales its output at every
    // position: s = 1 is the zeroing of unit_eval, and d f / d s at s = 0 is the AtP estimate.
    for (ev::UnitKind kind : {ev::UnitKind::Head, ev::UnitKind::Neuron}) {
        const int U = ev::units_per_layer(m.cfg, kind);
        const std::vector<double> atp = ev::atp_unit_scores(m, t, kind, target);
        REQUIRE(atp.size() == size_t(L) * U);
        for (auto [l, u] : {std::pair{0, 1}, std::pair{2, U / 2}, std::pair{L - 1, U - 1}}) {
            INFO(ev::unit_name(kind) << " layer " << l << " unit " << u);
            const double fd = fd5([&](double s) {
                Model<double> z = m;
                if (kind == ev::UnitKind::Head)
                    z.w.layers[l].wo.middleCols(long(u) * Dh, Dh) *= 1 - s;
                else
                    z.w.layers[l].w_down.col(u) *= 1 - s;
                return target_log_prob(forward(z, ids), N - 1, target);
            });
            const double scale = *std::max_element(atp.begin(), atp.end());
            CHECK(std::abs(atp[size_t(l) * U + u] - std::abs(fd)) <=
                  tolerance::gradient_fd_rel * std::max(std::abs(fd), tolerance::gradient_fd_floor * scale));
        }
    }
}

TEST_CASE("unit_eval: rows, counts and ranges on two prompts", "[eval]") {
    const Model<double>& m = model_f64();
    const std::vector<std::vector<int>> prompts{greedy_ids(m, 9), greedy_ids(m, 6)};
    ev::UnitEvalOptions opt;
    opt.random_draws = 2;
    for (ev::UnitKind kind : {ev::UnitKind::Head, ev::UnitKind::Neuron}) {
        const ev::UnitEvalSummary s = ev::unit_eval(m, prompts, kind, opt);
        const int total = m.cfg.L * ev::units_per_layer(m.cfg, kind);
        CHECK(s.total_units == total);
        REQUIRE(s.rows.size() == opt.methods.size() * 2 * opt.fractions.size());
        CHECK(s.rows[0].k == std::max(1, int(std::floor(0.01 * total + 1e-9))));
        CHECK(s.rows[2].k == int(std::floor(0.10 * total + 1e-9)));
        for (const ev::UnitEvalRow& r : s.rows) {
            CHECK(r.survival >= 0);
            CHECK(r.survival <= 100);
        }
        // Zeroing the units that push the target up most must lower its probability.
        CHECK(s.rows[2].mean_drop > 0);
    }
    CHECK(ev::zeroed_count(0.05, 40) == 2);
    CHECK(ev::zeroed_count(0.01, 40) == 1);
    CHECK(ev::zeroed_count(0.10, 860) == 86);
}

TEST_CASE("svg charts are well formed", "[eval]") {
    const std::string line =
        ev::svg_line_chart("a < b & c", "x", "y", {{"s1", {10, 100}, {0, 50}}}, 10, 100, 0, 100);
    CHECK(line.rfind("<svg", 0) == 0);
    CHECK(line.find("a &lt; b &amp; c") != std::string::npos);
    CHECK(line.find("<polyline") != std::string::npos);
    const std::string bars =
        ev::svg_bar_chart("t", "s", {"a", "b"}, {{"g1", {1, 100}}, {"g2", {0.5, 20}}}, true, "%.1f");
    CHECK(bars.find("<rect") != std::string::npos);
    CHECK_THROWS_AS(ev::svg_bar_chart("t", "s", {"a"}, {{"g", {0.0}}}, true, "%g"), Error);
    CHECK_THROWS_AS(ev::svg_bar_chart("t", "s", {"a", "b"}, {{"g", {1.0}}}, false, "%g"), Error);
}

// ---- the command line, end to end ------------------------------------------------------------------

TEST_CASE("depass eval: every command on three prompts writes files that parse", "[eval][cli]") {
    const std::string dir = depass_test::temp_dir() + "/eval";
    fs::create_directories(dir);
    const std::string prompts = dir + "/three.txt";
    {
        std::ofstream f(prompts);
        f << "# three prompts\nOnce upon a time, there was a little girl named\n\nThe cat was very hungry. "
             "It looked for some\n"
          << "Tim and Sue found a box under the bed. Inside the box was a\nThis line is beyond --limit 3\n";
    }
    const std::string base =
        " -m " + q(model_path()) + " --quiet --prompts " + q(prompts) + " --limit 3 --out " + q(dir);
    std::string log;

    REQUIRE(run_cli("eval tokens" + base + " --draws 2 --ig-steps 30", &log) == 0);
    const nlohmann::json tj = nlohmann::json::parse(read_text_file(dir + "/tokens_summary.json"));
    CHECK(tj.at("prompts").get<int>() == 3);
    CHECK(tj.at("integrated_gradients").at("steps").get<int>() == 30);
    CHECK(tj.at("integrated_gradients").at("completeness_gap_max_abs").get<double>() >= 0);
    for (const std::string name :
         {"depass", "random", "attn_last", "attn_mean", "rollout", "embed_norm", "occlusion",
          "integrated_gradients", "input_x_gradient", "gradient_norm"}) {
        INFO(name);
        const auto& e = tj.at("methods").at(name);
        CHECK(e.at("deletion_curve").size() == 10);
        const double da = e.at("deletion_area").get<double>(), ka = e.at("keeping_area").get<double>();
        CHECK((da >= 0 && da <= 100));
        CHECK((ka >= 0 && ka <= 100));
        // at 100% all methods delete every candidate token: the same score
        CHECK(e.at("deletion_curve")[9].get<double>() ==
              Approx(tj.at("methods").at("depass").at("deletion_curve")[9].get<double>()));
        CHECK(e.at("keeping_curve")[9].get<double>() == Approx(0.0).margin(1e-6));
    }
    const auto curves = read_csv(dir + "/tokens_curves.csv");
    CHECK(curves.size() == 1 + 10 * 2 * 10);
    CHECK(curves[0] == std::vector<std::string>{"method", "mode", "percent", "mean_score"});
    const auto per_prompt = read_csv(dir + "/tokens_per_prompt.csv");
    REQUIRE(per_prompt.size() == 1 + 3 * 10);
    REQUIRE(per_prompt[0].size() == 12);
    CHECK(per_prompt[0][11] == "ig_completeness_gap");
    for (size_t i = 1; i < per_prompt.size(); ++i)
        CHECK(!per_prompt[i][11].empty());  // IG ran on every prompt
    CHECK(is_svg(dir + "/tokens_deletion.svg"));
    CHECK(is_svg(dir + "/tokens_keeping.svg"));

    for (const std::string unit : {"heads", "neurons"}) {
        INFO(unit);
        REQUIRE(run_cli("eval " + unit + base + " --draws 2", &log) == 0);
        const nlohmann::json uj = nlohmann::json::parse(read_text_file(dir + "/" + unit + ".json"));
        CHECK(uj.at("prompts").get<int>() == 3);
        CHECK(uj.at("rows").size() == 5 * 2 * 3);
        const auto rows = read_csv(dir + "/" + unit + ".csv");
        CHECK(rows.size() == 1 + 5 * 2 * 3);
        CHECK(rows.back()[0] == "atp");
        CHECK(is_svg(dir + "/" + unit + "_drop.svg"));
        CHECK(is_svg(dir + "/" + unit + "_survival.svg"));
    }

    const std::string js = dir + "/speed.json";
    REQUIRE(run_cli("eval neurons-speed -m " + q(model_path()) + " --quiet --n 12 --naive-sample 8 --json " +
                        q(js) + " --csv " + q(dir + "/speed_neurons.csv") + " --svg " +
                        q(dir + "/speed_scatter.svg"),
                    &log) == 0);
    const nlohmann::json sj = nlohmann::json::parse(read_text_file(js));
    for (const char* key : {"depass_seconds", "ablation_seconds", "speedup", "spearman"})
        CHECK(sj.contains(key));
    CHECK(sj.at("N").get<int>() == 12);
    CHECK(sj.at("speedup").get<double>() ==
          Approx(sj.at("ablation_seconds").get<double>() / sj.at("depass_seconds").get<double>()));
    CHECK(std::abs(sj.at("spearman").get<double>()) <= 1.0);
    CHECK(read_csv(dir + "/speed_neurons.csv").size() == 1 + 5 * 172);
    CHECK(is_svg(dir + "/speed_scatter.svg"));
    REQUIRE(run_cli("eval speed-plot --quiet --json " + q(js) + " " + q(js) + " --out " + q(dir), &log) == 0);
    CHECK(read_csv(dir + "/speed.csv").size() == 3);
    CHECK(is_svg(dir + "/speed.svg"));

    const std::string cj = dir + "/cost.json";
    REQUIRE(run_cli("eval cost -m " + q(model_path()) + " --quiet --prompts " + q(prompts) +
                        " --limit 2 --ig-steps 10 --json " + q(cj),
                    &log) == 0);
    const nlohmann::json cost = nlohmann::json::parse(read_text_file(cj));
    CHECK(cost.at("prompts").get<int>() == 2);
    CHECK(cost.at("per_prompt").size() == 2);
    for (const char* key : {"depass_seconds_per_prompt", "integrated_gradients_seconds_per_prompt",
                            "input_x_gradient_seconds_per_prompt"})
        CHECK(cost.at(key).get<double>() > 0);
    CHECK(cost.at("ratio_integrated_gradients_to_depass").get<double>() ==
          Approx(cost.at("integrated_gradients_seconds_per_prompt").get<double>() /
                 cost.at("depass_seconds_per_prompt").get<double>()));
    CHECK(run_cli("eval cost -m " + q(model_path()) + " --quiet --n 8 --prompts " + q(prompts), &log) == 2);

    const std::string sampled = dir + "/sampled.txt";
    REQUIRE(run_cli("eval prompts -m " + q(model_path()) + " --quiet --count 4 --seed 3 --out " + q(sampled),
                    &log) == 0);
    const std::vector<std::string> lines = ev::read_prompt_file(sampled);
    CHECK((lines.size() >= 1 && lines.size() <= 4));
    for (const std::string& l : lines) CHECK(l.find('\n') == std::string::npos);
}

TEST_CASE("depass eval: bad input exits 1 (runtime) or 2 (usage) with one line", "[eval][cli]") {
    const std::string dir = depass_test::temp_dir() + "/eval_bad";
    std::string log;
    CHECK(run_cli("eval tokens -m " + q(model_path()) + " --prompts /nonexistent/p.txt --out " + q(dir),
                  &log) == 1);
    CHECK(log.find("/nonexistent/p.txt") != std::string::npos);
    CHECK(run_cli("eval heads -m " + q(model_path()) + " --prompts " +
                      q(depass_test::source_dir() + "/data/prompts/handwritten.txt") +
                      " --fractions 0 --out " + q(dir),
                  &log) == 2);
    CHECK(run_cli("eval neurons-speed --random stories15M -m " + q(model_path()) + " --n 4", &log) == 2);
    CHECK(run_cli("eval neurons-speed -m " + q(model_path()), &log) == 2);
}
