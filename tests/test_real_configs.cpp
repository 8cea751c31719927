// The config.json files of twelve public models (shared configs/, sources in its
// SOURCES.md): each is read (or refused, for the quantised one) with the values its file
// states, then shrunk to a small model of the same kind -- head dim, query heads per KV
// head, norm / MLP / bias / tying flags, theta and RoPE scaling kept; 2 layers, V 512, the
// hidden size and the MLP width divided by the same factor -- which runs forward and every
// attribution level with completeness checked at every residual point, in double and float.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <type_traits>

#include "depass/completeness.hpp"
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

// What each config.json says (read off the files by hand).
struct Expected {
    const char* dir;
    const char* type;
    int D, I, L, H, Hkv, Dh, V, max_positions;
    bool tied, qkv_bias;
    double theta;
    RopeScalingKind scaling;
    double factor;
    double eps;
    int bos, eos;
};

const Expected kModels[] = {
    // dir                        type      D     I      L   H   Hkv Dh   V       max_pos tied   qkv_b  theta
    // scaling factor eps bos eos
    {"gpt2", "gpt2", 768, 3072, 12, 12, 12, 64, 50257, 1024, true, true, 1e4, RopeScalingKind::None, 1, 1e-5,
     50256, 50256},
    {"SmolLM2-135M", "llama", 576, 1536, 30, 9, 3, 64, 49152, 8192, true, false, 1e5, RopeScalingKind::None,
     1, 1e-5, 0, 0},
    {"TinyLlama-1.1B-Chat-v1.0", "llama", 2048, 5632, 22, 32, 4, 64, 32000, 2048, false, false, 1e4,
     RopeScalingKind::None, 1, 1e-5, 1, 2},
    {"Qwen2.5-0.5B", "qwen2", 896, 4864, 24, 14, 2, 64, 151936, 32768, true, true, 1e6, RopeScalingKind::None,
     1, 1e-6, 151643, 151643},
    {"Qwen2.5-3B", "qwen2", 2048, 11008, 36, 16, 2, 128, 151936, 32768, true, true, 1e6,
     RopeScalingKind::None, 1, 1e-6, 151643, 151643},
    {"Qwen2.5-7B", "qwen2", 3584, 18944, 28, 28, 4, 128, 152064, 131072, false, true, 1e6,
     RopeScalingKind::None, 1, 1e-6, 151643, 151643},
    {"Llama-3.2-1B", "llama", 2048, 8192, 16, 32, 8, 64, 128256, 131072, true, false, 5e5,
     RopeScalingKind::Llama3, 32, 1e-5, 128000, 128001},
    {"Llama-3.2-3B", "llama", 3072, 8192, 28, 24, 8, 128, 128256, 131072, true, false, 5e5,
     RopeScalingKind::Llama3, 32, 1e-5, 128000, 128001},
    {"Llama-3.1-8B", "llama", 4096, 14336, 32, 32, 8, 128, 128256, 131072, false, false, 5e5,
     RopeScalingKind::Llama3, 8, 1e-5, 128000, 128001},
    {"Meta-Llama-3-8B", "llama", 4096, 14336, 32, 32, 8, 128, 128256, 8192, false, false, 5e5,
     RopeScalingKind::None, 1, 1e-5, 128000, 128001},
    // sliding_window 4096 < max_position_embeddings 32768: the supported length is the window.
    {"Mistral-7B-v0.1", "mistral", 4096, 14336, 32, 32, 8, 128, 32000, 4096, false, false, 1e4,
     RopeScalingKind::None, 1, 1e-5, 1, 2},
};

std::string configs_dir() { return depass_test::shared_dir() + "/configs"; }

// The small model of a config: see the file comment. One KV head when a group has 4 or
// more query heads, else two; the hidden size 64 (GPT-2, where D = H Dh is required:
// H Dh), the MLP width scaled with it (rounded to a multiple of 8).
Config shrink(const Config& c) {
    Config s = c;
    const int group = c.kv_group();
    s.Hkv = group >= 4 ? 1 : 2;
    s.H = group * s.Hkv;
    s.L = 2;
    s.V = 512;
    s.D = c.model_type == "gpt2" ? s.H * c.Dh : 64;
    s.I = std::max(8, int(std::lround(double(c.I) * s.D / c.D / 8.0)) * 8);
    s.source = c.source + " (shrunk)";
    validate_config(s);
    return s;
}

template <class T>
void run_levels(const std::string& name, const Config& cfg, const std::vector<int>& ids) {
    const Model<T> model = random_model<T>(cfg, 7);
    const Trace<T> t = forward(model, ids);
    REQUIRE(t.logits.rows() == long(ids.size()));
    REQUIRE(t.logits.cols() == cfg.V);
    CHECK(t.logits.allFinite());
    const validation::CompletenessPlan plan;  // every level, every MLP rule, every cut layer
    const auto runs = validation::check_completeness(model, ids, plan);
    double worst = 0;
    int points = 0, failed = 0;
    std::string worst_run;
    for (const auto& r : runs) {
        points += int(r.points.size());
        if (!r.pass) ++failed;
        if (r.worst >= 0 && !(r.points[size_t(r.worst)].max_rel <= worst)) {
            worst = r.points[size_t(r.worst)].max_rel;
            worst_run = r.label();
        }
    }
    std::printf(
        "  %-26s %s D=%d I=%d H=%d Hkv=%d Dh=%d: %zu runs, %d points, worst completeness rel %.2e (%s)\n",
        name.c_str(), std::is_same<T, double>::value ? "f64" : "f32", cfg.D, cfg.I, cfg.H, cfg.Hkv, cfg.Dh,
        runs.size(), points, worst, worst_run.c_str());
    INFO(name << ": worst run " << worst_run);
    // token 3 cuts x 2 special-token settings, module 2 blocks x 2, head 2, neuron 2 x 2
    // (each neuron, groups), subspace 3, custom 3: 22 runs per MLP rule, 5 rules.
    CHECK(runs.size() == 110);
    CHECK(failed == 0);
    CHECK(worst <= tolerance::completeness_rel<T>());
}

using depass_test::expect_error;

std::string edited_config(const std::string& model, const std::string& name, void (*edit)(json&)) {
    json j = json::parse(read_text_file(configs_dir() + "/" + model + "/config.json"));
    edit(j);
    return depass_test::write_temp_file(name + "/config.json", j.dump(2));
}

}  // namespace

TEST_CASE("twelve real config.json files: eleven read with their values, the GPTQ one refused", "[configs]") {
    SKIP_WITHOUT_SHARED();
    REQUIRE(is_directory(configs_dir()));
    int read = 0;
    for (const Expected& e : kModels) {
        INFO(e.dir);
        const Config c = read_hf_config(configs_dir() + "/" + e.dir + "/config.json");
        CHECK(c.model_type == e.type);
        CHECK(c.D == e.D);
        CHECK(c.I == e.I);
        CHECK(c.L == e.L);
        CHECK(c.H == e.H);
        CHECK(c.Hkv == e.Hkv);
        CHECK(c.Dh == e.Dh);
        CHECK(c.V == e.V);
        CHECK(c.max_positions == e.max_positions);
        CHECK(c.tied_embeddings == e.tied);
        CHECK(c.qkv_bias == e.qkv_bias);
        CHECK(c.o_bias == (c.model_type == "gpt2"));
        CHECK(c.mlp_bias == (c.model_type == "gpt2"));
        CHECK(c.norm == (c.model_type == "gpt2" ? NormKind::LayerNorm : NormKind::RMSNorm));
        CHECK(c.rope == (c.model_type == "gpt2" ? RopeStyle::None : RopeStyle::Half));
        if (c.rope != RopeStyle::None) CHECK(c.rope_theta == e.theta);
        CHECK(c.rope_scaling.kind == e.scaling);
        if (e.scaling == RopeScalingKind::Llama3) {
            CHECK(c.rope_scaling.factor == e.factor);
            CHECK(c.rope_scaling.low_freq_factor == 1.0);
            CHECK(c.rope_scaling.high_freq_factor == 4.0);
            CHECK(c.rope_scaling.original_max_positions == 8192.0);
        }
        CHECK(c.norm_eps == e.eps);
        CHECK(c.bos_id == e.bos);
        CHECK(c.eos_id == e.eos);
        std::printf("  %-26s %s\n", e.dir, describe(c).c_str());
        ++read;
    }
    CHECK(read == 11);

    const std::string gptq = configs_dir() + "/gpt2-gptq-kv260/config.json";
    expect_error([&] { read_hf_config(gptq); }, {gptq, "field 'quantization_config'", "quant_method 'gptq'"});
    std::printf("  %-26s refused\n", "gpt2-gptq-kv260");

    // Every directory of the shared set is one of the twelve.
    int dirs = 0;
    for (const auto& d : std::filesystem::directory_iterator(configs_dir()))
        if (d.is_directory()) ++dirs;
    CHECK(dirs == 12);
}

TEST_CASE("fields of the real configs: eos lists, sliding windows, refused features", "[configs]") {
    SKIP_WITHOUT_SHARED();
    REQUIRE(is_directory(configs_dir()));
    // Llama 3 instruct configs list several end-of-sequence ids: the first is taken.
    const Config l = read_hf_config(edited_config("Llama-3.2-1B", "cfg_eos", [](json& j) {
        j["eos_token_id"] = {128001, 128008, 128009};
    }));
    CHECK(l.eos_id == 128001);
    // A Mistral window shorter than the input is not computed as full attention: the input is refused.
    Config m = read_hf_config(
        edited_config("Mistral-7B-v0.1", "cfg_window", [](json& j) { j["sliding_window"] = 8; }));
    CHECK(m.max_positions == 8);
    const Model<double> mm = random_model<double>(shrink(m), 3);
    CHECK_NOTHROW(forward(mm, validation::random_ids(8, 512, 1)));
    expect_error([&] { forward(mm, validation::random_ids(9, 512, 1)); }, {"9 tokens exceed", "8 positions"});
    // Qwen2 with the window switched on (use_sliding_window) is capped the same way.
    const Config q = read_hf_config(edited_config("Qwen2.5-0.5B", "cfg_qwen_window", [](json& j) {
        j["use_sliding_window"] = true;
        j["sliding_window"] = 4096;
    }));
    CHECK(q.max_positions == 4096);
    // Unsupported features are refused naming the field.
    const std::string mb =
        edited_config("Llama-3.2-1B", "cfg_mlp_bias", [](json& j) { j["mlp_bias"] = true; });
    expect_error([&] { read_hf_config(mb); }, {mb, "'mlp_bias'"});
    const std::string yarn = edited_config("Llama-3.1-8B", "cfg_yarn", [](json& j) {
        j["rope_scaling"] = {
            {"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 32768}};
    });
    expect_error([&] { read_hf_config(yarn); }, {yarn, "field 'rope_scaling.rope_type'", "'yarn'"});
    const std::string awq = edited_config("Qwen2.5-7B", "cfg_awq", [](json& j) {
        j["quantization_config"] = {{"quant_method", "awq"}, {"bits", 4}};
    });
    expect_error([&] { read_hf_config(awq); }, {awq, "field 'quantization_config'", "quant_method 'awq'"});
}

TEST_CASE("shrunk real configs: forward and every attribution level are complete", "[configs][validate]") {
    SKIP_WITHOUT_SHARED();
    REQUIRE(is_directory(configs_dir()));
    for (const Expected& e : kModels) {
        const Config c = read_hf_config(configs_dir() + "/" + e.dir + "/config.json");
        const Config s = shrink(c);
        INFO(e.dir << ": " << describe(s));
        // Kept: head dim, heads per KV head, the architecture flags, theta and the scaling.
        CHECK(s.Dh == c.Dh);
        CHECK(s.kv_group() == c.kv_group());
        CHECK(s.rope_scaling.kind == c.rope_scaling.kind);
        CHECK(s.D * c.I == Approx(double(s.I) * c.D).epsilon(0.05));
        if (s.rope_scaling.kind == RopeScalingKind::Llama3) {
            // The scaled table differs from the plain one for this head dim.
            const auto plain = rope_inv_freq(s.Dh, s.rope_theta), scaled = rope_inv_freq(s);
            CHECK(scaled.front() == plain.front());
            CHECK(scaled.back() == Approx(plain.back() / s.rope_scaling.factor).epsilon(1e-12));
        }
        const std::vector<int> ids = validation::random_ids(10, s.V, 5);
        run_levels<double>(e.dir, s, ids);
        run_levels<float>(e.dir, s, ids);
    }
}
