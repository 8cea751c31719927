// test_io.cpp -- file formats: safetensors, .npy, llama2.c, Hugging Face
// directories and config.json; plus random_model / cast_model / check_weights.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>

#include "depass/config.hpp"
#include "depass/io.hpp"
#include "depass/weights.hpp"
#include "test_support.hpp"

using namespace depass;
using Catch::Contains;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

const auto tmp = depass_test::temp_path;

void write_bytes(const std::string& path, const std::string& bytes) { write_file_atomic(path, bytes); }

std::string le64(uint64_t v) {
    std::string s;
    for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return s;
}

// A raw safetensors file from a header text and a data section.
std::string st_bytes(const std::string& header, const std::string& data) {
    return le64(header.size()) + header + data;
}

std::string floats_bytes(const std::vector<float>& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

std::string u16_bytes(const std::vector<uint16_t>& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(uint16_t));
}

std::string fixture(const std::string& name) { return depass_test::fixtures_dir() + "/" + name; }

// A copy of a fixture model directory in the temp dir, with the tensors passed
// through `edit` (name -> tensor) and the config through `edit_cfg`.
template <class EditTensors, class EditCfg>
std::string edited_copy(const std::string& fixture_name, const std::string& new_name, EditTensors edit,
                        EditCfg edit_cfg) {
    const std::string src = fixture(fixture_name);
    const std::string dst = tmp(new_name);
    fs::create_directories(dst);
    json cfg = json::parse(read_text_file(src + "/config.json"));
    edit_cfg(cfg);
    write_bytes(dst + "/config.json", cfg.dump(2));
    SafeTensors st = SafeTensors::open(src + "/model.safetensors");
    std::vector<NamedTensor> ts;
    for (const std::string& n : st.names()) {
        Tensor<double> t = st.read<double>(n);
        ts.push_back({n, t.shape, t.data, false});
    }
    edit(ts);
    write_safetensors(dst + "/model.safetensors", ts, DType::F32);
    return dst;
}

void no_cfg_edit(json&) {}
void no_tensor_edit(std::vector<NamedTensor>&) {}

template <class A, class B>
bool same(const A& a, const B& b) {
    return a.rows() == b.rows() && a.cols() == b.cols() && (a.array() == b.array()).all();
}

}  // namespace

// ---------------------------------------------------------------------------
// (a) fixtures open and load
// ---------------------------------------------------------------------------

TEST_CASE("fixture safetensors files open and validate", "[io][safetensors]") {
    SKIP_WITHOUT_SHARED();
    for (const char* f : {"llama-gqa-s1", "qwen2-s1", "gpt2-s1"}) {
        for (const char* file : {"model.safetensors", "golden_f32.safetensors", "golden_f64.safetensors"}) {
            const std::string p = fixture(f) + "/" + file;
            INFO(p);
            SafeTensors st = SafeTensors::open(p);
            CHECK(!st.names().empty());
            CHECK(st.path() == p);
            for (const std::string& n : st.names()) {
                Tensor<double> t = st.read<double>(n);
                CHECK(t.shape == st.info(n).shape);
                CHECK(t.size() == Tensor<double>::numel(t.shape));
            }
        }
    }
    SafeTensors st = SafeTensors::open(depass_test::weights_dir() + "/stories260K_hf/model.safetensors");
    CHECK(st.names().size() == 47);
    CHECK(st.metadata().count("source") == 1);
    CHECK(st.info("model.embed_tokens.weight").shape == std::vector<int64_t>{512, 64});
    CHECK(st.info("model.embed_tokens.weight").dtype == DType::F32);
}

TEST_CASE("load_model reads the Hugging Face fixtures", "[io][hf]") {
    SKIP_WITHOUT_SHARED();
    for (const char* f : {"llama-gqa-s1", "qwen2-s1", "gpt2-s1"}) {
        const std::string dir = fixture(f);
        INFO(dir);
        json j = json::parse(read_text_file(dir + "/config.json"));
        Model<float> m = load_model<float>(dir);
        Model<double> md = load_model<double>(dir);
        const Config& c = m.cfg;
        CHECK(c.model_type == j["model_type"].get<std::string>());
        CHECK(c.source == dir + "/config.json");
        CHECK(c.V == 256);
        CHECK(c.D == 64);
        CHECK(c.L == 2);
        CHECK(c.H == 4);
        CHECK(c.Dh == 16);
        CHECK(c.norm_eps == Approx(1e-5));
        CHECK(m.w.layers.size() == 2);
        CHECK(m.w.tok_emb.rows() == 256);
        CHECK(m.w.tok_emb.cols() == 64);
        CHECK_NOTHROW(check_weights(c, m.w));
        CHECK_NOTHROW(check_weights(md.cfg, md.w));
        CHECK(same(md.w.tok_emb.cast<float>(), m.w.tok_emb));
        CHECK(!describe(c).empty());

        SafeTensors st = SafeTensors::open(dir + "/model.safetensors");
        if (c.model_type == "gpt2") {
            CHECK(c.Hkv == 4);
            CHECK(c.I == 256);
            CHECK(c.max_positions == 128);
            CHECK(c.norm == NormKind::LayerNorm);
            CHECK(c.mlp == MlpKind::GeluMLP);
            CHECK(c.act == Activation::GeluTanh);
            CHECK(c.rope == RopeStyle::None);
            CHECK(c.learned_positions);
            CHECK(c.tied_embeddings);
            CHECK(c.qkv_bias);
            CHECK(c.o_bias);
            CHECK(c.mlp_bias);
            CHECK(m.w.lm_head.size() == 0);
            CHECK(m.w.pos_emb.rows() == 128);
            // Conv1D (in, out) -> (out, in); c_attn split into q | k | v.
            for (int l = 0; l < 2; ++l) {
                const std::string pre = "transformer.h." + std::to_string(l) + ".";
                Tensor<float> ca = st.read<float>(pre + "attn.c_attn.weight");
                Tensor<float> cb = st.read<float>(pre + "attn.c_attn.bias");
                Tensor<float> fc = st.read<float>(pre + "mlp.c_fc.weight");
                Tensor<float> cp = st.read<float>(pre + "mlp.c_proj.weight");
                Tensor<float> ap = st.read<float>(pre + "attn.c_proj.weight");
                const auto& ly = m.w.layers[l];
                bool ok = true;
                for (int r = 0; r < 64; ++r)
                    for (int k = 0; k < 64; ++k) {
                        ok &= ly.wq(r, k) == ca.data[k * 192 + r];
                        ok &= ly.wk(r, k) == ca.data[k * 192 + 64 + r];
                        ok &= ly.wv(r, k) == ca.data[k * 192 + 128 + r];
                        ok &= ly.wo(r, k) == ap.data[k * 64 + r];
                    }
                for (int r = 0; r < 64; ++r) {
                    ok &= ly.bq[r] == cb.data[r];
                    ok &= ly.bk[r] == cb.data[64 + r];
                    ok &= ly.bv[r] == cb.data[128 + r];
                }
                for (int r = 0; r < 256; ++r)
                    for (int k = 0; k < 64; ++k) {
                        ok &= ly.w_up(r, k) == fc.data[k * 256 + r];
                        ok &= ly.w_down(k, r) == cp.data[r * 64 + k];
                    }
                CHECK(ok);
                CHECK(ly.w_gate.size() == 0);
                CHECK(ly.norm1_b.size() == 64);
                CHECK(ly.b_up.size() == 256);
            }
        } else {
            CHECK(c.Hkv == 2);
            CHECK(c.I == 160);
            CHECK(c.max_positions == 256);
            CHECK(c.norm == NormKind::RMSNorm);
            CHECK(c.mlp == MlpKind::SwiGLU);
            CHECK(c.act == Activation::SiLU);
            CHECK(c.rope == RopeStyle::Half);
            CHECK(c.rope_theta == 10000.0);
            CHECK(!c.learned_positions);
            CHECK(!c.tied_embeddings);
            CHECK(c.qkv_bias == (c.model_type == "qwen2"));
            CHECK(!c.o_bias);
            CHECK(!c.mlp_bias);
            CHECK(m.w.lm_head.rows() == 256);
            CHECK(m.w.pos_emb.size() == 0);
            Tensor<float> q = st.read<float>("model.layers.1.self_attn.q_proj.weight");
            CHECK(same(ConstMatMap<float>(q.data.data(), 64, 64), m.w.layers[1].wq));
            Tensor<float> lm = st.read<float>("lm_head.weight");
            CHECK(same(ConstMatMap<float>(lm.data.data(), 256, 64), m.w.lm_head));
            if (c.qkv_bias) {
                Tensor<float> bk = st.read<float>("model.layers.0.self_attn.k_proj.bias");
                CHECK(m.w.layers[0].bk.size() == 32);
                CHECK(m.w.layers[0].bk[5] == bk.data[5]);
            } else {
                CHECK(m.w.layers[0].bq.size() == 0);
            }
        }
    }
}

TEST_CASE("load_model reads stories260K in both formats", "[io][llama2c]") {
    SKIP_WITHOUT_SHARED();
    const std::string bin = depass_test::weights_dir() + "/stories260K.bin";
    const std::string hf = depass_test::weights_dir() + "/stories260K_hf";
    Model<float> a = load_model<float>(bin);
    Model<float> b = load_model<float>(hf);
    Model<double> ad = read_llama2c<double>(bin);

    const Config& ca = a.cfg;
    const Config& cb = b.cfg;
    CHECK(ca.model_type == "llama2c");
    CHECK(ca.source == bin);
    CHECK(ca.rope == RopeStyle::Interleaved);
    CHECK(cb.rope == RopeStyle::Half);
    for (const Config* c : {&ca, &cb}) {
        CHECK(c->D == 64);
        CHECK(c->I == 172);
        CHECK(c->L == 5);
        CHECK(c->H == 8);
        CHECK(c->Hkv == 4);
        CHECK(c->Dh == 8);
        CHECK(c->V == 512);
        CHECK(c->max_positions == 512);
        CHECK(c->norm_eps == 1e-5);
        CHECK(c->rope_theta == 10000.0);
        CHECK(c->tied_embeddings);
        CHECK(c->bos_id == 1);
        CHECK(c->eos_id == 2);
        CHECK(c->norm == NormKind::RMSNorm);
        CHECK(c->mlp == MlpKind::SwiGLU);
    }
    CHECK(a.w.lm_head.size() == 0);
    CHECK(b.w.lm_head.size() == 0);
    CHECK(same(a.w.tok_emb, b.w.tok_emb));
    CHECK(same(a.w.normf_g, b.w.normf_g));
    CHECK(same(ad.w.tok_emb.cast<float>(), a.w.tok_emb));

    const int Dh = 8;
    for (int l = 0; l < 5; ++l) {
        INFO("layer " << l);
        const auto& x = a.w.layers[l];
        const auto& y = b.w.layers[l];
        CHECK(same(x.norm1_g, y.norm1_g));
        CHECK(same(x.norm2_g, y.norm2_g));
        CHECK(same(x.wv, y.wv));
        CHECK(same(x.wo, y.wo));
        CHECK(same(x.w_gate, y.w_gate));
        CHECK(same(x.w_up, y.w_up));
        CHECK(same(x.w_down, y.w_down));
        // q/k: HF half layout row i (< Dh/2) of a head is interleaved row 2i,
        // row i + Dh/2 is interleaved row 2i + 1.
        auto check_perm = [&](const Mat<float>& inter, const Mat<float>& half, int heads) {
            REQUIRE(inter.rows() == heads * Dh);
            REQUIRE(half.rows() == heads * Dh);
            bool ok = true;
            for (int h = 0; h < heads; ++h)
                for (int i = 0; i < Dh / 2; ++i) {
                    ok &= (half.row(h * Dh + i).array() == inter.row(h * Dh + 2 * i).array()).all();
                    ok &= (half.row(h * Dh + i + Dh / 2).array() == inter.row(h * Dh + 2 * i + 1).array())
                              .all();
                }
            return ok;
        };
        CHECK(check_perm(x.wq, y.wq, 8));
        CHECK(check_perm(x.wk, y.wk, 4));
        CHECK(!same(x.wq, y.wq));  // the layouts really differ
    }
}

// ---------------------------------------------------------------------------
// (c) safetensors round trips and half-precision reading
// ---------------------------------------------------------------------------

TEST_CASE("write_safetensors round trip F32 / F64 / I64", "[io][safetensors]") {
    std::vector<NamedTensor> ts;
    ts.push_back({"b.matrix", {3, 4}, {}, false});
    for (int i = 0; i < 12; ++i) ts.back().values.push_back(0.1 * i - 0.55 + 1e-12 * i);
    ts.push_back({"a.scalar", {}, {3.141592653589793}, false});
    ts.push_back({"c.empty", {0, 5}, {}, false});
    ts.push_back({"d.ids", {2, 2}, {1, -7, 123456789012.0, 0}, true});
    ts.push_back({"e.extremes", {4}, {1e-300, -1e300, 5e-324, -0.0}, false});
    std::map<std::string, std::string> meta{{"producer", "test_io"}, {"note", "round trip"}};

    for (DType dt : {DType::F32, DType::F64}) {
        const std::string p = tmp(std::string("rt_") + dtype_name(dt) + ".safetensors");
        write_safetensors(p, ts, dt, meta);
        // header padded to 8-byte alignment with spaces
        std::string raw = read_text_file(p);
        uint64_t hlen = 0;
        std::memcpy(&hlen, raw.data(), 8);
        CHECK((8 + hlen) % 8 == 0);
        CHECK(!fs::exists(p + ".tmp"));

        SafeTensors st = SafeTensors::open(p);
        CHECK(st.names() ==
              std::vector<std::string>{"a.scalar", "b.matrix", "c.empty", "d.ids", "e.extremes"});
        CHECK(st.metadata() == meta);
        CHECK(st.info("b.matrix").dtype == dt);
        CHECK(st.info("d.ids").dtype == DType::I64);
        for (const NamedTensor& t : ts) {
            INFO(t.name << " " << dtype_name(dt));
            if (t.is_int) {
                Tensor<int64_t> r = st.read<int64_t>(t.name);
                CHECK(r.shape == t.shape);
                for (size_t i = 0; i < r.size(); ++i) CHECK(double(r.data[i]) == t.values[i]);
                CHECK_THROWS_WITH(st.read<double>(t.name), Contains(t.name) && Contains("I64"));
                continue;
            }
            Tensor<double> r = st.read<double>(t.name, t.shape);
            Tensor<float> rf = st.read<float>(t.name);
            CHECK(r.shape == t.shape);
            REQUIRE(r.size() == t.values.size());
            for (size_t i = 0; i < r.size(); ++i) {
                if (dt == DType::F64) {
                    CHECK(r.data[i] == t.values[i]);
                    CHECK(std::signbit(r.data[i]) == std::signbit(t.values[i]));
                } else {
                    CHECK(r.data[i] == double(float(t.values[i])));
                }
                CHECK(rf.data[i] == float(t.values[i]));
            }
        }
        CHECK_THROWS_WITH(st.read<double>("b.matrix", {4, 3}),
                          Contains(p) && Contains("b.matrix") && Contains("[3, 4]") && Contains("[4, 3]"));
        CHECK_THROWS_WITH(st.read<double>("nope"), Contains(p) && Contains("nope"));
        CHECK_THROWS_WITH(st.info("nope"), Contains("nope"));
    }
    CHECK_THROWS_WITH(write_safetensors(tmp("bad.safetensors"), {{"x", {2}, {1.0}, false}}, DType::F32),
                      Contains("x") && Contains("[2]"));
    CHECK_THROWS_WITH(write_safetensors(tmp("bad.safetensors"), ts, DType::F16), Contains("F16"));
    CHECK(!fs::exists(tmp("bad.safetensors")));
}

TEST_CASE("F16 and BF16 tensors are converted exactly", "[io][safetensors]") {
    const double inf = std::numeric_limits<double>::infinity();
    // binary16 bit patterns and their exact values (NaN checked separately)
    std::vector<uint16_t> h = {0x0000, 0x8000, 0x3C00, 0xC000, 0x7BFF, 0x0001, 0x03FF,
                               0x0400, 0x7C00, 0xFC00, 0x3555, 0x8001, 0x7E00};
    std::vector<double> hv = {0.0,
                              -0.0,
                              1.0,
                              -2.0,
                              65504.0,
                              std::ldexp(1.0, -24),
                              1023 * std::ldexp(1.0, -24),
                              std::ldexp(1.0, -14),
                              inf,
                              -inf,
                              0.333251953125,
                              -std::ldexp(1.0, -24)};
    // bfloat16 bit patterns
    std::vector<uint16_t> b = {0x3F80, 0xC040, 0x7F80, 0x0001, 0x4049, 0x8000, 0xFF80, 0x7FC0};
    std::vector<double> bv = {1.0, -3.0, inf, std::ldexp(1.0, -133), 3.140625, -0.0, -inf};

    json hdr;
    hdr["h"] = {{"dtype", "F16"}, {"shape", {13}}, {"data_offsets", {0, 26}}};
    hdr["b"] = {{"dtype", "BF16"}, {"shape", {2, 4}}, {"data_offsets", {26, 42}}};
    const std::string p = tmp("half.safetensors");
    write_bytes(p, st_bytes(hdr.dump(), u16_bytes(h) + u16_bytes(b)));

    SafeTensors st = SafeTensors::open(p);
    CHECK(st.info("h").dtype == DType::F16);
    CHECK(st.info("b").dtype == DType::BF16);
    Tensor<double> rh = st.read<double>("h");
    Tensor<float> rhf = st.read<float>("h");
    for (size_t i = 0; i < hv.size(); ++i) {
        INFO("f16 index " << i);
        CHECK(rh.data[i] == hv[i]);
        CHECK(std::signbit(rh.data[i]) == std::signbit(hv[i]));
        CHECK(double(rhf.data[i]) == hv[i]);
    }
    CHECK(std::isnan(rh.data[12]));
    CHECK(std::isnan(rhf.data[12]));
    Tensor<double> rb = st.read<double>("b", {2, 4});
    for (size_t i = 0; i < bv.size(); ++i) {
        INFO("bf16 index " << i);
        CHECK(rb.data[i] == bv[i]);
        CHECK(std::signbit(rb.data[i]) == std::signbit(bv[i]));
    }
    CHECK(std::isnan(rb.data[7]));
}

TEST_CASE("sharded safetensors via model.safetensors.index.json", "[io][safetensors]") {
    const std::string dir = tmp("sharded");
    fs::create_directories(dir);
    write_safetensors(dir + "/model-00001-of-00002.safetensors", {{"x", {2}, {1.5, 2.5}, false}}, DType::F32);
    write_safetensors(dir + "/model-00002-of-00002.safetensors", {{"y", {1, 2}, {-1, 4}, false}}, DType::F64);
    json idx;
    idx["metadata"] = {{"total_size", 24}};
    idx["weight_map"] = {{"x", "model-00001-of-00002.safetensors"},
                         {"y", "model-00002-of-00002.safetensors"}};
    write_bytes(dir + "/model.safetensors.index.json", idx.dump());
    SafeTensors st = SafeTensors::open(dir + "/model.safetensors.index.json");
    CHECK(st.names() == std::vector<std::string>{"x", "y"});
    CHECK(st.read<double>("x").data == std::vector<double>{1.5, 2.5});
    CHECK(st.read<float>("y").data == std::vector<float>{-1, 4});
    CHECK(st.info("y").file == dir + "/model-00002-of-00002.safetensors");
    CHECK(st.metadata().at("total_size") == "24");

    idx["weight_map"]["z"] = "model-00002-of-00002.safetensors";
    write_bytes(dir + "/bad.index.json", idx.dump());
    CHECK_THROWS_WITH(SafeTensors::open(dir + "/bad.index.json"),
                      Contains("bad.index.json") && Contains("'z'"));
}

// ---------------------------------------------------------------------------
// (d) malformed inputs
// ---------------------------------------------------------------------------

TEST_CASE("malformed safetensors files are rejected with precise messages", "[io][safetensors][errors]") {
    const std::string data8 = floats_bytes({1, 2});
    auto write_case = [&](const std::string& name, const std::string& header, const std::string& data) {
        const std::string p = tmp(name);
        write_bytes(p, st_bytes(header, data));
        return p;
    };

    {
        const std::string p = tmp("short.safetensors");
        write_bytes(p, std::string("\x05\x00\x00", 3));
        CHECK_THROWS_WITH(SafeTensors::open(p), Contains(p) && Contains("3 bytes") && Contains("8-byte"));
    }
    {
        const std::string p = tmp("hlen.safetensors");
        write_bytes(p, le64(1000) + "{}");
        CHECK_THROWS_WITH(SafeTensors::open(p),
                          Contains(p) && Contains("header length 1000") && Contains("file size 10"));
    }
    {
        const std::string p = write_case("json.safetensors", "{\"a\": {\"dtype\": \"F32\",", data8);
        CHECK_THROWS_WITH(SafeTensors::open(p), Contains(p) && Contains("malformed JSON"));
    }
    {
        const std::string p = write_case("range.safetensors",
                                         R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", data8);
        CHECK_THROWS_WITH(SafeTensors::open(p), Contains(p) && Contains("'a'") && Contains("data_offsets") &&
                                                    Contains("16") && Contains("8"));
    }
    {
        const std::string p = write_case(
            "overlap.safetensors",
            R"({"first":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"second":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
            data8);
        CHECK_THROWS_WITH(SafeTensors::open(p),
                          Contains(p) && Contains("'first'") && Contains("'second'") && Contains("overlap"));
    }
    for (const char* bad : {"I8", "U8", "F8_E4M3", "f32"}) {
        const std::string p = write_case(
            "dtype.safetensors",
            std::string(R"({"w":{"dtype":")") + bad + R"(","shape":[8],"data_offsets":[0,8]}})", data8);
        CHECK_THROWS_WITH(SafeTensors::open(p), Contains(p) && Contains("'w'") && Contains(bad));
    }
    {
        const std::string p =
            write_case("nodtype.safetensors", R"({"w":{"shape":[2],"data_offsets":[0,8]}})", data8);
        CHECK_THROWS_WITH(SafeTensors::open(p), Contains(p) && Contains("'w'") && Contains("dtype"));
        const std::string q =
            write_case("noshape.safetensors", R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", data8);
        CHECK_THROWS_WITH(SafeTensors::open(q), Contains(q) && Contains("'w'") && Contains("shape"));
        const std::string r = write_case("nooff.safetensors", R"({"w":{"dtype":"F32","shape":[2]}})", data8);
        CHECK_THROWS_WITH(SafeTensors::open(r), Contains(r) && Contains("'w'") && Contains("data_offsets"));
    }
    {
        const std::string p = write_case("negdim.safetensors",
                                         R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", data8);
        CHECK_THROWS_WITH(SafeTensors::open(p), Contains(p) && Contains("'w'") && Contains("-2"));
    }
    {
        const std::string p = write_case("order.safetensors",
                                         R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", data8);
        CHECK_THROWS_WITH(SafeTensors::open(p), Contains(p) && Contains("'w'") && Contains("begin > end"));
        const std::string q = write_case(
            "offs3.safetensors", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}})", data8);
        CHECK_THROWS_WITH(SafeTensors::open(q), Contains(q) && Contains("'w'") && Contains("data_offsets"));
    }
    {
        const std::string p = write_case("size.safetensors",
                                         R"({"w":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}})", data8);
        CHECK_THROWS_WITH(SafeTensors::open(p),
                          Contains(p) && Contains("'w'") && Contains("16 bytes") && Contains("span 8"));
    }
    {
        const std::string p = write_case(
            "meta.safetensors",
            R"({"__metadata__":{"k":3},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", data8);
        CHECK_THROWS_WITH(SafeTensors::open(p), Contains(p) && Contains("__metadata__"));
    }
    CHECK_THROWS_WITH(SafeTensors::open(tmp("does-not-exist.safetensors")),
                      Contains("no such file or directory") && Contains("does-not-exist.safetensors"));
}

TEST_CASE("malformed Hugging Face model directories are rejected", "[io][hf][errors]") {
    SKIP_WITHOUT_SHARED();
    {  // sanity: an unchanged copy loads
        const std::string d = edited_copy("llama-gqa-s1", "hf_ok", no_tensor_edit, no_cfg_edit);
        CHECK_NOTHROW(load_model<double>(d));
    }
    {
        const std::string t = "model.layers.1.mlp.up_proj.weight";
        const std::string d = edited_copy(
            "llama-gqa-s1", "hf_missing",
            [&](std::vector<NamedTensor>& ts) {
                ts.erase(
                    std::remove_if(ts.begin(), ts.end(), [&](const NamedTensor& x) { return x.name == t; }),
                    ts.end());
            },
            no_cfg_edit);
        CHECK_THROWS_WITH(load_model<float>(d), Contains(d + "/model.safetensors") && Contains(t) &&
                                                    Contains("missing") && Contains("[160, 64]"));
    }
    {
        const std::string t = "model.layers.0.mlp.up_proj.weight";
        const std::string d = edited_copy(
            "llama-gqa-s1", "hf_shape",
            [&](std::vector<NamedTensor>& ts) {
                for (auto& x : ts)
                    if (x.name == t) x.shape = {320, 32};
            },
            no_cfg_edit);
        CHECK_THROWS_WITH(load_model<float>(d), Contains(d + "/model.safetensors") && Contains(t) &&
                                                    Contains("[320, 32]") && Contains("[160, 64]"));
    }
    {
        const std::string d = edited_copy(
            "qwen2-s1", "hf_extra",
            [&](std::vector<NamedTensor>& ts) {
                ts.push_back({"model.layers.0.extra.weight", {2}, {1, 2}, false});
            },
            no_cfg_edit);
        CHECK_THROWS_WITH(load_model<float>(d), Contains("unexpected tensor model.layers.0.extra.weight") &&
                                                    Contains(d + "/model.safetensors"));
    }
    {  // ignorable buffers are accepted; GPT-2 names without the "transformer." prefix too
        const std::string d = edited_copy(
            "gpt2-s1", "hf_gpt2_noprefix",
            [&](std::vector<NamedTensor>& ts) {
                for (auto& x : ts) x.name = x.name.substr(std::string("transformer.").size());
                ts.push_back({"h.0.attn.bias", {1, 1, 2, 2}, {1, 0, 1, 1}, false});
                ts.push_back({"h.0.attn.masked_bias", {}, {-1e4}, false});
            },
            no_cfg_edit);
        Model<double> a = load_model<double>(d);
        Model<double> b = load_model<double>(fixture("gpt2-s1"));
        CHECK(same(a.w.layers[1].wk, b.w.layers[1].wk));
        CHECK(same(a.w.pos_emb, b.w.pos_emb));
    }
    {
        const std::string d =
            edited_copy("llama-gqa-s1", "hf_type", no_tensor_edit, [](json& j) { j["model_type"] = "bert"; });
        CHECK_THROWS_WITH(load_model<float>(d), Contains(d + "/config.json") && Contains("model_type") &&
                                                    Contains("bert") && Contains("llama") &&
                                                    Contains("gpt2"));
    }
    {
        const std::string d = edited_copy("llama-gqa-s1", "hf_nofield", no_tensor_edit,
                                          [](json& j) { j.erase("hidden_size"); });
        CHECK_THROWS_WITH(load_model<float>(d),
                          Contains(d + "/config.json") && Contains("hidden_size") && Contains("missing"));
    }
    {
        const std::string d = edited_copy("qwen2-s1", "hf_wrongtype", no_tensor_edit,
                                          [](json& j) { j["num_attention_heads"] = "four"; });
        CHECK_THROWS_WITH(load_model<float>(d), Contains(d + "/config.json") &&
                                                    Contains("num_attention_heads") && Contains("four"));
    }
    {
        const std::string d =
            edited_copy("llama-gqa-s1", "hf_act", no_tensor_edit, [](json& j) { j["hidden_act"] = "gelu"; });
        CHECK_THROWS_WITH(load_model<float>(d),
                          Contains(d + "/config.json") && Contains("hidden_act") && Contains("gelu"));
    }
    {
        const std::string d = edited_copy("llama-gqa-s1", "hf_rope", no_tensor_edit, [](json& j) {
            j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 2.0}};
        });
        CHECK_THROWS_WITH(load_model<float>(d), Contains(d + "/config.json") &&
                                                    Contains("'rope_scaling.rope_type'") &&
                                                    Contains("'yarn'"));
    }
    {
        const std::string d = edited_copy("gpt2-s1", "hf_gpt2_act", no_tensor_edit,
                                          [](json& j) { j["activation_function"] = "relu"; });
        CHECK_THROWS_WITH(load_model<float>(d), Contains(d + "/config.json") &&
                                                    Contains("activation_function") && Contains("relu"));
        const std::string e = edited_copy("gpt2-s1", "hf_gpt2_scale", no_tensor_edit,
                                          [](json& j) { j["scale_attn_by_inverse_layer_idx"] = true; });
        CHECK_THROWS_WITH(load_model<float>(e), Contains("scale_attn_by_inverse_layer_idx"));
    }
    {
        const std::string d = edited_copy("llama-gqa-s1", "hf_heads", no_tensor_edit,
                                          [](json& j) { j["num_key_value_heads"] = 3; });
        CHECK_THROWS_WITH(load_model<float>(d), Contains(d + "/config.json") && Contains("Hkv"));
    }
    {
        const std::string d = tmp("hf_badjson");
        fs::create_directories(d);
        write_bytes(d + "/config.json", "{\"model_type\": \"llama\", ");
        CHECK_THROWS_WITH(load_model<float>(d), Contains(d + "/config.json") && Contains("malformed JSON"));
        CHECK_THROWS_WITH(read_hf_config(d + "/config.json"), Contains(d + "/config.json"));
    }
    {
        const std::string d = tmp("hf_noconfig");
        fs::create_directories(d);
        CHECK_THROWS_WITH(load_model<float>(d), Contains(d) && Contains("config.json"));
        CHECK_THROWS_WITH(load_model<float>(tmp("nothing-here")),
                          Contains("no such file or directory: " + tmp("nothing-here")));
    }
    {  // tied llama config: a stored lm_head.weight is ignored
        const std::string d = edited_copy("llama-gqa-s1", "hf_tied", no_tensor_edit,
                                          [](json& j) { j["tie_word_embeddings"] = true; });
        Model<float> m = load_model<float>(d);
        CHECK(m.cfg.tied_embeddings);
        CHECK(m.w.lm_head.size() == 0);
    }
}

TEST_CASE("llama2.c files must have exactly the size the header implies", "[io][llama2c][errors]") {
    SKIP_WITHOUT_SHARED();
    const std::string bytes = read_text_file(depass_test::weights_dir() + "/stories260K.bin");
    const std::string shortp = tmp("short.bin");
    const std::string longp = tmp("long.bin");
    write_bytes(shortp, bytes.substr(0, bytes.size() - 1));
    write_bytes(longp, bytes + std::string(1, '\0'));
    const std::string expect = std::to_string(bytes.size());
    CHECK_THROWS_WITH(load_model<float>(shortp), Contains(shortp) && Contains(expect) &&
                                                     Contains(std::to_string(bytes.size() - 1)) &&
                                                     Contains("shared classifier"));
    CHECK_THROWS_WITH(read_llama2c<double>(longp),
                      Contains(longp) && Contains(expect) && Contains(std::to_string(bytes.size() + 1)));
    // header sanity
    std::string bad = bytes;
    int32_t heads = 3;
    std::memcpy(&bad[3 * 4], &heads, 4);
    write_bytes(tmp("heads.bin"), bad);
    CHECK_THROWS_WITH(load_model<float>(tmp("heads.bin")), Contains(tmp("heads.bin")) && Contains("n_heads"));
    int32_t zero = 0;
    bad = bytes;
    std::memcpy(&bad[2 * 4], &zero, 4);
    write_bytes(tmp("layers.bin"), bad);
    CHECK_THROWS_WITH(load_model<float>(tmp("layers.bin")),
                      Contains(tmp("layers.bin")) && Contains("n_layers"));
    write_bytes(tmp("tiny.bin"), bytes.substr(0, 10));
    CHECK_THROWS_WITH(load_model<float>(tmp("tiny.bin")), Contains(tmp("tiny.bin")) && Contains("header"));
    // unshared classifier: append wcls and flip the sign of vocab_size
    std::string unshared = bytes + std::string(512 * 64 * 4, '\0');
    int32_t negv = -512;
    std::memcpy(&unshared[5 * 4], &negv, 4);
    write_bytes(tmp("unshared.bin"), unshared);
    Model<float> m = load_model<float>(tmp("unshared.bin"));
    CHECK(!m.cfg.tied_embeddings);
    CHECK(m.cfg.V == 512);
    CHECK(m.w.lm_head.rows() == 512);
    CHECK(m.w.lm_head.norm() == 0.0f);
    write_bytes(tmp("unshared_short.bin"), unshared.substr(0, bytes.size()));
    CHECK_THROWS_WITH(load_model<float>(tmp("unshared_short.bin")), Contains("unshared classifier"));
}

// ---------------------------------------------------------------------------
// (e) .npy
// ---------------------------------------------------------------------------

TEST_CASE("npy round trips and fixtures", "[io][npy]") {
    Tensor<double> d({2, 3, 4});
    for (size_t i = 0; i < d.size(); ++i) d.data[i] = std::sin(double(i)) * 1e3 + 1e-9;
    write_npy(tmp("d.npy"), d);
    Tensor<double> d2 = read_npy<double>(tmp("d.npy"));
    CHECK(d2.shape == d.shape);
    CHECK(d2.data == d.data);
    Tensor<float> df = read_npy<float>(tmp("d.npy"));
    for (size_t i = 0; i < d.size(); ++i) CHECK(df.data[i] == float(d.data[i]));

    Tensor<float> f({5});
    for (size_t i = 0; i < f.size(); ++i) f.data[i] = float(i) / 3.0f;
    write_npy(tmp("f.npy"), f);
    CHECK(read_npy<float>(tmp("f.npy")).data == f.data);
    CHECK(read_text_file(tmp("f.npy")).find("'<f4'") != std::string::npos);

    Tensor<int64_t> iv({2, 2});
    iv.data = {1, -2, int64_t(1) << 40, 7};
    write_npy(tmp("i.npy"), iv);
    CHECK(read_npy<int64_t>(tmp("i.npy")).data == iv.data);
    CHECK(read_npy<double>(tmp("i.npy")).data == std::vector<double>{1, -2, double(int64_t(1) << 40), 7});
    CHECK_THROWS_WITH(read_npy<int64_t>(tmp("f.npy")), Contains(tmp("f.npy")));

    Tensor<int32_t> i32({3});
    i32.data = {4, 5, -6};
    write_npy(tmp("i32.npy"), i32);
    CHECK(read_npy<int32_t>(tmp("i32.npy")).data == i32.data);

    Tensor<double> scalar(std::vector<int64_t>{});
    scalar.data = {2.5};
    write_npy(tmp("s.npy"), scalar);
    Tensor<double> s2 = read_npy<double>(tmp("s.npy"));
    CHECK(s2.shape.empty());
    CHECK(s2.data == std::vector<double>{2.5});

    Tensor<float> empty({0, 4});
    write_npy(tmp("e.npy"), empty);
    CHECK(read_npy<float>(tmp("e.npy")).shape == std::vector<int64_t>{0, 4});

    Tensor<float> wrong;
    wrong.shape = {3};
    wrong.data = {1, 2};
    CHECK_THROWS_WITH(write_npy(tmp("w.npy"), wrong), Contains(tmp("w.npy")));
    CHECK(!fs::exists(tmp("w.npy")));
}

TEST_CASE("npy fixtures from numpy are read", "[io][npy]") {
    SKIP_WITHOUT_SHARED();
    Tensor<float> t = read_npy<float>(fixture("llama-gqa-s1") + "/depass_official_token_f32.npy");
    CHECK(t.shape == std::vector<int64_t>{16, 16, 64});
    Tensor<double> p = read_npy<double>(fixture("llama-gqa-s1") + "/depass_subspace_projector_L0.npy");
    CHECK(p.shape == std::vector<int64_t>{64, 64});
    Tensor<int32_t> tok =
        read_npy<int32_t>(depass_test::weights_dir() + "/golden/stories260K_once.tokens.npy");
    CHECK(tok.shape == std::vector<int64_t>{16});
    CHECK(tok.data[0] == 1);
    CHECK(tok.data[1] == 403);
    CHECK(tok.data[15] == 426);
    // the .npy and the raw .f32 dump agree
    Tensor<float> lg = read_npy<float>(depass_test::weights_dir() + "/golden/stories260K_once.logits.npy");
    std::string raw = read_text_file(depass_test::weights_dir() + "/golden/stories260K_once.logits.f32");
    REQUIRE(raw.size() == lg.size() * 4);
    CHECK(std::memcmp(raw.data(), lg.data.data(), raw.size()) == 0);
}

TEST_CASE("malformed and non-finite npy files are rejected", "[io][npy][errors]") {
    Tensor<double> t({2, 3});
    for (size_t i = 0; i < t.size(); ++i) t.data[i] = double(i);
    t.data[4] = std::numeric_limits<double>::quiet_NaN();
    const std::string p = tmp("nan.npy");
    write_npy(p, t);
    CHECK_THROWS_WITH(read_npy<double>(p), Contains(p) && Contains("non-finite") && Contains("index 4"));
    CHECK_THROWS_WITH(read_npy<float>(p), Contains(p) && Contains("index 4"));
    Tensor<double> ok = read_npy<double>(p, false);
    CHECK(std::isnan(ok.data[4]));
    Tensor<float> inf({2});
    inf.data = {1.0f, -std::numeric_limits<float>::infinity()};
    write_npy(tmp("inf.npy"), inf);
    CHECK_THROWS_WITH(read_npy<float>(tmp("inf.npy")), Contains("inf.npy") && Contains("index 1"));

    const std::string good = read_text_file(p);
    write_bytes(tmp("trunc.npy"), good.substr(0, good.size() - 3));
    CHECK_THROWS_WITH(read_npy<double>(tmp("trunc.npy")),
                      Contains(tmp("trunc.npy")) && Contains("45 bytes") && Contains("48 bytes"));
    write_bytes(tmp("trunc2.npy"), good.substr(0, 20));
    CHECK_THROWS_WITH(read_npy<double>(tmp("trunc2.npy")), Contains(tmp("trunc2.npy")));
    write_bytes(tmp("magic.npy"), "NUMPY not really");
    CHECK_THROWS_WITH(read_npy<double>(tmp("magic.npy")), Contains(tmp("magic.npy")) && Contains("magic"));

    auto npy = [](const std::string& header, const std::string& data) {
        std::string h = header;
        while ((10 + h.size() + 1) % 64 != 0) h.push_back(' ');
        h.push_back('\n');
        std::string out = std::string("\x93NUMPY\x01\x00", 8);
        out.push_back(static_cast<char>(h.size() & 0xff));
        out.push_back(static_cast<char>(h.size() >> 8));
        return out + h + data;
    };
    write_bytes(tmp("fortran.npy"), npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
                                        floats_bytes({1, 2, 3, 4})));
    CHECK(read_npy<float>(tmp("fortran.npy")).data ==
          std::vector<float>{1, 3, 2, 4});  // column-major on disk
    write_bytes(tmp("f2.npy"), npy("{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }",
                                   std::string("\x00\x3c\x00\xc0", 4)));  // float16 1, -2
    CHECK(read_npy<float>(tmp("f2.npy")).data == std::vector<float>{1, -2});
    write_bytes(tmp("be.npy"), npy("{'descr': '>f8', 'fortran_order': False, 'shape': (1,), }",
                                   std::string("\x3f\xf8\0\0\0\0\0\0", 8)));  // big-endian 1.5
    CHECK(read_npy<double>(tmp("be.npy")).data == std::vector<double>{1.5});
    write_bytes(tmp("u2.npy"), npy("{'descr': '<u2', 'fortran_order': False, 'shape': (2,), }", "abcd"));
    CHECK_THROWS_WITH(read_npy<float>(tmp("u2.npy")), Contains(tmp("u2.npy")) && Contains("<u2"));
    write_bytes(tmp("noshape.npy"), npy("{'descr': '<f4', 'fortran_order': False, }", "abcd"));
    CHECK_THROWS_WITH(read_npy<float>(tmp("noshape.npy")), Contains(tmp("noshape.npy")) && Contains("shape"));
    write_bytes(tmp("garbage.npy"), npy("{'descr': '<f4', 'fortran_order': False, 'shape': (x), }", "abcd"));
    CHECK_THROWS_WITH(read_npy<float>(tmp("garbage.npy")),
                      Contains(tmp("garbage.npy")) && Contains("malformed"));
    // a hand-made valid file reads back
    write_bytes(tmp("hand.npy"), npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }",
                                     floats_bytes({1.5f, -2.0f})));
    CHECK(read_npy<float>(tmp("hand.npy")).data == std::vector<float>{1.5f, -2.0f});
    CHECK_THROWS_WITH(read_npy<float>(tmp("missing.npy")), Contains(tmp("missing.npy")));
}

// ---------------------------------------------------------------------------
// weights helpers
// ---------------------------------------------------------------------------

TEST_CASE("random_model, cast_model and check_weights", "[weights]") {
    // A GPT-2 and a LLaMA of the same tiny shape.
    const auto shaped = [](Config k) {
        k.D = 8;
        k.I = 16;
        k.L = 2;
        k.H = 2;
        k.Hkv = 2;
        k.Dh = 4;
        k.V = 11;
        k.max_positions = 6;
        return k;
    };
    const Config c = shaped(preset(Arch::Gpt2));

    Model<float> f = random_model<float>(c, 42);
    Model<double> d = random_model<double>(c, 42);
    Model<double> d2 = random_model<double>(c, 43);
    CHECK(same(d.w.layers[1].w_down.cast<float>(), f.w.layers[1].w_down));
    CHECK(same(d.w.layers[0].b_up.cast<float>(), f.w.layers[0].b_up));
    CHECK(same(d.w.normf_b.cast<float>(), f.w.normf_b));
    CHECK(!same(d.w.tok_emb, d2.w.tok_emb));
    CHECK(f.w.layers[0].w_gate.size() == 0);
    CHECK(f.w.pos_emb.rows() == 6);
    CHECK(std::abs(d.w.normf_g.mean() - 1.0) < 0.2);

    Model<float> back = cast_model<float>(d);
    CHECK(same(back.w.layers[1].wv, f.w.layers[1].wv));
    CHECK(same(back.w.pos_emb, f.w.pos_emb));
    CHECK_NOTHROW(check_weights(back.cfg, back.w));

    Config lc = shaped(preset(Arch::Llama));
    lc.Hkv = 1;
    Model<double> l = random_model<double>(lc, 7, 0.5);
    CHECK(l.w.layers[0].wk.rows() == 4);
    CHECK(l.w.layers[0].bq.size() == 0);
    CHECK(l.w.layers[0].norm1_b.size() == 0);
    CHECK(l.w.lm_head.rows() == 11);
    CHECK(l.w.layers[0].w_gate.rows() == 16);

    Model<double> broken = l;
    broken.w.layers[1].w_up.resize(16, 9);
    CHECK_THROWS_WITH(check_weights(broken.cfg, broken.w),
                      Contains("layers.1.w_up") && Contains("[16, 9]") && Contains("[16, 8]"));
    broken = l;
    broken.w.layers[0].bo = Vec<double>::Zero(8);
    CHECK_THROWS_WITH(check_weights(broken.cfg, broken.w), Contains("layers.0.bo"));
    broken = l;
    broken.w.layers.pop_back();
    CHECK_THROWS_WITH(check_weights(broken.cfg, broken.w), Contains("layers"));

    Config bad = lc;
    bad.Hkv = 3;
    CHECK_THROWS_AS(random_model<float>(bad, 1), depass::Error);
}

TEST_CASE("truncated or corrupted real checkpoints always fail cleanly", "[io][safetensors][errors]") {
    SKIP_WITHOUT_SHARED();
    const std::string bytes = read_text_file(fixture("gpt2-s1") + "/model.safetensors");
    const std::string p = tmp("cut.safetensors");
    for (size_t cut : {size_t(0), size_t(7), size_t(8), size_t(100), size_t(2631), size_t(2632), size_t(2633),
                       bytes.size() / 2, bytes.size() - 1}) {
        INFO("cut at " << cut);
        write_bytes(p, bytes.substr(0, cut));
        CHECK_THROWS_AS(SafeTensors::open(p), depass::Error);
    }
    // flipping header bytes must give either a valid file or a depass::Error
    uint64_t hlen = 0;
    std::memcpy(&hlen, bytes.data(), 8);
    for (size_t i = 8; i < 8 + hlen; i += 37) {
        std::string b = bytes;
        b[i] = static_cast<char>(b[i] ^ 0x5a);
        write_bytes(p, b);
        try {
            SafeTensors st = SafeTensors::open(p);
            for (const std::string& n : st.names()) (void)st.info(n);
        } catch (const depass::Error&) {
        }
    }
    write_bytes(p, bytes);
    CHECK_NOTHROW(SafeTensors::open(p));
}
