// weights_mode.cpp -- the --weights choice (resources.hpp).
#include "depass/model_info.hpp"
#include "resources.hpp"

namespace depass::cli {

WeightMode weight_mode(const InputOptions& o, const Config& cfg, int scalar_bytes) {
    WeightMode mode;
    if (o.weights == "resident") {
        mode = WeightMode::Resident;
    } else if (o.weights == "streamed") {
        mode = WeightMode::Streamed;
    } else if (o.weights == "auto") {
        const FreeMemory fm = free_memory();
        const uint64_t widened = weight_count(cfg) * uint64_t(scalar_bytes);
        mode = fm.free > 0 && widened > fm.free / 2 ? WeightMode::Streamed : WeightMode::Resident;
    } else {
        throw UsageError("--weights: '" + o.weights + "' (expected auto, resident or streamed)");
    }
    // The loader keeps a llama2.c file resident whatever is asked: estimate it as such.
    if (mode == WeightMode::Streamed && describe_model_file(o.model).format == "llama2c")
        mode = WeightMode::Resident;
    return mode;
}

}  // namespace depass::cli
