// weights_mode.cpp -- the --weights choice and the memory it is measured against.
#include "common.hpp"

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

namespace depass::cli {

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// The bytes of the tensor files of a model: the .safetensors files of a directory (or of
// the directory holding PATH), or the .gguf file. 0 for anything else (llama2.c files are
// always loaded resident).
uint64_t weight_file_bytes(const std::string& path) {
    std::error_code ec;
    fs::path dir = path;
    if (!fs::is_directory(dir, ec)) {
        if (ends_with(path, ".gguf")) return fs::file_size(path, ec);
        if (!ends_with(path, ".safetensors") && !ends_with(path, ".json")) return 0;
        dir = dir.parent_path().empty() ? fs::path(".") : dir.parent_path();
    }
    uint64_t total = 0;
    for (const auto& e : fs::directory_iterator(dir, ec))
        if (e.is_regular_file(ec) && ends_with(e.path().string(), ".safetensors")) total += e.file_size(ec);
    return total;
}

uint64_t read_number_file(const std::string& path) {
    std::ifstream in(path);
    std::string s;
    if (!(in >> s) || s == "max") return 0;
    try {
        return std::stoull(s);
    } catch (...) {
        return 0;
    }
}

}  // namespace

uint64_t available_memory_bytes() {
    uint64_t avail = 0;
    std::ifstream in("/proc/meminfo");
    std::string key, unit;
    uint64_t kb = 0;
    while (in >> key >> kb) {
        std::getline(in, unit);
        if (key == "MemAvailable:") {
            avail = kb * 1024;
            break;
        }
    }
    // cgroup v2: the limit minus what the group already uses.
    const uint64_t limit = read_number_file("/sys/fs/cgroup/memory.max");
    if (limit > 0) {
        const uint64_t used = read_number_file("/sys/fs/cgroup/memory.current");
        const uint64_t left = limit > used ? limit - used : 0;
        if (avail == 0 || left < avail) avail = left;
    }
    return avail;
}

WeightMode weight_mode(const InputOptions& o, size_t scalar_bytes) {
    if (o.weights == "resident") return WeightMode::Resident;
    if (o.weights == "streamed") return WeightMode::Streamed;
    if (o.weights != "auto") throw UsageError("--weights: '" + o.weights + "' (expected auto, resident or streamed)");
    const uint64_t widened = weight_file_bytes(o.model) / 2 * scalar_bytes;
    const uint64_t avail = available_memory_bytes();
    return avail > 0 && widened > avail / 2 ? WeightMode::Streamed : WeightMode::Resident;
}

}  // namespace depass::cli
