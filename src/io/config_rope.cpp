// config_rope.cpp -- the `rope_scaling` block of config.json -> RopeScaling.
//
// Llama 3.1 / 3.2 / 3.3 configs carry
//   "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
//                    "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
// and older linear-interpolation configs {"type": "linear", "factor": 2.0}. The table
// these define is computed by rope_inv_freq (src/ops/rope_freq.cpp).
#include "config_rope.hpp"

#include "json_guard.hpp"

#include "depass/types.hpp"

#include <cmath>
#include <sstream>

using json = nlohmann::json;

namespace depass::detail {

namespace {

std::string num_str(double v) {
    std::ostringstream os;
    os << v;
    return os.str();
}

double number(const std::string& file, const json& block, const char* name) {
    const std::string field = std::string("rope_scaling.") + name;
    if (!block.contains(name) || block[name].is_null())
        throw Error(file + ": missing required field '" + field + "' (rope_scaling " +
                    json_brief(block) + ")");
    if (!block[name].is_number())
        throw Error(file + ": field '" + field + "' must be a number, got " + json_brief(block[name]));
    return block[name].get<double>();
}

}  // namespace

RopeScaling read_rope_scaling(const std::string& file, const json& config) {
    RopeScaling s;
    if (!config.contains("rope_scaling") || config["rope_scaling"].is_null()) return s;
    const json& b = config["rope_scaling"];
    if (!b.is_object())
        throw Error(file + ": field 'rope_scaling' must be an object or null, got " + json_brief(b));
    const char* key = b.contains("rope_type") ? "rope_type" : b.contains("type") ? "type" : nullptr;
    if (!key)
        throw Error(file + ": field 'rope_scaling' has neither 'rope_type' nor 'type', got " + json_brief(b));
    const std::string field = std::string("rope_scaling.") + key;
    if (!b[key].is_string()) throw Error(file + ": field '" + field + "' must be a string, got " + json_brief(b[key]));
    const std::string type = b[key].get<std::string>();
    if (type == "default") return s;
    if (type == "linear") {
        s.kind = RopeScalingKind::Linear;
        s.factor = number(file, b, "factor");
    } else if (type == "llama3") {
        s.kind = RopeScalingKind::Llama3;
        s.factor = number(file, b, "factor");
        s.low_freq_factor = number(file, b, "low_freq_factor");
        s.high_freq_factor = number(file, b, "high_freq_factor");
        s.original_max_positions = number(file, b, "original_max_position_embeddings");
    } else {
        throw Error(file + ": field '" + field + "' = '" + type +
                    "' is not supported (supported: default, linear, llama3)");
    }
    return s;
}

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
                throw Error(where + "rope_freqs[" + std::to_string(i) + "] must be positive and finite, got " +
                            num_str(c.rope_freq_factors[i]));
    }
}

}  // namespace depass::detail
