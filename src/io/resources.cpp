// resources.cpp -- free memory (/proc/meminfo, cgroups) and the memory check before a run.
#include "depass/resources.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "depass/model_info.hpp"
#include "depass/types.hpp"

namespace depass {

namespace {

// "123", "64M", "2G" -> bytes; false when it is not such a number.
bool parse_size(std::string text, uint64_t* out) {
    if (text.empty()) return false;
    uint64_t mult = 1;
    const char last = char(std::toupper(static_cast<unsigned char>(text.back())));
    if (last == 'K' || last == 'M' || last == 'G' || last == 'T') {
        mult = last == 'K' ? 1ULL << 10 : last == 'M' ? 1ULL << 20 : last == 'G' ? 1ULL << 30 : 1ULL << 40;
        text.pop_back();
    }
    if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos || text.size() > 15)
        return false;
    *out = std::stoull(text) * mult;
    return true;
}

// The first number in a file ("max" or absent: false).
bool read_number(const std::string& path, uint64_t* out) {
    std::ifstream in(path);
    std::string word;
    if (!(in >> word)) return false;
    return parse_size(word, out);
}

// This process's cgroup v2 directory ("0::/path" in /proc/self/cgroup), or "".
std::string cgroup_v2_dir() {
    std::ifstream in("/proc/self/cgroup");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("0::", 0) == 0) return "/sys/fs/cgroup" + line.substr(3);
    return "";
}

}  // namespace

FreeMemory free_memory() {
    FreeMemory f;
    {
        std::ifstream in("/proc/meminfo");
        std::string key;
        uint64_t kb = 0;
        std::string unit;
        while (in >> key >> kb) {
            std::getline(in, unit);
            if (key == "MemAvailable:") f.mem_available = kb * 1024;
        }
    }
    uint64_t limit = 0, used = 0;
    const std::string v2 = cgroup_v2_dir();
    // A limit above 2^60 is "no limit" (cgroup v1 reports one as a huge number).
    if (!v2.empty() && read_number(v2 + "/memory.max", &limit) && limit < (1ULL << 60)) {
        f.cgroup_limit = limit;
        read_number(v2 + "/memory.current", &used);
    } else if (read_number("/sys/fs/cgroup/memory/memory.limit_in_bytes", &limit) && limit < (1ULL << 60)) {
        f.cgroup_limit = limit;
        read_number("/sys/fs/cgroup/memory/memory.usage_in_bytes", &used);
    }
    f.cgroup_used = used;
    f.free = f.mem_available;
    f.source = "MemAvailable of /proc/meminfo";
    if (f.cgroup_limit) {
        const uint64_t room = f.cgroup_limit > used ? f.cgroup_limit - used : 0;
        if (f.free == 0 || room < f.free) {
            f.free = room;
            f.source = "the cgroup's limit " + format_bytes(f.cgroup_limit) + " less " + format_bytes(used) +
                       " in use";
        }
    }
    if (const char* env = std::getenv("DEPASS_FREE_MEMORY")) {
        uint64_t v = 0;
        if (!parse_size(env, &v))
            throw Error("DEPASS_FREE_MEMORY='" + std::string(env) +
                        "' is not a byte count (e.g. 8G, 512M, 1000000)");
        f.free = v;
        f.source = "DEPASS_FREE_MEMORY";
    }
    return f;
}

void require_memory(const std::string& model, const Config& cfg, int N, int scalar_bytes,
                    const std::string& what, WeightMode mode, const EstimateOptions& given,
                    bool weights_loaded, const ResourceHints& hints) {
    require_memory(describe_model_file(model), cfg, N, scalar_bytes, what, mode, given, weights_loaded, hints);
}

void require_memory(const ModelFileInfo& info, const Config& cfg, int N, int scalar_bytes,
                    const std::string& what, WeightMode mode, const EstimateOptions& given,
                    bool weights_loaded, const ResourceHints& hints) {
    const std::string& model = info.path;
    EstimateOptions opt = given;
    opt.stored_weight_bytes = info.tensor_bytes;
    opt.load_extra_bytes = load_transient_bytes(info, scalar_bytes);
    const CostEstimate e = estimate_cost(cfg, N, scalar_bytes, opt);
    const bool streamed = mode == WeightMode::Streamed;
    uint64_t peak = streamed ? e.forward_peak_streamed_bytes : e.forward_peak_bytes;
    const LevelCost* lc = nullptr;
    if (what != "forward") {
        for (const LevelCost& l : e.levels)
            if (l.level == what) lc = &l;
        if (!lc) throw Error("require_memory: unknown level '" + what + "'");
        peak = streamed ? lc->peak_streamed_bytes : lc->peak_bytes;
    }
    if (weights_loaded) {
        // Only what the run adds to the model already in memory.
        const uint64_t block = streamed ? e.layer_widened_bytes + e.block_transient_bytes : 0;
        peak = lc ? e.trace_bytes + std::max(lc->decompose_bytes, lc->output_bytes) + block
                  : e.trace_bytes + e.forward_extra_bytes + block;
    }
    // Reading the free memory (/proc, the cgroup's files) costs more than a small run itself, and
    // a run that needs less than this fits wherever anything runs: not checked unless
    // DEPASS_FREE_MEMORY asks for a check.
    constexpr uint64_t kAlwaysFits = uint64_t(64) << 20;
    if (peak < kAlwaysFits && !std::getenv("DEPASS_FREE_MEMORY")) return;
    const FreeMemory fm = free_memory();
    if (fm.free == 0) return;  // nothing known: no check
    if (peak <= fm.free) return;
    const std::string parts =
        "trace " + format_bytes(e.trace_bytes) +
        (lc ? ", " + std::to_string(lc->components) + " components " + format_bytes(lc->components_bytes) +
                  " each copy, largest working set " + format_bytes(std::max(lc->decompose_bytes, lc->output_bytes))
            : std::string());
    std::string inspect = hints.inspect;
    const size_t at = inspect.find("MODEL");
    if (at != std::string::npos) inspect.replace(at, 5, model);
    throw ResourceError(
        "not enough memory: " + what + (what == "forward" ? " pass" : " level") + " on " + std::to_string(N) +
        " tokens in " + (scalar_bytes == 8 ? "f64" : "f32") + " needs about " + format_bytes(peak) +
        (weights_loaded ? " besides the loaded model (" + parts
         : streamed ? " (streamed weights " + format_bytes(e.weights_streamed_bytes) +
                        ", the loader's buffers " + format_bytes(opt.load_extra_bytes) + ", " + parts
                  : " (weights widened " + format_bytes(e.weights_widened_bytes) +
                        ", then the larger of the loader's buffers " + format_bytes(opt.load_extra_bytes) +
                        " and " + parts) +
        ") but " + format_bytes(fm.free) + " is free (" + fm.source + "); try fewer tokens" +
        (streamed ? "" : ", " + hints.streamed) + (scalar_bytes == 8 ? ", " + hints.f32 : "") +
        (what == "forward" ? "" : ", " + hints.later_layer) + ", or " + inspect);
}

WeightMode choose_weight_mode(const std::string& choice, const std::string& model, const Config& cfg,
                              int scalar_bytes) {
    WeightMode mode;
    if (choice == "resident") {
        mode = WeightMode::Resident;
    } else if (choice == "streamed") {
        mode = WeightMode::Streamed;
    } else if (choice == "auto") {
        const FreeMemory fm = free_memory();
        const uint64_t widened = weight_count(cfg) * uint64_t(scalar_bytes);
        mode = fm.free > 0 && widened > fm.free / 2 ? WeightMode::Streamed : WeightMode::Resident;
    } else {
        throw Error("weights: '" + choice + "' (expected auto, resident or streamed)");
    }
    // The loader keeps a llama2.c file resident whatever is asked: estimate it as such.
    if (mode == WeightMode::Streamed && describe_model_file(model).format == "llama2c")
        mode = WeightMode::Resident;
    return mode;
}

}  // namespace depass
