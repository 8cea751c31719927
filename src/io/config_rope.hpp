// config_rope.hpp -- `rope_scaling` of a Hugging Face config.json (internal to src/io).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "depass/config.hpp"

namespace depass::detail {

// Reads the `rope_scaling` block. Absent, null or type "default" -> none; "linear" needs
// `factor`; "llama3" needs factor, low_freq_factor, high_freq_factor and
// original_max_position_embeddings. The type is `rope_type`, or `type` in older configs.
// Any other type is refused with a depass::Error naming the file, the field and the type.
RopeScaling read_rope_scaling(const std::string& file, const nlohmann::json& config);

}  // namespace depass::detail
