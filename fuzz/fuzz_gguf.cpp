// fuzz_gguf -- a GGUF file: the container (header, metadata, tensor infos, every typed
// getter on every key, every tensor read), then the same file as a llama model.
#include "depass/gguf.hpp"
#include "fuzz_support.hpp"

namespace {
template <class F>
void quietly(F&& f) {
    try {
        f();
    } catch (const depass::Error&) {
    }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    depass_fuzz::guarded("gguf", [&] {
        const std::string path = depass_fuzz::write_input("model.gguf", data, size);
        const depass::GgufFile g = depass::GgufFile::open(path);
        for (const std::string& key : g.keys()) {
            (void)g.value(key).type_str();
            quietly([&] { (void)g.get_string(key); });
            quietly([&] { (void)g.get_uint(key); });
            quietly([&] { (void)g.get_int(key); });
            quietly([&] { (void)g.get_float(key); });
            quietly([&] { (void)g.get_bool(key); });
            quietly([&] { (void)g.get_string_array(key); });
            quietly([&] { (void)g.get_float_array(key); });
            quietly([&] { (void)g.get_int_array(key); });
        }
        for (const depass::GgufTensorInfo& t : g.tensors()) {
            (void)t.shape();
            (void)depass::ggml_type_name(t.type);
            quietly([&] { (void)g.read<float>(t.name); });
        }
        (void)depass::read_gguf_model<float>(path);
    });
    return 0;
}
