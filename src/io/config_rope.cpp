// config_rope.cpp -- the `rope_scaling` block of config.json -> RopeScaling.
//
// Llama 3.1 / 3.2 / 3.3 configs carry
//   "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
//                    "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
// and older linear-interpolation configs {"type": "linear", "factor": 2.0}. The table
// these define is computed by rope_inv_freq (src/ops/rope_freq.cpp).
#include "config_rope.hpp"

#include <cmath>
#include <sstream>

#include "depass/types.hpp"
#include "json_guard.hpp"

using json = nlohmann::json;

namespace depass::detail {

namespace {

double number(const std::string& file, const json& block, const char* name) {
    const std::string field = std::string("rope_scaling.") + name;
    if (!block.contains(name) || block[name].is_null())
        throw Error(file + ": missing required field '" + field + "' (rope_scaling " + json_brief(block) +
                    ")");
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
    if (!b[key].is_string())
        throw Error(file + ": field '" + field + "' must be a string, got " + json_brief(b[key]));
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

}  // namespace depass::detail
