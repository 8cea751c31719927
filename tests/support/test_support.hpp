// test_support.hpp -- helpers shared by the Catch2 tests.
//
// Reference data (fixtures, real weights, tokenizers, configs) is read from the data directory:
//   $DEPASS_SHARED_DIR if set, else the path configured at build time (-DDEPASS_SHARED_DIR,
//   by default tests/data of the repository; its files and licences: tests/data/PROVENANCE.md).
// When it is absent a test calls SKIP_WITHOUT_SHARED(), which prints a loud
// warning and returns; the test binary then exits 77 (CTest: "Skipped").
// With DEPASS_REQUIRE_FIXTURES=1 (as .ci/run sets) a missing directory fails.
#pragma once

#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "depass/config.hpp"
#include "depass/types.hpp"

namespace depass_test {

std::string shared_dir();                // the data directory (may not exist)
std::string fixtures_dir();              // shared_dir()/fixtures
std::string weights_dir();               // shared_dir()/weights
bool have_shared();                      // fixtures/ and weights/ both present
bool require_fixtures();                 // DEPASS_REQUIRE_FIXTURES=1
void note_skip(const std::string& why);  // counts a skip (reported by main)
std::string cli_path();                  // the built `depass` executable
std::string source_dir();                // the project's source tree
std::string temp_dir();                  // a fresh directory for this test binary

// Tokenizer test vectors (llama.cpp's layout): the .inp file holds the inputs separated by
// "\n__ggml_vocab_test__\n" (the file ends with one); the .out file one line of
// space-separated ids per input. ids_str joins ids with spaces.
std::vector<std::string> read_vector_inputs(const std::string& path);
std::vector<std::vector<int>> read_vector_outputs(const std::string& path);
std::string ids_str(const std::vector<int>& ids);

// Expects fn to throw a depass::Error whose message contains every one of `parts`
// (and, with max_len > 0, is shorter than max_len characters).
template <class Fn>
void expect_error(Fn fn, const std::vector<std::string>& parts, size_t max_len = 0) {
    try {
        fn();
        FAIL("no error thrown; expected one mentioning " << parts.front());
    } catch (const depass::Error& e) {
        const std::string msg = e.what();
        INFO("message: " << msg);
        for (const std::string& p : parts) CHECK(msg.find(p) != std::string::npos);
        if (max_len > 0) CHECK(msg.size() < max_len);
    }
}

// The message of the depass::Error that f throws; "<not a depass::Error> ..." for any other
// exception (a crash turned exception of the wrong kind fails a comparison), "(no error)" for none.
std::string error_of(const std::function<void()>& f);

// Runs a shell command, returns its exit status; captures stdout+stderr in *out.
int run_command(const std::string& cmd, std::string* out = nullptr);

// temp_dir()/name.
std::string temp_path(const std::string& name);
// Writes `text` to temp_path(name), creating the folders it names; returns that path.
std::string write_temp_file(const std::string& name, const std::string& text);
// A shell word: s single-quoted, each ' in it written as '\''.
std::string shell_quoted(const std::string& s);
// Runs the built `depass` with `args` (shell words): its exit status, stdout and stderr together
// in *out; run_cli_stdout keeps stdout only.
int run_cli(const std::string& args, std::string* out = nullptr);
int run_cli_stdout(const std::string& args, std::string* out);
// The input_ids of a fixture directory's tokens.json.
std::vector<int> fixture_ids(const std::string& dir);

// How many times `needle` stands in `hay` (without overlaps).
size_t count_of(const std::string& hay, const std::string& needle);
// The text between `from` (after its first occurrence at or after `at`) and `to`; "" when
// either is missing.
std::string between(const std::string& s, const std::string& from, const std::string& to, size_t at = 0);

// An r x c matrix of independent normal draws (mean 0, standard deviation s), row-major
// from rng (the same draws for float and double).
template <class T>
depass::Mat<T> randn(long r, long c, std::mt19937_64& rng, double s = 1.0) {
    std::normal_distribution<double> nd(0.0, s);
    depass::Mat<T> m(r, c);
    for (long i = 0; i < m.size(); ++i) m.data()[i] = T(nd(rng));
    return m;
}

// Tiny configs of the op-level tests, one per architecture family: LLaMA with GQA (and
// D != H Dh) in either RoPE layout, Qwen2 with q/k/v biases and a single KV head (theta 1e6,
// tied), GPT-2 with LayerNorm, GELU, every bias and learned positions. D 24-32, L 2, H 4,
// Dh 8, I 48, V 50, 64 positions.
enum class TinyArch { Llama, LlamaInterleaved, Qwen2, Gpt2 };
depass::Config tiny_config(TinyArch a);
const char* tiny_arch_name(TinyArch a);  // e.g. "llama (GQA, rotate-half RoPE)"

// max |a - b| and max |b| over two equally sized arrays.
struct Diff {
    double max_abs = 0, max_ref = 0;
    size_t worst = 0;
    double rel() const { return max_ref > 0 ? max_abs / max_ref : max_abs; }
};
template <class A, class B>
Diff diff(const A* a, const B* b, size_t n) {
    Diff d;
    for (size_t i = 0; i < n; ++i) {
        double e = std::abs(double(a[i]) - double(b[i]));
        if (!(e <= d.max_abs)) {
            d.max_abs = e;
            d.worst = i;
        }  // NaN propagates as worst
        d.max_ref = std::max(d.max_ref, std::abs(double(b[i])));
    }
    return d;
}

}  // namespace depass_test

#define SKIP_WITHOUT_SHARED()                                                                  \
    do {                                                                                       \
        if (!depass_test::have_shared()) {                                                     \
            if (depass_test::require_fixtures())                                               \
                FAIL("shared reference data missing at " << depass_test::shared_dir()          \
                                                         << " and DEPASS_REQUIRE_FIXTURES=1"); \
            depass_test::note_skip(Catch::getResultCapture().getCurrentTestName());            \
            WARN("SKIPPED: no reference data at " << depass_test::shared_dir()                 \
                                                  << " (set DEPASS_SHARED_DIR)");              \
            return;                                                                            \
        }                                                                                      \
    } while (0)
