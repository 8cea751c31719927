// SentencePiece tokenizer (tokenizer.model through libsentencepiece) against two
// independent references: the llama.cpp tokenizer test vectors for the Llama 2
// vocabulary, and the llama2.c export of the same vocabulary (tokenizer.bin), whose
// encoder is our own implementation of llama2.c's merge loop.
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "depass/tokenizer.hpp"
#include "test_support.hpp"

using namespace depass;
using Catch::Matchers::Contains;

namespace {

std::string spm_path() { return depass_test::weights_dir() + "/tokenizer.model"; }
std::string bin_path() { return depass_test::weights_dir() + "/tokenizer.bin"; }

std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), std::streamsize(bytes.size()));
    REQUIRE(out);
}

// The llama.cpp vectors: inputs separated by "\n__ggml_vocab_test__\n" (the file ends
// with a separator), and one line of space-separated ids per input, without BOS.
struct Vectors {
    std::vector<std::string> inputs;
    std::vector<std::vector<int>> expected;
};

Vectors read_vectors() {
    const std::string base = depass_test::weights_dir() + "/llamacpp_vocab/ggml-vocab-llama-spm.gguf.";
    const std::string all = read_bytes(base + "inp");
    const std::string sep = "\n__ggml_vocab_test__\n";
    Vectors v;
    size_t pos = 0;
    for (size_t hit; (hit = all.find(sep, pos)) != std::string::npos; pos = hit + sep.size())
        v.inputs.push_back(all.substr(pos, hit - pos));
    if (pos < all.size()) v.inputs.push_back(all.substr(pos));

    std::istringstream out(read_bytes(base + "out"));
    std::string line;
    while (v.expected.size() < v.inputs.size() && std::getline(out, line)) {
        std::istringstream ls(line);
        std::vector<int> ids;
        for (int id; ls >> id;) ids.push_back(id);
        v.expected.push_back(ids);
    }
    return v;
}

// Printable form of an input for failure messages.
std::string shown(const std::string& s) {
    std::string out;
    for (char c : s)
        out += c == '\n' ? std::string("\\n") : c == '\t' ? std::string("\\t") : std::string(1, c);
    return out;
}

}  // namespace

TEST_CASE("tokenizer.model: the Llama 2 vocabulary, piece by piece as tokenizer.bin", "[tokenizer][spm]") {
    SKIP_WITHOUT_SHARED();
    auto spm = load_sentencepiece_tokenizer(spm_path());
    auto bin = Llama2cTokenizer::load(bin_path(), 32000);
    CHECK(spm->kind() == "sentencepiece");
    REQUIRE(spm->vocab_size() == 32000);
    CHECK(spm->piece(0) == "<unk>");
    CHECK(spm->piece(1) == "<s>");
    CHECK(spm->piece(2) == "</s>");
    CHECK(spm->piece(3) == "<0x00>");
    CHECK(spm->piece(15043) == "\xE2\x96\x81Hello");  // U+2581 marks the word start

    // The llama2.c export replaced U+2581 by a space and wrapped BOS / EOS in newlines;
    // apart from that every piece is the same.
    int same = 0;
    for (int id = 0; id < 32000; ++id) {
        std::string p = spm->piece(id), expect;
        for (size_t i = 0; i < p.size(); ++i) {
            if (p.compare(i, 3, "\xE2\x96\x81") == 0) {
                expect += ' ';
                i += 2;
            } else {
                expect += p[i];
            }
        }
        if (id == 1 || id == 2) expect = "\n" + expect + "\n";
        if (expect == bin.piece(id))
            ++same;
        else
            FAIL_CHECK("piece " << id << ": '" << p << "' vs tokenizer.bin '" << bin.piece(id) << "'");
    }
    std::cout << "tokenizer.model vs tokenizer.bin: " << same << " / 32000 pieces identical\n";
    CHECK(same == 32000);

    // decode_piece agrees with llama2.c's for every id, at the start and after BOS
    // (control pieces excepted: llama2.c prints its stored "\n<s>\n", SentencePiece nothing).
    int agree = 0, compared = 0;
    for (int prev : {-1, 1, 9038}) {
        for (int id = 0; id < 32000; ++id) {
            if (id == 1 || id == 2) continue;
            ++compared;
            if (spm->decode_piece(prev, id) == bin.decode_piece(prev, id))
                ++agree;
            else
                FAIL_CHECK("decode_piece(" << prev << ", " << id << ")");
        }
    }
    std::cout << "decode_piece: " << agree << " / " << compared << " agree with tokenizer.bin\n";
    CHECK(agree == compared);
    CHECK(spm->decode_piece(1, 1) == "");
    CHECK(spm->decode_piece(-1, 13) == "\n");  // <0x0A>
    CHECK(spm->decode_piece(1, 29871) == "");  // "▁" right after BOS: the dummy prefix
    CHECK(spm->decode_piece(15043, 29871) == " ");
}

TEST_CASE("tokenizer.model: 'Once upon a time' with and without BOS / EOS", "[tokenizer][spm]") {
    SKIP_WITHOUT_SHARED();
    auto spm = load_sentencepiece_tokenizer(spm_path());
    CHECK(spm->encode("Once upon a time") == std::vector<int>{1, 9038, 2501, 263, 931});
    CHECK(spm->encode("Once upon a time", false) == std::vector<int>{9038, 2501, 263, 931});
    CHECK(spm->encode("Once upon a time", true, true) == std::vector<int>{1, 9038, 2501, 263, 931, 2});
    CHECK(spm->encode("", true) == std::vector<int>{1});
    CHECK(spm->encode("", false).empty());
    CHECK(spm->decode({1, 9038, 2501, 263, 931, 2}) == "Once upon a time");
}

TEST_CASE("tokenizer.model and tokenizer.bin reproduce the llama.cpp test vectors", "[tokenizer][spm]") {
    SKIP_WITHOUT_SHARED();
    const Vectors v = read_vectors();
    REQUIRE(v.inputs.size() >= 40);
    REQUIRE(v.expected.size() == v.inputs.size());
    auto spm = load_sentencepiece_tokenizer(spm_path());
    auto bin = Llama2cTokenizer::load(bin_path(), 32000);

    size_t spm_ok = 0, bin_ok = 0, agree = 0, spm_round = 0, bin_round = 0, total_ids = 0;
    for (size_t n = 0; n < v.inputs.size(); ++n) {
        const std::string& text = v.inputs[n];
        INFO("input " << n << ": [" << shown(text) << "]");
        const std::vector<int> s = spm->encode(text, false), b = bin.encode(text, false);
        total_ids += v.expected[n].size();
        spm_ok += s == v.expected[n];
        bin_ok += b == v.expected[n];
        agree += s == b && spm->encode(text, true) == bin.encode(text, true);
        CHECK(s == v.expected[n]);
        CHECK(b == v.expected[n]);
        CHECK(s == b);
        // Round trip: the text comes back exactly (BOS in front drops the dummy-prefix space).
        const std::string sd = spm->decode(spm->encode(text, true, true));
        const std::string bd = bin.decode(bin.encode(text, true, true));
        spm_round += sd == text;
        bin_round += bd == text;
        CHECK(sd == text);
        CHECK(bd == text);
    }
    std::cout << "llama.cpp vectors (" << v.inputs.size() << " inputs, " << total_ids
              << " ids): tokenizer.model " << spm_ok << " match, tokenizer.bin " << bin_ok << " match, "
              << agree << " agree with each other; round trips " << spm_round << " / " << bin_round << "\n";
    CHECK(spm_ok == v.inputs.size());
    CHECK(bin_ok == v.inputs.size());
    CHECK(agree == v.inputs.size());
}

TEST_CASE("open_tokenizer picks the format by extension, then by content", "[tokenizer][spm]") {
    SKIP_WITHOUT_SHARED();
    const std::string tmp = depass_test::temp_dir();
    CHECK(open_tokenizer(spm_path())->kind() == "sentencepiece");
    CHECK(open_tokenizer(bin_path())->kind() == "llama2.c");
    CHECK(open_tokenizer(depass_test::source_dir() + "/weights/tok512.bin")->vocab_size() == 512);

    // Without a telling extension: the content decides.
    const std::string spm_copy = tmp + "/llama_vocab", bin_copy = tmp + "/tok512.vocab";
    write_bytes(spm_copy, read_bytes(spm_path()));
    write_bytes(bin_copy, read_bytes(depass_test::source_dir() + "/weights/tok512.bin"));
    auto a = open_tokenizer(spm_copy);
    CHECK(a->kind() == "sentencepiece");
    CHECK(a->encode("Once upon a time") == std::vector<int>{1, 9038, 2501, 263, 931});
    auto b = open_tokenizer(bin_copy);
    CHECK(b->kind() == "llama2.c");
    CHECK(b->encode("Once upon a time") == std::vector<int>{1, 403, 407, 261, 378});
}

TEST_CASE("missing or corrupt tokenizer files raise depass::Error naming the file",
          "[tokenizer][spm][errors]") {
    SKIP_WITHOUT_SHARED();
    const std::string tmp = depass_test::temp_dir();
    const std::string model = read_bytes(spm_path());

    const std::string missing = tmp + "/no_such_tokenizer.model";
    CHECK_THROWS_WITH(load_sentencepiece_tokenizer(missing), Contains(missing));
    CHECK_THROWS_WITH(open_tokenizer(missing), Contains(missing));

    struct Case {
        std::string name, bytes;
    };
    const std::vector<Case> cases = {
        {"empty.model", ""},
        {"text.model", "this is a text file, not a SentencePiece model\n"},
        {"half.model", model.substr(0, model.size() / 2)},
        {"garbage.model", std::string(4096, '\xff')},
    };
    for (const Case& c : cases) {
        const std::string path = tmp + "/" + c.name;
        write_bytes(path, c.bytes);
        INFO(c.name);
        CHECK_THROWS_AS(load_sentencepiece_tokenizer(path), Error);
        CHECK_THROWS_WITH(load_sentencepiece_tokenizer(path), Contains(path));
        CHECK_THROWS_WITH(open_tokenizer(path), Contains(path));
    }

    // Neither format: both attempts are reported.
    const std::string neither = tmp + "/neither.vocab";
    write_bytes(neither, "this is a text file, not a tokenizer\n");
    CHECK_THROWS_WITH(open_tokenizer(neither),
                      Contains(neither) && Contains("llama2.c") && Contains("SentencePiece"));
}
