// fuzz_safetensors_index -- a sharded checkpoint: model.safetensors.index.json and two shards
// (model-00001-of-00002.safetensors, model-00002-of-00002.safetensors), the three files
// separated in the input by the line "--8<--". Opens the index and reads every tensor.
#include "depass/io.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    depass_fuzz::guarded("safetensors_index", [&] {
        const auto parts = depass_fuzz::split(data, size, 3);
        const std::string index = depass_fuzz::write_file("model.safetensors.index.json", parts[0]);
        depass_fuzz::write_file("model-00001-of-00002.safetensors", parts[1]);
        depass_fuzz::write_file("model-00002-of-00002.safetensors", parts[2]);
        const depass::SafeTensors st = depass::SafeTensors::open(index);
        for (const std::string& name : st.names()) {
            try {
                (void)st.read<float>(name);
            } catch (const depass::Error&) {
            }
        }
    });
    return 0;
}
