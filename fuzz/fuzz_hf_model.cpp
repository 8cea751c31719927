// fuzz_hf_model -- a Hugging Face model directory: config.json and model.safetensors,
// separated in the input by the line "--8<--"; read_hf_model.
#include "depass/io.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    depass_fuzz::guarded("hf_model", [&] {
        const auto parts = depass_fuzz::split(data, size, 2);
        depass_fuzz::write_file("model/config.json", parts[0]);
        depass_fuzz::write_file("model/model.safetensors", parts[1]);
        (void)depass::read_hf_model<float>(depass_fuzz::scratch_dir() + "/model");
    });
    return 0;
}
