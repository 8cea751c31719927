// test_readers_regress.cpp -- hostile files for every reader: each case here once crashed,
// overflowed or asked for gigabytes, and must now give one depass::Error naming the field.
//
//   nested JSON        safetensors header / sharded index / config.json of ~1 MB of '['
//   empty bases        --basis [64, 0] / [0, 64] / [0], --components [0, N, D]
//   layer counts       GGUF llama.block_count and config.json num_hidden_layers far beyond
//                      the tensors present
//   derived sizes      H * Dh, GPT-2's 4 * n_embd, dimensions out of range
//   sizes vs file      tensors declared larger than their file
//   .npy               numpy-written Fortran-order, big-endian and float16 files
//                      (tests/data/npy, see make_npy.py there), refused dtypes
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "depass/config.hpp"
#include "depass/forward.hpp"
#include "depass/gguf.hpp"
#include "depass/initialisers.hpp"
#include "depass/io.hpp"
#include "depass/weights.hpp"
#include "io/json_guard.hpp"
#include "test_support.hpp"

using namespace depass;
using Catch::Contains;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

const auto tmp = depass_test::temp_path;

void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), std::streamsize(bytes.size()));
}

template <class X>
void put(std::string& out, X x) {
    char b[sizeof x];
    std::memcpy(b, &x, sizeof x);
    out.append(b, sizeof x);
}

// [u64 header length][header][data]
std::string st_bytes(const std::string& header, const std::string& data = "") {
    std::string s;
    put<uint64_t>(s, header.size());
    return s + header + data;
}

std::string nested_arrays(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

using depass_test::error_of;

// ---- a minimal GGUF v3 writer: u32 / f32 / string metadata, F32 tensors ----------------------

struct Gguf {
    uint64_t n_kv = 0;
    std::string kv;
    struct T {
        std::string name;
        std::vector<uint64_t> ne;
        uint64_t nbytes;
    };
    std::vector<T> tensors;

    static void str(std::string& o, const std::string& s) {
        put<uint64_t>(o, s.size());
        o += s;
    }
    Gguf& u32(const std::string& k, uint32_t v) {
        ++n_kv;
        str(kv, k);
        put<uint32_t>(kv, 4);
        put(kv, v);
        return *this;
    }
    Gguf& f32(const std::string& k, float v) {
        ++n_kv;
        str(kv, k);
        put<uint32_t>(kv, 6);
        put(kv, v);
        return *this;
    }
    Gguf& s(const std::string& k, const std::string& v) {
        ++n_kv;
        str(kv, k);
        put<uint32_t>(kv, 8);
        str(kv, v);
        return *this;
    }
    // ne in ggml order (fastest axis first); bytes(cap) stores at most `cap` bytes of data.
    Gguf& tensor(const std::string& name, std::vector<uint64_t> ne) {
        uint64_t n = 4;
        for (uint64_t d : ne) n *= d;
        tensors.push_back({name, std::move(ne), n});
        return *this;
    }
    std::string bytes(uint64_t data_bytes_cap = UINT64_MAX) const {
        std::string o = "GGUF";
        put<uint32_t>(o, 3);
        put<uint64_t>(o, tensors.size());
        put<uint64_t>(o, n_kv);
        o += kv;
        uint64_t off = 0;
        for (const T& t : tensors) {
            str(o, t.name);
            put<uint32_t>(o, uint32_t(t.ne.size()));
            for (uint64_t d : t.ne) put<uint64_t>(o, d);
            put<uint32_t>(o, 0);  // F32
            put<uint64_t>(o, off);
            off += (t.nbytes + 31) / 32 * 32;
        }
        while (o.size() % 32) o.push_back('\0');
        o.append(size_t(std::min(off, data_bytes_cap)), '\0');
        return o;
    }
};

// Metadata of a tiny llama: D 8, I 16, H 2, context 16, `blocks` blocks, and only
// token_embd.weight [V=4, D=8] + output_norm.weight stored.
Gguf tiny_llama_gguf(uint32_t blocks) {
    Gguf g;
    g.s("general.architecture", "llama")
        .u32("llama.embedding_length", 8)
        .u32("llama.feed_forward_length", 16)
        .u32("llama.block_count", blocks)
        .u32("llama.attention.head_count", 2)
        .u32("llama.context_length", 16)
        .f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
    g.tensor("token_embd.weight", {8, 4}).tensor("output_norm.weight", {8});
    return g;
}

// A Hugging Face directory: config.json from `cfg`, model.safetensors with two small tensors.
std::string hf_dir(const std::string& name, const json& cfg) {
    const std::string d = tmp(name);
    fs::create_directories(d);
    write_bytes(d + "/config.json", cfg.dump());
    write_safetensors(d + "/model.safetensors",
                      {{"model.embed_tokens.weight", {4, 8}, std::vector<double>(32, 0.25)},
                       {"model.norm.weight", {8}, std::vector<double>(8, 1.0)}},
                      DType::F32);
    return d;
}

json tiny_llama_config() {
    return {{"model_type", "llama"},         {"hidden_size", 8},         {"intermediate_size", 16},
            {"num_hidden_layers", 1},        {"num_attention_heads", 2}, {"vocab_size", 4},
            {"max_position_embeddings", 16}, {"rms_norm_eps", 1e-5}};
}

json tiny_gpt2_config() {
    return {{"model_type", "gpt2"}, {"n_embd", 8},     {"n_layer", 1},
            {"n_head", 2},          {"vocab_size", 4}, {"n_positions", 16}};
}

}  // namespace

// ---- nested JSON ---------------------------------------------------------------------------

TEST_CASE("JSON depth scan: strings and escapes do not count, 64 levels pass, 65 do not", "[regress][json]") {
    using detail::check_json_depth;
    CHECK_NOTHROW(check_json_depth(nested_arrays(64), "x"));
    CHECK_THROWS_WITH(check_json_depth(nested_arrays(65), "x.json"),
                      Contains("x.json") && Contains("deeper than 64") && Contains("byte 64"));
    // brackets inside strings, an escaped quote that does not end the string
    const std::string in_string =
        "{\"k\": \"" + std::string(1000, '[') + "\\\"" + std::string(1000, '{') + "\"}";
    CHECK_NOTHROW(check_json_depth(in_string, "x"));
    CHECK(detail::parse_json_checked(in_string, "x")["k"].get<std::string>().size() == 2001);
    // an escaped backslash does end the string right after it: the brackets after count
    const std::string after = "[\"\\\\\"," + nested_arrays(70) + "]";
    CHECK_THROWS_WITH(check_json_depth(after, "x"), Contains("deeper than 64"));
    // objects count like arrays
    std::string objs;
    for (int i = 0; i < 65; ++i) objs += "{\"a\":";
    objs += "1" + std::string(65, '}');
    CHECK_THROWS_WITH(check_json_depth(objs, "x"), Contains("deeper than 64"));
    // the brief descriptions used in messages
    CHECK(detail::json_brief(json::parse(nested_arrays(3))) == "an array of 1 element");
    CHECK(detail::json_brief(json::parse("[0, 16]")) == "[0,16]");
    CHECK(detail::json_brief(json::parse("{\"a\": 1, \"b\": \"x\"}")) == "{\"a\":1,\"b\":\"x\"}");
    CHECK(detail::json_brief(json::parse("{\"a\": [1], \"b\": 2}")) == "an object with 2 keys");
    CHECK(detail::json_brief(json(std::vector<int>(17, 1))) == "an array of 17 elements");
    CHECK(detail::json_brief(json(std::string(500, 'x'))).size() == 62);  // 57 + "..." + quotes
}

TEST_CASE("safetensors: a 1 MB header of nested arrays is refused without a crash", "[regress][json]") {
    const std::string deep = nested_arrays(512 * 1024);  // 1 MiB of text
    const std::string p = tmp("deep_header.safetensors");
    write_bytes(p, st_bytes(deep));
    CHECK_THROWS_WITH(SafeTensors::open(p), Contains(p) && Contains("deeper than 64 levels"));

    // the same inside one entry, and as the value of a field
    const std::string q = tmp("deep_entry.safetensors");
    write_bytes(q, st_bytes("{\"w\": " + deep + "}"));
    CHECK_THROWS_WITH(SafeTensors::open(q), Contains(q) && Contains("deeper than 64 levels"));

    // shallow but wrong: the message names the JSON type, not the value
    const std::string r = tmp("array_header.safetensors");
    write_bytes(r, st_bytes(nested_arrays(40)));
    CHECK(error_of([&] { SafeTensors::open(r); }) == r + ": JSON header is not an object (got array)");
    const std::string e = tmp("array_entry.safetensors");
    write_bytes(e, st_bytes("{\"w\": " + nested_arrays(40) + "}"));
    CHECK(error_of([&] { SafeTensors::open(e); }) == e + ": tensor 'w': entry must be an object, got array");
    const std::string s = tmp("array_shape.safetensors");
    write_bytes(s, st_bytes("{\"w\": {\"dtype\": \"F32\", \"shape\": " + nested_arrays(40) +
                            ", \"data_offsets\": [0, 0]}}"));
    CHECK(error_of([&] { SafeTensors::open(s); }) ==
          s + ": tensor 'w': field 'shape' must hold integers, got an array of 1 element");
}

TEST_CASE("safetensors: absurd header lengths are refused before reading", "[regress]") {
    std::string len;
    put<uint64_t>(len, uint64_t(1) << 40);
    const std::string p = tmp("huge_hlen.safetensors");
    write_bytes(p, len + "{}");
    CHECK(error_of([&] { SafeTensors::open(p); }) ==
          p + ": header length 1099511627776 is larger than the 100000000-byte limit for a safetensors JSON "
              "header");
    std::string len2;
    put<uint64_t>(len2, 1000);
    const std::string q = tmp("long_hlen.safetensors");
    write_bytes(q, len2 + "{}");
    CHECK(error_of([&] { SafeTensors::open(q); }) ==
          q + ": header length 1000 exceeds the file size 10 (8 + header length must be <= file size)");
}

TEST_CASE("sharded index and config.json: nested JSON refused, bad types named", "[regress][json]") {
    const std::string deep = nested_arrays(512 * 1024);
    const std::string d = tmp("deep_index");
    fs::create_directories(d);
    const std::string idx = d + "/model.safetensors.index.json";
    write_bytes(idx, "{\"weight_map\": " + deep + "}");
    CHECK_THROWS_WITH(SafeTensors::open(idx), Contains(idx) && Contains("deeper than 64 levels"));

    const std::string c = tmp("deep_config");
    fs::create_directories(c);
    write_bytes(c + "/config.json", "{\"model_type\": \"llama\", \"hidden_size\": " + deep + "}");
    CHECK_THROWS_WITH(read_hf_config(c + "/config.json"),
                      Contains(c + "/config.json") && Contains("deeper than 64 levels"));
    CHECK_THROWS_WITH(load_model<float>(c),
                      Contains(c + "/config.json") && Contains("deeper than 64 levels"));

    // a shallow array where an integer belongs: Fields::bad_type names the field and the type
    json j = tiny_llama_config();
    j["hidden_size"] = json::parse(nested_arrays(40));
    const std::string b = hf_dir("array_hidden_size", j);
    CHECK(error_of([&] { read_hf_config(b + "/config.json"); }) ==
          b + "/config.json: field 'hidden_size' must be an integer, got an array of 1 element");
    // rope_scaling: a small block of an unknown type is quoted, a nested value is only described
    j = tiny_llama_config();
    j["rope_scaling"] = {{"type", "yarn"}, {"factor", 2.0}};
    const std::string rs = hf_dir("rope_scaling_object", j);
    CHECK_THAT(error_of([&] { read_hf_config(rs + "/config.json"); }),
               Contains(rs + "/config.json: field 'rope_scaling.type' = 'yarn' is not supported"));
    j["rope_scaling"] = {{"type", "linear"}, {"factor", json::parse(nested_arrays(50))}};
    const std::string rd = hf_dir("rope_scaling_nested", j);
    CHECK(error_of([&] { read_hf_config(rd + "/config.json"); }) ==
          rd + "/config.json: field 'rope_scaling.factor' must be a number, got an array of 1 element");
    j["rope_scaling"] = {{"factor", json::parse(nested_arrays(50))}};
    const std::string rn = hf_dir("rope_scaling_untyped", j);
    CHECK(error_of([&] { read_hf_config(rn + "/config.json"); }) ==
          rn + "/config.json: field 'rope_scaling' has neither 'rope_type' nor 'type', got an object with 1 "
               "key");
}

// ---- empty bases and components ---------------------------------------------------------------

TEST_CASE("empty --basis / projector / --components arrays give one error each", "[regress][initialisers]") {
    CHECK(error_of([] { projector_from(Mat<double>(64, 0), 64, "b.npy"); }) ==
          "b.npy: basis has shape [64, 0], it needs between 1 and 64 columns");
    CHECK(error_of([] { projector_from(Mat<double>(0, 64), 64, "b.npy"); }) ==
          "b.npy: basis has 0 rows, expected the hidden size 64 (shape [D, k] or [D, D])");
    CHECK(error_of([] { projector_from(Mat<double>(0, 0), 64, "b.npy"); }) ==
          "b.npy: basis has 0 rows, expected the hidden size 64 (shape [D, k] or [D, D])");

    const Config cfg = depass_test::tiny_config(depass_test::TinyArch::Llama);
    const Model<double> m = random_model<double>(cfg, 7);
    const Trace<double> t = forward(m, {1, 2, 3});
    Tensor<double> none({0, 3, cfg.D});
    CHECK(error_of([&] { init_custom(m, t, 0, none, 1e-9, "c.npy"); }) == "c.npy: no components");
    Tensor<double> flat({0});
    CHECK_THROWS_WITH(init_custom(m, t, 0, flat, 1e-9, "c.npy"), Contains("c.npy") && Contains("shape [0]"));
    Tensor<double> no_tokens({2, 0, cfg.D});
    CHECK_THROWS_WITH(init_custom(m, t, 0, no_tokens, 1e-9, "c.npy"),
                      Contains("c.npy") && Contains("[2, 0, " + std::to_string(cfg.D) + "]"));
}

TEST_CASE("attribute --basis [64, 0] and [0, 64] through the command line", "[regress][cli]") {
    const std::string model = depass_test::source_dir() + "/weights/stories260K.bin";
    struct Case {
        std::vector<int64_t> shape;
        std::string message;
    };
    for (const Case& c : {Case{{64, 0}, "basis has shape [64, 0], it needs between 1 and 64 columns"},
                          Case{{0, 64}, "basis has 0 rows, expected the hidden size 64"},
                          Case{{0}, "basis has 0 rows, expected the hidden size 64"}}) {
        const std::string b = tmp("empty_basis_" + std::to_string(c.shape[0]) + ".npy");
        Tensor<double> e(c.shape);
        write_npy(b, e);
        const std::string out = tmp("empty_basis_out.safetensors");
        std::string text;
        const int rc = depass_test::run_command("'" + depass_test::cli_path() + "' attribute -m '" + model +
                                                    "' --ids 1,2,3 --level subspace --basis '" + b +
                                                    "' --out '" + out + "'",
                                                &text);
        INFO(text);
        CHECK(rc == 1);
        CHECK_THAT(text, Contains(b) && Contains(c.message));
        CHECK(!fs::exists(out));
    }
}

// ---- declared layer counts and sizes ------------------------------------------------------------

TEST_CASE("GGUF: llama.block_count beyond the tensors present is refused before planning",
          "[regress][gguf]") {
    const std::string huge = tmp("blocks_2p31.gguf");
    write_bytes(huge, tiny_llama_gguf(2147483647u).bytes());
    CHECK(error_of([&] { load_model<float>(huge); }) ==
          huge + ": metadata key 'llama.block_count' = 2147483647 is out of range (1..16777216)");
    const std::string many = tmp("blocks_1e7.gguf");
    write_bytes(many, tiny_llama_gguf(10000000u).bytes());
    CHECK(error_of([&] { load_model<float>(many); }) ==
          many +
              ": metadata key 'llama.block_count' = 10000000 needs at least 90000000 tensors, but the file "
              "holds only 2");
    // the check is no stricter than the truth: one block needs 9 tensors, 2 are there
    const std::string one = tmp("blocks_1.gguf");
    write_bytes(one, tiny_llama_gguf(1).bytes());
    CHECK(error_of([&] { load_model<float>(one); }) ==
          one + ": metadata key 'llama.block_count' = 1 needs at least 9 tensors, but the file holds only 2");
}

TEST_CASE("GGUF: head_count x key_length overflowing an int is refused by name", "[regress][gguf]") {
    Gguf h;  // the tiny llama with 2^20 heads (and kv heads) of 2^20 dims
    h.s("general.architecture", "llama")
        .u32("llama.embedding_length", 8)
        .u32("llama.feed_forward_length", 16)
        .u32("llama.block_count", 1)
        .u32("llama.attention.head_count", 1u << 20)
        .u32("llama.attention.head_count_kv", 1u << 20)
        .u32("llama.attention.key_length", 1u << 20)
        .u32("llama.context_length", 16)
        .f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
    h.tensor("token_embd.weight", {8, 4});
    const std::string p = tmp("heads_overflow.gguf");
    write_bytes(p, h.bytes());
    CHECK(error_of([&] { load_model<float>(p); }) ==
          p + ": H * Dh (query width) = 1048576 * 1048576 is larger than the limit of 2147483647 values");
    // a dimension past 2^24 is named by its key
    Gguf wide = tiny_llama_gguf(1);
    wide.u32("llama.vocab_size", 1u << 30);
    const std::string w = tmp("vocab_2p30.gguf");
    write_bytes(w, wide.bytes());
    CHECK(error_of([&] { load_model<float>(w); }) ==
          w + ": metadata key 'llama.vocab_size' = 1073741824 is out of range (1..16777216)");
}

TEST_CASE("GGUF / safetensors / llama2.c / .npy: tensors declared larger than the file", "[regress]") {
    // GGUF: a [1000, 1000] F32 tensor in a file of a few hundred bytes
    Gguf g;
    g.s("general.architecture", "llama").tensor("big", {1000, 1000});
    const std::string gp = tmp("big_tensor.gguf");
    write_bytes(gp, g.bytes(64));
    const std::string gm = error_of([&] { GgufFile::open(gp); });
    CHECK_THAT(gm, Contains(gp) && Contains("'big'") && Contains("4000000") &&
                       Contains(std::to_string(fs::file_size(gp))));

    // safetensors: data_offsets end beyond the data section
    const std::string sp = tmp("big_tensor.safetensors");
    write_bytes(
        sp,
        st_bytes("{\"big\": {\"dtype\": \"F32\", \"shape\": [1000, 1000], \"data_offsets\": [0, 4000000]}}",
                 std::string(16, '\0')));
    CHECK(error_of([&] { SafeTensors::open(sp); }) ==
          sp + ": tensor 'big': field 'data_offsets' end 4000000 is beyond the data section size 16");

    // llama2.c: a header whose arrays need far more than the file
    std::string b;
    for (int32_t v : {4096, 11008, 32, 32, 32, 32000, 2048}) put(b, v);
    b.append(64, '\0');
    const std::string bp = tmp("big_header.bin");
    write_bytes(bp, b);
    CHECK_THROWS_WITH(load_model<float>(bp), Contains(bp) && Contains("file size is 92 bytes") &&
                                                 Contains("n_layers=32") &&
                                                 Contains("implies 26430423068 bytes"));

    // .npy: a (1000, 1000) float32 array with 16 bytes of data
    std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 1000), }";
    while ((10 + h.size() + 1) % 64) h.push_back(' ');
    h.push_back('\n');
    std::string npy = std::string("\x93NUMPY\x01\x00", 8);
    npy.push_back(char(h.size() & 0xff));
    npy.push_back(char(h.size() >> 8));
    const std::string np = tmp("big_tensor.npy");
    write_bytes(np, npy + h + std::string(16, '\0'));
    CHECK(error_of([&] { read_npy<float>(np); }) ==
          np + ": .npy data is 16 bytes, but shape [1000, 1000] of <f4 needs 4000000 bytes");
}

TEST_CASE("config.json: layer count beyond the tensors present, sizes out of range", "[regress][config]") {
    json j = tiny_llama_config();
    j["num_hidden_layers"] = 10000000;
    const std::string d = hf_dir("layers_1e7", j);
    CHECK(error_of([&] { load_model<float>(d); }) ==
          d + "/config.json: field 'num_hidden_layers' = 10000000 needs at least 90000000 tensors, but " + d +
              "/model.safetensors holds only 2");

    j = tiny_gpt2_config();
    j["n_layer"] = 1000;
    const std::string g = hf_dir("gpt2_layers_1000", j);
    CHECK(error_of([&] { load_model<float>(g); }) ==
          g + "/config.json: field 'n_layer' = 1000 needs at least 12000 tensors, but " + g +
              "/model.safetensors holds only 2");

    struct Case {
        json cfg;
        const char* field;
        long long value;
    };
    auto with = [](json c, const char* k, long long v) {
        c[k] = v;
        return c;
    };
    const std::vector<Case> cases = {
        {with(tiny_llama_config(), "num_hidden_layers", 2147483647), "num_hidden_layers", 2147483647},
        {with(tiny_llama_config(), "hidden_size", 1 << 30), "hidden_size", 1 << 30},
        {with(tiny_llama_config(), "vocab_size", 0), "vocab_size", 0},
        {with(tiny_llama_config(), "intermediate_size", -5), "intermediate_size", -5},
        {with(tiny_llama_config(), "num_key_value_heads", 1 << 25), "num_key_value_heads", 1 << 25},
        {with(tiny_llama_config(), "max_position_embeddings", 1 << 25), "max_position_embeddings", 1 << 25},
        {with(tiny_gpt2_config(), "n_embd", 1 << 30), "n_embd", 1 << 30},  // 4 * n_embd overflowed
        {with(tiny_gpt2_config(), "n_inner", 1 << 25), "n_inner", 1 << 25},
    };
    int k = 0;
    for (const Case& c : cases) {
        const std::string dir = hf_dir("range_" + std::to_string(k++), c.cfg);
        CHECK(error_of([&] { read_hf_config(dir + "/config.json"); }) ==
              dir + "/config.json: field '" + c.field + "' = " + std::to_string(c.value) +
                  " is out of range (1..16777216)");
    }

    // H * Dh of 2^40: checked in 64 bits, never wraps to a negative width
    j = tiny_llama_config();
    j["num_attention_heads"] = 1 << 20;
    j["num_key_value_heads"] = 1 << 20;
    j["head_dim"] = 1 << 20;
    const std::string hd = hf_dir("heads_overflow", j);
    CHECK(error_of([&] { load_model<float>(hd); }) ==
          hd +
              "/config.json: H * Dh (query width) = 1048576 * 1048576 is larger than the limit of 2147483647 "
              "values");
    // the whole embedding matrix is bounded as well
    j = tiny_llama_config();
    j["vocab_size"] = 1 << 20;
    j["hidden_size"] = 1 << 12;
    const std::string vd = hf_dir("embedding_too_large", j);
    CHECK(
        error_of([&] { read_hf_config(vd + "/config.json"); }) ==
        vd + "/config.json: V * D (embedding matrix) = 1048576 * 4096 is larger than the limit of 2147483647 "
             "values");
}

// ---- .npy: files written by numpy ---------------------------------------------------------------

namespace {

std::string npy_data(const std::string& name) {
    return depass_test::source_dir() + "/tests/data/npy/" + name;
}

// v(i[, j[, k]]) = 100 i + 10 j + k + 0.5, the values make_npy.py stores
double grid_value(const std::vector<int64_t>& idx) {
    const double w[3] = {100, 10, 1};
    double v = 0.5;
    for (size_t a = 0; a < idx.size(); ++a) v += w[a] * double(idx[a]);
    return v;
}

// Checks a row-major tensor against grid_value element by element (a naive index loop).
template <class T>
void check_grid(const Tensor<T>& t, const std::vector<int64_t>& shape) {
    REQUIRE(t.shape == shape);
    REQUIRE(t.data.size() == Tensor<T>::numel(shape));
    std::vector<int64_t> idx(shape.size(), 0);
    for (size_t n = 0; n < t.data.size(); ++n) {
        // n -> (i, j, k) in row-major order
        size_t r = n;
        for (size_t a = shape.size(); a-- > 0;) {
            idx[a] = int64_t(r % size_t(shape[a]));
            r /= size_t(shape[a]);
        }
        INFO("flat index " << n);
        CHECK(double(t.data[n]) == grid_value(idx));
    }
}

std::string npy_file(const std::string& header, const std::string& data) {
    std::string h = header;
    while ((10 + h.size() + 1) % 64) h.push_back(' ');
    h.push_back('\n');
    std::string out = std::string("\x93NUMPY\x01\x00", 8);
    out.push_back(char(h.size() & 0xff));
    out.push_back(char(h.size() >> 8));
    return out + h + data;
}

}  // namespace

TEST_CASE(".npy written by numpy: C, Fortran order, big-endian, float16", "[regress][npy]") {
    check_grid(read_npy<double>(npy_data("c_f4.npy")), {2, 3});
    check_grid(read_npy<double>(npy_data("fortran_f8.npy")), {2, 3, 4});
    check_grid(read_npy<float>(npy_data("fortran_f4_2d.npy")), {3, 5});
    check_grid(read_npy<double>(npy_data("be_f4.npy")), {2, 3});
    check_grid(read_npy<double>(npy_data("be_f8_fortran.npy")), {4, 3});
    check_grid(read_npy<float>(npy_data("c_f2.npy")), {2, 3});
    check_grid(read_npy<double>(npy_data("be_f2.npy")), {3});
    CHECK(read_npy<int64_t>(npy_data("be_i8.npy")).data == std::vector<int64_t>{1, -2, int64_t(1) << 40});

    // a Fortran-order float16 [8, 2] basis: columns e_0, e_1 -> the projector onto them
    const Tensor<double> b = read_npy<double>(npy_data("basis_f2_fortran.npy"), true, true);
    REQUIRE(b.shape == std::vector<int64_t>{8, 2});
    const Mat<double> B = Eigen::Map<const Mat<double>>(b.data.data(), 8, 2);
    const Mat<double> P = projector_from(B, 8, "basis_f2_fortran.npy");
    Mat<double> want = Mat<double>::Zero(8, 8);
    want(0, 0) = want(1, 1) = 1;
    CHECK((P - want).cwiseAbs().maxCoeff() <= 1e-15);
}

TEST_CASE(".npy dtypes outside float16/32/64 and int32/64 give one error naming the dtype",
          "[regress][npy]") {
    for (const char* f : {"u2.npy", "u1.npy", "c8.npy", "bool.npy"}) {
        const std::string p = npy_data(f);
        const std::string m = error_of([&] { read_npy<double>(p); });
        INFO(m);
        CHECK_THAT(m, Contains(p) && Contains("unsupported .npy dtype 'descr' = '") &&
                          Contains("supported: float16, float32, float64, int32, int64"));
    }
    CHECK_THAT(error_of([] { read_npy<double>(npy_data("c8.npy")); }), Contains("'<c8'"));
    CHECK_THAT(error_of([] { read_npy<double>(npy_data("bool.npy")); }), Contains("'|b1'"));
    // integers are refused where only floats make sense (--basis, --components)
    CHECK(error_of([] { read_npy<double>(npy_data("be_i8.npy"), true, true); }) ==
          npy_data("be_i8.npy") +
              ": .npy dtype '>i8' is an integer type, expected float16, float32 or float64 "
              "(f2, f4, f8)");
    // floats into an integer tensor stay refused, float16 included
    CHECK_THROWS_WITH(read_npy<int64_t>(npy_data("c_f2.npy")), Contains("'<f2' is floating point"));
}

TEST_CASE(".npy hand-built headers: native order, float16 specials, 3-D Fortran, 1-D Fortran",
          "[regress][npy]") {
    // '=' is the native (little-endian) order
    std::string f4;
    for (float v : {1.5f, -2.25f}) put(f4, v);
    write_bytes(tmp("native.npy"), npy_file("{'descr': '=f4', 'fortran_order': False, 'shape': (2,), }", f4));
    CHECK(read_npy<double>(tmp("native.npy")).data == std::vector<double>{1.5, -2.25});
    // float16 bit patterns: 1, -2, the smallest subnormal 2^-24, 65504, inf
    std::string h2;
    for (uint16_t v : {0x3C00, 0xC000, 0x0001, 0x7BFF}) put(h2, v);
    write_bytes(tmp("halves.npy"), npy_file("{'descr': '<f2', 'fortran_order': False, 'shape': (4,), }", h2));
    CHECK(read_npy<double>(tmp("halves.npy")).data ==
          std::vector<double>{1.0, -2.0, std::ldexp(1.0, -24), 65504.0});
    std::string inf;
    put<uint16_t>(inf, 0x7C00);
    write_bytes(tmp("half_inf.npy"),
                npy_file("{'descr': '<f2', 'fortran_order': False, 'shape': (1,), }", inf));
    CHECK_THROWS_WITH(read_npy<double>(tmp("half_inf.npy")), Contains("non-finite"));
    // big-endian int32 bytes 00 00 01 02 = 258
    write_bytes(tmp("be_i4.npy"), npy_file("{'descr': '>i4', 'fortran_order': False, 'shape': (1,), }",
                                           std::string("\0\0\x01\x02", 4)));
    CHECK(read_npy<int32_t>(tmp("be_i4.npy")).data == std::vector<int32_t>{258});
    // Fortran [2, 2, 2]: the file holds v in column-major order, element (i,j,k) at i + 2j + 4k
    std::string f8;
    for (int k = 0; k < 2; ++k)
        for (int j = 0; j < 2; ++j)
            for (int i = 0; i < 2; ++i) put(f8, grid_value({i, j, k}));
    // (the loops above run i fastest: offset i + 2 j + 4 k)
    write_bytes(tmp("fortran3.npy"),
                npy_file("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2, 2), }", f8));
    check_grid(read_npy<double>(tmp("fortran3.npy")), {2, 2, 2});
    // a 1-D Fortran array is the same as a C one; an empty one reads as empty
    write_bytes(tmp("fortran1.npy"),
                npy_file("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", f4));
    CHECK(read_npy<double>(tmp("fortran1.npy")).data == std::vector<double>{1.5, -2.25});
    write_bytes(tmp("fortran0.npy"),
                npy_file("{'descr': '<f4', 'fortran_order': True, 'shape': (3, 0), }", ""));
    CHECK(read_npy<double>(tmp("fortran0.npy")).shape == std::vector<int64_t>{3, 0});
    // a malformed header is quoted only in part
    const std::string junk =
        "{'descr': '<f4', 'fortran_order': False, 'shape': (x), " + std::string(5000, ' ') + "}";
    write_bytes(tmp("junk.npy"), npy_file(junk, ""));
    const std::string m = error_of([] { read_npy<double>(tmp("junk.npy")); });
    CHECK_THAT(m, Contains("malformed .npy header"));
    CHECK(m.size() < 400);
}

TEST_CASE("attribute: a big-endian Fortran float16 basis equals the same basis as C-order float64",
          "[regress][npy][cli]") {
    const std::string model = depass_test::source_dir() + "/weights/stories260K.bin";
    std::vector<Tensor<double>> comps;
    for (const char* b : {"basis64_f8_c.npy", "basis64_f2_fortran_be.npy"}) {
        const std::string out = tmp(std::string(b) + ".out.safetensors");
        std::string text;
        const int rc =
            depass_test::run_command("'" + depass_test::cli_path() + "' attribute -m '" + model +
                                         "' --ids 1,403,407,378 --dtype f64 --level subspace --layer 2"
                                         " --basis '" +
                                         npy_data(b) + "' -q --out '" + out + "'",
                                     &text);
        INFO(text);
        REQUIRE(rc == 0);
        comps.push_back(SafeTensors::open(out).read<double>("components"));
    }
    REQUIRE(comps[0].shape == std::vector<int64_t>{2, 4, 64});
    CHECK(comps[0].data == comps[1].data);  // bit for bit: float16 values are exact in float64
    // and the basis really was used: the subspace component is not zero
    double norm = 0;
    for (size_t i = 0; i < 4 * 64; ++i) norm += std::abs(comps[0].data[i]);
    CHECK(norm > 1e-3);
}
