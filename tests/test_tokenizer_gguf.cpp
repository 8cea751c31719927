// Tests for the GGUF vocabularies: llama.cpp's own tokenizer test vectors for the
// llama SentencePiece vocabulary and the GPT-2 byte-level BPE vocabulary, round trips,
// BOS / EOS handling, and the container errors a damaged vocabulary file must raise.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "depass/gguf.hpp"
#include "depass/io.hpp"
#include "depass/tokenizer.hpp"
#include "test_support.hpp"

using namespace depass;

namespace {

std::string vocab_path(const std::string& name) {
    return depass_test::weights_dir() + "/llamacpp_vocab/ggml-vocab-" + name + ".gguf";
}

using depass_test::ids_str;
using depass_test::read_vector_inputs;
using depass_test::read_vector_outputs;

// Runs every test vector of one vocabulary; returns the number that reproduce exactly.
int run_vectors(const std::string& name, int* total, int* round_trips) {
    const std::string path = vocab_path(name);
    GgufTokenizer tok = GgufTokenizer::load(path);
    const auto inputs = read_vector_inputs(path + ".inp");
    const auto outputs = read_vector_outputs(path + ".out");
    REQUIRE(inputs.size() == outputs.size());
    REQUIRE(inputs.size() >= 40);
    int passed = 0;
    *round_trips = 0;
    for (size_t k = 0; k < inputs.size(); ++k) {
        const std::vector<int> ids = tok.encode(inputs[k], false, false);
        INFO(name << " case " << k << ": '" << inputs[k] << "'\n  expected " << ids_str(outputs[k])
                  << "\n  got      " << ids_str(ids));
        CHECK(ids == outputs[k]);
        if (ids == outputs[k]) ++passed;
        // Both vocabularies are lossless for valid UTF-8: decoding gives the input back.
        const std::string back = tok.decode(ids);
        CHECK(back == inputs[k]);
        if (back == inputs[k]) ++*round_trips;
    }
    *total = static_cast<int>(inputs.size());
    return passed;
}

std::string write_bytes(const std::string& name, const std::string& bytes) {
    const std::string path = depass_test::temp_dir() + "/" + name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), std::streamsize(bytes.size()));
    return path;
}

// Little-endian byte builder for hand-made GGUF headers.
struct Bytes {
    std::string b;
    template <class X>
    Bytes& put(X x) {
        char tmp[sizeof x];
        std::memcpy(tmp, &x, sizeof x);
        b.append(tmp, sizeof x);
        return *this;
    }
    Bytes& str(const std::string& s) {
        put<uint64_t>(s.size());
        b += s;
        return *this;
    }
};

// A vocabulary-only GGUF file: string / string-array / float-array metadata.
struct VocabFile {
    uint64_t n = 0;
    Bytes kv;
    VocabFile& text(const std::string& key, const std::string& v) {
        ++n;
        kv.str(key).put<uint32_t>(8).str(v);
        return *this;
    }
    VocabFile& texts(const std::string& key, const std::vector<std::string>& v) {
        ++n;
        kv.str(key).put<uint32_t>(9).put<uint32_t>(8).put<uint64_t>(v.size());
        for (const auto& x : v) kv.str(x);
        return *this;
    }
    VocabFile& floats(const std::string& key, const std::vector<float>& v) {
        ++n;
        kv.str(key).put<uint32_t>(9).put<uint32_t>(6).put<uint64_t>(v.size());
        for (float x : v) kv.put(x);
        return *this;
    }
    std::string bytes() const {
        Bytes h;
        h.b = "GGUF";
        h.put<uint32_t>(3).put<uint64_t>(0).put<uint64_t>(n);
        return h.b + kv.b;
    }
};

using depass_test::expect_error;

}  // namespace

TEST_CASE("GGUF llama (SentencePiece) vocabulary reproduces llama.cpp's test vectors", "[tokenizer][gguf]") {
    SKIP_WITHOUT_SHARED();
    int total = 0, round_trips = 0;
    const int passed = run_vectors("llama-spm", &total, &round_trips);
    std::printf("  ggml-vocab-llama-spm: %d/%d test vectors reproduced, %d/%d decode(encode(x)) == x\n",
                passed, total, round_trips, total);
    CHECK(passed == total);
}

TEST_CASE("GGUF GPT-2 (byte-level BPE) vocabulary reproduces llama.cpp's test vectors", "[tokenizer][gguf]") {
    SKIP_WITHOUT_SHARED();
    int total = 0, round_trips = 0;
    const int passed = run_vectors("gpt-2", &total, &round_trips);
    std::printf("  ggml-vocab-gpt-2:     %d/%d test vectors reproduced, %d/%d decode(encode(x)) == x\n",
                passed, total, round_trips, total);
    CHECK(passed == total);
}

TEST_CASE("GGUF vocabularies: metadata, BOS/EOS, pieces and the factory", "[tokenizer][gguf]") {
    SKIP_WITHOUT_SHARED();
    GgufTokenizer spm = GgufTokenizer::load(vocab_path("llama-spm"));
    CHECK(spm.kind() == "gguf-spm");
    CHECK(spm.vocab_size() == 32000);
    CHECK(spm.bos_id() == 1);
    CHECK(spm.eos_id() == 2);
    CHECK(spm.add_bos());
    CHECK(spm.piece(1) == "<s>");
    CHECK(spm.token_type(1) == 3);
    CHECK(spm.token_type(3 + 0x41) == 6);  // <0x41>
    // The same ids as the llama2.c export of this vocabulary (MANIFEST.md).
    CHECK(spm.encode("Once upon a time", true, false) == std::vector<int>{1, 9038, 2501, 263, 931});
    CHECK(spm.encode("Once upon a time", true, true) == std::vector<int>{1, 9038, 2501, 263, 931, 2});
    CHECK(spm.encode("", true, false) == std::vector<int>{1});
    // After BOS (or at the start) the dummy-prefix space is not text; later it is.
    CHECK(spm.decode_piece(1, 9038) == "Once");
    CHECK(spm.decode_piece(-1, 9038) == "Once");
    CHECK(spm.decode_piece(9038, 2501) == " upon");
    CHECK(spm.decode_piece(9038, 3 + 0x0A) == "\n");  // byte piece
    CHECK(spm.decode({1, 9038, 2501, 263, 931, 2}) == "Once upon a time");
    CHECK_THROWS_AS(spm.piece(32000), Error);

    GgufTokenizer bpe = GgufTokenizer::load(vocab_path("gpt-2"));
    CHECK(bpe.kind() == "gguf-bpe");
    CHECK(bpe.vocab_size() == 50257);
    CHECK(bpe.bos_id() == 50256);
    CHECK(bpe.eos_id() == 50256);
    CHECK(bpe.piece(50256) == "<|endoftext|>");
    CHECK(bpe.token_type(50256) == 3);
    CHECK(bpe.encode("Hello world", true, true) == std::vector<int>{50256, 15496, 995, 50256});
    CHECK(bpe.decode({50256, 15496, 995, 50256}) == "Hello world");  // control tokens skipped
    CHECK(bpe.decode_piece(15496, 995) == " world");                 // "Ġworld"
    // Bytes that are not valid UTF-8 survive the byte-level round trip.
    const std::string raw = std::string("a\xff\xfe b\xc3", 6);
    CHECK(bpe.decode(bpe.encode(raw, false, false)) == raw);
    // ... and map to byte pieces in the SentencePiece vocabulary.
    CHECK(spm.encode(std::string("\xff", 1), false, false) == std::vector<int>{29871, 3 + 0xFF});

    // The declared factory returns the same tokenizer through the base interface.
    std::unique_ptr<Tokenizer> t = load_gguf_tokenizer(vocab_path("gpt-2"));
    CHECK(t->kind() == "gguf-bpe");
    CHECK(t->encode(" Hello World!", false, false) == std::vector<int>{18435, 2159, 0});
    // ... and so does open_tokenizer() for a .gguf file.
    std::unique_ptr<Tokenizer> o = open_tokenizer(vocab_path("llama-spm"));
    CHECK(o->kind() == "gguf-spm");
    CHECK(o->encode("Hello world", false, false) == std::vector<int>{15043, 3186});
}

TEST_CASE("GGUF llama vocabulary agrees with the llama2.c export of the same vocabulary",
          "[tokenizer][gguf]") {
    SKIP_WITHOUT_SHARED();
    // tokenizer.bin holds the same 32000 Llama 2 pieces and scores (spaces spelled " "
    // instead of U+2581); llama2.c's encoder is a second implementation of the same
    // algorithm, so both must give the same ids on every test input.
    GgufTokenizer spm = GgufTokenizer::load(vocab_path("llama-spm"));
    Llama2cTokenizer l2c = Llama2cTokenizer::load(depass_test::weights_dir() + "/tokenizer.bin", 32000);
    const auto inputs = read_vector_inputs(vocab_path("llama-spm") + ".inp");
    int same = 0;
    for (const std::string& text : inputs) {
        const auto a = spm.encode(text, true, false);
        const auto b = l2c.encode(text, true, false);
        INFO("input '" << text << "'");
        CHECK(a == b);
        same += a == b;
    }
    std::printf("  llama-spm GGUF vs llama2.c tokenizer.bin: %d/%zu inputs give identical ids\n", same,
                inputs.size());
}

TEST_CASE("damaged GGUF vocabulary files raise errors naming the file", "[tokenizer][gguf][errors]") {
    SKIP_WITHOUT_SHARED();
    const std::string good = read_text_file(vocab_path("llama-spm"));
    REQUIRE(good.size() > 100000);

    // Truncated: the tokens array runs past the end of the file.
    const std::string trunc = write_bytes("truncated.gguf", good.substr(0, good.size() / 2));
    expect_error([&] { GgufTokenizer::load(trunc); }, {trunc, "truncated", "tokenizer.ggml.tokens"});
    // Truncated inside the 24-byte header.
    const std::string tiny = write_bytes("tiny.gguf", good.substr(0, 10));
    expect_error([&] { GgufFile::open(tiny); }, {tiny, "truncated", "tensor_count"});

    // Bad magic.
    std::string bad = good;
    bad[0] = 'X';
    const std::string magic = write_bytes("badmagic.gguf", bad);
    expect_error([&] { GgufTokenizer::load(magic); }, {magic, "bad magic", "58 47 55 46"});
    expect_error([&] { load_gguf_tokenizer(magic); }, {magic, "bad magic"});

    // Unsupported version.
    bad = good;
    bad[4] = 7;
    const std::string ver = write_bytes("badversion.gguf", bad);
    expect_error([&] { GgufFile::open(ver); }, {ver, "unsupported GGUF version 7"});

    // String length beyond the file: the length of the first key (offset 24).
    bad = good;
    const uint64_t huge = uint64_t(1) << 40;
    std::memcpy(&bad[24], &huge, 8);
    const std::string slen = write_bytes("strlen.gguf", bad);
    expect_error([&] { GgufFile::open(slen); },
                 {slen, "string length 1099511627776", "beyond the end of the file"});

    // A metadata count the file cannot hold.
    bad = good;
    std::memcpy(&bad[16], &huge, 8);
    const std::string kvc = write_bytes("kvcount.gguf", bad);
    expect_error([&] { GgufFile::open(kvc); }, {kvc, "metadata_kv_count", "1099511627776"});

    // The whole vocabulary file opened as a container: counts and keys.
    GgufFile g = GgufFile::open(vocab_path("llama-spm"));
    CHECK(g.version() == 3);
    CHECK(g.tensors().empty());
    CHECK(g.keys().size() == 22);
    CHECK(g.get_string("general.architecture") == "llama");
    CHECK(g.get_uint("llama.vocab_size") == 32000);
    CHECK(g.get_float("llama.attention.layer_norm_rms_epsilon") == Approx(1e-5).epsilon(1e-6));
    CHECK(g.get_bool("tokenizer.ggml.add_bos_token"));
    CHECK(g.get_string_array("tokenizer.ggml.tokens").size() == 32000);
    expect_error([&] { g.get_uint("general.architecture"); },
                 {vocab_path("llama-spm"), "'general.architecture'", "string", "unsigned integer"});
    expect_error([&] { g.get_string("no.such.key"); },
                 {vocab_path("llama-spm"), "missing metadata key 'no.such.key'"});
    expect_error([&] { g.get_string_array("tokenizer.ggml.scores"); },
                 {"'tokenizer.ggml.scores'", "array of float32", "array of string"});
    expect_error([&] { g.tensor("token_embd.weight"); },
                 {vocab_path("llama-spm"), "missing tensor 'token_embd.weight'"});
}

TEST_CASE("hand-made GGUF headers: tensor extents, alignment and value checks", "[gguf][errors]") {
    // A header with one key and one F32 tensor of 8 elements; `offset` and the data
    // length are the variables.
    auto make = [](uint64_t offset, size_t data_bytes, uint32_t align) {
        Bytes h;
        h.b = "GGUF";
        h.put<uint32_t>(3).put<uint64_t>(1).put<uint64_t>(1);
        h.str("general.alignment").put<uint32_t>(4).put<uint32_t>(align);
        h.str("w").put<uint32_t>(1).put<uint64_t>(8).put<uint32_t>(0).put<uint64_t>(offset);
        while (h.b.size() % (align ? align : 1)) h.b.push_back('\0');
        h.b.append(data_bytes, '\0');
        return h.b;
    };
    const std::string ok = write_bytes("ok.gguf", make(0, 32, 32));
    GgufFile g = GgufFile::open(ok);
    CHECK(g.tensor("w").nbytes == 32);
    CHECK(g.data_start() % 32 == 0);
    CHECK(g.read<float>("w").shape == std::vector<int64_t>{8});

    // Offset outside the data section.
    const std::string out = write_bytes("offset.gguf", make(64, 32, 32));
    expect_error([&] { GgufFile::open(out); }, {out, "tensor 'w'", "[64, 96)", "data section"});
    // Data section shorter than the tensor.
    const std::string shortd = write_bytes("short.gguf", make(0, 16, 32));
    expect_error([&] { GgufFile::open(shortd); }, {shortd, "tensor 'w'", "only 16 bytes"});
    // Misaligned offset.
    const std::string mis = write_bytes("misaligned.gguf", make(8, 64, 32));
    expect_error([&] { GgufFile::open(mis); }, {mis, "tensor 'w'", "offset 8", "alignment 32"});
    // Alignment that is not a power of two.
    const std::string al = write_bytes("align.gguf", make(0, 48, 24));
    expect_error([&] { GgufFile::open(al); }, {al, "general.alignment", "24", "power of two"});

    // Bool with a byte other than 0 / 1, and an unknown value type.
    Bytes b;
    b.b = "GGUF";
    b.put<uint32_t>(3).put<uint64_t>(0).put<uint64_t>(1).str("flag").put<uint32_t>(7).put<uint8_t>(2);
    const std::string bl = write_bytes("bool.gguf", b.b);
    expect_error([&] { GgufFile::open(bl); }, {bl, "metadata key 'flag'", "bool", "2"});
    Bytes u;
    u.b = "GGUF";
    u.put<uint32_t>(3).put<uint64_t>(0).put<uint64_t>(1).str("what").put<uint32_t>(13).put<uint32_t>(0);
    const std::string ut = write_bytes("vtype.gguf", u.b);
    expect_error([&] { GgufFile::open(ut); }, {ut, "metadata key 'what'", "unknown value type 13"});
    // An array whose length the file cannot hold.
    Bytes a;
    a.b = "GGUF";
    a.put<uint32_t>(3)
        .put<uint64_t>(0)
        .put<uint64_t>(1)
        .str("arr")
        .put<uint32_t>(9)
        .put<uint32_t>(6)
        .put<uint64_t>(1000);
    const std::string ar = write_bytes("array.gguf", a.b);
    expect_error([&] { GgufFile::open(ar); }, {ar, "metadata key 'arr'", "1000 float32 elements"});
    // Duplicate key.
    Bytes d;
    d.b = "GGUF";
    d.put<uint32_t>(3).put<uint64_t>(0).put<uint64_t>(2);
    d.str("k").put<uint32_t>(4).put<uint32_t>(1).str("k").put<uint32_t>(4).put<uint32_t>(2);
    const std::string dk = write_bytes("dup.gguf", d.b);
    expect_error([&] { GgufFile::open(dk); }, {dk, "duplicate metadata key 'k'"});
    // Nested arrays and every scalar type read back.
    Bytes n;
    n.b = "GGUF";
    n.put<uint32_t>(2).put<uint64_t>(0).put<uint64_t>(4);
    n.str("i8").put<uint32_t>(1).put<int8_t>(-5);
    n.str("f64").put<uint32_t>(12).put<double>(0.125);
    n.str("u64").put<uint32_t>(10).put<uint64_t>(uint64_t(1) << 40);
    n.str("nest").put<uint32_t>(9).put<uint32_t>(9).put<uint64_t>(2);
    n.put<uint32_t>(5).put<uint64_t>(2).put<int32_t>(-1).put<int32_t>(7);
    n.put<uint32_t>(8).put<uint64_t>(1).str("x");
    const std::string nn = write_bytes("nested.gguf", n.b);
    GgufFile gn = GgufFile::open(nn);
    CHECK(gn.version() == 2);
    CHECK(gn.get_int("i8") == -5);
    CHECK(gn.get_float("f64") == 0.125);
    CHECK(gn.get_uint("u64") == (uint64_t(1) << 40));
    const GgufValue& nest = gn.value("nest");
    REQUIRE(nest.arrays.size() == 2);
    CHECK(nest.arrays[0].ints == std::vector<int64_t>{-1, 7});
    CHECK(nest.arrays[1].strings == std::vector<std::string>{"x"});
    CHECK(nest.type_str() == "array of array");
    expect_error([&] { gn.get_uint("i8"); }, {nn, "'i8'", "-5", "negative"});
}

TEST_CASE("small hand-made vocabularies: merge priority and validation", "[tokenizer][gguf]") {
    const std::string sp = "\xE2\x96\x81";  // U+2581
    const std::vector<std::string> pieces = {"<unk>", sp, "a", "b", "ab", sp + "a"};
    // SPM: the pair whose merged piece scores highest merges first. In "ab" (-> "▁ab")
    // the pairs are (▁, a) and (a, b); "▁ab" is not a piece, so the first merge decides.
    auto spm = [&](float score_ab, float score_sa, const std::string& name) {
        VocabFile v;
        v.text("tokenizer.ggml.model", "llama").texts("tokenizer.ggml.tokens", pieces);
        v.floats("tokenizer.ggml.scores", {0, -5, -5, -5, score_ab, score_sa});
        return GgufTokenizer::load(write_bytes(name, v.bytes()));
    };
    CHECK(spm(-1, -2, "spm1.gguf").encode("ab", false, false) == std::vector<int>{1, 4});  // ▁ | ab
    CHECK(spm(-2, -1, "spm2.gguf").encode("ab", false, false) == std::vector<int>{5, 3});  // ▁a | b
    // Equal scores: the leftmost pair wins.
    CHECK(spm(-1, -1, "spm3.gguf").encode("ab", false, false) == std::vector<int>{5, 3});
    // No byte pieces: an unknown character becomes <unk> (id 0, from the spelling).
    CHECK(spm(-1, -2, "spm4.gguf").encode("c", false, false) == std::vector<int>{1, 0});

    // BPE: the lowest-ranked merge first. Tokens are byte-alphabet spellings.
    auto bpe = [&](const std::vector<std::string>& merges, const std::string& name) {
        VocabFile v;
        v.text("tokenizer.ggml.model", "gpt2")
            .texts("tokenizer.ggml.tokens", {"a", "b", "c", "ab", "bc", "abc"});
        v.texts("tokenizer.ggml.merges", merges);
        return GgufTokenizer::load(write_bytes(name, v.bytes()));
    };
    CHECK(bpe({"a b", "b c"}, "bpe1.gguf").encode("abc", false, false) == std::vector<int>{3, 2});
    CHECK(bpe({"b c", "a b"}, "bpe2.gguf").encode("abc", false, false) == std::vector<int>{0, 4});
    CHECK(bpe({"b c", "a bc"}, "bpe3.gguf").encode("abc", false, false) == std::vector<int>{5});
    CHECK(bpe({"a b"}, "bpe4.gguf").encode("abc", true, true) == std::vector<int>{3, 2});  // no BOS / EOS ids

    // Validation errors name the file, the key and the value.
    VocabFile bad_scores;
    bad_scores.text("tokenizer.ggml.model", "llama").texts("tokenizer.ggml.tokens", pieces);
    bad_scores.floats("tokenizer.ggml.scores", {0, 0});
    const std::string p1 = write_bytes("scores.gguf", bad_scores.bytes());
    expect_error([&] { GgufTokenizer::load(p1); }, {p1, "'tokenizer.ggml.scores'", "2 elements, expected 6"});
    VocabFile bert;
    bert.text("tokenizer.ggml.model", "bert").texts("tokenizer.ggml.tokens", pieces);
    const std::string p2 = write_bytes("bert.gguf", bert.bytes());
    expect_error([&] { GgufTokenizer::load(p2); }, {p2, "tokenizer.ggml.model", "'bert'"});
    const std::string p3 = write_bytes("merges.gguf", [&] {
        VocabFile v;
        v.text("tokenizer.ggml.model", "gpt2").texts("tokenizer.ggml.tokens", {"a", "b"});
        v.texts("tokenizer.ggml.merges", {"a b", "ab"});
        return v.bytes();
    }());
    expect_error([&] { GgufTokenizer::load(p3); }, {p3, "tokenizer.ggml.merges", "element 1", "'ab'"});
    const std::string p4 = write_bytes("nomerges.gguf", [&] {
        VocabFile v;
        v.text("tokenizer.ggml.model", "gpt2").texts("tokenizer.ggml.tokens", {"a", "b"});
        return v.bytes();
    }());
    expect_error([&] { GgufTokenizer::load(p4); }, {p4, "missing metadata key 'tokenizer.ggml.merges'"});
}
