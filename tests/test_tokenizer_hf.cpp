// Tests for the Hugging Face byte-level BPE tokenizers: the real tokenizer.json files of
// GPT-2, Llama 3 and Qwen2 against llama.cpp's test vectors for the same vocabularies, the
// GPT-2 vocab.json + merges.txt pair, round trips, BOS, added tokens, hand-made files that
// pin down the merge order and the added-token flags, the CLI, and damaged files.
#include <utf8proc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "depass/io.hpp"
#include "depass/tokenizer.hpp"
#include "depass/tokenizer_hf.hpp"
#include "test_support.hpp"
#include "tiny_tokenizer_json.hpp"

using namespace depass;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string tok_dir(const std::string& name) { return depass_test::shared_dir() + "/tokenizers/" + name; }
std::string vectors(const std::string& name) {
    return depass_test::weights_dir() + "/llamacpp_vocab/ggml-vocab-" + name + ".gguf";
}

// The real files are large (Llama 3: 9 MB): each is loaded once per test binary.
const HfTokenizer& shipped(const std::string& name) {
    static std::map<std::string, HfTokenizer> cache;
    auto it = cache.find(name);
    if (it == cache.end())
        it = cache.emplace(name, HfTokenizer::load(tok_dir(name) + "/tokenizer.json")).first;
    return it->second;
}

using depass_test::ids_str;
using depass_test::read_vector_inputs;
using depass_test::read_vector_outputs;

// NFC through utf8proc directly (Qwen's normalizer), for the round-trip reference.
std::string nfc(const std::string& s) {
    utf8proc_uint8_t* r = utf8proc_NFC(reinterpret_cast<const utf8proc_uint8_t*>(s.c_str()));
    REQUIRE(r);
    std::string out(reinterpret_cast<const char*>(r));
    std::free(r);
    return out;
}

struct VectorResult {
    int total = 0, passed = 0, round_trips = 0;
};

// Every test vector of one set: the ids without BOS, and decode(encode(x)) == x (after NFC
// when `normalised`).
VectorResult run_vectors(const Tokenizer& tok, const std::string& set, bool normalised) {
    const auto inputs = read_vector_inputs(vectors(set) + ".inp");
    const auto outputs = read_vector_outputs(vectors(set) + ".out");
    REQUIRE(inputs.size() == outputs.size());
    REQUIRE(inputs.size() >= 40);
    VectorResult r;
    for (size_t k = 0; k < inputs.size(); ++k) {
        const std::vector<int> ids = tok.encode(inputs[k], false, false);
        INFO(set << " case " << k << ": '" << inputs[k] << "'\n  expected " << ids_str(outputs[k])
                 << "\n  got      " << ids_str(ids));
        CHECK(ids == outputs[k]);
        if (ids == outputs[k]) ++r.passed;
        const std::string want = normalised ? nfc(inputs[k]) : inputs[k];
        const std::string back = tok.decode(ids);
        CHECK(back == want);
        if (back == want) ++r.round_trips;
    }
    r.total = static_cast<int>(inputs.size());
    return r;
}

void report(const char* what, const VectorResult& r) {
    std::printf("  %-34s %d/%d test vectors reproduced, %d/%d decode(encode(x)) == x\n", what, r.passed,
                r.total, r.round_trips, r.total);
}

std::string write_text(const std::string& name, const std::string& text) {
    const std::string path = depass_test::temp_dir() + "/" + name;
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    return path;
}

// Expects `fn` to throw a depass::Error whose message contains every one of `parts` and
// stays short (no whole JSON value in it).
template <class Fn>
void expect_error(Fn fn, const std::vector<std::string>& parts) {
    depass_test::expect_error(fn, parts, 400);
}

// A small byte-level tokenizer.json (tiny_tokenizer_json.hpp).
json tiny_tokenizer(const std::vector<std::string>& extra, const json& merges) {
    return depass_test::tiny_tokenizer_json(extra, merges);
}

}  // namespace

// ---- the real files against llama.cpp's vectors ------------------------------------------------

TEST_CASE("tokenizer.json GPT-2 reproduces llama.cpp's gpt-2 test vectors", "[tokenizer][hf]") {
    SKIP_WITHOUT_SHARED();
    const VectorResult r = run_vectors(shipped("gpt2"), "gpt-2", false);
    report("gpt2/tokenizer.json, gpt-2:", r);
    CHECK(r.passed == r.total);
    CHECK(r.round_trips == r.total);
}

TEST_CASE("vocab.json + merges.txt GPT-2 reproduces the gpt-2 test vectors", "[tokenizer][hf]") {
    SKIP_WITHOUT_SHARED();
    const HfTokenizer pair =
        HfTokenizer::load_vocab_merges(tok_dir("gpt2") + "/vocab.json", tok_dir("gpt2") + "/merges.txt");
    CHECK(pair.vocab_size() == 50257);
    const VectorResult r = run_vectors(pair, "gpt-2", false);
    report("gpt2/vocab.json+merges.txt, gpt-2:", r);
    CHECK(r.passed == r.total);
    CHECK(r.round_trips == r.total);
    // <|endoftext|> is special through special_tokens_map.json, as in tokenizer.json.
    CHECK(pair.encode("a<|endoftext|>b", false) == std::vector<int>{64, 50256, 65});
    CHECK(pair.is_special(50256));
    // The factory picks the pair for vocab.json (merges.txt beside it).
    auto t = open_tokenizer(tok_dir("gpt2") + "/vocab.json");
    CHECK(t->kind() == "hf-bpe");
    CHECK(t->encode("Hello world", false) == std::vector<int>{15496, 995});
}

TEST_CASE("tokenizer.json Llama 3 reproduces llama.cpp's llama-bpe test vectors", "[tokenizer][hf]") {
    SKIP_WITHOUT_SHARED();
    const VectorResult r = run_vectors(shipped("llama3"), "llama-bpe", false);
    report("llama3/tokenizer.json, llama-bpe:", r);
    CHECK(r.passed == r.total);
    CHECK(r.round_trips == r.total);
}

TEST_CASE("tokenizer.json Qwen reproduces llama.cpp's qwen2 test vectors", "[tokenizer][hf]") {
    SKIP_WITHOUT_SHARED();
    const VectorResult r = run_vectors(shipped("qwen"), "qwen2", true);
    report("qwen/tokenizer.json, qwen2:", r);
    CHECK(r.passed == r.total);
    CHECK(r.round_trips == r.total);
    // NFC: "e" + combining acute (U+0301) encodes as the precomposed "é".
    const HfTokenizer& q = shipped("qwen");
    CHECK(q.encode("caf\x65\xCC\x81", false) == q.encode("caf\xC3\xA9", false));
    CHECK(q.decode(q.encode("caf\x65\xCC\x81", false)) == "caf\xC3\xA9");
}

TEST_CASE("tokenizer.json: added tokens, BOS and sizes of the real files", "[tokenizer][hf]") {
    SKIP_WITHOUT_SHARED();
    const HfTokenizer& g = shipped("gpt2");
    const HfTokenizer& l = shipped("llama3");
    const HfTokenizer& q = shipped("qwen");
    CHECK(g.vocab_size() == 50257);
    CHECK(l.vocab_size() == 128256);
    CHECK(q.vocab_size() == 151669);  // 151643 + 26 added
    // Added tokens are cut out before the pre-tokenizer.
    // (Ids of "Hello" / " world" as in the vectors' "Hello world".)
    CHECK(g.encode("Hello<|endoftext|> world", false) == std::vector<int>{15496, 50256, 995});
    CHECK(l.encode("<|begin_of_text|>Hello", false) == std::vector<int>{128000, 9906});
    CHECK(q.encode("<|im_start|>user\nHello<|im_end|>", false) ==
          std::vector<int>{151644, 872, 198, 9707, 151645});
    // A special token's text is not part of the decoded text.
    CHECK(q.decode({151644, 872, 151645}) == "user");
    CHECK(q.is_special(151644));
    CHECK_FALSE(q.is_special(872));
    CHECK(q.piece(151644) == "<|im_start|>");
    CHECK(l.lookup("<|end_of_text|>") == 128001);
    // No BOS: GPT-2 and Qwen have none; this Llama 3 file's post-processor is a plain
    // ByteLevel (no template), so it adds none either.
    for (const HfTokenizer* t : {&g, &l, &q}) {
        CHECK(t->bos_ids().empty());
        CHECK(t->encode("Hello world", true) == t->encode("Hello world", false));
    }
    // EOS from tokenizer_config.json.
    CHECK(l.eos_ids() == std::vector<int>{128001});
    CHECK(q.encode("Hello", false, true) == std::vector<int>{9707, 151645});
}

TEST_CASE("tokenizer.json: Llama 3's TemplateProcessing puts <|begin_of_text|> in front", "[tokenizer][hf]") {
    SKIP_WITHOUT_SHARED();
    // The post-processor Meta ships with Llama 3: ByteLevel, then a template "BOS $A".
    json doc = json::parse(read_text_file(tok_dir("llama3") + "/tokenizer.json"));
    doc["post_processor"] = json::parse(R"({"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                  {"Sequence": {"id": "A", "type_id": 0}},
                  {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}},
                  {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [128000],
                                                 "tokens": ["<|begin_of_text|>"]}}}]})");
    const std::string path = write_text("llama3-template/tokenizer.json", doc.dump());
    const HfTokenizer t = HfTokenizer::load(path);
    CHECK(t.bos_ids() == std::vector<int>{128000});
    CHECK(t.encode("Hello world") == std::vector<int>{128000, 9906, 1917});
    CHECK(t.encode("Hello world", false) == std::vector<int>{9906, 1917});
    CHECK(t.decode(t.encode("Hello world")) == "Hello world");
}

TEST_CASE("tokenizer.json: a few hundred tokens encode in milliseconds", "[tokenizer][hf]") {
    SKIP_WITHOUT_SHARED();
    const HfTokenizer& l = shipped("llama3");
    std::string text;
    for (int k = 0; k < 40; ++k)
        text += "Once upon a time, in a land far away, there lived " + std::to_string(k * 37) + " cats. ";
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<int> ids = l.encode(text, false);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::printf("  llama3: %zu tokens from %zu bytes in %.2f ms\n", ids.size(), text.size(), ms);
    CHECK(ids.size() > 400);
    CHECK(ms < 200);
    CHECK(l.decode(ids) == text);
}

// ---- hand-made files: merge order, ignore_merges, added-token flags ----------------------------

TEST_CASE("tokenizer.json BPE: lowest merge rank first, leftmost on ties, both merge layouts",
          "[tokenizer][hf]") {
    // Ranks: "b c" 0, "a b" 1, "a a" 2.
    const std::vector<std::string> extra = {"ab", "bc", "aa", "abc", "aab"};
    json j = tiny_tokenizer(extra, json::array({"b c", "a b", "a a"}));
    const std::string p1 = write_text("tiny1/tokenizer.json", j.dump());
    const HfTokenizer t = HfTokenizer::load(p1);
    const int ab = t.lookup("ab"), bc = t.lookup("bc"), aa = t.lookup("aa"), a = t.lookup("a");
    REQUIRE(a == 'a');  // byte ids
    REQUIRE(ab == 256);
    // "abc": "b c" has the lower rank, so a + bc (no "a bc" merge to go on with).
    CHECK(t.encode("abc", false) == std::vector<int>{a, bc});
    // "ab": only "a b".
    CHECK(t.encode("ab", false) == std::vector<int>{ab});
    // "aaa": "a a" at 0 and 1 tie; the leftmost merges first.
    CHECK(t.encode("aaa", false) == std::vector<int>{aa, a});
    // "aab": "a b" (rank 1) beats "a a" (rank 2): a + ab.
    CHECK(t.encode("aab", false) == std::vector<int>{a, ab});
    CHECK(t.decode(t.encode("aab abc", false)) == "aab abc");
    // The same merges as ["a", "b"] pairs give the same.
    j["model"]["merges"] =
        json::array({json::array({"b", "c"}), json::array({"a", "b"}), json::array({"a", "a"})});
    const HfTokenizer t2 = HfTokenizer::load(write_text("tiny2/tokenizer.json", j.dump()));
    for (const char* s : {"abc", "ab", "aaa", "aab", "cab bca"})
        CHECK(t2.encode(s, false) == t.encode(s, false));
    // ignore_merges: a pre-token that is a vocabulary entry is taken whole ("aab" has no
    // merge path: a + ab otherwise).
    j["model"]["ignore_merges"] = true;
    const HfTokenizer t3 = HfTokenizer::load(write_text("tiny3/tokenizer.json", j.dump()));
    CHECK(t3.encode("aab", false) == std::vector<int>{t.lookup("aab")});
    CHECK(t3.encode("abc", false) == std::vector<int>{t.lookup("abc")});
    CHECK(t3.encode("aaa", false) == std::vector<int>{aa, a});
}

TEST_CASE("tokenizer.json added tokens: lstrip, rstrip, single_word, normalized", "[tokenizer][hf]") {
    json j = tiny_tokenizer({}, json::array());
    // ids 256.. for the added tokens
    j["added_tokens"] = json::parse(R"([
        {"id": 256, "content": "<L>", "lstrip": true, "rstrip": false, "single_word": false, "normalized": false, "special": true},
        {"id": 257, "content": "<R>", "lstrip": false, "rstrip": true, "single_word": false, "normalized": false, "special": true},
        {"id": 258, "content": "cat", "lstrip": false, "rstrip": false, "single_word": true, "normalized": false, "special": false},
        {"id": 259, "content": "<LONG>", "lstrip": false, "rstrip": false, "single_word": false, "normalized": false, "special": true},
        {"id": 260, "content": "<LONG", "lstrip": false, "rstrip": false, "single_word": false, "normalized": false, "special": true},
        {"id": 261, "content": "\u01d8", "lstrip": false, "rstrip": false, "single_word": false, "normalized": true, "special": false}
    ])");
    j["normalizer"] = {{"type", "Sequence"}, {"normalizers", json::array({{{"type", "NFC"}}})}};
    const HfTokenizer t = HfTokenizer::load(write_text("tiny-added/tokenizer.json", j.dump()));
    CHECK(t.vocab_size() == 262);
    const int x = t.lookup("x"), sp = t.lookup("\xC4\xA0");  // 'Ġ' is the space byte
    REQUIRE(x >= 0);
    REQUIRE(sp >= 0);
    // lstrip swallows the spaces on its left, rstrip those on its right.
    CHECK(t.encode("x  <L>x", false) == std::vector<int>{x, 256, x});
    CHECK(t.encode("x<R>  x", false) == std::vector<int>{x, 257, x});
    // Without the flags the spaces stay.
    CHECK(t.encode("x <LONG>", false) == std::vector<int>{x, sp, 259});
    // Longest match: <LONG> over <LONG.
    CHECK(t.encode("<LONG><LONGx", false) == std::vector<int>{259, 260, x});
    // single_word: "cat" only between non-word characters.
    CHECK(t.encode("cat", false) == std::vector<int>{258});
    CHECK(t.encode("x cat.", false) == std::vector<int>{x, sp, 258, t.lookup(".")});
    CHECK(t.encode("cats", false) ==
          std::vector<int>{t.lookup("c"), t.lookup("a"), t.lookup("t"), t.lookup("s")});
    // normalized: matched after NFC ("u" + U+0308 + U+0301 is U+01D8), not before.
    CHECK(t.encode("u\xCC\x88\xCC\x81", false) == std::vector<int>{261});
    // Decoding: the non-special added token's text, nothing for special ones.
    CHECK(t.decode({x, 256, 258, 261, 259}) == "xcat\xC7\x98");
}

TEST_CASE("tokenizer.json pre-tokenizers: Split Isolated / Removed, literal patterns, Digits",
          "[tokenizer][hf]") {
    json j = tiny_tokenizer({"ab"}, json::array({"a b"}));
    // Split on "-" (a String pattern), Isolated: "-" is its own piece, so no merge across it.
    j["pre_tokenizer"] = json::parse(R"({"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"String": "-"}, "behavior": "Isolated", "invert": false},
        {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]})");
    const HfTokenizer iso = HfTokenizer::load(write_text("split-iso/tokenizer.json", j.dump()));
    const int a = iso.lookup("a"), b = iso.lookup("b"), ab = iso.lookup("ab"), dash = iso.lookup("-");
    CHECK(iso.encode("ab-ab", false) == std::vector<int>{ab, dash, ab});
    CHECK(iso.encode("a-b", false) == std::vector<int>{a, dash, b});
    // Without the split (use_regex false, no Split) the dash does not separate, "a b" merges anyway.
    // Removed: the matches disappear.
    j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed";
    const HfTokenizer rem = HfTokenizer::load(write_text("split-rem/tokenizer.json", j.dump()));
    CHECK(rem.encode("ab-ab", false) == std::vector<int>{ab, ab});
    // Digits: each digit apart (individual_digits), or runs of digits.
    j["pre_tokenizer"] = json::parse(R"({"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": true},
        {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]})");
    json jd = j;
    jd["model"]["vocab"]["12"] = 257;
    jd["model"]["vocab"]["a1"] = 258;
    jd["model"]["merges"] = json::array({"1 2", "a 1"});
    const HfTokenizer dig = HfTokenizer::load(write_text("digits1/tokenizer.json", jd.dump()));
    CHECK(dig.encode("a12", false) == std::vector<int>{a, '1', '2'});
    jd["pre_tokenizer"]["pretokenizers"][0]["individual_digits"] = false;
    const HfTokenizer runs = HfTokenizer::load(write_text("digits2/tokenizer.json", jd.dump()));
    CHECK(runs.encode("a12", false) == std::vector<int>{a, 257});
    // ByteLevel add_prefix_space: " " in front of the text.
    j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
    const HfTokenizer pre = HfTokenizer::load(write_text("prefix/tokenizer.json", j.dump()));
    CHECK(pre.encode("ab", false) == std::vector<int>{pre.lookup("\xC4\xA0"), ab});
}

// ---- the CLI ---------------------------------------------------------------------------------

namespace {
const auto q = depass_test::shell_quoted;
const auto run_stdout = depass_test::run_cli_stdout;
const auto run = depass_test::run_cli;
}  // namespace

TEST_CASE("depass tokenize --tokenizer tokenizer.json prints the reference ids", "[cli][tokenizer][hf]") {
    SKIP_WITHOUT_SHARED();
    const std::pair<const char*, const char*> sets[] = {
        {"gpt2", "gpt-2"}, {"llama3", "llama-bpe"}, {"qwen", "qwen2"}};
    for (const auto& s : sets) {
        const auto inputs = read_vector_inputs(vectors(s.second) + ".inp");
        const auto outputs = read_vector_outputs(vectors(s.second) + ".out");
        // The longest input (350 bytes: whitespace runs, emoji, Khmer, CJK, quotes,
        // contractions) and a short one, picked by content (indices differ between sets).
        size_t longest = 0;
        for (size_t k = 0; k < inputs.size(); ++k)
            if (inputs[k].size() > inputs[longest].size()) longest = k;
        int ran = 0;
        for (size_t k = 0; k < inputs.size(); ++k) {
            if (k != longest && inputs[k] != " Hello, world!") continue;
            ++ran;
            std::string out;
            CHECK(run_stdout("tokenize --tokenizer " + q(tok_dir(s.first) + "/tokenizer.json") +
                                 " --prompt " + q(inputs[k]) + " --no-bos",
                             &out) == 0);
            INFO(s.first << " case " << k << ": '" << inputs[k] << "'");
            CHECK(out == ids_str(outputs[k]) + "\n");
        }
        CHECK(ran == 2);
    }
    // The GPT-2 pair through the CLI.
    std::string out;
    CHECK(run_stdout("tokenize --tokenizer " + q(tok_dir("gpt2") + "/vocab.json") + " --prompt 'Hello world'",
                     &out) == 0);
    CHECK(out == "15496 995\n");
}

TEST_CASE("depass tokenize finds tokenizer.json in a Hugging Face model directory", "[cli][tokenizer][hf]") {
    SKIP_WITHOUT_SHARED();
    // A model directory with only config.json (Qwen2.5-0.5B: 151936 embedding rows, more
    // than the tokenizer's 151669) and the tokenizer files.
    const std::string dir = depass_test::temp_dir() + "/qwen-model";
    fs::create_directories(dir);
    fs::copy_file(depass_test::shared_dir() + "/configs/Qwen2.5-0.5B/config.json", dir + "/config.json",
                  fs::copy_options::overwrite_existing);
    fs::copy_file(tok_dir("qwen") + "/tokenizer.json", dir + "/tokenizer.json",
                  fs::copy_options::overwrite_existing);
    fs::copy_file(tok_dir("qwen") + "/tokenizer_config.json", dir + "/tokenizer_config.json",
                  fs::copy_options::overwrite_existing);
    std::string out;
    CHECK(run_stdout("tokenize -m " + q(dir) + " --prompt 'Hello world' --pieces", &out) == 0);
    CHECK(out == "9707 1879\n9707\tHello\n1879\tĠworld\n");
    // A damaged tokenizer.json is passed over with its reason in the one-line error.
    write_text("qwen-model/tokenizer.json", "{\"model\": ");
    CHECK(run("tokenize -m " + q(dir) + " --prompt hi", &out) == 1);
    CHECK(out.find(dir + "/tokenizer.json (unreadable") != std::string::npos);
    CHECK(out.find("truncated") != std::string::npos);
}

// ---- damaged files -----------------------------------------------------------------------------

TEST_CASE("damaged tokenizer.json files raise one clear error naming the file and field",
          "[tokenizer][hf][errors]") {
    const json good = tiny_tokenizer({"ab"}, json::array({"a b"}));
    auto load = [](const std::string& name, const std::string& text) {
        const std::string p = write_text("bad/" + name, text);
        return [p] { HfTokenizer::load(p); };
    };
    auto path_of = [](const std::string& name) { return depass_test::temp_dir() + "/bad/" + name; };
    auto with = [&](const std::function<void(json&)>& edit) {
        json j = good;
        edit(j);
        return j.dump();
    };
    REQUIRE_NOTHROW(load("good.json", good.dump())());

    const std::string text = good.dump();
    expect_error(load("trunc.json", text.substr(0, text.size() / 2)),
                 {path_of("trunc.json"), "not valid JSON", "truncated"});
    expect_error(load("garbage.json", "{\"model\": nope}"),
                 {path_of("garbage.json"), "not valid JSON", "syntax"});
    // 1 MB of '[': refused before parsing.
    expect_error(load("deep.json", std::string(1 << 20, '[')),
                 {path_of("deep.json"), "nests deeper than 64"});
    expect_error(load("array.json", "[1, 2]"), {path_of("array.json"), "must be an object", "array"});

    expect_error(load("vocab-array.json", with([](json& j) {
                          j["model"]["vocab"] = json::array({1, 2});
                      })),
                 {path_of("vocab-array.json"), "'model.vocab'", "must be an object", "array"});
    expect_error(load("merges-obj.json", with([](json& j) { j["model"]["merges"] = json::object(); })),
                 {path_of("merges-obj.json"), "'model.merges'", "must be an array"});
    expect_error(load("id-string.json", with([](json& j) { j["model"]["vocab"]["ab"] = "7"; })),
                 {path_of("id-string.json"), "model.vocab['ab']", "integer"});
    expect_error(load("id-float.json", with([](json& j) { j["model"]["vocab"]["ab"] = 1.5; })),
                 {path_of("id-float.json"), "model.vocab['ab']", "integer"});
    expect_error(load("id-big.json", with([](json& j) { j["model"]["vocab"]["ab"] = 9999; })),
                 {path_of("id-big.json"), "model.vocab['ab']", "9999", "outside the vocabulary of 257"});
    expect_error(load("id-dup.json", with([](json& j) { j["model"]["vocab"]["ab"] = 5; })),
                 {path_of("id-dup.json"), "model.vocab", "repeats the id"});
    expect_error(load("merge-unknown.json", with([](json& j) { j["model"]["merges"].push_back("a zz"); })),
                 {path_of("merge-unknown.json"), "model.merges[1]", "'zz'", "not in the vocabulary"});
    expect_error(load("merge-product.json", with([](json& j) { j["model"]["merges"].push_back("b a"); })),
                 {path_of("merge-product.json"), "model.merges[1]", "'ba'", "not in the vocabulary"});
    expect_error(load("merge-shape.json", with([](json& j) { j["model"]["merges"].push_back("abc"); })),
                 {path_of("merge-shape.json"), "model.merges[1]", "two pieces"});
    expect_error(load("merge-num.json", with([](json& j) { j["model"]["merges"].push_back(3); })),
                 {path_of("merge-num.json"), "model.merges[1]", "number"});
    expect_error(
        load("added-big.json", with([](json& j) {
                 j["added_tokens"] = json::parse(R"([{"id": 300, "content": "<x>", "special": true}])");
             })),
        {path_of("added-big.json"), "added_tokens[0]", "'<x>'", "id 300", "outside the vocabulary of 258"});
    expect_error(load("added-dup.json", with([](json& j) {
                          j["added_tokens"] =
                              json::parse(R"([{"id": 3, "content": "<x>", "special": true}])");
                      })),
                 {path_of("added-dup.json"), "added_tokens[0]", "id 3", "already taken"});
    expect_error(load("added-id.json", with([](json& j) {
                          j["added_tokens"] = json::parse(R"([{"id": "3", "content": "<x>"}])");
                      })),
                 {path_of("added-id.json"), "'added_tokens[0].id'", "integer"});
    expect_error(load("model-type.json", with([](json& j) { j["model"]["type"] = "WordPiece"; })),
                 {path_of("model-type.json"), "'model.type'", "'WordPiece'", "only BPE"});
    expect_error(load("pre-type.json", with([](json& j) {
                          j["pre_tokenizer"] = {{"type", "Whitespace"}};
                      })),
                 {path_of("pre-type.json"), "'pre_tokenizer'", "'Whitespace'", "not supported"});
    expect_error(load("pre-none.json", with([](json& j) { j["pre_tokenizer"] = nullptr; })),
                 {path_of("pre-none.json"), "ByteLevel", "byte-level"});
    expect_error(load("norm-type.json", with([](json& j) {
                          j["normalizer"] = {{"type", "Lowercase"}};
                      })),
                 {path_of("norm-type.json"), "'normalizer'", "'Lowercase'", "not supported"});
    expect_error(load("post-type.json", with([](json& j) {
                          j["post_processor"] = {{"type", "BertProcessing"}};
                      })),
                 {path_of("post-type.json"), "'post_processor'", "'BertProcessing'", "not supported"});
    expect_error(
        load("regex.json", with([](json& j) {
                 j["pre_tokenizer"] = json::parse(R"({"type": "Sequence", "pretokenizers": [
                         {"type": "Split", "pattern": {"Regex": "(ab"}, "behavior": "Isolated"},
                         {"type": "ByteLevel", "use_regex": false}]})");
             })),
        {path_of("regex.json"), "pre_tokenizer.pretokenizers[0].pattern.Regex", "PCRE2", "offset 3"});
    expect_error(load("behavior.json", with([](json& j) {
                          j["pre_tokenizer"] = json::parse(R"({"type": "Split", "pattern": {"String": "-"},
                         "behavior": "MergedWithNext"})");
                      })),
                 {path_of("behavior.json"), "'pre_tokenizer.behavior'", "'MergedWithNext'"});
    // A long vocabulary entry in a message is cut short, and no whole value is printed.
    const std::string long_piece(5000, 'q');
    expect_error(load("long.json", with([&](json& j) { j["model"]["vocab"][long_piece] = "x"; })),
                 {path_of("long.json"), "qqq...'", "integer"});
    // Through the factory too.
    expect_error([&] { open_tokenizer(path_of("model-type.json")); },
                 {path_of("model-type.json"), "WordPiece"});
}

TEST_CASE("damaged vocab.json + merges.txt pairs raise errors naming the file", "[tokenizer][hf][errors]") {
    const std::string dir = depass_test::temp_dir() + "/badpair";
    fs::create_directories(dir);
    write_text("badpair/vocab.json", R"({"a": 0, "b": 1, "ab": 2, "\u0120": 3})");
    write_text("badpair/merges.txt", "#version: 0.2\na b\nb zz\n");
    expect_error([&] { open_tokenizer(dir + "/vocab.json"); },
                 {dir + "/merges.txt", "line 3", "'zz'", "not in the vocabulary"});
    write_text("badpair/merges.txt", "#version: 0.2\na b c\n");
    expect_error([&] { open_tokenizer(dir + "/vocab.json"); }, {dir + "/merges.txt", "line 2", "two pieces"});
    write_text("badpair/merges.txt", "a b\n");
    write_text("badpair/vocab.json", R"({"a": 0, "b": 1, "ab": 7})");
    expect_error([&] { open_tokenizer(dir + "/vocab.json"); },
                 {dir + "/vocab.json", "'vocab['ab']'", "outside"});
    // vocab.json without merges.txt.
    const std::string alone = depass_test::temp_dir() + "/alone";
    fs::create_directories(alone);
    write_text("alone/vocab.json", R"({"a": 0})");
    expect_error([&] { open_tokenizer(alone + "/vocab.json"); },
                 {alone + "/vocab.json", "merges.txt", "missing"});
    // Valid: the tiny pair works.
    write_text("badpair/vocab.json", R"({"a": 0, "b": 1, "ab": 2})");
    CHECK(open_tokenizer(dir + "/vocab.json")->encode("ab", false) == std::vector<int>{2});
}

TEST_CASE("byte-level tokenizers lose no byte of text that is not valid UTF-8", "[tokenizer][hf]") {
    SKIP_WITHOUT_SHARED();
    // Stray continuation byte, truncated sequence, overlong form, byte 0xFF, and a NUL.
    const std::string text =
        std::string("ab\x80 cd\xE2\x82 \xC0\xAF x\xFFy ", 17) + std::string(1, '\0') + "z";
    const HfTokenizer& g = shipped("gpt2");
    const std::vector<int> ids = g.encode(text, false);
    CHECK(g.decode(ids) == text);
    // Each stray byte is the token of its byte-alphabet character (0xFF -> U+00FF 'ÿ').
    const int ff = g.lookup("\xC3\xBF");
    REQUIRE(ff >= 0);
    CHECK(std::count(ids.begin(), ids.end(), ff) == 1);
    CHECK(shipped("llama3").decode(shipped("llama3").encode(text, false)) == text);
    // Qwen's NFC leaves the stray bytes alone and normalises the valid runs around them.
    const HfTokenizer& q = shipped("qwen");
    CHECK(q.decode(q.encode(text + "e\xCC\x81", false)) == text + "\xC3\xA9");
    // The GGUF GPT-2 vocabulary (same PCRE2 pre-tokenizer) gives the same ids.
    auto gguf = load_gguf_tokenizer(vectors("gpt-2"));
    CHECK(gguf->encode(text, false) == ids);
}

TEST_CASE("tokenize --help names tokenizer.json and the search order", "[cli][tokenizer][hf]") {
    std::string out;
    CHECK(run("tokenize --help", &out) == 0);
    CHECK(out.find("tokenizer.json, tokenizer.model, vocab.json + merges.txt, tokenizer.bin") !=
          std::string::npos);
    CHECK(run("attribute --help", &out) == 0);
    CHECK(out.find("Hugging Face tokenizer.json") != std::string::npos);
}

TEST_CASE("depass tokenize passes over a SentencePiece-style tokenizer.json for tokenizer.model",
          "[cli][tokenizer][hf]") {
    SKIP_WITHOUT_SHARED();
    // Llama 2 / Mistral / TinyLlama directories ship a Metaspace tokenizer.json next to
    // tokenizer.model: the first is refused (not byte-level), the second is used.
    const std::string dir = depass_test::temp_dir() + "/spm-model";
    fs::create_directories(dir);
    fs::copy_file(depass_test::shared_dir() + "/configs/TinyLlama-1.1B-Chat-v1.0/config.json",
                  dir + "/config.json", fs::copy_options::overwrite_existing);
    fs::copy_file(depass_test::weights_dir() + "/tokenizer.model", dir + "/tokenizer.model",
                  fs::copy_options::overwrite_existing);
    json j = tiny_tokenizer({}, json::array());
    j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "first"}};
    write_text("spm-model/tokenizer.json", j.dump());
    expect_error([&] { HfTokenizer::load(dir + "/tokenizer.json"); }, {"'pre_tokenizer'", "'Metaspace'"});
    std::string out;
    CHECK(run_stdout("tokenize -m " + q(dir) + " --prompt 'Once upon a time'", &out) == 0);
    CHECK(out == "1 9038 2501 263 931\n");
}

TEST_CASE("tokenizer.json without a template: tokenizer_config.json's add_bos_token and eos_token",
          "[tokenizer][hf]") {
    json j = tiny_tokenizer({}, json::array());
    j["added_tokens"] = json::parse(R"([
        {"id": 256, "content": "<s>", "special": true, "normalized": false},
        {"id": 257, "content": "</s>", "special": true, "normalized": false}])");
    const std::string path = write_text("cfg-bos/tokenizer.json", j.dump());
    // No tokenizer_config.json: neither BOS nor EOS.
    CHECK(HfTokenizer::load(path).encode("a", true, true) == std::vector<int>{'a'});
    write_text(
        "cfg-bos/tokenizer_config.json",
        R"({"add_bos_token": true, "bos_token": "<s>", "eos_token": {"content": "</s>", "lstrip": false}})");
    const HfTokenizer t = HfTokenizer::load(path);
    CHECK(t.encode("a", true, true) == std::vector<int>{256, 'a', 257});
    CHECK(t.encode("a", false, false) == std::vector<int>{'a'});
    // add_bos_token false: the bos_token is not added.
    write_text("cfg-bos/tokenizer_config.json", R"({"add_bos_token": false, "bos_token": "<s>"})");
    CHECK(HfTokenizer::load(path).encode("a", true) == std::vector<int>{'a'});
}

// ---- GGUF vocabularies with Llama 3 / Qwen2 pre-tokenizers -------------------------------------

namespace {

// A vocabulary-only GGUF (version 3, no tensors) with string and string-array metadata.
struct GgufVocab {
    uint64_t n = 0;
    std::string kv;
    void u32(uint32_t x) { kv.append(reinterpret_cast<const char*>(&x), 4); }
    void str(const std::string& s) {
        const uint64_t len = s.size();
        kv.append(reinterpret_cast<const char*>(&len), 8);
        kv += s;
    }
    GgufVocab& text(const std::string& key, const std::string& v) {
        ++n;
        str(key);
        u32(8);
        str(v);
        return *this;
    }
    GgufVocab& texts(const std::string& key, const std::vector<std::string>& v) {
        ++n;
        str(key);
        u32(9);
        u32(8);
        const uint64_t count = v.size();
        kv.append(reinterpret_cast<const char*>(&count), 8);
        for (const auto& x : v) str(x);
        return *this;
    }
    std::string bytes() const {
        std::string h = "GGUF";
        const uint32_t version = 3;
        const uint64_t tensors = 0;
        h.append(reinterpret_cast<const char*>(&version), 4);
        h.append(reinterpret_cast<const char*>(&tensors), 8);
        h.append(reinterpret_cast<const char*>(&n), 8);
        return h + kv;
    }
};

// The GGUF form of a shipped tokenizer.json (tokens by id, merges as "a b").
std::string gguf_from_json(const std::string& name, const std::string& pre) {
    const HfTokenizer& t = shipped(name);
    std::vector<std::string> tokens;
    for (int id = 0; id < t.vocab_size(); ++id) tokens.push_back(t.piece(id));
    const json doc = json::parse(read_text_file(tok_dir(name) + "/tokenizer.json"));
    std::vector<std::string> merges;
    for (const json& m : doc["model"]["merges"])
        merges.push_back(m.is_string() ? m.get<std::string>()
                                       : m[0].get<std::string>() + " " + m[1].get<std::string>());
    GgufVocab v;
    v.text("tokenizer.ggml.model", "gpt2")
        .texts("tokenizer.ggml.tokens", tokens)
        .texts("tokenizer.ggml.merges", merges);
    if (!pre.empty()) v.text("tokenizer.ggml.pre", pre);
    return write_text("gguf-" + name + "-" + pre + ".gguf", v.bytes());
}

}  // namespace

TEST_CASE("GGUF gpt2 vocabularies follow tokenizer.ggml.pre: llama-bpe and qwen2 vectors",
          "[tokenizer][gguf][hf]") {
    SKIP_WITHOUT_SHARED();
    const std::pair<const char*, const char*> sets[] = {{"llama3", "llama-bpe"}, {"qwen", "qwen2"}};
    for (const auto& s : sets) {
        auto tok = load_gguf_tokenizer(gguf_from_json(s.first, s.second));
        const VectorResult r = run_vectors(*tok, s.second, false);
        report((std::string("GGUF (pre ") + s.second + "), " + s.second + ":").c_str(), r);
        CHECK(r.passed == r.total);
        CHECK(r.round_trips == r.total);
    }
    // Without tokenizer.ggml.pre the GPT-2 regex applies: Llama 3's vocabulary then splits
    // "3333333" as one number chunk, where Llama 3 cuts numbers into runs of at most 3 digits.
    auto plain = load_gguf_tokenizer(gguf_from_json("llama3", ""));
    CHECK(plain->encode("3333333", false) != shipped("llama3").encode("3333333", false));
    // An unknown pre-tokenizer is refused by name.
    const std::string odd = gguf_from_json("qwen", "tekken");
    expect_error([&] { load_gguf_tokenizer(odd); }, {odd, "tokenizer.ggml.pre", "'tekken'", "not supported"});
}
