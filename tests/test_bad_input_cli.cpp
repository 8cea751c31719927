// Bad model and tokenizer files through the command line: one clear error line naming the
// file and the field, exit status 1, and no output file (issue 11's list: malformed
// tokenizer.json, unknown RoPE type, a quantised checkpoint, sizes larger than the file).
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "test_support.hpp"
#include "tiny_tokenizer_json.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string q(const std::string& s) { return "'" + s + "'"; }
int run(const std::string& args, std::string* out) {
    return depass_test::run_command(q(depass_test::cli_path()) + " " + args, out);
}
std::string tmp(const std::string& name) { return depass_test::temp_dir() + "/" + name; }
std::string shipped() { return depass_test::source_dir() + "/weights/stories260K.bin"; }
std::string read_bytes(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
}
std::string write_bytes(const std::string& name, const std::string& b) {
    const std::string p = tmp(name);
    fs::create_directories(fs::path(p).parent_path());
    std::ofstream(p, std::ios::binary | std::ios::trunc).write(b.data(), std::streamsize(b.size()));
    return p;
}

// A byte-level BPE tokenizer.json: the 256 byte characters of the GPT-2 alphabet (ids 0..255),
// "ab" (256) and the merge "a b".
json small_tokenizer() { return depass_test::tiny_tokenizer_json({"ab"}, json::array({"a b"})); }

// A Hugging Face directory: stories260K_hf's config.json edited, its weights linked.
std::string hf_dir(const std::string& name, const std::function<void(json&)>& edit) {
    const std::string src = depass_test::weights_dir() + "/stories260K_hf";
    const std::string dir = tmp(name);
    fs::create_directories(dir);
    json c = json::parse(read_bytes(src + "/config.json"));
    edit(c);
    write_bytes(name + "/config.json", c.dump(2));
    if (!fs::exists(dir + "/model.safetensors"))
        fs::create_symlink(src + "/model.safetensors", dir + "/model.safetensors");
    return dir;
}

struct Case {
    std::string what, args;
    std::vector<std::string> must;
};

void check_cases(const std::vector<Case>& cases, const std::string& out) {
    for (const Case& c : cases) {
        INFO(c.what << ": depass " << c.args);
        std::string log;
        CHECK(run(c.args, &log) == 1);
        INFO(log);
        for (const std::string& m : c.must) CHECK(log.find(m) != std::string::npos);
        // One line, no crash, nothing written.
        CHECK(log.find("depass: error: ") == 0);
        CHECK(log.find('\n') == log.size() - 1);
        CHECK(!fs::exists(out));
    }
}

}  // namespace

TEST_CASE("bad tokenizer.json files: one error naming the file and field, no output",
          "[cli][errors][tokenizer]") {
    const json good = small_tokenizer();
    const std::string out = tmp("tok_out.safetensors");
    const std::string ok = write_bytes("tok/good.json", good.dump());
    std::string log;
    // The good one works with the shipped model (257 pieces fit its 512).
    REQUIRE(run("attribute -m " + q(shipped()) + " --tokenizer " + q(ok) + " --prompt abc --out " + q(out) +
                    " -q",
                &log) == 0);
    fs::remove(out);

    auto edited = [&](const std::string& name, const std::function<void(json&)>& edit) {
        json j = good;
        edit(j);
        return write_bytes("tok/" + name, j.dump());
    };
    const std::string text = good.dump();
    const std::string trunc = write_bytes("tok/trunc.json", text.substr(0, text.size() / 3));
    const std::string types = edited("types.json", [](json& j) {
        j["model"]["vocab"] = json::array({1, 2});
    });
    const std::string merges = edited("merges.json", [](json& j) { j["model"]["merges"].push_back("a zz"); });
    const std::string big_id = edited("big_id.json", [](json& j) { j["model"]["vocab"]["ab"] = 9999; });
    const std::string added = edited("added.json", [](json& j) {
        j["added_tokens"] = json::parse(R"([{"id": 700, "content": "<x>", "special": true}])");
    });
    const std::string a = "attribute -m " + q(shipped()) + " --prompt abc --out " + q(out) + " --tokenizer ";
    check_cases(
        {{"truncated", a + q(trunc), {trunc, "not valid JSON", "truncated"}},
         {"wrong types", a + q(types), {types, "'model.vocab'", "must be an object"}},
         {"merge of unknown pieces",
          a + q(merges),
          {merges, "model.merges[1]", "'zz'", "not in the vocabulary"}},
         {"id beyond the vocabulary", a + q(big_id), {big_id, "9999", "outside the vocabulary"}},
         {"added token beyond the vocabulary",
          a + q(added),
          {added, "added_tokens[0]", "id 700", "outside the vocabulary"}},
         {"tokenize, truncated", "tokenize --tokenizer " + q(trunc) + " --prompt abc", {trunc, "truncated"}}},
        out);
}

TEST_CASE("unknown RoPE type, quantised checkpoint: refused naming the field, no output",
          "[cli][errors][config]") {
    SKIP_WITHOUT_SHARED();
    const std::string yarn = hf_dir("hf_yarn", [](json& c) {
        c["rope_scaling"] = {
            {"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 128}};
    });
    const std::string old_key = hf_dir("hf_dynamic", [](json& c) {
        c["rope_scaling"] = {{"type", "dynamic"}, {"factor", 2.0}};
    });
    const std::string gptq = hf_dir("hf_gptq", [](json& c) {
        c["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 4}, {"group_size", 128}};
    });
    const std::string out = tmp("cfg_out.safetensors");
    std::vector<Case> cases;
    const std::vector<std::string> commands = {"attribute --ids 1,2,3 --out " + q(out) + " -m ",
                                               "forward --ids 1,2 --dump " + q(out) + " -m ", "inspect -m ",
                                               "tokenize --prompt hi -m "};
    for (const std::string& cmd : commands) {
        cases.push_back({"yarn", cmd + q(yarn), {yarn, "rope_scaling.rope_type", "'yarn'"}});
        cases.push_back({"dynamic (old key)", cmd + q(old_key), {old_key, "rope_scaling", "'dynamic'"}});
        cases.push_back({"gptq", cmd + q(gptq), {gptq, "quantization_config", "gptq"}});
    }
    check_cases(cases, out);
}

TEST_CASE("files that declare more bytes than they hold: refused before allocating, no output",
          "[cli][errors][sizes]") {
    SKIP_WITHOUT_SHARED();
    const std::string out = tmp("size_out.safetensors");
    // safetensors cut short: the header's data offsets point past the end.
    const std::string src = depass_test::weights_dir() + "/stories260K_hf";
    const std::string st = read_bytes(src + "/model.safetensors");
    const std::string dir = tmp("hf_short");
    fs::create_directories(dir);
    fs::copy_file(src + "/config.json", dir + "/config.json", fs::copy_options::overwrite_existing);
    write_bytes("hf_short/model.safetensors", st.substr(0, st.size() - 4096));
    // GGUF cut short: its tensors extend past the end.
    const std::string gg = read_bytes(depass_test::weights_dir() + "/third_party/llama-2-tiny-random.gguf");
    const std::string short_gguf = write_bytes("short.gguf", gg.substr(0, gg.size() - 4096));
    // llama2.c header claiming 2x the layers.
    std::string bin = read_bytes(shipped());
    const int32_t layers = 10;
    bin.replace(8, 4, reinterpret_cast<const char*>(&layers), 4);
    const std::string big_bin = write_bytes("big_layers.bin", bin);
    std::vector<Case> cases;
    const std::vector<std::string> commands = {"attribute --ids 1,2,3 --out " + q(out) + " -m ",
                                               "inspect -m "};
    for (const std::string& cmd : commands) {
        cases.push_back({"safetensors",
                         cmd + q(dir),
                         {"model.safetensors", "'data_offsets'", "beyond the data section"}});
        cases.push_back(
            {"gguf", cmd + q(short_gguf), {short_gguf, "'output.weight'", "data section, which is only"}});
        cases.push_back({"llama2.c", cmd + q(big_bin), {big_bin, "n_layers=10", "implies"}});
    }
    check_cases(cases, out);
}
