// bench_stream -- real model shapes with streamed weights: time and peak memory.
//
//   bench_stream make CONFIG.json OUTDIR [--layers L]
//       writes OUTDIR/config.json (CONFIG, with num_hidden_layers = L when given) and
//       OUTDIR/model.safetensors with random BF16 weights of that shape (matrices uniform
//       with standard deviation 0.02, norm gains 1, biases 0), tensor by tensor, so that
//       even an 8B model is written without holding it in memory.
//   bench_stream run MODEL --what forward|token --tokens N [--dtype f32|f64] [--threads T]
//                    [--weights streamed|resident]
//       loads MODEL, runs the forward pass or token-level attribution of N random ids once,
//       and prints one line: load and run seconds, the process's peak resident memory
//       (getrusage: it covers the load and the run), the weight files' size and their ratio.
//       Each run is a process of its own, so the peak belongs to that configuration only.
//
// bench/stream_table.sh runs the table of docs/models.md with it.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "bench_common.hpp"
#include "depass/attribute.hpp"
#include "depass/io.hpp"

using namespace depass;
using namespace depass::bench;
namespace fs = std::filesystem;

namespace {

struct Planned {
    std::string name;
    std::vector<int64_t> shape;
    float fill;  // NaN: random; otherwise this constant
};

int64_t numel(const std::vector<int64_t>& s) {
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    return n;
}

// The tensors of a llama / mistral / qwen2 checkpoint of shape c, Hugging Face names.
std::vector<Planned> llama_tensors(const Config& c) {
    const float rnd = std::nanf("");
    const int64_t D = c.D, I = c.I, V = c.V, QD = int64_t(c.H) * c.Dh, KVD = int64_t(c.Hkv) * c.Dh;
    std::vector<Planned> t{{"model.embed_tokens.weight", {V, D}, rnd}};
    for (int l = 0; l < c.L; ++l) {
        const std::string p = "model.layers." + std::to_string(l) + ".";
        t.push_back({p + "input_layernorm.weight", {D}, 1.0f});
        t.push_back({p + "self_attn.q_proj.weight", {QD, D}, rnd});
        t.push_back({p + "self_attn.k_proj.weight", {KVD, D}, rnd});
        t.push_back({p + "self_attn.v_proj.weight", {KVD, D}, rnd});
        t.push_back({p + "self_attn.o_proj.weight", {D, QD}, rnd});
        if (c.qkv_bias) {
            t.push_back({p + "self_attn.q_proj.bias", {QD}, 0.0f});
            t.push_back({p + "self_attn.k_proj.bias", {KVD}, 0.0f});
            t.push_back({p + "self_attn.v_proj.bias", {KVD}, 0.0f});
        }
        if (c.o_bias) t.push_back({p + "self_attn.o_proj.bias", {D}, 0.0f});
        t.push_back({p + "post_attention_layernorm.weight", {D}, 1.0f});
        t.push_back({p + "mlp.gate_proj.weight", {I, D}, rnd});
        t.push_back({p + "mlp.up_proj.weight", {I, D}, rnd});
        t.push_back({p + "mlp.down_proj.weight", {D, I}, rnd});
    }
    t.push_back({"model.norm.weight", {D}, 1.0f});
    if (!c.tied_embeddings) t.push_back({"lm_head.weight", {V, D}, rnd});
    return t;
}

uint16_t bf16_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return uint16_t(u >> 16);
}

int make(const std::string& config_path, const std::string& out, int layers) {
    nlohmann::json cj = nlohmann::json::parse(read_text_file(config_path));
    if (layers > 0) cj["num_hidden_layers"] = layers;
    fs::create_directories(out);
    write_file_atomic(out + "/config.json", cj.dump(2) + "\n");
    const Config c = read_hf_config(out + "/config.json");
    if (c.model_type == "gpt2")
        throw Error("bench_stream make: GPT-2 shapes are not written (llama, mistral, qwen2)");
    const std::vector<Planned> ts = llama_tensors(c);

    nlohmann::json header = nlohmann::json::object();
    uint64_t off = 0;
    for (const Planned& p : ts) {
        const uint64_t bytes = uint64_t(numel(p.shape)) * 2;
        header[p.name] = {{"dtype", "BF16"}, {"shape", p.shape}, {"data_offsets", {off, off + bytes}}};
        off += bytes;
    }
    std::string h = header.dump();
    h.append((8 - h.size() % 8) % 8, ' ');  // data section 8-byte aligned
    const std::string path = out + "/model.safetensors", tmp = path + ".tmp";
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) throw Error(tmp + ": cannot open for writing");
    const uint64_t hl = h.size();
    std::fwrite(&hl, 8, 1, f);
    std::fwrite(h.data(), 1, h.size(), f);
    std::vector<uint16_t> buf(1 << 20);
    uint64_t state = 0x9E3779B97F4A7C15ull;
    const float scale = 0.02f * std::sqrt(3.0f) / float(1u << 31);  // uniform, std 0.02
    const auto t0 = Clock::now();
    for (const Planned& p : ts) {
        for (int64_t left = numel(p.shape); left > 0;) {
            const size_t n = size_t(std::min<int64_t>(left, int64_t(buf.size())));
            for (size_t i = 0; i < n; ++i) {
                if (std::isnan(p.fill)) {
                    state += 0x9E3779B97F4A7C15ull;  // splitmix64
                    uint64_t z = state;
                    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
                    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
                    z ^= z >> 31;
                    buf[i] = bf16_bits(float(int32_t(uint32_t(z))) * scale);
                } else {
                    buf[i] = bf16_bits(p.fill);
                }
            }
            if (std::fwrite(buf.data(), 2, n, f) != n) {
                std::fclose(f);
                throw Error(tmp + ": write failed (disk full?)");
            }
            left -= int64_t(n);
        }
    }
    if (std::fclose(f) != 0) throw Error(tmp + ": write failed");
    fs::rename(tmp, path);
    std::printf("wrote %s: %zu tensors, %.2f GB (BF16), %.0f s; %s\n", path.c_str(), ts.size(),
                double(fs::file_size(path)) / 1e9, seconds_since(t0), describe(c).c_str());
    return 0;
}

uint64_t weight_bytes(const std::string& dir) {
    uint64_t total = 0;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().extension() == ".safetensors") total += e.file_size();
    return total;
}

template <class T>
int run(const std::string& model_path, const std::string& what, int N, int threads, WeightMode mode) {
    set_threads(threads);
    const auto t0 = Clock::now();
    const Model<T> m = load_model<T>(model_path, mode);
    const double load_s = seconds_since(t0);
    const std::vector<int> ids = random_ids(m.cfg, N, 42);
    const auto t1 = Clock::now();
    double check = 0;
    if (what == "forward") {
        const Trace<T> t = forward(m, ids);
        check = double(t.logits(N - 1, 0));
    } else if (what == "token") {
        AttributionRequest rq;
        rq.start.level = Level::Token;
        const Attribution<T> a = attribute(m, ids, rq);
        check = a.completeness_max_rel;
        if (!(a.completeness_max_rel <= (sizeof(T) == 8 ? 1e-9 : 1e-3)))
            throw Error("completeness violated: " + std::to_string(a.completeness_max_rel));
    } else {
        throw Error("--what: '" + what + "' (forward or token)");
    }
    const double run_s = seconds_since(t1);
    g_sink = check;
    const double file = double(weight_bytes(
        fs::is_directory(model_path) ? model_path : fs::path(model_path).parent_path().string()));
    const double peak = double(ru_maxrss_bytes());
    std::printf(
        "%-8s %-3s N=%-3d threads=%d weights=%s  load %.1f s  run %.1f s  peak RSS %.2f GB  file %.2f GB  "
        "peak/file %.2f  (%s %.2e)\n",
        what.c_str(), sizeof(T) == 8 ? "f64" : "f32", N, threads,
        mode == WeightMode::Streamed ? "streamed" : "resident", load_s, run_s, peak / 1e9, file / 1e9,
        peak / file, what == "token" ? "completeness" : "logit", check);
    return 0;
}

int usage() {
    std::fprintf(
        stderr,
        "usage: bench_stream make CONFIG.json OUTDIR [--layers L]\n"
        "       bench_stream run MODEL --what forward|token --tokens N [--dtype f32|f64] [--threads T]\n"
        "                        [--weights streamed|resident]\n");
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        if (argc < 4) return usage();
        const std::string cmd = argv[1];
        std::map<std::string, std::string> opt;
        for (int i = 4; i + 1 < argc; i += 2) opt[argv[i]] = argv[i + 1];
        auto get = [&](const std::string& k, const std::string& d) { return opt.count(k) ? opt[k] : d; };
        if (cmd == "make") return make(argv[2], argv[3], std::stoi(get("--layers", "0")));
        if (cmd != "run") return usage();
        // argv[3] starts the options for run: re-read them from 3.
        opt.clear();
        for (int i = 3; i + 1 < argc; i += 2) opt[argv[i]] = argv[i + 1];
        const std::string what = get("--what", "token"), dtype = get("--dtype", "f32");
        const int N = std::stoi(get("--tokens", "16")), threads = std::stoi(get("--threads", "1"));
        const WeightMode mode =
            get("--weights", "streamed") == "resident" ? WeightMode::Resident : WeightMode::Streamed;
        return dtype == "f64" ? run<double>(argv[2], what, N, threads, mode)
                              : run<float>(argv[2], what, N, threads, mode);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_stream: %s\n", e.what());
        return 1;
    }
}
