// fuzz_llama2c_tokenizer -- a llama2.c tokenizer .bin: load (to the end of the file, and with
// the vocabulary size its first piece count implies), encode, decode.
#include "depass/tokenizer.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    depass_fuzz::guarded("llama2c_tokenizer", [&] {
        const std::string path = depass_fuzz::write_input("tokenizer.bin", data, size);
        const depass::Llama2cTokenizer tok = depass::Llama2cTokenizer::load(path);
        depass_fuzz::exercise_tokenizer(tok);
        (void)tok.lookup(" the");
        // The same file with an expected size: exactly the pieces it holds, then one more.
        (void)depass::Llama2cTokenizer::load(path, tok.vocab_size());
        try {
            (void)depass::Llama2cTokenizer::load(path, tok.vocab_size() + 1);
        } catch (const depass::Error&) {
        }
    });
    return 0;
}
