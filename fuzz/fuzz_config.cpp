// fuzz_config -- a Hugging Face config.json: read_hf_config (which validates), describe().
#include "depass/config.hpp"
#include "depass/io.hpp"  // read_hf_config
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    depass_fuzz::guarded("config", [&] {
        const std::string path = depass_fuzz::write_input("config.json", data, size);
        const depass::Config cfg = depass::read_hf_config(path);
        (void)depass::describe(cfg);
        (void)depass::rope_inv_freq(cfg);
    });
    return 0;
}
