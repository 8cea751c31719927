// `depass tokenize` end to end: ids of the shipped model's tokenizer (the values the
// original llama2.c prints for stories260K), --pieces, the tokenizer search next to the
// model, and one-line errors.
#include <filesystem>
#include <fstream>
#include <iterator>

#include "test_support.hpp"

namespace fs = std::filesystem;

namespace {

const auto q = depass_test::shell_quoted;
const auto run = depass_test::run_cli;                // stdout and stderr together
const auto run_stdout = depass_test::run_cli_stdout;  // stdout only

std::string shipped_model() { return depass_test::source_dir() + "/weights/stories260K.bin"; }

size_t count_lines(const std::string& s) {
    size_t n = 0;
    for (char c : s) n += c == '\n';
    return n;
}

}  // namespace

TEST_CASE("tokenize: stories260K 'Once upon a time' gives llama2.c's ids", "[cli][tokenize]") {
    std::string out;
    CHECK(run_stdout("tokenize --model " + q(shipped_model()) + " --prompt 'Once upon a time'", &out) == 0);
    CHECK(out == "1 403 407 261 378\n");
    CHECK(run_stdout("tokenize -m " + q(shipped_model()) + " -p 'Once upon a time' --no-bos", &out) == 0);
    CHECK(out == "403 407 261 378\n");
    // An explicit tokenizer gives the same.
    CHECK(run_stdout("tokenize -m " + q(shipped_model()) + " --tokenizer " +
                         q(depass_test::source_dir() + "/weights/tok512.bin") + " -p 'Once upon a time'",
                     &out) == 0);
    CHECK(out == "1 403 407 261 378\n");
}

TEST_CASE("tokenize --pieces: one id<TAB>piece line per token", "[cli][tokenize]") {
    std::string out;
    CHECK(run_stdout("tokenize -m " + q(shipped_model()) + " -p 'Once upon a time' --pieces", &out) == 0);
    CHECK(out ==
          "1 403 407 261 378\n"
          "1\t<s>\n"
          "403\t Once\n"
          "407\t upon\n"
          "261\t a\n"
          "378\t time\n");
    // A newline in the text: byte piece <0x0A> (id 10 + 3) in tok512.
    CHECK(run_stdout("tokenize -m " + q(shipped_model()) + " -p " + q("a\nb") + " --pieces --no-bos", &out) ==
          0);
    CHECK(out.find("\t<0x0A>\n") != std::string::npos);
    CHECK(out.find("13\t") != std::string::npos);
}

TEST_CASE("tokenize: the tokenizer next to the model is the one with the model's vocabulary",
          "[cli][tokenize]") {
    SKIP_WITHOUT_SHARED();
    // The shared weights directory also holds the 32000-piece tokenizer.model and
    // tokenizer.bin; they are passed over for tok512.bin.
    std::string out;
    CHECK(run_stdout(
              "tokenize -m " + q(depass_test::weights_dir() + "/stories260K.bin") + " -p 'Once upon a time'",
              &out) == 0);
    CHECK(out == "1 403 407 261 378\n");
}

TEST_CASE("tokenize --tokenizer tokenizer.model works without --model", "[cli][tokenize]") {
    SKIP_WITHOUT_SHARED();
    const std::string spm = depass_test::weights_dir() + "/tokenizer.model";
    std::string out;
    CHECK(run_stdout("tokenize --tokenizer " + q(spm) + " --prompt 'Once upon a time'", &out) == 0);
    CHECK(out == "1 9038 2501 263 931\n");
    CHECK(run_stdout("tokenize --tokenizer " + q(spm) + " --prompt 'Hello world' --pieces", &out) == 0);
    CHECK(out ==
          "1 15043 3186\n"
          "1\t<s>\n"
          "15043\t Hello\n"
          "3186\t world\n");
    // llama.cpp's vector for "\t\n" (no BOS): 29871 12 13, pieces "▁", <0x09>, <0x0A>.
    CHECK(run_stdout("tokenize --tokenizer " + q(spm) + " --prompt " + q("\t\n") + " --no-bos --pieces",
                     &out) == 0);
    CHECK(out ==
          "29871 12 13\n"
          "29871\t \n"
          "12\t<0x09>\n"
          "13\t<0x0A>\n");
    // The llama2.c export of the same vocabulary gives the same ids.
    CHECK(run_stdout("tokenize --tokenizer " + q(depass_test::weights_dir() + "/tokenizer.bin") +
                         " --prompt 'Once upon a time'",
                     &out) == 0);
    CHECK(out == "1 9038 2501 263 931\n");
}

TEST_CASE("tokenize: errors are one line with the right exit code", "[cli][tokenize][errors]") {
    // The model alone in a directory: no tokenizer to find.
    const std::string dir = depass_test::temp_dir() + "/lonely";
    fs::create_directories(dir);
    const std::string lonely = dir + "/stories260K.bin";
    fs::copy_file(shipped_model(), lonely, fs::copy_options::overwrite_existing);

    std::string out;
    CHECK(run("tokenize -m " + q(lonely) + " -p 'Once upon a time'", &out) == 1);
    INFO(out);
    CHECK(count_lines(out) == 1);
    CHECK(out.rfind("depass: error:", 0) == 0);
    CHECK(out.find(dir + "/tokenizer.model") != std::string::npos);
    CHECK(out.find(dir + "/tokenizer.bin") != std::string::npos);
    CHECK(out.find(dir + "/tok512.bin") != std::string::npos);
    CHECK(out.find("--tokenizer") != std::string::npos);

    // A tokenizer file that does not exist.
    CHECK(run("tokenize --tokenizer /no/such/tok.model -p hi", &out) == 1);
    CHECK(count_lines(out) == 1);
    CHECK(out.find("/no/such/tok.model") != std::string::npos);

    // A corrupt .model.
    const std::string bad = depass_test::temp_dir() + "/bad.model";
    std::ofstream(bad, std::ios::binary) << "not a protobuf at all";
    CHECK(run("tokenize --tokenizer " + q(bad) + " -p hi", &out) == 1);
    CHECK(count_lines(out) == 1);
    CHECK(out.find(bad) != std::string::npos);

    // Neither --model nor --tokenizer, or no --prompt: usage errors.
    CHECK(run("tokenize -p hi", &out) == 2);
    CHECK(out.find("--tokenizer") != std::string::npos);
    CHECK(run("tokenize -m " + q(shipped_model()), &out) == 2);
    CHECK(out.find("--prompt") != std::string::npos);
}

TEST_CASE("tokenize: a tokenizer larger than the model's vocabulary is refused", "[cli][tokenize][errors]") {
    SKIP_WITHOUT_SHARED();
    std::string out;
    CHECK(run("tokenize -m " + q(shipped_model()) + " --tokenizer " +
                  q(depass_test::weights_dir() + "/tokenizer.model") + " -p hi",
              &out) == 1);
    CHECK(count_lines(out) == 1);
    CHECK(out.find("32000") != std::string::npos);
    CHECK(out.find("512") != std::string::npos);
}

TEST_CASE("tokenize --help explains the command", "[cli][tokenize]") {
    std::string out;
    CHECK(run("tokenize --help", &out) == 0);
    CHECK(out.find("--pieces") != std::string::npos);
    CHECK(out.find("--no-bos") != std::string::npos);
    CHECK(out.find("--tokenizer") != std::string::npos);
    CHECK(out.find("tokenizer.model") != std::string::npos);
}
