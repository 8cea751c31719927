// weights_mode.cpp -- the --weights choice (resources.hpp).
#include "resources.hpp"

namespace depass::cli {

WeightMode weight_mode(const InputOptions& o, const Config& cfg, int scalar_bytes) {
    if (o.weights != "auto" && o.weights != "resident" && o.weights != "streamed")
        throw UsageError("--weights: '" + o.weights + "' (expected auto, resident or streamed)");
    return choose_weight_mode(o.weights, o.model, cfg, scalar_bytes);
}

}  // namespace depass::cli
