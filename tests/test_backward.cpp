// Gradients: every `<op>_backward` (src/ops) and the model-level backward (src/model/backward.cpp)
// against independent five-point central finite differences in double, on every coordinate,
// plus exact identities (gradient . input = degree * f for homogeneous functions, invariances).
//
// The finite differences only ever call the FORWARD ops, so a wrong backward cannot agree
// with them by construction. Tolerances: include/depass/tolerance.hpp (gradient_fd_*).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>

#include "depass/backward.hpp"
#include "depass/ops.hpp"
#include "depass/tolerance.hpp"
#include "test_support.hpp"

using namespace depass;

namespace {

Mat<double> randn(long r, long c, std::mt19937_64& rng, double s = 1.0) {
    std::normal_distribution<double> nd(0.0, s);
    Mat<double> m(r, c);
    for (long i = 0; i < m.size(); ++i) m.data()[i] = nd(rng);
    return m;
}
Vec<double> randv(long n, std::mt19937_64& rng, double s = 1.0) { return randn(n, 1, rng, s); }

// <W, Y> = sum_ij W_ij Y_ij: a random linear read-out turns an op's output into a scalar f
// whose gradient with respect to the output is W.
double inner(const Mat<double>& W, const Mat<double>& Y) { return W.cwiseProduct(Y).sum(); }

// Five-point central difference of f at x along coordinate i of a matrix (x is restored).
double fd5(Mat<double>& x, long i, const std::function<double()>& f) {
    const double h = tolerance::gradient_fd_step, x0 = x.data()[i];
    auto at = [&](double d) {
        x.data()[i] = x0 + d;
        return f();
    };
    const double fp1 = at(h), fm1 = at(-h), fp2 = at(2 * h), fm2 = at(-2 * h);
    x.data()[i] = x0;
    return (8 * (fp1 - fm1) - (fp2 - fm2)) / (12 * h);
}

// Worst |g - fd| / max(|fd|, floor * max|fd|) over every coordinate of x (see tolerance.hpp).
struct FdCheck {
    double worst = 0;
    long worst_index = -1;
    double worst_g = 0, worst_fd = 0;
    long checked = 0;
};

FdCheck check_fd(Mat<double>& x, const Mat<double>& g, const std::function<double()>& f) {
    REQUIRE(g.rows() == x.rows());
    REQUIRE(g.cols() == x.cols());
    std::vector<double> fd(size_t(x.size()));
    double mx = 0;
    for (long i = 0; i < x.size(); ++i) {
        fd[size_t(i)] = fd5(x, i, f);
        mx = std::max(mx, std::abs(fd[size_t(i)]));
    }
    FdCheck c;
    const double floor = tolerance::gradient_fd_floor * mx;
    for (long i = 0; i < x.size(); ++i) {
        const double e =
            std::abs(g.data()[i] - fd[size_t(i)]) / std::max({std::abs(fd[size_t(i)]), floor, 1e-300});
        if (!(e <= c.worst)) {
            c.worst = e;
            c.worst_index = i;
            c.worst_g = g.data()[i];
            c.worst_fd = fd[size_t(i)];
        }
    }
    c.checked = long(x.size());
    return c;
}

#define CHECK_FD(name, check)                                                                          \
    do {                                                                                               \
        const FdCheck c_ = (check);                                                                    \
        INFO(name << ": worst relative error " << c_.worst << " at coordinate " << c_.worst_index      \
                  << " (gradient " << c_.worst_g << ", finite difference " << c_.worst_fd << ") over " \
                  << c_.checked);                                                                      \
        CHECK(c_.worst <= tolerance::gradient_fd_rel);                                                 \
    } while (0)

}  // namespace

// ---- one op at a time ------------------------------------------------------------------------

TEST_CASE("linear_backward: dx, dW, db against finite differences; degree-1 identities", "[backward]") {
    std::mt19937_64 rng(11);
    Mat<double> x = randn(5, 7, rng), W = randn(6, 7, rng);
    Mat<double> bm = randn(6, 1, rng);
    const Mat<double> R = randn(5, 6, rng);
    auto f = [&] { return inner(R, linear(x, W, Vec<double>(bm))); };
    Mat<double> dW;
    Vec<double> db;
    const Mat<double> dx = linear_backward(x, W, R, &dW, &db);
    CHECK_FD("dx", check_fd(x, dx, f));
    CHECK_FD("dW", check_fd(W, dW, f));
    CHECK_FD("db", check_fd(bm, Mat<double>(db), f));
    // Without the bias f is linear in x and in W: dx . x = f = dW . W.
    const double f0 = inner(R, linear(x, W, Vec<double>()));
    CHECK(std::abs(dx.cwiseProduct(x).sum() - f0) <=
          tolerance::gradient_identity_rel * dx.cwiseAbs().cwiseProduct(x.cwiseAbs()).sum());
    CHECK(std::abs(dW.cwiseProduct(W).sum() - f0) <=
          tolerance::gradient_identity_rel * dW.cwiseAbs().cwiseProduct(W.cwiseAbs()).sum());
    CHECK_THROWS_AS(linear_backward(x, W, Mat<double>(randn(5, 5, rng))), Error);
}

TEST_CASE("rms_norm_backward and layer_norm_backward against finite differences; invariances", "[backward]") {
    std::mt19937_64 rng(12);
    for (double eps : {1e-5, 0.0}) {
        INFO("eps " << eps);
        Mat<double> x = randn(4, 9, rng);
        const Vec<double> g = randv(9, rng), b = randv(9, rng);
        const Mat<double> R = randn(4, 9, rng);
        const Mat<double> drms = rms_norm_backward(x, g, eps, R);
        CHECK_FD("rms_norm dx", check_fd(x, drms, [&] { return inner(R, rms_norm(x, g, eps)); }));
        const Mat<double> dln = layer_norm_backward(x, g, eps, R);
        CHECK_FD("layer_norm dx", check_fd(x, dln, [&] { return inner(R, layer_norm(x, g, b, eps)); }));
        for (long n = 0; n < x.rows(); ++n) {
            const double size = drms.row(n).cwiseAbs().dot(x.row(n).cwiseAbs());
            // LayerNorm ignores a constant added to a row: its gradient sums to 0 per row.
            CHECK(std::abs(dln.row(n).sum()) <=
                  tolerance::gradient_identity_rel * dln.row(n).cwiseAbs().sum());
            if (eps == 0) {
                // Homogeneous of degree 0 in the row: dx . x = 0 * f = 0 (Euler).
                CHECK(std::abs(drms.row(n).dot(x.row(n))) <= tolerance::gradient_identity_rel * size);
                CHECK(std::abs(dln.row(n).dot(x.row(n))) <=
                      tolerance::gradient_identity_rel * dln.row(n).cwiseAbs().dot(x.row(n).cwiseAbs()));
            }
        }
    }
}

TEST_CASE("rope_backward: finite differences in both layouts; it inverts the rotation", "[backward]") {
    std::mt19937_64 rng(13);
    const std::vector<double> f = rope_inv_freq(8, 10000.0);
    for (RopeStyle style : {RopeStyle::Interleaved, RopeStyle::Half}) {
        for (int pos0 : {0, 5}) {
            INFO("style " << int(style) << " pos0 " << pos0);
            Mat<double> x = randn(6, 3 * 8, rng);
            const Mat<double> R = randn(6, 3 * 8, rng);
            Mat<double> dx = R;
            rope_backward(dx, 3, 8, style, f, pos0);
            CHECK_FD("rope dx", check_fd(x, dx, [&] {
                         Mat<double> y = x;
                         rope(y, 3, 8, style, f, pos0);
                         return inner(R, y);
                     }));
            // A rotation's transpose is its inverse: rope_backward(rope(x)) = x.
            Mat<double> y = x;
            rope(y, 3, 8, style, f, pos0);
            rope_backward(y, 3, 8, style, f, pos0);
            CHECK((y - x).cwiseAbs().maxCoeff() <=
                  tolerance::gradient_identity_rel * x.cwiseAbs().maxCoeff());
        }
    }
}

TEST_CASE("attention_backward: dq, dk, dv with grouped KV heads against finite differences", "[backward]") {
    std::mt19937_64 rng(14);
    for (int Hkv : {4, 2, 1}) {
        INFO("H 4, Hkv " << Hkv);
        const int H = 4, Dh = 5, N = 6;
        Mat<double> q = randn(N, H * Dh, rng), k = randn(N, Hkv * Dh, rng), v = randn(N, Hkv * Dh, rng);
        const Mat<double> R = randn(N, H * Dh, rng);
        std::vector<Mat<double>> probs;
        attention(q, k, v, H, Hkv, Dh, &probs);
        Mat<double> dq, dk, dv;
        attention_backward(q, k, v, probs, R, H, Hkv, Dh, dq, dk, dv);
        auto f = [&] { return inner(R, attention(q, k, v, H, Hkv, Dh)); };
        CHECK_FD("dq", check_fd(q, dq, f));
        CHECK_FD("dk", check_fd(k, dk, f));
        CHECK_FD("dv", check_fd(v, dv, f));
        // Linear (degree 1) in the values: dv . v = f.
        CHECK(std::abs(dv.cwiseProduct(v).sum() - f()) <=
              tolerance::gradient_identity_rel * dv.cwiseAbs().cwiseProduct(v.cwiseAbs()).sum());
        // Softmax ignores a constant added to a row of scores. Adding one vector u to every key of
        // a KV group adds q_h[i] . u / sqrt(Dh) to the whole row i: f does not change, so
        // sum_j dk[j] . u = 0 for every u, i.e. dk sums to 0 over the positions.
        for (int g = 0; g < Hkv; ++g)
            for (int d = 0; d < Dh; ++d)
                CHECK(std::abs(dk.col(long(g) * Dh + d).sum()) <=
                      tolerance::gradient_identity_rel * 10 * dk.col(long(g) * Dh + d).cwiseAbs().sum() +
                          1e-15);
    }
}

TEST_CASE("MLP backward: SwiGLU and GELU dx and the activation gradient against finite differences",
          "[backward]") {
    std::mt19937_64 rng(15);
    const int N = 4, D = 6, I = 10;
    Mat<double> x = randn(N, D, rng);
    const Mat<double> wg = randn(I, D, rng), wu = randn(I, D, rng), wd = randn(D, I, rng);
    const Vec<double> b1 = randv(I, rng), b2 = randv(D, rng);
    const Mat<double> R = randn(N, D, rng);
    {
        Mat<double> pre, up, act;
        swiglu_mlp(x, wg, wu, wd, &pre, &up, &act);
        Mat<double> dact;
        const Mat<double> dx = swiglu_mlp_backward(wg, wu, wd, pre, up, R, &dact);
        CHECK_FD("swiglu dx", check_fd(x, dx, [&] { return inner(R, swiglu_mlp(x, wg, wu, wd)); }));
        CHECK_FD("swiglu da", check_fd(act, dact, [&] { return inner(R, linear(act, wd, Vec<double>())); }));
    }
    {
        Mat<double> pre, act;
        gelu_mlp(x, wu, b1, wd, b2, &pre, &act);
        Mat<double> dact;
        const Mat<double> dx = gelu_mlp_backward(wu, wd, pre, R, &dact);
        CHECK_FD("gelu dx", check_fd(x, dx, [&] { return inner(R, gelu_mlp(x, wu, b1, wd, b2)); }));
        CHECK_FD("gelu da", check_fd(act, dact, [&] { return inner(R, linear(act, wd, b2)); }));
    }
    // The activation derivatives alone, over a range of inputs.
    for (Activation a : {Activation::SiLU, Activation::GeluTanh}) {
        Mat<double> p(1, 1);
        for (double v = -6; v <= 6; v += 0.25) {
            p(0, 0) = v;
            const double d = act_derivative(a, v);
            const double fd =
                fd5(p, 0, [&] { return a == Activation::SiLU ? silu(p(0, 0)) : gelu_tanh(p(0, 0)); });
            CHECK(std::abs(d - fd) <= tolerance::gradient_fd_rel * std::max(std::abs(fd), 1e-3));
        }
    }
}

TEST_CASE("embedding, unembedding and log-softmax backward", "[backward]") {
    std::mt19937_64 rng(16);
    const int V = 9, D = 5;
    Mat<double> E = randn(V, D, rng), P = randn(8, D, rng);
    const std::vector<int> ids{1, 4, 4, 0, 8, 4};  // a repeated token collects every row's gradient
    const Mat<double> R = randn(6, D, rng);
    const Mat<double> dE = embed_backward(R, ids, V);
    CHECK_FD("embed dE", check_fd(E, dE, [&] { return inner(R, embed(E, P, ids)); }));
    CHECK_THROWS_AS(embed_backward(R, std::vector<int>{1, 2, 3, 4, 5, 9}, V), Error);

    Mat<double> x = randn(3, D, rng);
    const Mat<double> RL = randn(3, V, rng);
    const Mat<double> dx = unembed_backward(RL, E);
    CHECK_FD("unembed dx", check_fd(x, dx, [&] { return inner(RL, unembed(x, E)); }));
    CHECK(std::abs(dx.cwiseProduct(x).sum() - inner(RL, unembed(x, E))) <=
          tolerance::gradient_identity_rel * dx.cwiseAbs().cwiseProduct(x.cwiseAbs()).sum());  // degree 1

    Trace<double> t;
    t.logits = randn(3, V, rng, 3.0);
    const Vec<double> dl = log_softmax_backward(t.logits, 1, 7);
    Mat<double> dlm = Mat<double>::Zero(3, V);
    dlm.row(1) = dl.transpose();
    CHECK_FD("log_softmax", check_fd(t.logits, dlm, [&] { return target_log_prob(t, 1, 7); }));
    CHECK(std::abs(dl.sum()) <= tolerance::gradient_identity_rel);  // shift invariance: sum_v df/dl_v = 0
    CHECK_THROWS_AS(log_softmax_backward(t.logits, 3, 0), Error);
    CHECK_THROWS_AS(target_log_prob(t, 0, V), Error);
}

// ---- the whole model -----------------------------------------------------------------------------

namespace {

using TArch = depass_test::TinyArch;
const char* arch_name(TArch a) { return depass_test::tiny_arch_name(a); }
Config make_config(TArch a) { return depass_test::tiny_config(a); }

// An independent forward for the finite differences: the block loop of forward() written
// again from the forward ops, with an additive perturbation of one layer's attention context
// (what = 1) or MLP activation (what = 2). Returns f = log softmax(logits[pos])[target].
double perturbed_f(const Model<double>& m, const Mat<double>& h0, int what, int layer,
                   const Mat<double>& delta, int pos, int target) {
    const Config& c = m.cfg;
    Mat<double> h = h0;
    const std::vector<double> inv_freq = rope_inv_freq(c);
    for (int l = 0; l < c.L; ++l) {
        const LayerWeights<double>& lw = m.w.layers[l];
        const Mat<double> x = apply_norm(c.norm, c.norm_eps, h, lw.norm1_g, lw.norm1_b);
        Mat<double> q = linear(x, lw.wq, lw.bq), k = linear(x, lw.wk, lw.bk), v = linear(x, lw.wv, lw.bv);
        rope(q, c.H, c.Dh, c.rope, inv_freq);
        rope(k, c.Hkv, c.Dh, c.rope, inv_freq);
        Mat<double> ctx = attention(q, k, v, c.H, c.Hkv, c.Dh);
        if (what == 1 && l == layer) ctx += delta;
        const Mat<double> mres = h + linear(ctx, lw.wo, lw.bo);
        const Mat<double> y = apply_norm(c.norm, c.norm_eps, mres, lw.norm2_g, lw.norm2_b);
        Mat<double> a;
        if (c.mlp == MlpKind::SwiGLU)
            swiglu_mlp<double>(y, lw.w_gate, lw.w_up, lw.w_down, nullptr, nullptr, &a);
        else
            gelu_mlp<double>(y, lw.w_up, lw.b_up, lw.w_down, lw.b_down, nullptr, &a);
        if (what == 2 && l == layer) a += delta;
        h = mres + linear(a, lw.w_down, lw.b_down);
    }
    Trace<double> t;
    t.logits = unembed(apply_norm(c.norm, c.norm_eps, h, m.w.normf_g, m.w.normf_b), m.w.unembedding());
    return target_log_prob(t, pos, target);
}

std::vector<int> random_ids(int N, int V, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int> id(0, V - 1);
    std::vector<int> ids(N);
    for (int& x : ids) x = id(rng);
    ids[0] = 1;
    return ids;
}

}  // namespace

TEST_CASE("model backward: df/dh0, df/d attn_ctx, df/d mlp_act against finite differences, every coordinate",
          "[backward]") {
    for (TArch arch : {TArch::Llama, TArch::LlamaInterleaved, TArch::Qwen2, TArch::Gpt2}) {
        const Model<double> m = random_model<double>(make_config(arch), 2000 + uint64_t(arch));
        const Config& c = m.cfg;
        const std::vector<int> ids = random_ids(7, c.V, 31 + uint64_t(arch));
        const int N = int(ids.size());
        const Trace<double> trace = forward(m, ids);
        double worst = 0;
        for (int pos : {N - 1, 3}) {
            const int target = (7 * pos + 3) % c.V;
            INFO(arch_name(arch) << ", position " << pos << ", target " << target);
            const Gradients<double> g = backward(m, trace, pos, target);
            CHECK(g.f == Approx(target_log_prob(trace, pos, target)));
            // The independent forward reproduces the recorded one.
            const Mat<double> none;
            CHECK(std::abs(perturbed_f(m, trace.h[0], 0, 0, none, pos, target) - g.f) <=
                  1e-12 * std::abs(g.f));

            Mat<double> h0 = trace.h[0];
            const FdCheck ch =
                check_fd(h0, g.h0, [&] { return log_prob_from_embeddings(m, h0, ids, pos, target); });
            CHECK_FD("df/dh0", ch);
            worst = std::max(worst, ch.worst);
            // Causality: positions after `pos` cannot change f, and their gradient is exactly 0.
            CHECK(g.h0.bottomRows(N - 1 - pos).cwiseAbs().sum() == 0.0);
            for (int l = 0; l < c.L; ++l) {
                INFO("layer " << l);
                Mat<double> dctx = Mat<double>::Zero(N, long(c.H) * c.Dh), dact = Mat<double>::Zero(N, c.I);
                const FdCheck cc = check_fd(
                    dctx, g.attn_ctx[l], [&] { return perturbed_f(m, trace.h[0], 1, l, dctx, pos, target); });
                CHECK_FD("df/d attn_ctx", cc);
                const FdCheck ca = check_fd(
                    dact, g.mlp_act[l], [&] { return perturbed_f(m, trace.h[0], 2, l, dact, pos, target); });
                CHECK_FD("df/d mlp_act", ca);
                worst = std::max({worst, cc.worst, ca.worst});
            }
        }
        // The number docs/results.md quotes (printed on every run: ctest -V -R test_backward).
        std::printf("worst finite-difference relative error, %s: %.3g\n", arch_name(arch), worst);
    }
}

TEST_CASE("model backward: exact identities on the gradients", "[backward]") {
    for (TArch arch : {TArch::Llama, TArch::Gpt2}) {
        INFO(arch_name(arch));
        const Model<double> m = random_model<double>(make_config(arch), 2100 + uint64_t(arch));
        const Config& c = m.cfg;
        const std::vector<int> ids = random_ids(6, c.V, 77);
        const int N = int(ids.size());
        const Trace<double> trace = forward(m, ids);
        const Gradients<double> g = backward(m, trace, N - 1, 5);
        // The last layer's MLP activation reaches the residual linearly: h[L] = ... + a W_down^T,
        // so df/da = df/dh[L] W_down, and df/dh[L] is the final norm's backward of the
        // unembedding's. Written out once more from the op definitions:
        const Vec<double> dl = log_softmax_backward(trace.logits, N - 1, 5);
        Mat<double> dn = Mat<double>::Zero(N, c.D);
        dn.row(N - 1) = (dl.transpose() * m.w.unembedding());
        const Mat<double> dhL = apply_norm_backward(c.norm, c.norm_eps, trace.h[c.L], m.w.normf_g, dn);
        const Mat<double> expect = dhL * m.w.layers[c.L - 1].w_down;
        CHECK((g.mlp_act[c.L - 1] - expect).cwiseAbs().maxCoeff() <=
              tolerance::gradient_identity_rel * expect.cwiseAbs().maxCoeff());
        // The logit is homogeneous of degree 1 in the final-norm output: sum_d dlogit/dy . y = logit.
        Mat<double> e = Mat<double>::Zero(N, c.V);
        e(N - 1, 5) = 1;
        const Mat<double> dy = unembed_backward(e, m.w.unembedding());
        CHECK(std::abs(dy.row(N - 1).dot(trace.final_norm_out.row(N - 1)) - trace.logits(N - 1, 5)) <=
              tolerance::gradient_identity_rel *
                  dy.row(N - 1).cwiseAbs().dot(trace.final_norm_out.row(N - 1).cwiseAbs()));
        CHECK_THROWS_AS(backward(m, trace, N, 0), Error);
        CHECK_THROWS_AS(backward(m, trace, 0, c.V), Error);
    }
}

TEST_CASE("forward_from_embeddings reproduces forward; the float backward follows the double one",
          "[backward]") {
    const Model<double> m = random_model<double>(make_config(TArch::Gpt2), 2200);
    const std::vector<int> ids = random_ids(9, m.cfg.V, 5);
    const Trace<double> a = forward(m, ids);
    const Trace<double> b = forward_from_embeddings(m, embed(m.w.tok_emb, m.w.pos_emb, ids), ids);
    CHECK(a.logits == b.logits);  // the same ops in the same order: bit for bit
    CHECK(a.h.back() == b.h.back());
    CHECK_THROWS_AS(forward_from_embeddings(m, Mat<double>(Mat<double>::Zero(8, m.cfg.D)), ids), Error);
    // Unembedding one row only: that row as in the full pass, the others 0.
    const Trace<double> one = forward_from_embeddings(m, a.h[0], ids, 4);
    CHECK((one.logits.row(4) - a.logits.row(4)).cwiseAbs().maxCoeff() <=
          1e-12 * a.logits.cwiseAbs().maxCoeff());
    CHECK(one.logits.topRows(4).cwiseAbs().maxCoeff() == 0.0);
    CHECK(one.logits.bottomRows(4).cwiseAbs().maxCoeff() == 0.0);
    CHECK(log_prob_from_embeddings(m, a.h[0], ids, 4, 7) == Approx(target_log_prob(a, 4, 7)).epsilon(1e-12));
    CHECK_THROWS_AS(forward_from_embeddings(m, a.h[0], ids, 9), Error);
    // token_embeddings leaves the learned positions out.
    CHECK((token_embeddings(m, ids) + m.w.pos_emb.topRows(9) - a.h[0]).cwiseAbs().maxCoeff() <= 1e-15);

    for (TArch arch : {TArch::LlamaInterleaved, TArch::Gpt2}) {
        INFO(arch_name(arch));
        const Model<double> md = random_model<double>(make_config(arch), 2300);
        const Model<float> mf = cast_model<float>(md);
        const Gradients<double> gd = backward(md, forward(md, ids), 8, 3);
        const Gradients<float> gf = backward(mf, forward(mf, ids), 8, 3);
        const Mat<double> h0f = gf.h0.cast<double>();
        CHECK((h0f - gd.h0).cwiseAbs().maxCoeff() <=
              tolerance::gradient_f32_rel * gd.h0.cwiseAbs().maxCoeff());
        const Mat<double> af = gf.mlp_act[0].cast<double>();
        CHECK((af - gd.mlp_act[0]).cwiseAbs().maxCoeff() <=
              tolerance::gradient_f32_rel * gd.mlp_act[0].cwiseAbs().maxCoeff());
    }
}
