#include "test_support.hpp"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sys/wait.h>
#include <unistd.h>

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

}  // namespace depass_test
