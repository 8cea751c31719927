// config.cpp -- checks and descriptions of a config, and what the model derives from it.
#include "depass/config.hpp"

#include <cmath>
#include <sstream>
#include <string>

#include "depass/enum_names.hpp"

namespace depass {

namespace {

std::string num_str(double v) {
    std::ostringstream os;
    os << v;
    return os.str();
}

// The scaling parameters and GGUF factors of the RoPE table.
void validate_rope_scaling(const std::string& where, const Config& c) {
    const RopeScaling& s = c.rope_scaling;
    auto positive = [&](const char* field, double v) {
        if (!(v > 0) || !std::isfinite(v))
            throw Error(where + field + " must be positive and finite, got " + num_str(v));
    };
    if (s.kind != RopeScalingKind::None) positive("rope_scaling.factor", s.factor);
    if (s.kind == RopeScalingKind::Llama3) {
        positive("rope_scaling.low_freq_factor", s.low_freq_factor);
        positive("rope_scaling.high_freq_factor", s.high_freq_factor);
        positive("rope_scaling.original_max_position_embeddings", s.original_max_positions);
        if (!(s.high_freq_factor > s.low_freq_factor))
            throw Error(where + "rope_scaling.high_freq_factor (" + num_str(s.high_freq_factor) +
                        ") must exceed rope_scaling.low_freq_factor (" + num_str(s.low_freq_factor) + ")");
    }
    if (!c.rope_freq_factors.empty()) {
        if (c.rope_freq_factors.size() != size_t(c.Dh / 2))
            throw Error(where + "rope_freqs has " + std::to_string(c.rope_freq_factors.size()) +
                        " entries, expected Dh/2 = " + std::to_string(c.Dh / 2));
        for (size_t i = 0; i < c.rope_freq_factors.size(); ++i)
            if (!(c.rope_freq_factors[i] > 0) || !std::isfinite(c.rope_freq_factors[i]))
                throw Error(where + "rope_freqs[" + std::to_string(i) +
                            "] must be positive and finite, got " + num_str(c.rope_freq_factors[i]));
    }
}

}  // namespace

Config preset(Arch arch) {
    Config c;
    c.norm = NormKind::RMSNorm;
    c.mlp = MlpKind::SwiGLU;
    c.act = Activation::SiLU;
    c.rope = RopeStyle::Half;
    switch (arch) {
        case Arch::Llama:
            c.model_type = "llama";
            break;
        case Arch::Mistral:
            c.model_type = "mistral";
            break;
        case Arch::Qwen2:
            c.model_type = "qwen2";
            c.qkv_bias = true;
            break;
        case Arch::Llama2c:
            c.model_type = "llama2c";
            c.rope = RopeStyle::Interleaved;
            c.tied_embeddings = true;
            break;
        case Arch::Gpt2:
            c.model_type = "gpt2";
            c.norm = NormKind::LayerNorm;
            c.mlp = MlpKind::GeluMLP;
            c.act = Activation::GeluTanh;
            c.rope = RopeStyle::None;
            c.learned_positions = true;
            c.tied_embeddings = true;
            c.qkv_bias = c.o_bias = c.mlp_bias = true;
            break;
    }
    return c;
}

namespace {
const NamedValue<Arch> kArchs[] = {{Arch::Llama, "llama"},
                                   {Arch::Mistral, "mistral"},
                                   {Arch::Qwen2, "qwen2"},
                                   {Arch::Gpt2, "gpt2"},
                                   {Arch::Llama2c, "llama2c"}};
}  // namespace

Arch parse_arch(const std::string& t) {
    Arch a;
    if (value_in(kArchs, t, &a)) return a;
    throw Error("model_type '" + t + "' is not supported (supported: " + names_in(kArchs, ", ") + ")");
}

std::vector<double> rope_inv_freq(const Config& cfg) {
    std::vector<double> f = rope_inv_freq(cfg.Dh, cfg.rope_theta, cfg.rope_scaling);
    if (!cfg.rope_freq_factors.empty()) {
        if (cfg.rope_freq_factors.size() != f.size()) {
            throw Error("rope_inv_freq: " + std::to_string(cfg.rope_freq_factors.size()) +
                        " frequency factors for " + std::to_string(f.size()) + " RoPE pairs");
        }
        for (size_t i = 0; i < f.size(); ++i) f[i] /= cfg.rope_freq_factors[i];
    }
    return f;
}

void validate_config(const Config& c) {
    const std::string where = (c.source.empty() ? std::string("config") : c.source) + ": ";
    auto positive = [&](const char* field, long long v) {
        if (v <= 0) throw Error(where + field + " must be positive, got " + std::to_string(v));
        if (v > kMaxDim) {
            throw Error(where + field + " = " + std::to_string(v) + " is larger than the limit " +
                        std::to_string(kMaxDim));
        }
    };
    positive("D (hidden size)", c.D);
    positive("I (MLP width)", c.I);
    positive("L (layers)", c.L);
    positive("H (attention heads)", c.H);
    positive("Hkv (key/value heads)", c.Hkv);
    positive("Dh (head dim)", c.Dh);
    positive("V (vocab size)", c.V);
    positive("max_positions", c.max_positions);
    // Products in 64 bits (each factor is at most 2^24), bounded before any int holds them.
    auto elements = [&](const char* what, long long a, long long b) {
        if (a * b > kMaxElements) {
            throw Error(where + what + " = " + std::to_string(a) + " * " + std::to_string(b) +
                        " is larger than the limit of " + std::to_string(kMaxElements) + " values");
        }
    };
    elements("H * Dh (query width)", c.H, c.Dh);
    elements("Hkv * Dh (key/value width)", c.Hkv, c.Dh);
    elements("V * D (embedding matrix)", c.V, c.D);
    elements("I * D (MLP matrix)", c.I, c.D);
    elements("H * Dh * D (query matrix)", (long long)c.H * c.Dh, c.D);
    if (c.learned_positions) elements("max_positions * D (position embeddings)", c.max_positions, c.D);
    if (c.H % c.Hkv != 0) {
        throw Error(where + "H (attention heads) = " + std::to_string(c.H) +
                    " is not a multiple of Hkv (key/value heads) = " + std::to_string(c.Hkv));
    }
    if (!(c.norm_eps > 0) || !std::isfinite(c.norm_eps)) {
        throw Error(where + "norm_eps must be positive and finite, got " + std::to_string(c.norm_eps));
    }
    if (c.rope != RopeStyle::None) {
        if (!(c.rope_theta > 0) || !std::isfinite(c.rope_theta)) {
            throw Error(where + "rope_theta must be positive and finite, got " +
                        std::to_string(c.rope_theta));
        }
        if (c.Dh % 2 != 0)
            throw Error(where + "Dh (head dim) must be even for RoPE, got " + std::to_string(c.Dh));
        validate_rope_scaling(where, c);
    }
    if ((c.model_type == "gpt2" || c.model_type == "llama2c") && (long long)c.D != (long long)c.H * c.Dh) {
        throw Error(where + "D (" + std::to_string(c.D) + ") must equal H * Dh (" + std::to_string(c.H) +
                    " * " + std::to_string(c.Dh) + ") for " + c.model_type);
    }
    if (c.mlp == MlpKind::SwiGLU && c.mlp_bias) {
        throw Error(where + "mlp_bias is unsupported for the SwiGLU MLP");
    }
    if (c.learned_positions && c.rope != RopeStyle::None) {
        throw Error(where + "learned positions and RoPE together are not supported");
    }
}

std::string describe(const Config& c) {
    std::ostringstream os;
    os << c.model_type << ": D=" << c.D << " I=" << c.I << " L=" << c.L << " H=" << c.H << " Hkv=" << c.Hkv
       << " Dh=" << c.Dh << " V=" << c.V << " max_pos=" << c.max_positions << ' '
       << (c.norm == NormKind::RMSNorm ? "RMSNorm" : "LayerNorm") << "(eps=" << c.norm_eps << ") "
       << (c.mlp == MlpKind::SwiGLU ? "SwiGLU" : "GeluMLP") << '/'
       << (c.act == Activation::SiLU ? "SiLU" : "GeluTanh") << " rope=";
    switch (c.rope) {
        case RopeStyle::None:
            os << "none";
            break;
        case RopeStyle::Interleaved:
            os << "interleaved(theta=" << c.rope_theta << ")";
            break;
        case RopeStyle::Half:
            os << "half(theta=" << c.rope_theta << ")";
            break;
    }
    if (c.rope_scaling.kind == RopeScalingKind::Linear)
        os << " rope_scaling=linear(factor=" << c.rope_scaling.factor << ")";
    if (c.rope_scaling.kind == RopeScalingKind::Llama3)
        os << " rope_scaling=llama3(factor=" << c.rope_scaling.factor
           << " low=" << c.rope_scaling.low_freq_factor << " high=" << c.rope_scaling.high_freq_factor
           << " original_max=" << c.rope_scaling.original_max_positions << ")";
    if (!c.rope_freq_factors.empty()) os << " rope_freqs[" << c.rope_freq_factors.size() << "]";
    if (c.learned_positions) os << " learned_pos";
    os << " tied=" << (c.tied_embeddings ? "yes" : "no");
    std::string biases;
    if (c.qkv_bias) biases += "qkv,";
    if (c.o_bias) biases += "o,";
    if (c.mlp_bias) biases += "mlp,";
    if (!biases.empty()) biases.pop_back();
    os << " bias=" << (biases.empty() ? "none" : biases);
    return os.str();
}

}  // namespace depass
