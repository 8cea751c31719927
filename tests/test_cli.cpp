// The `depass` command end to end: outputs checked against references, exit codes,
// one-line errors, and no partial output files.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "depass/forward.hpp"
#include "depass/io.hpp"
#include "depass/tolerance.hpp"
#include "test_support.hpp"

using namespace depass;
namespace fs = std::filesystem;

namespace {

const auto tmp = depass_test::temp_path;
const auto q = depass_test::shell_quoted;
int run(const std::string& args, std::string* out = nullptr) { return depass_test::run_cli(args, out); }

// No file in the temp dir whose name starts with `stem` (no partial or temporary output).
bool no_file_like(const std::string& stem) {
    for (auto& e : fs::directory_iterator(depass_test::temp_dir()))
        if (e.path().filename().string().rfind(stem, 0) == 0) return false;
    return true;
}

}  // namespace

TEST_CASE("forward --dump reproduces the fixture goldens through the command line", "[cli]") {
    SKIP_WITHOUT_SHARED();
    const std::string dir = depass_test::fixtures_dir() + "/gpt2-s1";
    auto ids =
        nlohmann::json::parse(read_text_file(dir + "/tokens.json")).at("input_ids").get<std::vector<int>>();
    std::string list;
    for (size_t i = 0; i < ids.size(); ++i) list += (i ? "," : "") + std::to_string(ids[i]);
    const std::string out = tmp("gpt2_trace.safetensors");
    std::string log;
    REQUIRE(run("forward --quiet -m " + q(dir) + " --ids " + list + " --dtype f64 --dump " + q(out), &log) ==
            0);
    SafeTensors mine = SafeTensors::open(out), ref = SafeTensors::open(dir + "/golden_f64.safetensors");
    for (const std::string& name : ref.names()) {
        INFO(name);
        REQUIRE(mine.has(name));
        CHECK(mine.info(name).dtype == DType::F64);
        auto a = mine.read<double>(name), b = ref.read<double>(name);
        REQUIRE(a.shape == b.shape);
        CHECK(depass_test::diff(a.data.data(), b.data.data(), a.size()).rel() <=
              tolerance::golden_f64_exact_rel);
    }
}

TEST_CASE("generate continues the prompt exactly as llama2.c does", "[cli]") {
    std::string out;
    const std::string model = depass_test::source_dir() + "/weights/stories260K.bin";
    REQUIRE(run("generate --quiet -m " + q(model) + " --prompt 'Once upon a time' -n 40", &out) == 0);
    CHECK(out.rfind(
              "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
              "One day, she saw a big, red ball.",
              0) == 0);
}

TEST_CASE("attribute: components sum to the final residual and attributions to the target logits", "[cli]") {
    const std::string model = depass_test::source_dir() + "/weights/stories260K.bin";
    const std::string trace = tmp("s260_trace.safetensors");
    REQUIRE(run("forward --quiet -m " + q(model) +
                " --prompt 'Once upon a time there was' --dtype f64 --dump " + q(trace)) == 0);
    SafeTensors tr = SafeTensors::open(trace);
    auto final_res = tr.read<double>("final_residual_prenorm");
    auto logits = tr.read<double>("logits");
    const int64_t N = final_res.shape[0], D = final_res.shape[1], V = logits.shape[1];
    for (std::string level :
         {"token", "head --layer 2", "neuron --layer 1 --neuron-groups 4", "module --module mlp --layer 3"}) {
        INFO(level);
        const std::string out = tmp("attr.safetensors");
        REQUIRE(run("attribute --quiet -m " + q(model) +
                    " --prompt 'Once upon a time there was' --dtype f64 --level " + level +
                    " --targets auto --out " + q(out)) == 0);
        SafeTensors a = SafeTensors::open(out);
        auto comps = a.read<double>("components");
        auto attr = a.read<double>("logit_attribution");
        auto targets = a.read<int64_t>("targets");
        REQUIRE(comps.shape.size() == 3);
        const int64_t M = comps.shape[0];
        REQUIRE(comps.shape[1] == N);
        double worst = 0;
        for (int64_t n = 0; n < N; ++n)
            for (int64_t d = 0; d < D; ++d) {
                double s = 0;
                for (int64_t m = 0; m < M; ++m) s += comps.data[(m * N + n) * D + d];
                worst = std::max(worst, std::abs(s - final_res.data[n * D + d]));
            }
        CHECK(worst <= 1e-12 * 50);
        // Attribution sums to the true logit of the target, which is the argmax at each position.
        for (int64_t n = 0; n < N; ++n) {
            const int64_t v = targets.data[n];
            double best = -1e300;
            for (int64_t u = 0; u < V; ++u) best = std::max(best, logits.data[n * V + u]);
            CHECK(logits.data[n * V + v] == best);
            double s = 0;
            for (int64_t m = 0; m < M; ++m) s += attr.data[m * N + n];
            CHECK(std::abs(s - logits.data[n * V + v]) <= 1e-11);
        }
        auto meta = nlohmann::json::parse(a.metadata().at("component_names"));
        CHECK(meta.size() == size_t(M));
        CHECK(meta.back() == "rest");
    }
}

TEST_CASE("bad input: one clear line, non-zero exit, no output file", "[cli][errors]") {
    const std::string model = depass_test::source_dir() + "/weights/stories260K.bin";
    // A copy of the model one byte short.
    const std::string short_model = tmp("short.bin");
    {
        std::ifstream in(model, std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(in)), {});
        std::ofstream(short_model, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size() - 1));
    }
    struct Case {
        std::string args, must_contain;
        int code;
    };
    const std::string out = tmp("bad_out.safetensors");
    std::vector<Case> cases = {
        {"forward -m /no/such/model.bin --ids 1,2 --dump " + q(out), "/no/such/model.bin", 1},
        {"forward -m " + q(short_model) + " --ids 1,2 --dump " + q(out), "short.bin", 1},
        {"forward -m " + q(depass_test::temp_dir()) + " --ids 1,2 --dump " + q(out), "config.json", 1},
        {"forward -m " + q(model) + " --ids 1,999 --dump " + q(out), "999", 1},
        {"forward -m " + q(model) + " --ids 1,x --dump " + q(out), "'x'", 2},
        {"forward -m " + q(model) + " --ids '' --dump " + q(out), "--ids", 2},
        {"forward -m " + q(model) + " --ids 1 --prompt hi --dump " + q(out), "--prompt", 2},
        {"forward -m " + q(model) + " --dump " + q(out), "--ids", 2},
        {"attribute -m " + q(model) + " --ids 1,2,3 --level head --layer 9 --out " + q(out), "layer 9", 1},
        {"attribute -m " + q(model) + " --ids 1,2,3 --level head --heads 0,8 --out " + q(out), "head 8", 1},
        {"attribute -m " + q(model) + " --ids 1,2,3 --level neuron --neurons 172 --out " + q(out),
         "neuron 172", 1},
        {"attribute -m " + q(model) + " --ids 1,2,3 --level token --heads 1 --out " + q(out), "--heads", 2},
        {"attribute -m " + q(model) + " --ids 1,2,3 --level subspace --out " + q(out), "--basis", 2},
        {"attribute -m " + q(model) + " --ids 1,2,3 --targets 512 --out " + q(out), "512", 1},
        {"attribute -m " + q(model) + " --ids 1,2,3 --rule cubic --out " + q(out), "cubic", 2},
        {"attribute -m " + q(model) + " --ids 1,2,3 --out /no/such/dir/out.safetensors", "/no/such/dir", 1},
    };
    // More positions than the model supports (512).
    std::string long_ids = "1";
    for (int i = 0; i < 512; ++i) long_ids += ",5";
    cases.push_back({"forward -m " + q(model) + " --ids " + long_ids + " --dump " + q(out), "513", 1});
    for (const Case& c : cases) {
        INFO(c.args);
        std::string log;
        int rc = run(c.args, &log);
        INFO(log);
        CHECK(rc == c.code);
        CHECK(log.find(c.must_contain) != std::string::npos);
        CHECK(no_file_like("bad_out"));
    }
}
