#include "test_support.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "depass/io.hpp"

namespace fs = std::filesystem;

namespace depass_test {

static int g_skipped = 0;
int skipped_count() { return g_skipped; }
void note_skip(const std::string&) { ++g_skipped; }

std::string shared_dir() {
    if (const char* env = std::getenv("DEPASS_SHARED_DIR"); env && *env) return env;
    return DEPASS_SHARED_DEFAULT;
}
std::string fixtures_dir() { return shared_dir() + "/fixtures"; }
std::string weights_dir() { return shared_dir() + "/weights"; }
bool have_shared() { return fs::is_directory(fixtures_dir()) && fs::is_directory(weights_dir()); }
bool require_fixtures() {
    const char* env = std::getenv("DEPASS_REQUIRE_FIXTURES");
    return env && std::string(env) == "1";
}
std::string cli_path() { return DEPASS_CLI_PATH; }
std::string source_dir() { return DEPASS_SOURCE_DIR; }

std::string temp_dir() {
    static std::string dir;
    if (dir.empty()) {
        std::string tmpl = (fs::temp_directory_path() / "depass-test-XXXXXX").string();
        if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        dir = tmpl;
    }
    return dir;
}

int run_command(const std::string& cmd, std::string* out) {
    std::string full = cmd + " 2>&1";
    FILE* p = popen(full.c_str(), "r");
    if (!p) return -1;
    std::array<char, 4096> buf;
    std::string acc;
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) acc.append(buf.data(), n);
    int status = pclose(p);
    if (out) *out = acc;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string temp_path(const std::string& name) { return temp_dir() + "/" + name; }

std::string write_temp_file(const std::string& name, const std::string& text) {
    const std::string path = temp_path(name);
    fs::create_directories(fs::path(path).parent_path());
    depass::write_file_atomic(path, text);
    return path;
}

std::string shell_quoted(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

int run_cli(const std::string& args, std::string* out) {
    return run_command(shell_quoted(cli_path()) + " " + args, out);
}

int run_cli_stdout(const std::string& args, std::string* out) {
    return run_command("( " + shell_quoted(cli_path()) + " " + args + " 2>/dev/null )", out);
}

std::vector<int> fixture_ids(const std::string& dir) {
    return nlohmann::json::parse(depass::read_text_file(dir + "/tokens.json"))
        .at("input_ids")
        .get<std::vector<int>>();
}

size_t count_of(const std::string& hay, const std::string& needle) {
    size_t n = 0;
    for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + needle.size()))
        ++n;
    return n;
}

std::string between(const std::string& s, const std::string& from, const std::string& to, size_t at) {
    size_t b = s.find(from, at);
    if (b == std::string::npos) return "";
    b += from.size();
    const size_t e = s.find(to, b);
    return e == std::string::npos ? "" : s.substr(b, e - b);
}

const char* tiny_arch_name(TinyArch a) {
    switch (a) {
        case TinyArch::Llama:
            return "llama (GQA, rotate-half RoPE)";
        case TinyArch::LlamaInterleaved:
            return "llama (GQA, interleaved RoPE)";
        case TinyArch::Qwen2:
            return "qwen2 (q/k/v biases, one KV head, tied)";
        case TinyArch::Gpt2:
            return "gpt2 (LayerNorm, GELU, biases, learned positions)";
    }
    return "?";
}

depass::Config tiny_config(TinyArch a) {
    using namespace depass;
    Config c = preset(a == TinyArch::Qwen2 ? Arch::Qwen2 : a == TinyArch::Gpt2 ? Arch::Gpt2 : Arch::Llama);
    c.I = 48;
    c.L = 2;
    c.H = 4;
    c.Dh = 8;
    c.V = 50;
    c.max_positions = 64;
    c.norm_eps = 1e-5;
    switch (a) {
        case TinyArch::Llama:
        case TinyArch::LlamaInterleaved:
            c.D = 24;
            c.Hkv = 2;
            c.rope = a == TinyArch::Llama ? RopeStyle::Half : RopeStyle::Interleaved;
            break;
        case TinyArch::Qwen2:
            c.D = 32;
            c.Hkv = 1;
            c.rope_theta = 1e6;
            c.tied_embeddings = true;
            break;
        case TinyArch::Gpt2:
            c.D = 32;
            c.Hkv = 4;
            break;
    }
    validate_config(c);
    return c;
}

std::vector<std::string> read_vector_inputs(const std::string& path) {
    const std::string all = depass::read_text_file(path);
    const std::string sep = "\n__ggml_vocab_test__\n";
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos < all.size()) {
        const size_t e = all.find(sep, pos);
        if (e == std::string::npos) {
            out.push_back(all.substr(pos));
            break;
        }
        out.push_back(all.substr(pos, e - pos));
        pos = e + sep.size();
    }
    return out;
}

std::vector<std::vector<int>> read_vector_outputs(const std::string& path) {
    std::istringstream in(depass::read_text_file(path));
    std::vector<std::vector<int>> out;
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        std::vector<int> ids;
        int id;
        while (ls >> id) ids.push_back(id);
        out.push_back(ids);
    }
    return out;
}

std::string ids_str(const std::vector<int>& ids) {
    std::string s;
    for (int id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
    return s;
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const depass::Error& e) {
        return e.what();
    } catch (const std::exception& e) {
        return std::string("<not a depass::Error> ") + e.what();
    } catch (...) {
        return "<an exception that is not a std::exception>";
    }
    return "(no error)";
}

}  // namespace depass_test
