// resources.hpp -- what the machine has free, and the check that a run fits before it starts.
#pragma once

#include <cstdint>
#include <string>

#include "depass/config.hpp"
#include "depass/estimate.hpp"
#include "depass/io.hpp"  // WeightMode

namespace depass {

// Memory free for a new run: MemAvailable of /proc/meminfo, lowered to the cgroup's remaining
// allowance (memory.max - memory.current, cgroup v2; limit_in_bytes - usage_in_bytes, v1)
// when one is set. DEPASS_FREE_MEMORY=<bytes> (suffixes K, M, G allowed) replaces the measured
// value: for tests, and to run anyway on a machine whose estimate is too cautious.
struct FreeMemory {
    uint64_t mem_available = 0;  // /proc/meminfo MemAvailable (0: unknown)
    uint64_t cgroup_limit = 0;   // 0: none set
    uint64_t cgroup_used = 0;
    uint64_t free = 0;   // what a run may use (0: unknown: no check)
    std::string source;  // how `free` was found, for messages
};
FreeMemory free_memory();

// A run refused because it would not fit in the free memory (require_memory).
class ResourceError : public Error {
public:
    using Error::Error;
};

// How the caller spells the ways out of a refusal, for the message (the command line's
// flags by default; a language binding passes its own argument names).
struct ResourceHints {
    std::string streamed = "--weights streamed";
    std::string f32 = "--dtype f32";
    std::string later_layer = "a later --layer";
    std::string inspect = "see `depass inspect --model MODEL`";  // MODEL is replaced by the path
};

// Throws ResourceError before anything is loaded when the estimated peak of a run (`what`:
// "forward", "token", "module", "head", "neuron", "neuron groups", "subspace") of the model at
// MODEL with `mode` weights (its stored tensor bytes are read from the file headers) exceeds the
// free memory; the message gives the estimate, its parts and the free memory.
// `weights_loaded`: the model is already in memory (a library caller holding it), so only
// what the run adds is compared with what is free: the trace, the decomposed pass or the
// output, and with streamed weights the block being widened.
void require_memory(const std::string& model, const Config& cfg, int N, int scalar_bytes,
                    const std::string& what, WeightMode mode, const EstimateOptions& opt = {},
                    bool weights_loaded = false, const ResourceHints& hints = {});

// The same for a model file already described (model_info.hpp): no file is read again.
struct ModelFileInfo;
void require_memory(const ModelFileInfo& info, const Config& cfg, int N, int scalar_bytes,
                    const std::string& what, WeightMode mode, const EstimateOptions& opt = {},
                    bool weights_loaded = false, const ResourceHints& hints = {});

// "resident", "streamed", or "auto" = streamed when every weight widened to `scalar_bytes`
// would take more than half of the free memory (and resident when the free memory is unknown).
// A llama2.c file is always resident. Throws depass::Error for any other choice.
WeightMode choose_weight_mode(const std::string& choice, const std::string& model, const Config& cfg,
                              int scalar_bytes);

}  // namespace depass
