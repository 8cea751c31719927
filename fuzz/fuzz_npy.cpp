// fuzz_npy -- a .npy file: read_npy as float (any dtype, non-finite kept) and as double
// (floats only, finite required).
#include "depass/io.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    depass_fuzz::guarded("npy", [&] {
        const std::string path = depass_fuzz::write_input("array.npy", data, size);
        try {
            (void)depass::read_npy<float>(path, false, false);
        } catch (const depass::Error&) {
        }
        (void)depass::read_npy<double>(path, true, true);
    });
    return 0;
}
