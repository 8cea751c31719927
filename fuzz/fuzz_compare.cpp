// fuzz_compare -- the candidate reader of `depass compare` (Dump). An input that starts with
// the .npy magic or holds the line "--8<--" is a directory of up to three .npy files
// (a.npy, b.npy, c.npy, one per piece); anything else is a .safetensors file. Every tensor
// is read, then the dump is compared with itself and the report is rendered.
#include <cstring>

#include "depass/compare.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    depass_fuzz::guarded("compare", [&] {
        const std::string all(reinterpret_cast<const char*>(data), size);
        std::string path;
        if (all.compare(0, 6, "\x93NUMPY") == 0 || all.find(depass_fuzz::kSeparator) != std::string::npos) {
            const auto parts = depass_fuzz::split(data, size, 3);
            const char* names[] = {"dump/a.npy", "dump/b.npy", "dump/c.npy"};
            for (size_t i = 0; i < parts.size(); ++i)
                if (i == 0 || !parts[i].empty()) depass_fuzz::write_file(names[i], parts[i]);
            path = depass_fuzz::scratch_dir() + "/dump";
        } else {
            path = depass_fuzz::write_file("dump.safetensors", all);
        }
        const depass::Dump d = depass::Dump::open(path);
        for (const std::string& name : d.names()) (void)d.read(name);
        (void)d.metadata();
        const depass::CompareResult r = depass::compare_dumps(d, d, depass::CompareOptions{});
        (void)depass::compare_table(r);
        (void)depass::compare_verdict(r);
        (void)depass::compare_json(r);
    });
    return 0;
}
