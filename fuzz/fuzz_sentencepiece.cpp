// fuzz_sentencepiece -- a SentencePiece model (tokenizer.model, protobuf): load, encode, decode.
#include "depass/tokenizer.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    depass_fuzz::guarded("sentencepiece", [&] {
        const std::string path = depass_fuzz::write_input("tokenizer.model", data, size);
        const auto tok = depass::load_sentencepiece_tokenizer(path);
        depass_fuzz::exercise_tokenizer(*tok);
    });
    return 0;
}
