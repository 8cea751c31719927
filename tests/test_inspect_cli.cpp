// depass inspect, the memory check before a run, the context-length check before loading, and
// commands that need only the config (tokenize) reading no weight.
#include <filesystem>
#include <fstream>
#include <iterator>

#include "depass/estimate.hpp"
#include "depass/io.hpp"
#include "depass/model_info.hpp"
#include "test_support.hpp"

using namespace depass;
namespace fs = std::filesystem;

namespace {

std::string q(const std::string& s) { return "'" + s + "'"; }
int run(const std::string& args, std::string* out) {
    return depass_test::run_command(q(depass_test::cli_path()) + " " + args, out);
}
int run_env(const std::string& env, const std::string& args, std::string* out) {
    return depass_test::run_command(env + " " + q(depass_test::cli_path()) + " " + args, out);
}
std::string tmp(const std::string& name) { return depass_test::temp_dir() + "/" + name; }
std::string shipped() { return depass_test::source_dir() + "/weights/stories260K.bin"; }
std::string third_party_gguf() {
    return depass_test::weights_dir() + "/third_party/llama-2-tiny-random.gguf";
}

// The lines of `text` that start (after spaces) with `head`.
std::string line_of(const std::string& text, const std::string& head) {
    size_t pos = 0;
    while (pos < text.size()) {
        const size_t end = text.find('\n', pos);
        const std::string line = text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
        const size_t a = line.find_first_not_of(' ');
        if (a != std::string::npos && line.compare(a, head.size(), head) == 0) return line;
        if (end == std::string::npos) break;
        pos = end + 1;
    }
    return "";
}

// The third-party GGUF with one tensor renamed: its config and vocabulary read, its weights do not load.
std::string broken_gguf() {
    const std::string path = tmp("renamed.gguf");
    if (fs::exists(path)) return path;
    std::ifstream in(third_party_gguf(), std::ios::binary);
    std::string b((std::istreambuf_iterator<char>(in)), {});
    const size_t at = b.find("blk.0.attn_q.weight");
    REQUIRE(at != std::string::npos);
    b.replace(at, 19, "blk.0.attn_X.weight");
    std::ofstream(path, std::ios::binary).write(b.data(), std::streamsize(b.size()));
    return path;
}

}  // namespace

TEST_CASE("inspect: architecture, tensors, tokenizer and the cost table of the shipped model",
          "[cli][inspect]") {
    std::string log;
    REQUIRE(run("inspect -m " + q(shipped()) + " --tokens 16,64", &log) == 0);
    INFO(log);
    CHECK(log.find("architecture: llama2c: D=64 I=172 L=5 H=8 Hkv=4") != std::string::npos);
    CHECK(log.find("tokenizer: llama2.c, 512 pieces") != std::string::npos);
    CHECK(line_of(log, "w1").find("[5, 172, 64]") != std::string::npos);
    CHECK(log.find("free memory: ") != std::string::npos);
    // The table rows are the library's estimate for these N.
    const ModelFileInfo info = describe_model_file(shipped());
    for (int N : {16, 64}) {
        EstimateOptions opt;
        opt.stored_weight_bytes = info.tensor_bytes;
        opt.load_extra_bytes = load_transient_bytes(info, 4);
        const CostEstimate e = estimate_cost(info.cfg, N, 4, opt);
        CHECK(log.find("N = " + std::to_string(N) + " tokens in f32") != std::string::npos);
        for (const LevelCost& l : e.levels) {
            INFO(l.level << " N=" << N);
            CHECK(log.find(format_bytes(l.peak_bytes)) != std::string::npos);
            CHECK(log.find(format_count(e.forward.total() + l.macs)) != std::string::npos);
        }
    }
    // Token level at N = 16: 17 components.
    CHECK(line_of(log, "token ").find(" 17 ") != std::string::npos);
}

TEST_CASE("inspect: tensors grouped by layer pattern, every one with --all-tensors", "[cli][inspect]") {
    SKIP_WITHOUT_SHARED();
    const std::string hf = depass_test::weights_dir() + "/stories260K_hf";
    std::string grouped, all;
    REQUIRE(run("inspect -m " + q(hf), &grouped) == 0);
    REQUIRE(run("inspect -m " + q(hf) + " --all-tensors", &all) == 0);
    INFO(grouped);
    const std::string g = line_of(grouped, "model.layers.*.mlp.down_proj.weight");
    CHECK(g.find(" 5 ") != std::string::npos);  // five layers
    CHECK(g.find("F32") != std::string::npos);
    CHECK(grouped.find("model.layers.4.mlp.down_proj.weight") == std::string::npos);
    CHECK(line_of(all, "model.layers.4.mlp.down_proj.weight").find("[64, 172]") != std::string::npos);
    CHECK(line_of(all, "model.layers.4.mlp.down_proj.weight").find(std::to_string(64 * 172 * 4)) !=
          std::string::npos);
    // The GGUF: F16 tensors, the embedded vocabulary.
    std::string gg;
    REQUIRE(run("inspect -m " + q(third_party_gguf()) + " --dtype f64", &gg) == 0);
    CHECK(line_of(gg, "F16").find("9 tensors") != std::string::npos);
    CHECK(gg.find("tokenizer: gguf-spm, 32000 pieces") != std::string::npos);
    CHECK(gg.find("tokens in f64") != std::string::npos);
}

TEST_CASE("inspect --help explains the columns", "[cli][inspect]") {
    std::string log;
    REQUIRE(run("inspect --help", &log) == 0);
    for (const char* s : {"--tokens", "--all-tensors", "peak resident", "peak streamed", "--weights",
                          "MemAvailable", "cgroup", "refuse"})
        CHECK(log.find(s) != std::string::npos);
    CHECK(run("inspect", &log) == 2);
    CHECK(run("inspect -m " + q(shipped()) + " --tokens 0", &log) == 2);
}

TEST_CASE("tokenize and inspect read no weights: a GGUF whose weights do not load still works",
          "[cli][inspect]") {
    SKIP_WITHOUT_SHARED();
    const std::string broken = broken_gguf();
    std::string good, bad, log;
    REQUIRE(run("tokenize -m " + q(third_party_gguf()) + " --prompt 'Hello world' 2>/dev/null", &good) == 0);
    REQUIRE(run("tokenize -m " + q(broken) + " --prompt 'Hello world' 2>/dev/null", &bad) == 0);
    CHECK(bad == good);
    CHECK(run("inspect -m " + q(broken), &log) == 0);
    // The full loader refuses it.
    CHECK(run("forward -m " + q(broken) + " --ids 1,2", &log) == 1);
    CHECK(log.find("blk.0.attn_q.weight") != std::string::npos);
}

TEST_CASE("a run whose estimate exceeds the free memory stops before loading", "[cli][inspect][errors]") {
    SKIP_WITHOUT_SHARED();
    const std::string out = tmp("mem_out.safetensors");
    std::string log;
    // 100 KiB free: the stories260K run needs ~2 MiB.
    CHECK(run_env("DEPASS_FREE_MEMORY=100K", "attribute -m " + q(shipped()) + " --ids 1,2,3 --out " + q(out),
                  &log) == 1);
    INFO(log);
    for (const char* s : {"not enough memory", "token level on 3 tokens in f32 needs about", "MiB",
                          "100 KiB is free (DEPASS_FREE_MEMORY)", "depass inspect"})
        CHECK(log.find(s) != std::string::npos);
    CHECK(!fs::exists(out));
    CHECK(run_env("DEPASS_FREE_MEMORY=100K", "forward -m " + q(shipped()) + " --ids 1,2,3 --dump " + q(out),
                  &log) == 1);
    CHECK(log.find("forward pass on 3 tokens") != std::string::npos);
    CHECK(!fs::exists(out));
    // 3 MiB: 16 tokens fit at token level (~2 MiB), not at neuron level (~4.4 MiB).
    const std::string ids16 = "1,403,407,261,378,432,10,20,30,40,50,60,70,80,90,100";
    CHECK(run_env("DEPASS_FREE_MEMORY=3M",
                  "attribute -m " + q(shipped()) + " --ids " + ids16 + " --level neuron --out " + q(out),
                  &log) == 1);
    CHECK(log.find("neuron level on 16 tokens") != std::string::npos);
    CHECK(!fs::exists(out));
    REQUIRE(run_env("DEPASS_FREE_MEMORY=3M",
                    "attribute -m " + q(shipped()) + " --ids " + ids16 + " --out " + q(out), &log) == 0);
    CHECK(fs::exists(out));
    fs::remove(out);
    // Before loading: the GGUF whose weights do not load gives the memory error, not the tensor error.
    CHECK(run_env("DEPASS_FREE_MEMORY=1K", "forward -m " + q(broken_gguf()) + " --ids 1,2", &log) == 1);
    CHECK(log.find("not enough memory") != std::string::npos);
    CHECK(log.find("attn_q") == std::string::npos);
    // Enough: the same run works.
    REQUIRE(run_env("DEPASS_FREE_MEMORY=64G", "attribute -m " + q(shipped()) + " --ids 1,2,3 --out " + q(out),
                    &log) == 0);
    CHECK(fs::exists(out));
    CHECK(run_env("DEPASS_FREE_MEMORY=lots", "forward -m " + q(shipped()) + " --ids 1,2", &log) == 1);
    CHECK(log.find("DEPASS_FREE_MEMORY='lots' is not a byte count") != std::string::npos);
}

TEST_CASE("more tokens than the context length are refused before loading", "[cli][inspect][errors]") {
    SKIP_WITHOUT_SHARED();
    // The GGUF's context is 4096; its weights do not load, so an error about them would mean
    // the weights were read before the tokens were checked.
    std::string ids = "1";
    for (int i = 0; i < 4096; ++i) ids += ",5";
    const std::string out = tmp("ctx_out.safetensors");
    std::string log;
    CHECK(run("attribute -m " + q(broken_gguf()) + " --ids " + ids + " --out " + q(out), &log) == 1);
    INFO(log);
    CHECK(log.find("4097 tokens exceed the model's maximum of 4096 positions") != std::string::npos);
    CHECK(log.find("attn_q") == std::string::npos);
    CHECK(!fs::exists(out));
}

TEST_CASE("--weights auto streams a model that does not fit widened, with the same output",
          "[cli][inspect][streamed]") {
    SKIP_WITHOUT_SHARED();
    // llama-gqa-s1 on 4 tokens in f32 (depass inspect): weights 465 KiB widened, peak 593 KiB
    // resident and 425 KiB streamed. With 500 KiB free, auto must stream (465 > 500 / 2) and fit.
    const std::string model = depass_test::fixtures_dir() + "/llama-gqa-s1";
    const std::string a = tmp("auto_streamed.safetensors"), b = tmp("resident.safetensors");
    std::string log;
    REQUIRE(run_env("DEPASS_FREE_MEMORY=500K", "attribute -m " + q(model) + " --ids 1,7,3,9 --out " + q(a),
                    &log) == 0);
    CHECK(log.find("weights: streamed") != std::string::npos);
    CHECK(run_env("DEPASS_FREE_MEMORY=500K",
                  "attribute -m " + q(model) + " --ids 1,7,3,9 --weights resident --out " + q(b), &log) == 1);
    CHECK(log.find("not enough memory") != std::string::npos);
    CHECK(log.find("--weights streamed") != std::string::npos);
    CHECK(!fs::exists(b));
    REQUIRE(run_env("DEPASS_FREE_MEMORY=64G", "attribute -m " + q(model) + " --ids 1,7,3,9 --out " + q(b),
                    &log) == 0);
    CHECK(log.find("weights: streamed") == std::string::npos);  // plenty of memory: resident
    // The two result files hold the same tensors byte for byte (the metadata's timing aside).
    const SafeTensors sa = SafeTensors::open(a), sb = SafeTensors::open(b);
    REQUIRE(sa.names() == sb.names());
    for (const std::string& n : sa.names()) {
        INFO(n);
        if (sa.info(n).dtype == DType::I64 || sa.info(n).dtype == DType::I32) continue;
        CHECK(sa.read<double>(n).data == sb.read<double>(n).data);
    }
}
