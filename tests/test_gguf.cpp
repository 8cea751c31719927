// GGUF models: a small GGUF writer (test code only) stores the llama-gqa-s1 fixture and
// stories260K in F32, F16 and BF16 the way llama.cpp's converter does (q / k rows
// permuted to the interleaved RoPE layout, 1-D norm weights kept in F32); load_model
// reads them back and the forward pass is checked against the reference goldens.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "depass/dump.hpp"
#include "depass/forward.hpp"
#include "depass/gguf.hpp"
#include "depass/io.hpp"
#include "depass/tolerance.hpp"
#include "test_support.hpp"

using namespace depass;

namespace {

constexpr uint32_t kF32 = 0, kF16 = 1, kQ8_0 = 8, kBF16 = 30;

// ---- value rounding, computed arithmetically (independent of the bit encoders) ----------

// x rounded to `bits` significant bits (round half to even), with the smallest
// normal exponent `emin` below which the quantum stays fixed (subnormals).
double round_to_bits(double x, int bits, int emin) {
    if (x == 0 || !std::isfinite(x)) return x;
    int e;
    std::frexp(x, &e);                       // |x| in [2^(e-1), 2^e)
    const int expo = std::max(e - 1, emin);  // floor(log2 |x|), clamped
    const double quantum = std::ldexp(1.0, expo - (bits - 1));
    return std::nearbyint(x / quantum) * quantum;  // default rounding: half to even
}
double round_f16(double x) { return round_to_bits(x, 11, -14); }
double round_bf16(double x) { return round_to_bits(static_cast<float>(x), 8, -126); }

// ---- bit encoders ---------------------------------------------------------------------------

uint32_t float_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

// binary32 -> binary16, round half to even (finite inputs within the half range).
uint16_t to_f16(float f) {
    const uint32_t x = float_bits(f);
    const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
    const int exp = static_cast<int>((x >> 23) & 0xFF) - 127 + 15;
    uint32_t mant = x & 0x7FFFFFu;
    if ((x & 0x7FFFFFFFu) == 0) return sign;
    if (exp >= 31) return sign | 0x7C00u;  // overflow -> inf
    if (exp <= 0) {                        // subnormal half
        if (exp < -10) return sign;
        mant |= 0x800000u;
        const int shift = 14 - exp;
        uint32_t h = mant >> shift;
        const uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) ++h;
        return static_cast<uint16_t>(sign | h);
    }
    uint32_t h = (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
    const uint32_t rem = mant & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) ++h;  // a carry may reach the exponent: correct
    return static_cast<uint16_t>(sign | h);
}

// binary32 -> bfloat16, round half to even (finite inputs).
uint16_t to_bf16(float f) {
    const uint32_t x = float_bits(f);
    const uint32_t rounded = x + 0x7FFFu + ((x >> 16) & 1u);
    return static_cast<uint16_t>(rounded >> 16);
}

// ---- a minimal GGUF writer --------------------------------------------------------------------

struct GgufWriter {
    struct Entry {
        std::string name;
        std::vector<uint64_t> ne;
        uint32_t type;
        std::string data;
    };
    uint64_t n_kv = 0;
    std::string kv;  // encoded key/value pairs
    std::vector<Entry> tensors;
    uint32_t alignment = 32;

    template <class X>
    static void put(std::string& out, X x) {
        char b[sizeof x];
        std::memcpy(b, &x, sizeof x);
        out.append(b, sizeof x);
    }
    static void put_str(std::string& out, const std::string& s) {
        put<uint64_t>(out, s.size());
        out += s;
    }
    void key(const std::string& k, uint32_t type) {
        ++n_kv;
        put_str(kv, k);
        put<uint32_t>(kv, type);
    }
    void u32(const std::string& k, uint32_t v) {
        key(k, 4);
        put(kv, v);
    }
    void f32(const std::string& k, float v) {
        key(k, 6);
        put(kv, v);
    }
    void str(const std::string& k, const std::string& v) {
        key(k, 8);
        put_str(kv, v);
    }

    // A tensor from a row-major [rows, cols] array (ggml ne = [cols, rows]), stored as `type`.
    void matrix(const std::string& name, const double* v, int64_t rows, int64_t cols, uint32_t type) {
        Entry e{name, {uint64_t(cols)}, type, {}};
        if (rows > 0) e.ne.push_back(uint64_t(rows));
        const size_t n = size_t(rows > 0 ? rows : 1) * size_t(cols);
        for (size_t i = 0; i < n; ++i) {
            const float f = static_cast<float>(v[i]);
            if (type == kF32)
                put(e.data, f);
            else if (type == kF16)
                put(e.data, to_f16(f));
            else if (type == kBF16)
                put(e.data, to_bf16(f));
        }
        if (type == kQ8_0) e.data.assign(n / 32 * 34, '\x11');  // any bytes: the loader must refuse the type
        tensors.push_back(std::move(e));
    }

    std::string bytes() const {
        std::string out = "GGUF";
        put<uint32_t>(out, 3);
        put<uint64_t>(out, tensors.size());
        put<uint64_t>(out, n_kv);
        out += kv;
        uint64_t offset = 0;
        std::vector<uint64_t> offsets;
        for (const Entry& t : tensors) {
            put_str(out, t.name);
            put<uint32_t>(out, uint32_t(t.ne.size()));
            for (uint64_t d : t.ne) put<uint64_t>(out, d);
            put<uint32_t>(out, t.type);
            put<uint64_t>(out, offset);
            offsets.push_back(offset);
            offset += (t.data.size() + alignment - 1) / alignment * alignment;
        }
        while (out.size() % alignment) out.push_back('\0');
        const size_t start = out.size();
        for (size_t k = 0; k < tensors.size(); ++k) {
            out.resize(start + offsets[k], '\0');
            out += tensors[k].data;
        }
        return out;
    }

    std::string write(const std::string& name) const {
        const std::string path = depass_test::temp_dir() + "/" + name;
        const std::string b = bytes();
        std::ofstream f(path, std::ios::binary | std::ios::trunc);
        f.write(b.data(), std::streamsize(b.size()));
        return path;
    }
};

// Hugging Face rotate-half rows -> the interleaved-pair rows llama.cpp stores, per head:
// the converter's permute() = reshape(n_head, 2, Dh/2, in).swapaxes(1, 2), i.e. new row
// 2i + j of a head is old row j*Dh/2 + i.
Mat<double> to_interleaved_rows(const Mat<double>& w, int heads, int Dh) {
    Mat<double> out(w.rows(), w.cols());
    for (int h = 0; h < heads; ++h)
        for (int i = 0; i < Dh / 2; ++i)
            for (int j = 0; j < 2; ++j) out.row(h * Dh + 2 * i + j) = w.row(h * Dh + j * (Dh / 2) + i);
    return out;
}

// The GGUF llama tensors and metadata of a model; 2-D weights stored as `type`, 1-D as F32.
GgufWriter llama_gguf(const Model<double>& m, uint32_t type, bool permute_qk) {
    const Config& c = m.cfg;
    GgufWriter w;
    w.str("general.architecture", "llama");
    w.str("general.name", "test model");
    w.u32("general.alignment", 32);
    w.u32("llama.context_length", uint32_t(c.max_positions));
    w.u32("llama.embedding_length", uint32_t(c.D));
    w.u32("llama.feed_forward_length", uint32_t(c.I));
    w.u32("llama.block_count", uint32_t(c.L));
    w.u32("llama.attention.head_count", uint32_t(c.H));
    w.u32("llama.attention.head_count_kv", uint32_t(c.Hkv));
    w.f32("llama.attention.layer_norm_rms_epsilon", float(c.norm_eps));
    w.f32("llama.rope.freq_base", float(c.rope_theta));
    w.u32("llama.rope.dimension_count", uint32_t(c.Dh));
    w.u32("llama.vocab_size", uint32_t(c.V));
    w.u32("tokenizer.ggml.bos_token_id", uint32_t(c.bos_id));
    w.u32("tokenizer.ggml.eos_token_id", uint32_t(c.eos_id));
    auto mat = [&](const std::string& name, const Mat<double>& x) {
        w.matrix(name, x.data(), x.rows(), x.cols(), type);
    };
    auto vec = [&](const std::string& name, const Vec<double>& x) {
        w.matrix(name, x.data(), 0, x.size(), kF32);
    };
    mat("token_embd.weight", m.w.tok_emb);
    for (int l = 0; l < c.L; ++l) {
        const LayerWeights<double>& ly = m.w.layers[size_t(l)];
        const std::string p = "blk." + std::to_string(l) + ".";
        vec(p + "attn_norm.weight", ly.norm1_g);
        mat(p + "attn_q.weight", permute_qk ? to_interleaved_rows(ly.wq, c.H, c.Dh) : ly.wq);
        mat(p + "attn_k.weight", permute_qk ? to_interleaved_rows(ly.wk, c.Hkv, c.Dh) : ly.wk);
        mat(p + "attn_v.weight", ly.wv);
        mat(p + "attn_output.weight", ly.wo);
        vec(p + "ffn_norm.weight", ly.norm2_g);
        mat(p + "ffn_gate.weight", ly.w_gate);
        mat(p + "ffn_up.weight", ly.w_up);
        mat(p + "ffn_down.weight", ly.w_down);
    }
    vec("output_norm.weight", m.w.normf_g);
    if (!c.tied_embeddings) mat("output.weight", m.w.lm_head);
    return w;
}

using depass_test::fixture_ids;

// Worst relative error (max |a-b| / max |ref|) over every tensor of a golden file.
template <class T>
double worst_golden_error(const std::string& label, const Model<T>& model, const std::vector<int>& ids,
                          const std::string& golden_file, double tol) {
    const auto ours = trace_tensors(model.cfg, forward(model, ids));
    const SafeTensors golden = SafeTensors::open(golden_file);
    double worst = 0, logits_rel = 0;
    std::string worst_name;
    int compared = 0;
    for (const std::string& name : golden.names()) {
        const NamedTensor* mine = nullptr;
        for (const auto& nt : ours)
            if (nt.name == name) mine = &nt;
        INFO(label << " tensor " << name);
        REQUIRE(mine != nullptr);
        const Tensor<double> ref = golden.read<double>(name);
        REQUIRE(ref.shape == mine->shape);
        const auto d = depass_test::diff(mine->values.data(), ref.data.data(), ref.size());
        CHECK(d.rel() <= tol);
        if (name == "logits") logits_rel = d.rel();
        if (!(d.rel() <= worst)) {
            worst = d.rel();
            worst_name = name;
        }
        ++compared;
    }
    CHECK(compared >= 11);
    std::printf("  %-18s vs %-28s worst rel %.3e (%s), logits rel %.3e, tol %.0e\n", label.c_str(),
                golden_file.substr(golden_file.rfind('/') + 1).c_str(), worst, worst_name.c_str(), logits_rel,
                tol);
    return worst;
}

template <class A, class B>
double max_abs_diff(const A& a, const B& b) {
    REQUIRE(a.rows() == b.rows());
    REQUIRE(a.cols() == b.cols());
    return (a.template cast<double>() - b.template cast<double>()).cwiseAbs().maxCoeff();
}

// Every weight of `got` equals round(`want`) exactly (round = identity for F32 data).
template <class T, class Round>
void check_weights_equal(const Model<T>& got, const Model<double>& want, Round round) {
    auto rounded = [&](const auto& x) {
        auto r = x.eval();
        for (Eigen::Index i = 0; i < r.size(); ++i) r.data()[i] = round(r.data()[i]);
        return r;
    };
    CHECK(max_abs_diff(got.w.tok_emb, rounded(want.w.tok_emb)) == 0);
    for (int l = 0; l < want.cfg.L; ++l) {
        const auto& a = got.w.layers[size_t(l)];
        const auto& b = want.w.layers[size_t(l)];
        INFO("layer " << l);
        CHECK(max_abs_diff(a.wq, rounded(b.wq)) == 0);
        CHECK(max_abs_diff(a.wk, rounded(b.wk)) == 0);
        CHECK(max_abs_diff(a.wv, rounded(b.wv)) == 0);
        CHECK(max_abs_diff(a.wo, rounded(b.wo)) == 0);
        CHECK(max_abs_diff(a.w_gate, rounded(b.w_gate)) == 0);
        CHECK(max_abs_diff(a.w_up, rounded(b.w_up)) == 0);
        CHECK(max_abs_diff(a.w_down, rounded(b.w_down)) == 0);
        CHECK(max_abs_diff(a.norm1_g, b.norm1_g) == 0);  // 1-D weights stay F32
        CHECK(max_abs_diff(a.norm2_g, b.norm2_g) == 0);
    }
    CHECK(max_abs_diff(got.w.normf_g, want.w.normf_g) == 0);
    CHECK(got.w.lm_head.size() == want.w.lm_head.size());
    if (want.w.lm_head.size()) CHECK(max_abs_diff(got.w.lm_head, rounded(want.w.lm_head)) == 0);
}

// The q / k rows of a model, permuted like the converter (for weight comparisons).
Model<double> with_interleaved_qk(Model<double> m) {
    for (auto& ly : m.w.layers) {
        ly.wq = to_interleaved_rows(ly.wq, m.cfg.H, m.cfg.Dh);
        ly.wk = to_interleaved_rows(ly.wk, m.cfg.Hkv, m.cfg.Dh);
    }
    return m;
}

using depass_test::expect_error;

}  // namespace

TEST_CASE("encoders of the test writer round like the arithmetic reference", "[gguf]") {
    // The F16 / BF16 checks below compare the loader's decoded values with
    // round_f16 / round_bf16; here the writer's bit encoders are checked against them
    // through an exact decoding of the bits.
    auto f16_value = [](uint16_t h) {
        const int e = (h >> 10) & 31, m = h & 1023;
        const double v = e == 0 ? std::ldexp(double(m), -24) : std::ldexp(double(m | 1024), e - 25);
        return (h & 0x8000) ? -v : v;
    };
    auto bf16_value = [](uint16_t b) {
        const uint32_t u = uint32_t(b) << 16;
        float f;
        std::memcpy(&f, &u, 4);
        return double(f);
    };
    const float samples[] = {0.0f,      1.0f,    -1.0f,    0.1f,           3.14159f,        65504.0f,
                             6.1e-5f,   3.0e-7f, -2.0e-6f, 1.00048828125f, 1.000732421875f, 0.333333f,
                             -123.456f, 1e-8f};
    for (float f : samples) {
        INFO("value " << f);
        CHECK(f16_value(to_f16(f)) == round_f16(f));
        CHECK(bf16_value(to_bf16(f)) == round_bf16(f));
    }
    // Ties go to even: 1 + 2^-11 lies halfway between 1 and 1 + 2^-10.
    CHECK(round_f16(1.0 + std::ldexp(1.0, -11)) == 1.0);
    CHECK(round_f16(1.0 + 3 * std::ldexp(1.0, -11)) == 1.0 + std::ldexp(1.0, -9));
}

TEST_CASE("llama-gqa-s1 fixture through GGUF F32 / F16 / BF16 matches the goldens", "[gguf][fixtures]") {
    SKIP_WITHOUT_SHARED();
    const std::string dir = depass_test::fixtures_dir() + "/llama-gqa-s1";
    const auto ids = fixture_ids(dir);
    const Model<double> hf = load_model<double>(dir);
    REQUIRE(hf.cfg.rope == RopeStyle::Half);
    REQUIRE(hf.cfg.Hkv < hf.cfg.H);  // GQA: k rows permute with Hkv heads
    const Model<double> hf_interleaved = with_interleaved_qk(hf);

    // ---- F32 ----
    const std::string f32 = llama_gguf(hf, kF32, true).write("llama-gqa-s1-f32.gguf");
    const Model<float> gf = load_model<float>(f32);
    const Model<double> gd = load_model<double>(f32);
    CHECK(gd.cfg.model_type == "llama");
    CHECK(gd.cfg.rope == RopeStyle::Interleaved);
    CHECK(gd.cfg.D == hf.cfg.D);
    CHECK(gd.cfg.I == hf.cfg.I);
    CHECK(gd.cfg.L == hf.cfg.L);
    CHECK(gd.cfg.H == hf.cfg.H);
    CHECK(gd.cfg.Hkv == hf.cfg.Hkv);
    CHECK(gd.cfg.Dh == hf.cfg.Dh);
    CHECK(gd.cfg.V == hf.cfg.V);
    CHECK(gd.cfg.max_positions == hf.cfg.max_positions);
    CHECK(gd.cfg.rope_theta == hf.cfg.rope_theta);
    CHECK(gd.cfg.norm_eps == double(float(hf.cfg.norm_eps)));  // stored as float32
    CHECK(gd.cfg.tied_embeddings == hf.cfg.tied_embeddings);
    check_weights_equal(gd, hf_interleaved, [](double x) { return x; });

    worst_golden_error("GGUF F32 (float)", gf, ids, dir + "/golden_f32.safetensors",
                       tolerance::golden_f32_rel);
    // The F32 file holds the exact weights: a double forward matches the all-float64
    // reference as tightly as the safetensors copy does.
    worst_golden_error("GGUF F32 (double)", gd, ids, dir + "/golden_exact_f64.safetensors",
                       tolerance::golden_f64_exact_rel);

    // Same weights, other RoPE layout: the logits agree with the safetensors model's
    // to float rounding (only the order of the q.k sums differs).
    const Model<float> hf_f = load_model<float>(dir);
    const Mat<float> l_gguf = forward(gf, ids).logits;
    const Mat<float> l_hf = forward(hf_f, ids).logits;
    const double dl = max_abs_diff(l_gguf, l_hf);
    const double scale = l_hf.cwiseAbs().maxCoeff();
    std::printf("  GGUF F32 vs safetensors logits (float): max_abs %.3e, rel %.3e (tol %.0e)\n", dl,
                dl / scale, tolerance::same_weights_f32_rel);
    CHECK(dl / scale <= tolerance::same_weights_f32_rel);
    const double dld = max_abs_diff(forward(gd, ids).logits, forward(hf, ids).logits);
    std::printf("  GGUF F32 vs safetensors logits (double): max_abs %.3e\n", dld);
    CHECK(dld / scale <= tolerance::golden_f64_exact_rel);

    // Without the converter's permutation the interleaved RoPE rotates the wrong pairs:
    // the loader must not be right by accident.
    const Model<float> unpermuted = load_model<float>(llama_gguf(hf, kF32, false).write("unpermuted.gguf"));
    const double du = max_abs_diff(forward(unpermuted, ids).logits, l_hf);
    std::printf("  GGUF F32 without the q/k permutation: logits rel error %.3e (must be large)\n",
                du / scale);
    CHECK(du / scale > 1e-3);

    // ---- F16 and BF16 ----
    // Each 2-D weight is rounded to 11 (F16) or 8 (BF16) significant bits; the file must
    // decode to exactly those values, and the forward pass moves away from the float32
    // goldens by the rounding's effect (bounds in tolerance.hpp).
    const std::string f16 = llama_gguf(hf, kF16, true).write("llama-gqa-s1-f16.gguf");
    const Model<double> h16 = load_model<double>(f16);
    check_weights_equal(h16, hf_interleaved, round_f16);
    const double e16 = worst_golden_error("GGUF F16 (double)", h16, ids, dir + "/golden_f32.safetensors",
                                          tolerance::gguf_f16_rel);
    worst_golden_error("GGUF F16 (float)", load_model<float>(f16), ids, dir + "/golden_f32.safetensors",
                       tolerance::gguf_f16_rel);

    const std::string bf16 = llama_gguf(hf, kBF16, true).write("llama-gqa-s1-bf16.gguf");
    const Model<double> hb16 = load_model<double>(bf16);
    check_weights_equal(hb16, hf_interleaved, round_bf16);
    const double eb16 = worst_golden_error("GGUF BF16 (double)", hb16, ids, dir + "/golden_f32.safetensors",
                                           tolerance::gguf_bf16_rel);
    worst_golden_error("GGUF BF16 (float)", load_model<float>(bf16), ids, dir + "/golden_f32.safetensors",
                       tolerance::gguf_bf16_rel);
    // BF16 keeps 3 fewer bits than F16: its error is the larger one.
    CHECK(eb16 > e16);
}

TEST_CASE("stories260K through GGUF F32 matches the llama2.c goldens", "[gguf][stories260K]") {
    SKIP_WITHOUT_SHARED();
    const std::string wdir = depass_test::weights_dir();
    const Model<double> bin = load_model<double>(wdir + "/stories260K.bin");
    REQUIRE(bin.cfg.rope == RopeStyle::Interleaved);  // llama2.c rows are already interleaved
    REQUIRE(bin.cfg.tied_embeddings);
    const std::string path = llama_gguf(bin, kF32, false).write("stories260K-f32.gguf");

    const Model<float> g = load_model<float>(path);
    CHECK(g.cfg.rope == RopeStyle::Interleaved);
    CHECK(g.cfg.tied_embeddings);
    CHECK(g.w.lm_head.size() == 0);
    CHECK(g.cfg.V == 512);
    CHECK(g.cfg.Hkv == 4);
    check_weights_equal(g, bin, [](double x) { return x; });

    const std::vector<int> ids = {1,   403, 407, 261, 378, 432, 383, 286,
                                  261, 376, 298, 315, 421, 395, 317, 426};
    const Tensor<float> ref = read_npy<float>(wdir + "/golden/stories260K_once.logits.npy");
    const Mat<float> logits = forward(g, ids).logits;
    REQUIRE(size_t(logits.size()) == ref.size());
    const auto d = depass_test::diff(logits.data(), ref.data.data(), ref.size());
    std::printf("  stories260K GGUF F32 logits vs llama2.c: max_abs %.3e (tol %.0e)\n", d.max_abs,
                tolerance::llama2c_logits_abs);
    CHECK(d.max_abs <= tolerance::llama2c_logits_abs);
    // Identical weights and layout as the .bin: identical float logits.
    const Model<float> binf = load_model<float>(wdir + "/stories260K.bin");
    CHECK(max_abs_diff(logits, forward(binf, ids).logits) == 0);
    // Greedy continuation of the prompt reproduces the golden tokens.
    CHECK(generate_greedy(g, std::vector<int>(ids.begin(), ids.begin() + 5), 11) ==
          std::vector<int>(ids.begin() + 5, ids.end()));
}

TEST_CASE("GGUF model errors: quantised tensors, architecture, missing / odd tensors", "[gguf][errors]") {
    SKIP_WITHOUT_SHARED();
    const Model<double> hf = load_model<double>(depass_test::fixtures_dir() + "/llama-gqa-s1");

    // A quantised tensor: the container accepts it, reading it does not.
    GgufWriter q = llama_gguf(hf, kF32, true);
    for (auto& t : q.tensors)
        if (t.name == "blk.0.attn_q.weight") {
            t.type = kQ8_0;
            t.data.assign(t.data.size() / 4 / 32 * 34, '\x11');
        }
    const std::string qpath = q.write("quantised.gguf");
    const std::string want = "unsupported tensor type Q8_0 for tensor 'blk.0.attn_q.weight' in " + qpath +
                             " (only F32, F16, BF16 are supported)";
    expect_error([&] { load_model<float>(qpath); }, {want});
    const GgufFile gq = GgufFile::open(qpath);
    CHECK(gq.tensor("blk.0.attn_q.weight").nbytes == 64 * 2 * 34);
    expect_error([&] { gq.read<double>("blk.0.attn_q.weight"); }, {want});
    CHECK(gq.read<double>("blk.0.attn_k.weight").shape == std::vector<int64_t>{32, 64});  // [Hkv*Dh, D]

    // Another architecture.
    GgufWriter a = llama_gguf(hf, kF32, true);
    a.kv.replace(a.kv.find("llama"), 5, "gemma");
    const std::string apath = a.write("gemma.gguf");
    expect_error([&] { load_model<float>(apath); }, {apath, "general.architecture", "'gemma'"});

    // A missing tensor, a wrong shape, an unexpected tensor, a missing key.
    GgufWriter m = llama_gguf(hf, kF32, true);
    for (size_t k = 0; k < m.tensors.size(); ++k)
        if (m.tensors[k].name == "blk.1.ffn_up.weight") m.tensors.erase(m.tensors.begin() + long(k));
    const std::string mpath = m.write("missing.gguf");
    expect_error([&] { load_model<float>(mpath); },
                 {mpath, "missing tensor 'blk.1.ffn_up.weight'", "[160, 64]"});

    GgufWriter s = llama_gguf(hf, kF32, true);
    for (auto& t : s.tensors)
        if (t.name == "blk.0.ffn_down.weight") std::swap(t.ne[0], t.ne[1]);
    const std::string spath = s.write("shape.gguf");
    expect_error([&] { load_model<float>(spath); },
                 {spath, "'blk.0.ffn_down.weight'", "[160, 64]", "[64, 160]"});

    GgufWriter u = llama_gguf(hf, kF32, true);
    const Vec<double> extra = Vec<double>::Ones(8);
    u.matrix("blk.0.extra.weight", extra.data(), 0, 8, kF32);
    const std::string upath = u.write("unexpected.gguf");
    expect_error([&] { load_model<float>(upath); }, {upath, "unexpected tensor 'blk.0.extra.weight'"});

    GgufWriter k = llama_gguf(hf, kF32, true);
    k.kv.replace(k.kv.find("llama.block_count"), 17, "llama.block_kount");
    const std::string kpath = k.write("nokey.gguf");
    expect_error([&] { load_model<float>(kpath); }, {kpath, "missing metadata key 'llama.block_count'"});
}

TEST_CASE("llama3-rope-s2 through GGUF with rope_freqs.weight agrees with the Hugging Face load",
          "[gguf][fixtures][rope]") {
    SKIP_WITHOUT_SHARED();
    const std::string dir = depass_test::fixtures_dir() + "/llama3-rope-s2";
    const auto ids = fixture_ids(dir);
    const Model<double> hf = load_model<double>(dir);
    const RopeScaling& s = hf.cfg.rope_scaling;
    REQUIRE(s.kind == RopeScalingKind::Llama3);

    // The factors as llama.cpp's converter writes them: per pair, from the wavelength
    // 2 pi / f of the unscaled frequency f = theta^(-2i/Dh): 1 below M / high_freq_factor,
    // the factor above M / low_freq_factor, 1 / ((1 - smooth) / factor + smooth) between.
    const int half = hf.cfg.Dh / 2;
    Vec<double> factors(half);
    for (int i = 0; i < half; ++i) {
        const double f = std::pow(hf.cfg.rope_theta, -2.0 * i / hf.cfg.Dh);
        const double w = 2 * std::acos(-1.0) / f;
        const double M = s.original_max_positions;
        if (w < M / s.high_freq_factor) {
            factors[i] = 1;
        } else if (w > M / s.low_freq_factor) {
            factors[i] = s.factor;
        } else {
            const double sm = (M / w - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
            factors[i] = 1 / ((1 - sm) / s.factor + sm);
        }
    }
    // All three regimes occur in this fixture.
    CHECK(factors[0] == 1);
    CHECK(factors[1] > 1);
    CHECK(factors[1] < s.factor);
    CHECK(factors[half - 1] == s.factor);

    GgufWriter w = llama_gguf(hf, kF32, true);
    w.matrix("rope_freqs.weight", factors.data(), 0, half, kF32);
    const std::string path = w.write("llama3-rope-s2-f32.gguf");
    const Model<double> gd = load_model<double>(path);
    const Model<float> gf = load_model<float>(path);
    CHECK(gd.cfg.rope_scaling.kind == RopeScalingKind::None);  // the factors carry the scaling
    REQUIRE(gd.cfg.rope_freq_factors.size() == size_t(half));
    for (int i = 0; i < half; ++i) CHECK(gd.cfg.rope_freq_factors[size_t(i)] == double(float(factors[i])));

    // Double: the GGUF copy equals the directory load up to the rounding of the factors to
    // float32 (relative 6e-8 of a frequency; 5e-8 measured on the logits).
    const Mat<double> l_hf = forward(hf, ids).logits;
    const double scale = l_hf.cwiseAbs().maxCoeff();
    const double dd = max_abs_diff(forward(gd, ids).logits, l_hf) / scale;
    std::printf("  llama3 GGUF F32 vs safetensors logits (double): rel %.3e\n", dd);
    CHECK(dd <= 1e-6);
    worst_golden_error("llama3 GGUF (float)", gf, ids, dir + "/golden_f32.safetensors",
                       tolerance::golden_f32_rel);
    worst_golden_error("llama3 GGUF (double)", gd, ids, dir + "/golden_f64.safetensors",
                       tolerance::golden_f64_rope_rel);
    const double df =
        max_abs_diff(forward(gf, ids).logits, forward(load_model<float>(dir), ids).logits) / scale;
    std::printf("  llama3 GGUF F32 vs safetensors logits (float): rel %.3e (tol %.0e)\n", df,
                tolerance::same_weights_f32_rel);
    CHECK(df <= tolerance::same_weights_f32_rel);

    // Without the tensor the frequencies are unscaled and the model is another one.
    const Model<double> plain = load_model<double>(llama_gguf(hf, kF32, true).write("llama3-no-freqs.gguf"));
    const double dp = max_abs_diff(forward(plain, ids).logits, l_hf) / scale;
    std::printf("  llama3 GGUF without rope_freqs.weight: logits rel %.3e (must be large)\n", dp);
    CHECK(dp > 1e-3);

    // Linear scaling is metadata (llama.rope.scaling.type / .factor); other types are refused.
    GgufWriter lin = llama_gguf(hf, kF32, true);
    lin.str("llama.rope.scaling.type", "linear");
    lin.f32("llama.rope.scaling.factor", 4.0f);
    const Config lc = load_model<float>(lin.write("llama-linear.gguf")).cfg;
    CHECK(lc.rope_scaling.kind == RopeScalingKind::Linear);
    CHECK(lc.rope_scaling.factor == 4.0);
    GgufWriter yarn = llama_gguf(hf, kF32, true);
    yarn.str("llama.rope.scaling.type", "yarn");
    const std::string ypath = yarn.write("llama-yarn.gguf");
    expect_error([&] { load_model<float>(ypath); }, {ypath, "'llama.rope.scaling.type'", "'yarn'"});

    // A factor table of the wrong length or type is refused, naming the tensor.
    GgufWriter bad = llama_gguf(hf, kF32, true);
    bad.matrix("rope_freqs.weight", factors.data(), 0, half - 1, kF32);
    const std::string bpath = bad.write("llama3-bad-freqs.gguf");
    expect_error([&] { load_model<float>(bpath); }, {bpath, "'rope_freqs.weight'", "[7]", "[8]"});
    GgufWriter bad16 = llama_gguf(hf, kF32, true);
    bad16.matrix("rope_freqs.weight", factors.data(), 0, half, kF16);
    const std::string b16 = bad16.write("llama3-f16-freqs.gguf");
    expect_error([&] { load_model<float>(b16); }, {b16, "'rope_freqs.weight'", "F16", "expected F32"});
}
