// llama2c.cpp -- the llama2.c "v0" checkpoint (karpathy/llama2.c, run.c):
//
//   7 x int32: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
//   float32 arrays, row-major (out, in):
//     tok_emb[V,D] rms_att[L,D] wq[L,D,D] wk[L,KVD,D] wv[L,KVD,D] wo[L,D,D]
//     rms_ffn[L,D] w1[L,I,D] (gate) w2[L,D,I] (down) w3[L,I,D] (up) rms_final[D]
//     freq_cis_real[seq,Dh/2] freq_cis_imag[seq,Dh/2] (unused) [wcls[V,D]]
//   A negative vocab_size announces the separate classifier wcls.
//
// The file size must match the header exactly; anything else means a wrong
// or damaged file.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "bytes.hpp"
#include "depass/io.hpp"

namespace fs = std::filesystem;

namespace depass {

using detail::add_sat;
using detail::mul_sat;

namespace {

// Sequential float32 reader over the loaded file.
class Cursor {
public:
    explicit Cursor(const std::string& bytes, size_t pos) : b_(bytes), pos_(pos) {}

    template <class T>
    void mat(Mat<T>& m, int rows, int cols) {
        m.resize(rows, cols);
        T* out = m.data();
        const size_t n = static_cast<size_t>(rows) * static_cast<size_t>(cols);
        for (size_t i = 0; i < n; ++i) out[i] = static_cast<T>(next());
    }
    template <class T>
    void vec(Vec<T>& v, int n) {
        v.resize(n);
        for (int i = 0; i < n; ++i) v[i] = static_cast<T>(next());
    }
    void skip(uint64_t floats) { pos_ += static_cast<size_t>(floats) * 4; }
    size_t pos() const { return pos_; }

private:
    float next() {
        float f;
        std::memcpy(&f, b_.data() + pos_, 4);
        pos_ += 4;
        return f;
    }
    const std::string& b_;
    size_t pos_;
};

}  // namespace

Config read_llama2c_config(const std::string& path) {
    std::error_code ec;
    if (!fs::exists(path, ec)) throw Error("no such file or directory: " + path);
    if (fs::is_directory(path, ec))
        throw Error(path + ": is a directory, expected a llama2.c .bin checkpoint");
    const uint64_t size = fs::file_size(path, ec);
    if (ec) throw Error(path + ": cannot determine the file size (" + ec.message() + ")");
    if (size < 28) {
        throw Error(path + ": file is " + std::to_string(size) +
                    " bytes, shorter than the 28-byte llama2.c header (7 int32)");
    }
    int32_t hdr[7];
    {
        std::ifstream in(path, std::ios::binary);
        if (!in || !in.read(reinterpret_cast<char*>(hdr), sizeof hdr))
            throw Error(path + ": cannot read the 28-byte llama2.c header");
    }
    const char* names[7] = {"dim",        "hidden_dim", "n_layers", "n_heads",
                            "n_kv_heads", "vocab_size", "seq_len"};
    for (int i = 0; i < 7; ++i) {
        if (i == 5) {
            if (hdr[i] == 0 || hdr[i] == std::numeric_limits<int32_t>::min()) {
                throw Error(path + ": header field 'vocab_size' = " + std::to_string(hdr[i]) + " is invalid");
            }
        } else if (hdr[i] <= 0) {
            throw Error(path + ": header field '" + names[i] + "' = " + std::to_string(hdr[i]) +
                        " must be positive");
        }
    }
    const int D = hdr[0], I = hdr[1], L = hdr[2], H = hdr[3], Hkv = hdr[4], seq = hdr[6];
    const bool shared = hdr[5] > 0;
    const int V = shared ? hdr[5] : -hdr[5];
    if (D % H != 0) {
        throw Error(path + ": header field 'dim' = " + std::to_string(D) +
                    " is not a multiple of 'n_heads' = " + std::to_string(H));
    }
    if (H % Hkv != 0) {
        throw Error(path + ": header field 'n_heads' = " + std::to_string(H) +
                    " is not a multiple of 'n_kv_heads' = " + std::to_string(Hkv));
    }
    const int Dh = D / H;
    if (Dh % 2 != 0) {
        throw Error(path + ": head dim dim/n_heads = " + std::to_string(Dh) + " must be even for RoPE");
    }
    const uint64_t d = D, i = I, l = L, v = V, kvd = static_cast<uint64_t>(Hkv) * Dh, s = seq, dh = Dh;

    uint64_t floats = 0;
    auto add = [&](uint64_t n) { floats = add_sat(floats, n); };
    add(mul_sat(v, d));                            // tok_emb
    add(mul_sat(l, d));                            // rms_att
    add(mul_sat(l, mul_sat(d, d)));                // wq
    add(mul_sat(2, mul_sat(l, mul_sat(kvd, d))));  // wk, wv
    add(mul_sat(l, mul_sat(d, d)));                // wo
    add(mul_sat(l, d));                            // rms_ffn
    add(mul_sat(3, mul_sat(l, mul_sat(i, d))));    // w1, w2, w3
    add(d);                                        // rms_final
    add(mul_sat(2, mul_sat(s, dh / 2)));           // freq_cis_real, freq_cis_imag
    if (!shared) add(mul_sat(v, d));               // wcls
    const uint64_t expected = add_sat(28, mul_sat(floats, 4));
    if (expected != size) {
        throw Error(path + ": file size is " + std::to_string(size) +
                    " bytes but the header (dim=" + std::to_string(D) + ", hidden_dim=" + std::to_string(I) +
                    ", n_layers=" + std::to_string(L) + ", n_heads=" + std::to_string(H) +
                    ", n_kv_heads=" + std::to_string(Hkv) + ", vocab_size=" + std::to_string(hdr[5]) +
                    ", seq_len=" + std::to_string(seq) + ", " +
                    (shared ? "shared classifier" : "unshared classifier") + ") implies " +
                    std::to_string(expected) + " bytes");
    }

    Config c = preset(Arch::Llama2c);
    c.source = path;
    c.D = D;
    c.I = I;
    c.L = L;
    c.H = H;
    c.Hkv = Hkv;
    c.Dh = Dh;
    c.V = V;
    c.max_positions = seq;
    c.norm_eps = 1e-5;
    c.rope_theta = 10000.0;
    c.tied_embeddings = shared;
    c.bos_id = 1;
    c.eos_id = 2;
    validate_config(c);
    return c;
}

template <class T>
Model<T> read_llama2c(const std::string& path) {
    Model<T> m;
    m.cfg = read_llama2c_config(path);  // the header, checked against the file size
    const Config& c = m.cfg;
    const int D = c.D, I = c.I, L = c.L, H = c.H, Hkv = c.Hkv, Dh = c.Dh, V = c.V;
    const bool shared = c.tied_embeddings;
    const uint64_t s = uint64_t(c.max_positions), dh = uint64_t(Dh), size = fs::file_size(path);
    const std::string bytes = read_text_file(path);
    if (bytes.size() != size) throw Error(path + ": the file changed while it was read");

    Weights<T>& w = m.w;
    w.layers.resize(static_cast<size_t>(L));
    Cursor cur(bytes, 28);
    cur.mat(w.tok_emb, V, D);
    for (auto& ly : w.layers) cur.vec(ly.norm1_g, D);
    for (auto& ly : w.layers) cur.mat(ly.wq, H * Dh, D);
    for (auto& ly : w.layers) cur.mat(ly.wk, Hkv * Dh, D);
    for (auto& ly : w.layers) cur.mat(ly.wv, Hkv * Dh, D);
    for (auto& ly : w.layers) cur.mat(ly.wo, D, H * Dh);
    for (auto& ly : w.layers) cur.vec(ly.norm2_g, D);
    for (auto& ly : w.layers) cur.mat(ly.w_gate, I, D);
    for (auto& ly : w.layers) cur.mat(ly.w_down, D, I);
    for (auto& ly : w.layers) cur.mat(ly.w_up, I, D);
    cur.vec(w.normf_g, D);
    cur.skip(mul_sat(2, mul_sat(s, dh / 2)));
    if (!shared) cur.mat(w.lm_head, V, D);
    if (cur.pos() != size) {
        throw Error(path + ": internal size mismatch after reading (" + std::to_string(cur.pos()) + " of " +
                    std::to_string(size) + " bytes)");
    }
    check_weights(c, w);
    return m;
}

template Model<float> read_llama2c<float>(const std::string&);
template Model<double> read_llama2c<double>(const std::string&);

}  // namespace depass
