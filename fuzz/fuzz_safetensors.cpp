// fuzz_safetensors -- a single .safetensors file: SafeTensors::open, then every tensor read.
#include "depass/io.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    depass_fuzz::guarded("safetensors", [&] {
        const std::string path = depass_fuzz::write_input("model.safetensors", data, size);
        const depass::SafeTensors st = depass::SafeTensors::open(path);
        for (const std::string& name : st.names()) {
            try {
                (void)st.read<float>(name);
            } catch (const depass::Error&) {
                // an integer tensor read as float is refused; go on with the others
            }
        }
        (void)st.metadata();
    });
    return 0;
}
