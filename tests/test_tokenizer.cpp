// Tests for the llama2.c tokenizer: loading / validation, encoding against the known
// llama2.c outputs, decoding (including the golden greedy continuation) and round trips.
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "depass/tokenizer.hpp"
#include "test_support.hpp"

using depass::Llama2cTokenizer;

namespace {

std::string tok512_path() { return depass_test::weights_dir() + "/tok512.bin"; }
std::string llama_tok_path() { return depass_test::weights_dir() + "/tokenizer.bin"; }

// Little-endian writer for synthetic tokenizer files.
struct Bin {
    std::string bytes;
    void i32(int32_t v) {
        uint32_t u;
        std::memcpy(&u, &v, 4);
        for (int k = 0; k < 4; ++k) bytes.push_back(char((u >> (8 * k)) & 0xFF));
    }
    void f32(float v) {
        int32_t i;
        std::memcpy(&i, &v, 4);
        i32(i);
    }
    void piece(const std::string& s, float score) {
        f32(score);
        i32(int32_t(s.size()));
        bytes += s;
    }
    std::string write(const std::string& name) const {
        std::string path = depass_test::temp_dir() + "/" + name;
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(bytes.data(), std::streamsize(bytes.size()));
        return path;
    }
};

// A tiny vocabulary with all 256 byte pieces: ids 0..2 special, 3..258 bytes, then words.
Bin tiny_vocab() {
    Bin b;
    b.i32(8);
    b.piece("<unk>", 0);
    b.piece("\n<s>\n", 0);
    b.piece("\n</s>\n", 0);
    const char* hex = "0123456789ABCDEF";
    for (int v = 0; v < 256; ++v) b.piece(std::string("<0x") + hex[v >> 4] + hex[v & 15] + ">", 0);
    b.piece(" ", -1);      // 259
    b.piece("a", -2);      // 260
    b.piece("b", -3);      // 261
    b.piece("ab", -4);     // 262
    b.piece(" a", -5);     // 263
    b.piece(" ab", -6);    // 264
    b.piece("bb", -0.5f);  // 265
    return b;
}

std::string message_of(const std::string& path, int expected_vocab = -1) {
    try {
        Llama2cTokenizer::load(path, expected_vocab);
    } catch (const depass::Error& e) {
        return e.what();
    }
    return "";
}

bool contains(const std::string& hay, const std::string& needle) {
    return hay.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("tok512: load and encode 'Once upon a time'", "[tokenizer]") {
    SKIP_WITHOUT_SHARED();
    auto tok = Llama2cTokenizer::load(tok512_path(), 512);
    CHECK(tok.vocab_size() == 512);
    CHECK(tok.max_token_length() == 7);
    CHECK(tok.piece(1) == "\n<s>\n");
    CHECK(tok.piece(2) == "\n</s>\n");
    CHECK(tok.encode("Once upon a time") == std::vector<int>{1, 403, 407, 261, 378});
    CHECK(tok.encode("Once upon a time", false) == std::vector<int>{403, 407, 261, 378});
    CHECK(tok.encode("Once upon a time", true, true) == std::vector<int>{1, 403, 407, 261, 378, 2});
    // Reading to the end of the file gives the same vocabulary.
    CHECK(Llama2cTokenizer::load(tok512_path()).vocab_size() == 512);
}

TEST_CASE("tokenizer.bin (Llama 2, 32000): encode 'Once upon a time'", "[tokenizer]") {
    SKIP_WITHOUT_SHARED();
    auto tok = Llama2cTokenizer::load(llama_tok_path(), 32000);
    CHECK(tok.vocab_size() == 32000);
    CHECK(tok.piece(1) == "\n<s>\n");
    CHECK(tok.piece(2) == "\n</s>\n");
    CHECK(tok.encode("Once upon a time") == std::vector<int>{1, 9038, 2501, 263, 931});
    CHECK(tok.decode({1, 9038, 2501, 263, 931}) == "Once upon a time");
    CHECK(tok.decode({1, 9038, 2501, 263, 931, 2}) == "Once upon a time");
}

TEST_CASE("empty text encodes to BOS only", "[tokenizer]") {
    SKIP_WITHOUT_SHARED();
    for (const auto& path : {tok512_path(), llama_tok_path()}) {
        auto tok = Llama2cTokenizer::load(path);
        CHECK(tok.encode("") == std::vector<int>{1});
        CHECK(tok.encode("", false).empty());
        CHECK(tok.encode("", true, true) == std::vector<int>{1, 2});
        CHECK(tok.decode(tok.encode("")).empty());
    }
}

TEST_CASE("decode(encode(s)) == s for ASCII and UTF-8 text", "[tokenizer]") {
    SKIP_WITHOUT_SHARED();
    const std::vector<std::string> texts = {
        "Once upon a time",
        "Hello, world! 123 + 456 = 579.",
        "  leading spaces, trailing spaces  ",
        "tabs\tand\nnewlines\r\n",
        "caf\xC3\xA9 na\xC3\xAFve \xC3\xBC"
        "ber",                                               // café naïve über
        "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E",              // 日本語
        "emoji \xF0\x9F\x98\x80 and \xF0\x9F\xA6\x99 end",   // 😀 🦙
        "\xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82",  // привет
        " ",
        "x",
    };
    for (const auto& path : {tok512_path(), llama_tok_path()}) {
        auto tok = Llama2cTokenizer::load(path);
        for (const auto& s : texts) {
            INFO(path << " text: " << s);
            auto ids = tok.encode(s);
            REQUIRE(!ids.empty());
            CHECK(ids.front() == 1);
            for (int id : ids) CHECK((id >= 0 && id < tok.vocab_size()));
            CHECK(tok.decode(ids) == s);
            CHECK(tok.decode(tok.encode(s, true, true)) == s);
        }
    }
}

TEST_CASE("code points missing from the vocabulary fall back to byte pieces", "[tokenizer]") {
    SKIP_WITHOUT_SHARED();
    auto tok = Llama2cTokenizer::load(tok512_path());
    // tok512 has no piece for the emoji; its four bytes become ids byte + 3.
    const std::string emoji = "\xF0\x9F\x98\x80";
    REQUIRE(tok.lookup(emoji) == -1);
    auto ids = tok.encode(emoji, false);
    REQUIRE(ids.size() == 5);
    CHECK(ids[0] == tok.lookup(" "));
    CHECK(ids[1] == 0xF0 + 3);
    CHECK(ids[2] == 0x9F + 3);
    CHECK(ids[3] == 0x98 + 3);
    CHECK(ids[4] == 0x80 + 3);
    CHECK(tok.piece(0xF0 + 3) == "<0xF0>");
    CHECK(tok.decode_piece(0xF0 + 3, 0x9F + 3) == "\x9F");
    CHECK(tok.decode(ids) == " " + emoji);

    auto llama = Llama2cTokenizer::load(llama_tok_path());
    auto lids = llama.encode(emoji, false);
    CHECK(llama.decode(lids) == " " + emoji);
}

TEST_CASE("golden greedy tokens decode to the llama2.c text", "[tokenizer]") {
    SKIP_WITHOUT_SHARED();
    const std::string path = depass_test::weights_dir() + "/golden/stories260K_once.tokens.i32";
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in);
    std::vector<int> ids;
    unsigned char b[4];
    while (in.read(reinterpret_cast<char*>(b), 4)) {
        uint32_t u = uint32_t(b[0]) | (uint32_t(b[1]) << 8) | (uint32_t(b[2]) << 16) | (uint32_t(b[3]) << 24);
        int32_t v;
        std::memcpy(&v, &u, 4);
        ids.push_back(v);
    }
    REQUIRE(ids.size() == 16);
    CHECK(std::vector<int>(ids.begin(), ids.begin() + 5) == std::vector<int>{1, 403, 407, 261, 378});

    auto tok = Llama2cTokenizer::load(tok512_path(), 512);
    const std::string full =
        "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
        "One day, she saw a big, red ball. She wanted to play with it, but it was too high.";
    const std::string text = tok.decode(ids);
    CHECK(text == "Once upon a time, there was a little girl named Lily.");
    CHECK(full.compare(0, text.size(), text) == 0);
    // Piece by piece, as the original prints while generating.
    std::string streamed;
    for (size_t i = 1; i < ids.size(); ++i) streamed += tok.decode_piece(ids[i - 1], ids[i]);
    CHECK(streamed == text);
    // The prefix re-encodes to the same tokens.
    CHECK(tok.encode(text) == ids);
}

TEST_CASE("decode_piece strips the space after BOS and maps raw byte pieces", "[tokenizer]") {
    SKIP_WITHOUT_SHARED();
    auto tok = Llama2cTokenizer::load(llama_tok_path(), 32000);
    CHECK(tok.piece(9038) == " Once");
    CHECK(tok.decode_piece(1, 9038) == "Once");
    CHECK(tok.decode_piece(9038, 9038) == " Once");
    CHECK(tok.piece(13) == "<0x0A>");
    CHECK(tok.decode_piece(1, 13) == "\n");
    CHECK(tok.decode_piece(5, 3) == std::string(1, '\0'));
    CHECK(tok.decode_piece(5, 258) == "\xFF");
}

TEST_CASE("out-of-range ids raise depass::Error naming id and vocab size", "[tokenizer]") {
    SKIP_WITHOUT_SHARED();
    auto tok = Llama2cTokenizer::load(tok512_path());
    auto msg = [&](auto fn) -> std::string {
        try {
            fn();
        } catch (const depass::Error& e) {
            return e.what();
        }
        return "";
    };
    std::string m = msg([&] { tok.piece(512); });
    CHECK(contains(m, "512"));
    CHECK(contains(m, "vocab size 512"));
    m = msg([&] { tok.decode_piece(1, -1); });
    CHECK(contains(m, "-1"));
    CHECK(contains(m, "512"));
    m = msg([&] { tok.decode({1, 403, 9999}); });
    CHECK(contains(m, "9999"));
    CHECK(contains(m, "512"));
    CHECK_THROWS_AS(tok.score(100000), depass::Error);
}

TEST_CASE("merging picks the best score, leftmost on ties (synthetic vocab)", "[tokenizer]") {
    auto path = tiny_vocab().write("tiny.bin");
    auto tok = Llama2cTokenizer::load(path);
    REQUIRE(tok.vocab_size() == 266);
    // " ab": pairs (" ","a")=" a"(-5), ("a","b")="ab"(-4) -> ab first; then (" ","ab")=" ab"(-6).
    CHECK(tok.encode("ab", false) == std::vector<int>{264});
    // " abb": best is "bb"(-0.5) -> [" ","a","bb"], then " a"(-5) -> [" a","bb"]; " abb" is no piece.
    CHECK(tok.encode("abb", false) == std::vector<int>{263, 265});
    // " bbb": "bb" at positions 1 and 2 tie; the leftmost wins -> [" ","bb","b"].
    CHECK(tok.encode("bbb", false) == std::vector<int>{259, 265, 261});
    // Unknown ASCII letter and a 2-byte code point fall back to bytes.
    CHECK(tok.encode("z\xC3\xA9", false) == std::vector<int>{259, 'z' + 3, 0xC3 + 3, 0xA9 + 3});
    CHECK(tok.decode(tok.encode("z\xC3\xA9 bbb ab")) == "z\xC3\xA9 bbb ab");
}

TEST_CASE("matches a straightforward rescan-every-pair merge on long text", "[tokenizer]") {
    SKIP_WITHOUT_SHARED();
    // Reference: the original quadratic loop, written out directly.
    auto reference = [](const Llama2cTokenizer& tok, const std::string& text) {
        std::vector<int> t;
        if (!text.empty()) t.push_back(tok.lookup(" "));
        std::string cp;
        for (size_t i = 0; i < text.size(); ++i) {
            unsigned char c = static_cast<unsigned char>(text[i]);
            if ((c & 0xC0) != 0x80) cp.clear();
            cp.push_back(char(c));
            if (i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80 &&
                cp.size() < 4)
                continue;
            int id = tok.lookup(cp);
            if (id >= 0) {
                t.push_back(id);
            } else {
                for (char b : cp) t.push_back(int(static_cast<unsigned char>(b)) + 3);
            }
            cp.clear();
        }
        while (true) {
            float best = -1e10f;
            int best_id = -1, best_i = -1;
            for (size_t i = 0; i + 1 < t.size(); ++i) {
                int id = tok.lookup(tok.piece(t[i]) + tok.piece(t[i + 1]));
                if (id >= 0 && tok.score(id) > best) {
                    best = tok.score(id);
                    best_id = id;
                    best_i = int(i);
                }
            }
            if (best_i < 0) break;
            t[size_t(best_i)] = best_id;
            t.erase(t.begin() + best_i + 1);
        }
        t.insert(t.begin(), 1);
        return t;
    };
    std::string text;
    for (int k = 0; k < 6; ++k)
        text +=
            "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
            "One day, she saw a big, red ball \xF0\x9F\x8E\x88 -- caf\xC3\xA9, \xE6\x97\xA5\xE6\x9C\xAC! "
            "aaaa   bbbb\t\t\n\n";
    for (const auto& path : {tok512_path(), llama_tok_path()}) {
        auto tok = Llama2cTokenizer::load(path);
        INFO(path);
        CHECK(tok.encode(text) == reference(tok, text));
        CHECK(tok.decode(tok.encode(text)) == text);
    }
}

TEST_CASE("malformed tokenizer files raise depass::Error naming the file", "[tokenizer]") {
    const std::string good_path = tiny_vocab().write("good.bin");
    REQUIRE(Llama2cTokenizer::load(good_path).vocab_size() == 266);
    REQUIRE(Llama2cTokenizer::load(good_path, 266).vocab_size() == 266);

    SECTION("zero-size file") {
        auto path = Bin{}.write("empty.bin");
        auto m = message_of(path);
        CHECK(contains(m, path));
        CHECK(contains(m, "empty"));
    }
    SECTION("header shorter than 4 bytes") {
        Bin b;
        b.bytes = "ab";
        auto path = b.write("short_header.bin");
        CHECK(contains(message_of(path), path));
    }
    SECTION("non-positive max_token_length") {
        Bin b;
        b.i32(0);
        b.piece("a", 0);
        auto path = b.write("zero_max.bin");
        auto m = message_of(path);
        CHECK(contains(m, path));
        CHECK(contains(m, "max_token_length"));
    }
    SECTION("truncated in the middle of a piece's bytes") {
        Bin b = tiny_vocab();
        b.bytes.resize(b.bytes.size() - 1);  // last piece "bb" loses a byte
        auto path = b.write("truncated_bytes.bin");
        auto m = message_of(path);
        CHECK(contains(m, path));
        CHECK(contains(m, "piece 265"));
        CHECK(contains(m, "truncated"));
    }
    SECTION("truncated inside a piece's score/length fields") {
        Bin b = tiny_vocab();
        b.bytes.append("\x00\x00\x80", 3);
        auto path = b.write("truncated_fields.bin");
        auto m = message_of(path);
        CHECK(contains(m, path));
        CHECK(contains(m, "piece 266"));
    }
    SECTION("negative length") {
        Bin b;
        b.i32(8);
        b.piece("<unk>", 0);
        b.f32(0);
        b.i32(-3);
        b.bytes += "xyz";
        auto path = b.write("negative_len.bin");
        auto m = message_of(path);
        CHECK(contains(m, path));
        CHECK(contains(m, "piece 1"));
        CHECK(contains(m, "negative"));
    }
    SECTION("length above max_token_length") {
        Bin b;
        b.i32(3);
        b.piece("<u>", 0);
        b.piece("toolong", 0);
        auto path = b.write("too_long.bin");
        auto m = message_of(path);
        CHECK(contains(m, path));
        CHECK(contains(m, "piece 1"));
        CHECK(contains(m, "max_token_length"));
    }
    SECTION("expected vocab larger than the file") {
        auto m = message_of(good_path, 300);
        CHECK(contains(m, good_path));
        CHECK(contains(m, "300"));
    }
    SECTION("trailing bytes after the expected vocab") {
        auto m = message_of(good_path, 265);
        CHECK(contains(m, good_path));
        CHECK(contains(m, "trailing"));
    }
    SECTION("fewer than three pieces") {
        Bin b;
        b.i32(8);
        b.piece("<unk>", 0);
        auto path = b.write("one_piece.bin");
        CHECK(contains(message_of(path), path));
    }
    SECTION("missing file") {
        const std::string path = depass_test::temp_dir() + "/does_not_exist.bin";
        CHECK(contains(message_of(path), path));
    }
}

TEST_CASE("tokenizer.bin agrees with the llama.cpp SentencePiece test vectors", "[tokenizer]") {
    SKIP_WITHOUT_SHARED();
    const std::string base = depass_test::weights_dir() + "/llamacpp_vocab/ggml-vocab-llama-spm.gguf.";
    std::ifstream inp(base + "inp", std::ios::binary), outp(base + "out", std::ios::binary);
    REQUIRE(inp);
    REQUIRE(outp);
    const std::string all((std::istreambuf_iterator<char>(inp)), std::istreambuf_iterator<char>());
    const std::string sep = "\n__ggml_vocab_test__\n";
    std::vector<std::string> inputs;
    size_t pos = 0;
    for (size_t hit; (hit = all.find(sep, pos)) != std::string::npos; pos = hit + sep.size())
        inputs.push_back(all.substr(pos, hit - pos));
    if (pos < all.size()) inputs.push_back(all.substr(pos));

    auto tok = Llama2cTokenizer::load(llama_tok_path(), 32000);
    std::string line;
    size_t n = 0;
    while (n < inputs.size() && std::getline(outp, line)) {
        std::istringstream ls(line);
        std::vector<int> expected;
        for (int id; ls >> id;) expected.push_back(id);
        INFO("input " << n << ": [" << inputs[n] << "]");
        CHECK(tok.encode(inputs[n], false) == expected);  // the vectors carry no BOS
        CHECK(tok.decode(tok.encode(inputs[n])) == inputs[n]);
        ++n;
    }
    CHECK(n == inputs.size());
    CHECK(n >= 40);
}
