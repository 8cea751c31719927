// config.cpp -- Hugging Face config.json -> Config, consistency checks, and a
// one-line description.
//
// Supported model_type values:
//   llama, mistral, qwen2  RMSNorm, SwiGLU with SiLU, rotate-half RoPE.
//                          qwen2 always has q/k/v biases; llama/mistral take
//                          `attention_bias` (q/k/v/o biases, default false).
//                          `mlp_bias` true is rejected. `rope_scaling` of type
//                          linear or llama3 is read (config_rope.cpp); other
//                          types are rejected. A sliding window (mistral `sliding_window`,
//                          qwen2 with `use_sliding_window`) smaller than
//                          max_position_embeddings caps max_positions at the
//                          window: up to that length sliding-window attention
//                          equals full causal attention, and longer inputs are
//                          refused by the length check instead of computed wrongly.
//   gpt2                   LayerNorm, GELU (tanh) MLP, learned positions,
//                          biases everywhere, tied embeddings by default.
// Token ids: `bos_token_id` / `eos_token_id` default to 1 / 2 (gpt2: 50256)
// when absent; an explicit null gives -1 ("none"); a list takes its first id.
// A `quantization_config` (GPTQ, AWQ, bitsandbytes, ...) is rejected for every type.
// Informational fields (torch_dtype / dtype, architectures, ...) are ignored.
#include "depass/config.hpp"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "config_rope.hpp"
#include "depass/io.hpp"
#include "json_guard.hpp"

using json = nlohmann::json;

namespace depass {

namespace {

class Fields {
public:
    Fields(const std::string& file, const json& j) : file_(file), j_(j) {}

    bool present(const char* name) const { return j_.contains(name) && !j_[name].is_null(); }
    bool is_null(const char* name) const { return j_.contains(name) && j_[name].is_null(); }

    [[noreturn]] void missing(const char* name) const {
        throw Error(file_ + ": missing required field '" + name + "'");
    }
    [[noreturn]] void bad_type(const char* name, const char* want) const {
        throw Error(file_ + ": field '" + name + "' must be " + want + ", got " +
                    detail::json_brief(j_[name]));
    }

    // A size (hidden size, layers, heads, vocab, ...): an integer in 1..kMaxDim.
    int get_dim(const char* name) const { return check_dim(name, get_int(name)); }
    int get_dim(const char* name, int def) const { return present(name) ? get_dim(name) : def; }

    int get_int(const char* name) const {
        if (!present(name)) missing(name);
        return to_int(name, j_[name]);
    }
    int get_int(const char* name, int def) const { return present(name) ? to_int(name, j_[name]) : def; }

    double get_double(const char* name) const {
        if (!present(name)) missing(name);
        return to_double(name);
    }
    double get_double(const char* name, double def) const { return present(name) ? to_double(name) : def; }

    bool get_bool(const char* name, bool def) const {
        if (!present(name)) return def;
        if (!j_[name].is_boolean()) bad_type(name, "true or false");
        return j_[name].get<bool>();
    }

    std::string get_string(const char* name) const {
        if (!present(name)) missing(name);
        if (!j_[name].is_string()) bad_type(name, "a string");
        return j_[name].get<std::string>();
    }
    std::string get_string(const char* name, const std::string& def) const {
        return present(name) ? get_string(name) : def;
    }

    // bos/eos: absent -> def, null -> -1, list -> first element.
    int get_token_id(const char* name, int def) const {
        if (!j_.contains(name)) return def;
        const json& v = j_[name];
        if (v.is_null()) return -1;
        if (v.is_array()) {
            if (v.empty()) return -1;
            return to_int(name, v[0]);
        }
        return to_int(name, v);
    }

private:
    int check_dim(const char* name, int v) const {
        if (v < 1 || v > kMaxDim) {
            throw Error(file_ + ": field '" + name + "' = " + std::to_string(v) + " is out of range (1.." +
                        std::to_string(kMaxDim) + ")");
        }
        return v;
    }
    int to_int(const char* name, const json& v) const {
        if (v.is_number_integer()) {
            if (v.is_number_unsigned()) {
                uint64_t u = v.get<uint64_t>();
                if (u > static_cast<uint64_t>(std::numeric_limits<int>::max()))
                    bad_type(name, "an int32 integer");
                return static_cast<int>(u);
            }
            int64_t s = v.get<int64_t>();
            if (s < std::numeric_limits<int>::min() || s > std::numeric_limits<int>::max()) {
                bad_type(name, "an int32 integer");
            }
            return static_cast<int>(s);
        }
        if (v.is_number_float()) {
            double d = v.get<double>();
            if (std::floor(d) == d && std::abs(d) <= std::numeric_limits<int>::max())
                return static_cast<int>(d);
        }
        bad_type(name, "an integer");
    }
    double to_double(const char* name) const {
        const json& v = j_[name];
        if (!v.is_number()) bad_type(name, "a number");
        return v.get<double>();
    }

    const std::string& file_;
    const json& j_;
};

void read_llama_family(const Fields& f, const std::string& file, Config& c) {
    c.D = f.get_dim("hidden_size");
    c.I = f.get_dim("intermediate_size");
    c.L = f.get_dim("num_hidden_layers");
    c.H = f.get_dim("num_attention_heads");
    c.Hkv = f.get_dim("num_key_value_heads", c.H);
    c.V = f.get_dim("vocab_size");
    c.max_positions = f.get_dim("max_position_embeddings");
    if (c.H <= 0)
        throw Error(file + ": field 'num_attention_heads' must be positive, got " + std::to_string(c.H));
    if (f.present("head_dim")) {
        c.Dh = f.get_dim("head_dim");
    } else {
        if (c.D % c.H != 0) {
            throw Error(file + ": field 'hidden_size' (" + std::to_string(c.D) +
                        ") is not a multiple of 'num_attention_heads' (" + std::to_string(c.H) +
                        ") and no 'head_dim' is given");
        }
        c.Dh = c.D / c.H;
    }
    c.norm_eps = f.get_double("rms_norm_eps", 1e-6);  // the Hugging Face default
    c.rope_theta = f.get_double("rope_theta", 10000.0);
    c.tied_embeddings = f.get_bool("tie_word_embeddings", false);
    c.bos_id = f.get_token_id("bos_token_id", 1);
    c.eos_id = f.get_token_id("eos_token_id", 2);

    const std::string act = f.get_string("hidden_act", "silu");
    if (act != "silu") {
        throw Error(file + ": field 'hidden_act' = '" + act + "' is not supported (only \"silu\")");
    }
    // ('rope_scaling' is read by read_hf_config, see config_rope.cpp)
    if (f.get_bool("mlp_bias", false)) {
        throw Error(file + ": field 'mlp_bias' = true is unsupported (SwiGLU MLP biases)");
    }

    // The family's flags come from preset(); a Llama or Mistral may add attention biases.
    if (c.model_type != "qwen2") c.qkv_bias = c.o_bias = f.get_bool("attention_bias", false);

    // Sliding-window attention: cap the supported length at the window.
    bool window_active = false;
    if (c.model_type == "mistral") window_active = f.present("sliding_window");
    if (c.model_type == "qwen2")
        window_active = f.get_bool("use_sliding_window", false) && f.present("sliding_window");
    if (window_active) {
        const int w = f.get_int("sliding_window");
        if (w <= 0) throw Error(file + ": field 'sliding_window' must be positive, got " + std::to_string(w));
        if (w < c.max_positions) c.max_positions = w;
    }
}

void read_gpt2(const Fields& f, const std::string& file, Config& c) {
    c.D = f.get_dim("n_embd");
    c.L = f.get_dim("n_layer");
    c.H = f.get_dim("n_head");
    c.V = f.get_dim("vocab_size");
    c.max_positions = f.get_dim("n_positions");
    c.I = f.get_dim("n_inner", 4 * c.D);  // n_embd <= kMaxDim: no overflow
    c.Hkv = c.H;
    if (c.H <= 0) throw Error(file + ": field 'n_head' must be positive, got " + std::to_string(c.H));
    if (c.D % c.H != 0) {
        throw Error(file + ": field 'n_embd' (" + std::to_string(c.D) + ") is not a multiple of 'n_head' (" +
                    std::to_string(c.H) + ")");
    }
    c.Dh = c.D / c.H;
    c.norm_eps = f.get_double("layer_norm_epsilon", 1e-5);
    c.rope_theta = 10000.0;  // unused
    c.tied_embeddings = f.get_bool("tie_word_embeddings", true);
    c.bos_id = f.get_token_id("bos_token_id", 50256);
    c.eos_id = f.get_token_id("eos_token_id", 50256);

    const std::string act = f.get_string("activation_function", "gelu_new");
    if (act != "gelu_new" && act != "gelu_pytorch_tanh") {
        throw Error(file + ": field 'activation_function' = '" + act +
                    "' is not supported (only \"gelu_new\" / \"gelu_pytorch_tanh\")");
    }
    if (f.get_bool("scale_attn_by_inverse_layer_idx", false)) {
        throw Error(file + ": field 'scale_attn_by_inverse_layer_idx' = true is unsupported");
    }
    if (f.get_bool("reorder_and_upcast_attn", false)) {
        throw Error(file + ": field 'reorder_and_upcast_attn' = true is unsupported");
    }
    if (!f.get_bool("scale_attn_weights", true)) {
        throw Error(file + ": field 'scale_attn_weights' = false is unsupported");
    }
}

}  // namespace

Config read_hf_config(const std::string& path_in) {
    std::string path = path_in;
    if (is_directory(path)) path += "/config.json";
    const std::string text = read_text_file(path);
    const json j = detail::parse_json_checked(text, path);
    if (!j.is_object()) throw Error(path + ": config must be a JSON object");
    Fields f(path, j);

    const std::string model_type = f.get_string("model_type");
    if (f.present("quantization_config")) {
        const json& q = j["quantization_config"];
        const std::string method =
            q.is_object() && q.contains("quant_method") && q["quant_method"].is_string()
                ? q["quant_method"].get<std::string>()
                : std::string("unknown");
        throw Error(path + ": field 'quantization_config' (quant_method '" + method +
                    "'): quantised checkpoints are not supported (F32, F16 or BF16 weights only)");
    }
    if (model_type != "llama" && model_type != "mistral" && model_type != "qwen2" && model_type != "gpt2") {
        throw Error(path + ": field 'model_type' = '" + model_type +
                    "' is not supported (supported: llama, mistral, qwen2, gpt2)");
    }
    Config c = preset(parse_arch(model_type));
    c.source = path;
    if (c.mlp == MlpKind::SwiGLU) {
        read_llama_family(f, path, c);
        c.rope_scaling = detail::read_rope_scaling(path, j);
    } else {
        read_gpt2(f, path, c);
    }
    validate_config(c);
    return c;
}

}  // namespace depass
