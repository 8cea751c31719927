// test_fuzz_regress.cpp -- the inputs kept in fuzz/regress/ (each once made a fuzz harness
// fail, see fuzz/regress/README.md), checked in the normal build too: the reader must refuse
// each one with a depass::Error naming the file, not crash or throw another exception type.
#include <filesystem>
#include <string>

#include "depass/tokenizer.hpp"
#include "depass/tokenizer_hf.hpp"
#include "test_support.hpp"

using namespace depass;
using Catch::Contains;
namespace fs = std::filesystem;

namespace {
std::string regress(const std::string& rel) { return depass_test::source_dir() + "/fuzz/regress/" + rel; }
}  // namespace

TEST_CASE("fuzz regress: SentencePiece model with a piece the library's trie refuses",
          "[fuzz][sentencepiece]") {
    // The second piece is "\0nz": libsentencepiece's darts trie throws its own exception type
    // ("zero-length key") from inside LoadFromSerializedProto.
    const std::string path = regress("sentencepiece/empty_piece_darts_exception.model");
    REQUIRE(fs::is_regular_file(path));
    try {
        (void)load_sentencepiece_tokenizer(path);
        FAIL("the model was accepted");
    } catch (const Error& e) {
        CHECK_THAT(e.what(), Contains(path));
        CHECK_THAT(e.what(), Contains("not a valid SentencePiece model"));
    }
}

TEST_CASE("fuzz regress: tokenizer.json holding a number too large for a double", "[fuzz][tokenizer_hf]") {
    // nlohmann-json reports the overflow as out_of_range, not as a parse_error.
    const std::string path = regress("tokenizer_hf/number_overflow.json");
    REQUIRE(fs::is_regular_file(path));
    try {
        (void)HfTokenizer::load(path);
        FAIL("the file was accepted");
    } catch (const Error& e) {
        CHECK_THAT(e.what(), Contains(path));
        CHECK_THAT(e.what(), Contains("number overflow"));
    }
}
