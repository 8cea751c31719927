// estimate_cost(): multiply-adds and memory of a run against hand-derived numbers for a tiny
// config, against the sizes of the real model, trace and components the code allocates, and
// (memory) against the peak resident size that an actual `depass attribute` run reaches.
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "depass/attribute.hpp"
#include "depass/estimate.hpp"
#include "depass/forward.hpp"
#include "depass/io.hpp"
#include "test_support.hpp"

using namespace depass;
namespace fs = std::filesystem;

extern char** environ;

namespace {

// D 4, I 6, L 1, H 2, Hkv 1, Dh 2, V 10, untied, RMSNorm, SwiGLU, no biases.
Config hand_config() {
    Config c = preset(Arch::Llama);
    c.D = 4;
    c.I = 6;
    c.L = 1;
    c.H = 2;
    c.Hkv = 1;
    c.Dh = 2;
    c.V = 10;
    c.max_positions = 8;
    c.tied_embeddings = false;
    return c;
}

template <class T>
uint64_t count(const std::vector<Mat<T>>& v) {
    uint64_t n = 0;
    for (const Mat<T>& m : v) n += uint64_t(m.size());
    return n;
}

// Every value the model holds, counted from its matrices.
uint64_t values_in(const Model<double>& m) {
    const Weights<double>& w = m.w;
    uint64_t n = w.tok_emb.size() + w.pos_emb.size() + w.normf_g.size() + w.normf_b.size() + w.lm_head.size();
    for (const LayerWeights<double>& l : w.layers)
        n += l.norm1_g.size() + l.norm1_b.size() + l.wq.size() + l.wk.size() + l.wv.size() + l.wo.size() +
             l.bq.size() + l.bk.size() + l.bv.size() + l.bo.size() + l.norm2_g.size() + l.norm2_b.size() +
             l.w_gate.size() + l.w_up.size() + l.w_down.size() + l.b_up.size() + l.b_down.size();
    return n;
}

// Every value a trace holds, counted from its matrices.
uint64_t values_in(const Trace<double>& t) {
    uint64_t n =
        count(t.h) + t.normf.inv.size() + t.normf.mean.size() + t.final_norm_out.size() + t.logits.size();
    for (const LayerTrace<double>& l : t.layers)
        n += l.norm1.inv.size() + l.norm1.mean.size() + count(l.probs) + l.attn_ctx.size() +
             l.attn_out.size() + l.m.size() + l.norm2.inv.size() + l.norm2.mean.size() + l.mlp_pre.size() +
             l.mlp_up.size() + l.mlp_act.size() + l.mlp_out.size();
    return n;
}

// A llama2.c v0 checkpoint of a model (tied), written in run.c's order.
void write_llama2c(const std::string& path, const Model<float>& m) {
    const Config& c = m.cfg;
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    const int32_t hdr[7] = {c.D, c.I, c.L, c.H, c.Hkv, c.V, c.max_positions};
    f.write(reinterpret_cast<const char*>(hdr), sizeof hdr);
    auto put = [&](const float* p, size_t n) {
        f.write(reinterpret_cast<const char*>(p), std::streamsize(4 * n));
    };
    auto mat = [&](const Mat<float>& x) { put(x.data(), size_t(x.size())); };
    auto vec = [&](const Vec<float>& x) { put(x.data(), size_t(x.size())); };
    mat(m.w.tok_emb);
    for (auto& l : m.w.layers) vec(l.norm1_g);
    for (auto& l : m.w.layers) mat(l.wq);
    for (auto& l : m.w.layers) mat(l.wk);
    for (auto& l : m.w.layers) mat(l.wv);
    for (auto& l : m.w.layers) mat(l.wo);
    for (auto& l : m.w.layers) vec(l.norm2_g);
    for (auto& l : m.w.layers) mat(l.w_gate);
    for (auto& l : m.w.layers) mat(l.w_down);
    for (auto& l : m.w.layers) mat(l.w_up);
    vec(m.w.normf_g);
    const std::vector<float> freq(size_t(c.max_positions) * size_t(c.Dh / 2) * 2, 0.f);
    put(freq.data(), freq.size());
}

// Runs `depass ARGS...`; returns the exit status and the peak resident set (bytes) of the run.
int run_measured(const std::vector<std::string>& args, uint64_t* peak) {
    std::vector<char*> argv;
    std::string exe = depass_test::cli_path();
    argv.push_back(exe.data());
    std::vector<std::string> a = args;
    for (std::string& s : a) argv.push_back(s.data());
    argv.push_back(nullptr);
    pid_t pid;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    REQUIRE(posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
    int status = 0;
    struct rusage ru {};
    REQUIRE(wait4(pid, &status, 0, &ru) == pid);
    *peak = uint64_t(ru.ru_maxrss) * 1024;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST_CASE("estimate: hand-derived multiply-adds and bytes of a tiny config", "[estimate]") {
    const Config c = hand_config();
    const CostEstimate e = estimate_cost(c, 3, 4);
    // Weights: embedding 10x4 = 40; block: 2 norms 8 + W_q 16 + W_k 8 + W_v 8 + W_o 16 + MLP 3x6x4 = 72
    // = 128; final norm 4; lm_head 40.
    CHECK(e.layer_weight_count == 128);
    CHECK(e.weight_count == 212);
    CHECK(e.weights_widened_bytes == 848);
    CHECK(e.weights_stored_bytes == 424);  // BF16 when nothing is said
    // Forward, N = 3: projections 3 x 4 x (2x4 + 2x2) = 144; attention one block of 3 rows over 3
    // keys, twice (scores, values) x Dh 2 x 2 heads = 72; MLP 3 x 4 x 6 x 3 = 216; unembedding
    // 3 x 10 x 4 = 120.
    CHECK(e.forward.projections == 144);
    CHECK(e.forward.attention == 72);
    CHECK(e.forward.mlp == 216);
    CHECK(e.forward.unembedding == 120);
    CHECK(e.forward.total() == 552);
    // Trace: h 2x3x4 = 24; block: norm factors 3 + 3, probs 2x3x3 = 18, context 3x4 = 12, attention
    // out, residual, MLP out 3x12 = 36, gate, up, act 3x18 = 54 -> 126; final factors 3, final
    // out 12, logits 30: 195 values, 780 bytes in float.
    CHECK(e.trace_bytes == 780);

    REQUIRE(e.levels.size() == 6);
    // Token: 4 components, first positions 0, 1, 2 and the rest 0: 3 + 2 + 1 + 3 = 9 rows.
    // Attention: v 9x4x2 = 72, A V per component and head: 2 x 2 x (6 + 3 + 1 + 6) = 64,
    // W_O 9x4x4 = 144 -> 280; MLP 2 x 9 x 4 x 6 = 432; logits 9 x 4 = 36.
    const LevelCost& tok = e.levels[0];
    CHECK(tok.level == "token");
    CHECK(tok.components == 4);
    CHECK(tok.rows == 9);
    CHECK(tok.components_bytes == 9 * 4 * 4);
    CHECK(tok.macs == 748);
    // Attention block: input, normed, values (2 wide), context (4 wide), output: 9 x (4+4+2+4+4) x 4.
    // MLP: 3 x 9 x 4 x 4 = 432 + one chunk of 9 rows x (4 + 6 + 4) x 4 = 504 -> 936.
    // Output: 9x4x4 = 144 + 4x3x4x12 = 576 + 4x3x1x16 = 192 -> 912.
    CHECK(tok.decompose_bytes == 936);
    CHECK(tok.output_bytes == 912);
    CHECK(tok.peak_bytes == 848 + 780 + 936);
    // Streamed: embedding 40 + final norm 4 + lm_head 40 = 84 weights widened, one block of 128.
    CHECK(e.weights_streamed_bytes == (212 - 128) * 4 + 128 * 4);
    // A block's largest matrix, gate / up / down 6 x 4, is 24 weights: 2 bytes stored + 4 widened each.
    CHECK(e.block_transient_bytes == 24 * (2 + 4));
    CHECK(tok.peak_streamed_bytes == (212 - 128) * 4 + 128 * 4 + 780 + 936 + 144);
    // Module (attention of block 0, cut m[0]): 2 x 3 rows, block 0's MLP only: 2 x 6 x 4 x 6 = 288 + 24.
    CHECK(e.levels[1].rows == 6);
    CHECK(e.levels[1].macs == 312);
    // Head: 3 components x 3 rows; W_O slices 3 x 4 x 4 = 48; MLP 2 x 9 x 4 x 6 = 432; logits 36.
    CHECK(e.levels[2].components == 3);
    CHECK(e.levels[2].macs == 516);
    // Neuron: 7 components at h[1] of a 1-block model: a W_down 3 x 6 x 4 = 72, logits 21 x 4 = 84.
    CHECK(e.levels[3].components == 7);
    CHECK(e.levels[3].macs == 156);
    // Neuron groups: min(16, I) = 6 groups + rest.
    CHECK(e.levels[4].components == 7);
    // Subspace (1 basis): x P 3 x 4 x 4 = 48, then the whole block with 6 rows:
    // v 48 + A V 2 x 2 x 2 x 6 = 48 + W_O 96 + MLP 288 + logits 24.
    CHECK(e.levels[5].macs == 48 + 48 + 48 + 96 + 288 + 24);

    CHECK(format_bytes(1536) == "1.50 KiB");
    CHECK(format_bytes(17) == "17 B");
    CHECK(format_count(2.5e9) == "2.50 G");
    depass_test::expect_error([&] { estimate_cost(c, 0, 4); }, {"0 tokens"});
    depass_test::expect_error([&] { estimate_cost(c, 3, 2); }, {"scalar size 2"});
}

TEST_CASE("estimate: weights, trace and component rows are what the code allocates", "[estimate]") {
    for (auto arch :
         {depass_test::TinyArch::Llama, depass_test::TinyArch::Qwen2, depass_test::TinyArch::Gpt2}) {
        const Config cfg = depass_test::tiny_config(arch);
        INFO(depass_test::tiny_arch_name(arch));
        const Model<double> model = random_model<double>(cfg, 7);
        CHECK(weight_count(cfg) == values_in(model));
        const std::vector<int> ids = {1, 4, 9, 16, 25, 36, 3};
        const Trace<double> trace = forward(model, ids);
        const CostEstimate e = estimate_cost(cfg, int(ids.size()), 8);
        CHECK(e.trace_bytes == 8 * values_in(trace));
        for (const LevelCost& lc : e.levels) {
            INFO(lc.level);
            AttributionRequest rq;
            if (lc.level == "token") rq.start.level = Level::Token;
            if (lc.level == "module") rq.start.level = Level::Module;
            if (lc.level == "head") rq.start.level = Level::Head;
            if (lc.level == "neuron") rq.start.level = Level::Neuron;
            if (lc.level == "neuron groups") {
                rq.start.level = Level::Neuron;
                rq.start.neuron_groups = 16;
            }
            if (lc.level == "subspace") {
                rq.start.level = Level::Subspace;
                Mat<double> B = Mat<double>::Zero(cfg.D, 2);
                B(0, 0) = B(1, 1) = 1;
                rq.start.projectors.push_back(projector_from(B, cfg.D, "basis"));
                rq.start.projector_names.push_back("basis");
            }
            const Attribution<double> a = attribute(model, trace, rq);
            CHECK(a.M() == lc.components);
            CHECK(a.components.rows() == lc.rows);
            CHECK(a.cut.str() == lc.cut);
        }
    }
}

TEST_CASE("estimate: the peak memory of real runs is within 1.5x of the measured one", "[estimate][memory]") {
    // A random llama2.c model of 29 MB (D 256, I 768, L 6, V 8000) and runs whose
    // components, trace and output dominate in turn.
    Config c = preset(Arch::Llama2c);
    c.D = 256;
    c.I = 768;
    c.L = 6;
    c.H = 8;
    c.Hkv = 8;
    c.Dh = 32;
    c.V = 8000;
    c.max_positions = 256;
    c.tied_embeddings = true;
    const std::string path = depass_test::temp_dir() + "/rss_model.bin";
    // The file is written by a child process: a spawned process starts with its parent's peak
    // resident size as its own (Linux carries the peak over exec), so this process stays small.
    const pid_t writer = fork();
    if (writer == 0) {
        write_llama2c(path, random_model<float>(c, 11, 0.05));
        _exit(0);
    }
    int wstatus = 0;
    REQUIRE(waitpid(writer, &wstatus, 0) == writer);
    REQUIRE(WIFEXITED(wstatus));
    REQUIRE(read_config(path).D == 256);

    uint64_t base = 0;  // the program itself, or this process's peak if larger
    REQUIRE(run_measured({"--help"}, &base) == 0);
    std::string ids64 = "1";
    for (int i = 1; i < 64; ++i) ids64 += "," + std::to_string(7 * i % 8000);
    struct Run {
        std::vector<std::string> args;
        std::string level;
        int scalar;
    };
    const std::string out = depass_test::temp_dir() + "/rss_out.safetensors";
    const std::vector<Run> runs = {
        {{"forward", "-m", path, "--ids", ids64}, "forward", 4},
        {{"attribute", "-m", path, "--ids", ids64, "--level", "token", "--out", out}, "token", 4},
        {{"attribute", "-m", path, "--ids", ids64, "--level", "token", "--dtype", "f64", "--out", out},
         "token",
         8},
        {{"attribute", "-m", path, "--ids", ids64, "--level", "neuron", "--out", out}, "neuron", 4},
    };
    for (const Run& r : runs) {
        uint64_t peak = 0;
        REQUIRE(run_measured(r.args, &peak) == 0);
        EstimateOptions opt;
        opt.stored_weight_bytes = fs::file_size(path) - 28;
        opt.load_extra_bytes = fs::file_size(path);  // read whole by the loader
        const CostEstimate e = estimate_cost(c, 64, r.scalar, opt);
        uint64_t est = e.forward_peak_bytes;
        for (const LevelCost& l : e.levels)
            if (l.level == r.level) est = l.peak_bytes;
        const double grown = double(peak - base), ratio = grown / double(est);
        WARN(r.level << " f" << 8 * r.scalar << ": measured peak " << format_bytes(peak) << " - program "
                     << format_bytes(base) << " = " << format_bytes(peak - base) << ", estimate "
                     << format_bytes(est) << ", ratio " << ratio);
        CHECK(ratio > 1 / 1.5);
        CHECK(ratio < 1.5);
    }
}
