// Each op against a naive loop version, plus identities that can be checked by hand.
#include <cmath>
#include <random>

#include "depass/ops.hpp"
#include "test_support.hpp"

using namespace depass;

namespace {

using depass_test::randn;
template <class T>
Vec<T> randv(long n, std::mt19937_64& rng, double s = 1.0) {
    return randn<T>(n, 1, rng, s);
}
template <class T>
double max_diff(const Mat<T>& a, const Mat<T>& b) {
    REQUIRE(a.rows() == b.rows());
    REQUIRE(a.cols() == b.cols());
    return double((a - b).cwiseAbs().maxCoeff());
}
template <class T>
constexpr double tol() {
    return std::is_same<T, double>::value ? 1e-12 : 2e-5;
}

// ---- naive reference versions -------------------------------------------------------

template <class T>
Mat<T> naive_linear(const Mat<T>& x, const Mat<T>& W, const Vec<T>& b) {
    Mat<T> y(x.rows(), W.rows());
    for (long n = 0; n < x.rows(); ++n)
        for (long o = 0; o < W.rows(); ++o) {
            double s = b.size() ? double(b[o]) : 0.0;
            for (long i = 0; i < x.cols(); ++i) s += double(x(n, i)) * double(W(o, i));
            y(n, o) = T(s);
        }
    return y;
}

template <class T>
Mat<T> naive_rms(const Mat<T>& x, const Vec<T>& g, double eps) {
    Mat<T> y(x.rows(), x.cols());
    for (long n = 0; n < x.rows(); ++n) {
        double ss = 0;
        for (long d = 0; d < x.cols(); ++d) ss += double(x(n, d)) * double(x(n, d));
        double r = 1.0 / std::sqrt(ss / x.cols() + eps);
        for (long d = 0; d < x.cols(); ++d) y(n, d) = T(double(g[d]) * double(x(n, d)) * r);
    }
    return y;
}

template <class T>
Mat<T> naive_ln(const Mat<T>& x, const Vec<T>& g, const Vec<T>& b, double eps) {
    Mat<T> y(x.rows(), x.cols());
    for (long n = 0; n < x.rows(); ++n) {
        double mu = 0, var = 0;
        for (long d = 0; d < x.cols(); ++d) mu += double(x(n, d));
        mu /= x.cols();
        for (long d = 0; d < x.cols(); ++d) var += (double(x(n, d)) - mu) * (double(x(n, d)) - mu);
        var /= x.cols();
        for (long d = 0; d < x.cols(); ++d)
            y(n, d) = T(double(g[d]) * (double(x(n, d)) - mu) / std::sqrt(var + eps) + double(b[d]));
    }
    return y;
}

// RoPE written directly from the rotation-matrix definition, one pair at a time.
template <class T>
Mat<T> naive_rope(const Mat<T>& x, int nheads, int Dh, bool interleaved, double theta) {
    Mat<T> y = x;
    for (long n = 0; n < x.rows(); ++n)
        for (int h = 0; h < nheads; ++h)
            for (int i = 0; i < Dh / 2; ++i) {
                int a = interleaved ? 2 * i : i, b = interleaved ? 2 * i + 1 : i + Dh / 2;
                double ang = double(n) / std::pow(theta, 2.0 * i / Dh);
                double xa = x(n, h * Dh + a), xb = x(n, h * Dh + b);
                y(n, h * Dh + a) = T(std::cos(ang) * xa - std::sin(ang) * xb);
                y(n, h * Dh + b) = T(std::sin(ang) * xa + std::cos(ang) * xb);
            }
    return y;
}

template <class T>
Mat<T> naive_attention(const Mat<T>& q, const Mat<T>& k, const Mat<T>& v, int H, int Hkv, int Dh,
                       std::vector<Mat<T>>& probs) {
    const long N = q.rows();
    Mat<T> out = Mat<T>::Zero(N, H * Dh);
    probs.assign(H, Mat<T>::Zero(N, N));
    for (int h = 0; h < H; ++h) {
        int g = h / (H / Hkv);
        for (long i = 0; i < N; ++i) {
            std::vector<double> s(i + 1);
            double mx = -1e300;
            for (long j = 0; j <= i; ++j) {
                double dot = 0;
                for (int d = 0; d < Dh; ++d) dot += double(q(i, h * Dh + d)) * double(k(j, g * Dh + d));
                s[j] = dot / std::sqrt(double(Dh));
                mx = std::max(mx, s[j]);
            }
            double z = 0;
            for (long j = 0; j <= i; ++j) z += (s[j] = std::exp(s[j] - mx));
            for (long j = 0; j <= i; ++j) {
                probs[h](i, j) = T(s[j] / z);
                for (int d = 0; d < Dh; ++d) out(i, h * Dh + d) += T(s[j] / z * double(v(j, g * Dh + d)));
            }
        }
    }
    return out;
}

}  // namespace

TEMPLATE_TEST_CASE("linear equals the naive triple loop", "[ops]", float, double) {
    std::mt19937_64 rng(1);
    auto x = randn<TestType>(7, 13, rng);
    auto W = randn<TestType>(5, 13, rng);
    auto b = randv<TestType>(5, rng);
    CHECK(max_diff(linear(x, W, b), naive_linear(x, W, b)) <= tol<TestType>() * 10);
    CHECK(max_diff(linear(x, W, Vec<TestType>()), naive_linear(x, W, Vec<TestType>())) <=
          tol<TestType>() * 10);
    CHECK_THROWS_AS(linear(x, randn<TestType>(5, 12, rng), b), Error);
}

TEMPLATE_TEST_CASE("norms equal the naive versions and record their factors", "[ops]", float, double) {
    std::mt19937_64 rng(2);
    auto x = randn<TestType>(6, 16, rng, 3.0);
    auto g = randv<TestType>(16, rng);
    auto b = randv<TestType>(16, rng);
    NormFactors<TestType> f;
    CHECK(max_diff(rms_norm(x, g, 1e-5, &f), naive_rms(x, g, 1e-5)) <= tol<TestType>() * 10);
    // The recorded factor reproduces the op: y = g * x * inv.
    for (long n = 0; n < x.rows(); ++n)
        CHECK(double((x.row(n).cwiseProduct(g.transpose()) * f.inv[n] - rms_norm(x, g, 1e-5).row(n))
                         .cwiseAbs()
                         .maxCoeff()) <= tol<TestType>() * 10);
    CHECK(max_diff(layer_norm(x, g, b, 1e-5, &f), naive_ln(x, g, b, 1e-5)) <= tol<TestType>() * 10);
    REQUIRE(f.mean.size() == x.rows());
    // Hand-checkable: with unit gain and zero bias, LayerNorm rows have mean 0 and variance ~1.
    Vec<TestType> one = Vec<TestType>::Ones(16), zero = Vec<TestType>::Zero(16);
    Mat<TestType> y = layer_norm(x, one, zero, 0.0);
    for (long n = 0; n < y.rows(); ++n) {
        CHECK(std::abs(double(y.row(n).mean())) <= tol<TestType>() * 10);
        CHECK(std::abs(double(y.row(n).squaredNorm() / 16) - 1.0) <= tol<TestType>() * 10);
    }
    // RMSNorm with unit gain and eps 0 gives rows of RMS 1.
    Mat<TestType> z = rms_norm(x, one, 0.0);
    for (long n = 0; n < z.rows(); ++n)
        CHECK(std::abs(double(z.row(n).squaredNorm() / 16) - 1.0) <= tol<TestType>() * 10);
}

TEMPLATE_TEST_CASE("RoPE: both layouts equal the naive rotation, preserve norms and agree after permutation",
                   "[ops][rope]", float, double) {
    std::mt19937_64 rng(3);
    const int H = 3, Dh = 8, N = 9;
    auto x = randn<TestType>(N, H * Dh, rng);
    const std::vector<double> f = rope_inv_freq(Dh, 10000.0);
    for (RopeStyle st : {RopeStyle::Interleaved, RopeStyle::Half}) {
        Mat<TestType> y = x;
        rope(y, H, Dh, st, f);
        CHECK(max_diff(y, naive_rope(x, H, Dh, st == RopeStyle::Interleaved, 10000.0)) <=
              tol<TestType>() * 10);
        // Rotations preserve the norm of each head at each position.
        for (long n = 0; n < N; ++n)
            for (int h = 0; h < H; ++h)
                CHECK(std::abs(double(y.block(n, h * Dh, 1, Dh).norm() - x.block(n, h * Dh, 1, Dh).norm())) <=
                      tol<TestType>() * 10);
        // Position 0 is not rotated.
        CHECK(max_diff(Mat<TestType>(y.row(0)), Mat<TestType>(x.row(0))) == 0.0);
    }
    // Permuting the coordinates of each head (interleaved index 2i -> half index i,
    // 2i+1 -> i + Dh/2) maps one layout onto the other exactly.
    Mat<TestType> xi = x, xh(N, H * Dh);
    for (int h = 0; h < H; ++h)
        for (int i = 0; i < Dh / 2; ++i) {
            xh.col(h * Dh + i) = x.col(h * Dh + 2 * i);
            xh.col(h * Dh + i + Dh / 2) = x.col(h * Dh + 2 * i + 1);
        }
    rope(xi, H, Dh, RopeStyle::Interleaved, f);
    rope(xh, H, Dh, RopeStyle::Half, f);
    double worst = 0;
    for (int h = 0; h < H; ++h)
        for (int i = 0; i < Dh / 2; ++i) {
            worst =
                std::max(worst, double((xh.col(h * Dh + i) - xi.col(h * Dh + 2 * i)).cwiseAbs().maxCoeff()));
            worst = std::max(
                worst,
                double((xh.col(h * Dh + i + Dh / 2) - xi.col(h * Dh + 2 * i + 1)).cwiseAbs().maxCoeff()));
        }
    CHECK(worst == 0.0);
}

TEMPLATE_TEST_CASE("attention equals the naive loops; probabilities are causal rows summing to 1",
                   "[ops][attention]", float, double) {
    std::mt19937_64 rng(4);
    for (auto [H, Hkv] : {std::pair{4, 4}, std::pair{4, 2}, std::pair{6, 1}}) {
        const int Dh = 8, N = 11;
        auto q = randn<TestType>(N, H * Dh, rng), k = randn<TestType>(N, Hkv * Dh, rng),
             v = randn<TestType>(N, Hkv * Dh, rng);
        std::vector<Mat<TestType>> probs, ref_probs;
        Mat<TestType> ctx = attention(q, k, v, H, Hkv, Dh, &probs);
        Mat<TestType> ref = naive_attention(q, k, v, H, Hkv, Dh, ref_probs);
        CHECK(max_diff(ctx, ref) <= tol<TestType>() * 10);
        for (int h = 0; h < H; ++h) {
            CHECK(max_diff(probs[h], ref_probs[h]) <= tol<TestType>() * 10);
            for (int i = 0; i < N; ++i) {
                CHECK(std::abs(double(probs[h].row(i).sum()) - 1.0) <= tol<TestType>() * 10);
                for (int j = i + 1; j < N; ++j) CHECK(probs[h](i, j) == TestType(0));
            }
        }
        // The first query can only attend to itself.
        for (int h = 0; h < H; ++h) CHECK(probs[h](0, 0) == TestType(1));
    }
}

TEMPLATE_TEST_CASE("MLPs equal element-wise loops; activations match their definitions", "[ops][mlp]", float,
                   double) {
    using T = TestType;
    std::mt19937_64 rng(5);
    const int N = 5, D = 12, I = 20;
    auto x = randn<T>(N, D, rng), wg = randn<T>(I, D, rng), wu = randn<T>(I, D, rng),
         wd = randn<T>(D, I, rng);
    auto b1 = randv<T>(I, rng), b2 = randv<T>(D, rng);
    Mat<T> pre, up, act;
    Mat<T> out = swiglu_mlp(x, wg, wu, wd, &pre, &up, &act);
    Mat<T> g = naive_linear(x, wg, Vec<T>()), u = naive_linear(x, wu, Vec<T>());
    Mat<T> a(N, I);
    for (int n = 0; n < N; ++n)
        for (int i = 0; i < I; ++i)
            a(n, i) = T(double(g(n, i)) / (1 + std::exp(-double(g(n, i)))) * double(u(n, i)));
    CHECK(max_diff(act, a) <= tol<T>() * 100);
    CHECK(max_diff(out, naive_linear(a, wd, Vec<T>())) <= tol<T>() * 100);

    Mat<T> out2 = gelu_mlp(x, wu, b1, wd, b2, &pre, &act);
    Mat<T> p = naive_linear(x, wu, b1), a2(N, I);
    for (int n = 0; n < N; ++n)
        for (int i = 0; i < I; ++i) {
            double v = p(n, i);
            a2(n, i) = T(0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))));
        }
    CHECK(max_diff(act, a2) <= tol<T>() * 100);
    CHECK(max_diff(out2, naive_linear(a2, wd, b2)) <= tol<T>() * 100);
    // act(x)/x helper: x * act_over_x(x) == act(x).
    for (double v : {-3.0, -0.5, 0.25, 2.0}) {
        CHECK(std::abs(double(T(v) * act_over_x(Activation::SiLU, T(v)) - silu(T(v)))) <= tol<T>());
        CHECK(std::abs(double(T(v) * act_over_x(Activation::GeluTanh, T(v)) - gelu_tanh(T(v)))) <= tol<T>());
    }
    CHECK(silu(T(0)) == T(0));
    CHECK(std::abs(double(gelu_tanh(T(1))) - 0.8411919906082768) <=
          tol<T>() * 10);  // known value of gelu_new(1)
}

TEMPLATE_TEST_CASE("embedding and unembedding", "[ops]", float, double) {
    using T = TestType;
    std::mt19937_64 rng(6);
    auto E = randn<T>(10, 4, rng), P = randn<T>(8, 4, rng);
    Mat<T> x = embed(E, P, {3, 0, 9});
    CHECK(max_diff(Mat<T>(x.row(2)), Mat<T>(E.row(9) + P.row(2))) == 0.0);
    Mat<T> y = embed(E, Mat<T>(), {3, 0, 9});
    CHECK(max_diff(Mat<T>(y.row(0)), Mat<T>(E.row(3))) == 0.0);
    CHECK_THROWS_WITH(embed(E, Mat<T>(), {3, 10}), Catch::Contains("10") && Catch::Contains("vocabulary"));
    CHECK(max_diff(unembed(x, E), naive_linear(x, E, Vec<T>())) <= tol<T>() * 10);
}
