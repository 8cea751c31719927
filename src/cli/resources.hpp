// resources.hpp -- the --weights choice of the command line (the checks: depass/resources.hpp).
#pragma once

#include <cstdint>
#include <string>

#include "common.hpp"
#include "depass/config.hpp"
#include "depass/estimate.hpp"
#include "depass/io.hpp"  // WeightMode
#include "depass/resources.hpp"

namespace depass::cli {

// free_memory, require_memory, choose_weight_mode: depass/resources.hpp.

// --weights: resident, streamed, or auto = streamed when every weight widened to `scalar_bytes`
// would take more than half of the free memory (and resident when the free memory is unknown).
// A llama2.c file is always resident.
WeightMode weight_mode(const InputOptions& o, const Config& cfg, int scalar_bytes);

}  // namespace depass::cli
