// fuzz_llama2c -- a llama2.c v0 checkpoint (.bin): read_llama2c.
#include "depass/io.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    depass_fuzz::guarded("llama2c", [&] {
        const std::string path = depass_fuzz::write_input("model.bin", data, size);
        (void)depass::read_llama2c<float>(path);
    });
    return 0;
}
