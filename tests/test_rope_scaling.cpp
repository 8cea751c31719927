// RoPE frequency scaling: the inverse-frequency table against hand-derived values, the
// `rope_scaling` block of config.json, and the llama3-rope-s2 fixture's dependence on it.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "depass/backward.hpp"
#include "depass/config.hpp"
#include "depass/forward.hpp"
#include "depass/io.hpp"
#include "depass/ops.hpp"
#include "depass/tolerance.hpp"
#include "depass/weights.hpp"
#include "test_support.hpp"

using namespace depass;
using Catch::Contains;
using json = nlohmann::json;

namespace {

double rel_err(double a, double b) { return std::abs(a - b) / std::abs(b); }

// A config.json with the given rope_scaling block (the rest a tiny llama) in the temp dir.
std::string write_config(const std::string& name, const json& rope_scaling) {
    json j = {{"model_type", "llama"},    {"hidden_size", 32},
              {"intermediate_size", 64},  {"num_hidden_layers", 1},
              {"num_attention_heads", 4}, {"num_key_value_heads", 2},
              {"vocab_size", 50},         {"max_position_embeddings", 128},
              {"rms_norm_eps", 1e-5},     {"rope_theta", 10000.0}};
    j["rope_scaling"] = rope_scaling;
    return depass_test::write_temp_file(name + "/config.json", j.dump(2));
}

}  // namespace

TEST_CASE("llama3 frequency table: kept, smoothed and divided pairs by hand", "[rope][scaling]") {
    // Dh 8, theta 1e4: f = 1, 0.1, 0.01, 0.001, wavelengths 2 pi / f = 6.28, 62.8, 628, 6283.
    // original max M = 1000, low_freq_factor 1, high_freq_factor 4: band edges w_hi = 250,
    // w_lo = 1000. So pairs 0 and 1 (w < 250) are kept, pair 3 (w > 1000) is divided by
    // the factor 8, and pair 2 (250 <= 628 <= 1000) is interpolated with
    //   s = (M / w - 1) / (4 - 1) = (1000 / (200 pi) - 1) / 3 = (5 / pi - 1) / 3 = 0.19718...
    //   f = (1 - s) 0.01 / 8 + s 0.01.
    RopeScaling s;
    s.kind = RopeScalingKind::Llama3;
    s.factor = 8;
    s.low_freq_factor = 1;
    s.high_freq_factor = 4;
    s.original_max_positions = 1000;
    const std::vector<double> f = rope_inv_freq(8, 10000.0, s);
    REQUIRE(f.size() == 4);
    const double pi = std::acos(-1.0);
    const double sm = (5 / pi - 1) / 3;
    REQUIRE(std::abs(sm - 0.19718) < 1e-5);
    const double want[4] = {1.0, 0.1, (1 - sm) * 0.01 / 8 + sm * 0.01, 0.001 / 8};
    for (int i = 0; i < 4; ++i) {
        INFO("pair " << i << ": " << f[size_t(i)] << " vs " << want[i]);
        CHECK(rel_err(f[size_t(i)], want[i]) <= 1e-14);
    }
    std::printf("  llama3 table (Dh 8, theta 1e4, factor 8, M 1000): %.17g %.17g %.17g %.17g\n", f[0], f[1],
                f[2], f[3]);

    // The interpolation is continuous: at w = w_hi the pair is kept, at w = w_lo divided.
    // Choose M so that pair 2's wavelength (200 pi) sits exactly on each edge.
    RopeScaling edge = s;
    edge.original_max_positions = 200 * pi * 4;  // w_hi = M / 4 = 200 pi
    CHECK(rel_err(rope_inv_freq(8, 10000.0, edge)[2], 0.01) <= 1e-12);
    edge.original_max_positions = 200 * pi;  // w_lo = M / 1 = 200 pi
    CHECK(rel_err(rope_inv_freq(8, 10000.0, edge)[2], 0.01 / 8) <= 1e-12);
}

TEST_CASE("linear and default frequency tables; linear scaling divides the positions", "[rope][scaling]") {
    const std::vector<double> plain = rope_inv_freq(8, 10000.0);
    const double want[4] = {1.0, 0.1, 0.01, 0.001};
    for (int i = 0; i < 4; ++i) CHECK(rel_err(plain[size_t(i)], want[i]) <= 1e-15);
    RopeScaling lin;
    lin.kind = RopeScalingKind::Linear;
    lin.factor = 2;
    const std::vector<double> half = rope_inv_freq(8, 10000.0, lin);
    for (int i = 0; i < 4; ++i) CHECK(rel_err(half[size_t(i)], want[i] / 2) <= 1e-15);

    // The op with the linear table: position 2n turns as position n of the plain table.
    const int H = 2, Dh = 8, N = 12;
    Mat<double> x(N, H * Dh);
    for (int d = 0; d < H * Dh; ++d)
        x.col(d).setConstant(std::sin(1.0 + d));  // the same vector at every position
    Mat<double> a = x, b = x;
    rope(a, H, Dh, RopeStyle::Half, half);
    rope(b, H, Dh, RopeStyle::Half, plain);
    for (int n = 0; 2 * n < N; ++n) CHECK((a.row(2 * n) - b.row(n)).cwiseAbs().maxCoeff() <= 1e-14);
    CHECK((a.row(2) - b.row(2)).cwiseAbs().maxCoeff() > 1e-2);  // the tables do differ

    // A table of the wrong length is refused.
    CHECK_THROWS_WITH(rope(a, H, Dh, RopeStyle::Half, std::vector<double>(3, 1.0)),
                      Contains("inverse-frequency table is 3, expected 4"));

    // GGUF frequency factors divide each pair.
    Config c;
    c.Dh = 8;
    c.rope_theta = 10000.0;
    c.rope_freq_factors = {1, 2, 4, 8};
    const std::vector<double> g = rope_inv_freq(c);
    for (int i = 0; i < 4; ++i)
        CHECK(rel_err(g[size_t(i)], want[i] / c.rope_freq_factors[size_t(i)]) <= 1e-15);
}

TEST_CASE("config.json rope_scaling: llama3, linear, default, refused types and bad values",
          "[rope][scaling][io]") {
    {
        const Config c =
            read_hf_config(write_config("rs_llama3", {{"rope_type", "llama3"},
                                                      {"factor", 32.0},
                                                      {"low_freq_factor", 1.0},
                                                      {"high_freq_factor", 4.0},
                                                      {"original_max_position_embeddings", 8192}}));
        CHECK(c.rope_scaling.kind == RopeScalingKind::Llama3);
        CHECK(c.rope_scaling.factor == 32.0);
        CHECK(c.rope_scaling.low_freq_factor == 1.0);
        CHECK(c.rope_scaling.high_freq_factor == 4.0);
        CHECK(c.rope_scaling.original_max_positions == 8192.0);
        CHECK_THAT(describe(c), Contains("rope_scaling=llama3(factor=32"));
    }
    {
        // Older configs name the type `type`.
        const Config c = read_hf_config(write_config("rs_linear", {{"type", "linear"}, {"factor", 2.0}}));
        CHECK(c.rope_scaling.kind == RopeScalingKind::Linear);
        CHECK(c.rope_scaling.factor == 2.0);
    }
    for (const json& none : {json(nullptr), json{{"rope_type", "default"}}}) {
        const Config c = read_hf_config(write_config("rs_none", none));
        CHECK(c.rope_scaling.kind == RopeScalingKind::None);
    }
    for (const char* type : {"yarn", "dynamic", "longrope", "su"}) {
        const std::string p = write_config(std::string("rs_") + type, {{"rope_type", type}, {"factor", 4.0}});
        CHECK_THROWS_WITH(read_hf_config(p), Contains(p) && Contains("field 'rope_scaling.rope_type'") &&
                                                 Contains(std::string("'") + type + "'"));
    }
    {
        const std::string p = write_config("rs_old_yarn", {{"type", "yarn"}, {"factor", 4.0}});
        CHECK_THROWS_WITH(read_hf_config(p), Contains("field 'rope_scaling.type'") && Contains("'yarn'"));
    }
    {
        const std::string p = write_config("rs_no_type", {{"factor", 4.0}});
        CHECK_THROWS_WITH(read_hf_config(p), Contains("'rope_scaling'") && Contains("'rope_type'"));
    }
    {
        const std::string p = write_config("rs_missing", {{"rope_type", "llama3"},
                                                          {"factor", 8.0},
                                                          {"low_freq_factor", 1.0},
                                                          {"original_max_position_embeddings", 8192}});
        CHECK_THROWS_WITH(read_hf_config(p),
                          Contains("missing required field 'rope_scaling.high_freq_factor'"));
    }
    {
        const std::string p = write_config("rs_string", {{"rope_type", "linear"}, {"factor", "2"}});
        CHECK_THROWS_WITH(read_hf_config(p), Contains("field 'rope_scaling.factor' must be a number"));
    }
    {
        const std::string p = write_config("rs_zero", {{"rope_type", "linear"}, {"factor", 0.0}});
        CHECK_THROWS_WITH(read_hf_config(p), Contains("rope_scaling.factor must be positive"));
    }
    {
        const std::string p = write_config("rs_band", {{"rope_type", "llama3"},
                                                       {"factor", 8.0},
                                                       {"low_freq_factor", 4.0},
                                                       {"high_freq_factor", 1.0},
                                                       {"original_max_position_embeddings", 8192}});
        CHECK_THROWS_WITH(read_hf_config(p), Contains("rope_scaling.high_freq_factor (1) must exceed"));
    }
    {
        const std::string p = write_config("rs_array", json::array({1, 2}));
        CHECK_THROWS_WITH(read_hf_config(p), Contains("field 'rope_scaling' must be an object or null"));
    }
}

TEST_CASE("llama3-rope-s2: the scaling is read and is what makes the goldens match",
          "[rope][scaling][fixtures]") {
    SKIP_WITHOUT_SHARED();
    const std::string dir = depass_test::fixtures_dir() + "/llama3-rope-s2";
    Model<double> m = load_model<double>(dir);
    REQUIRE(m.cfg.rope_scaling.kind == RopeScalingKind::Llama3);
    CHECK(m.cfg.rope_scaling.factor == 8.0);
    CHECK(m.cfg.rope_scaling.original_max_positions == 64.0);
    // Head dim 16, theta 5e5: pair 0 kept, pair 1 interpolated, pairs 2..7 divided by 8.
    const std::vector<double> plain = rope_inv_freq(m.cfg.Dh, m.cfg.rope_theta);
    const std::vector<double> f = rope_inv_freq(m.cfg);
    REQUIRE(f.size() == 8);
    CHECK(f[0] == plain[0]);
    CHECK(f[1] < plain[1]);
    CHECK(f[1] > plain[1] / 8);
    for (int i = 2; i < 8; ++i) CHECK(rel_err(f[size_t(i)], plain[size_t(i)] / 8) <= 1e-15);

    // Without the scaling the forward pass leaves the exact goldens far behind.
    const auto ids =
        json::parse(read_text_file(dir + "/tokens.json")).at("input_ids").get<std::vector<int>>();
    const Tensor<double> ref =
        SafeTensors::open(dir + "/golden_exact_f64.safetensors").read<double>("logits");
    auto logits_rel = [&](const Model<double>& model) {
        const Mat<double> l = forward(model, ids).logits;  // [N, V], row-major like the golden
        return depass_test::diff(l.data(), ref.data.data(), ref.size()).rel();
    };
    const double with = logits_rel(m);
    m.cfg.rope_scaling = RopeScaling{};
    const double without = logits_rel(m);
    std::printf("  llama3-rope-s2 logits vs exact goldens: with scaling rel %.3e, without %.3e\n", with,
                without);
    CHECK(with <= 1e-10);
    CHECK(without > 1e-3);
}

TEST_CASE("llama3-rope-s2: the backward pass rotates with the scaled table", "[rope][scaling][backward]") {
    SKIP_WITHOUT_SHARED();
    const std::string dir = depass_test::fixtures_dir() + "/llama3-rope-s2";
    const Model<double> m = load_model<double>(dir);
    const auto ids =
        json::parse(read_text_file(dir + "/tokens.json")).at("input_ids").get<std::vector<int>>();
    const int N = int(ids.size()), pos = N - 1, target = 17;
    const Mat<double> h0 = forward(m, ids).h[0];
    const Gradients<double> g = backward(m, forward(m, ids), pos, target);

    // Directional derivative along a random R against the five-point central difference,
    // with a step of 1e-4 (truncation error h^4: 3e-10 of 15 here; 4e-6 at the default 1e-3).
    std::mt19937_64 rng(5);
    std::normal_distribution<double> nd;
    Mat<double> R(N, m.cfg.D);
    for (Eigen::Index i = 0; i < R.size(); ++i) R.data()[i] = nd(rng);
    const double h = 1e-4;
    auto f = [&](double t) { return log_prob_from_embeddings(m, Mat<double>(h0 + t * R), ids, pos, target); };
    const double fd = (8 * (f(h) - f(-h)) - (f(2 * h) - f(-2 * h))) / (12 * h);
    const double an = (g.h0.array() * R.array()).sum();
    std::printf("  llama3-rope-s2 directional derivative: backward %.12e, finite differences %.12e\n", an,
                fd);
    CHECK(std::abs(an - fd) <= tolerance::gradient_fd_rel * std::abs(fd));
}
