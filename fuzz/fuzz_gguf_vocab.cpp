// fuzz_gguf_vocab -- the vocabulary of a GGUF file (tokenizer.ggml.*): load, encode, decode.
#include "depass/gguf.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    depass_fuzz::guarded("gguf_vocab", [&] {
        const std::string path = depass_fuzz::write_input("vocab.gguf", data, size);
        const depass::GgufTokenizer tok = depass::GgufTokenizer::load(path);
        depass_fuzz::exercise_tokenizer(tok);
        for (int id = 0; id < tok.vocab_size() && id < 4096; ++id) (void)tok.token_type(id);
        (void)tok.lookup("a");
    });
    return 0;
}
