// fuzz_tokenizer_hf -- Hugging Face tokenizers. The input is up to three files separated by
// the line "--8<--": tokenizer.json, tokenizer_config.json (written when not empty) and
// merges.txt. The first is loaded as tokenizer.json; when merges.txt is not empty the first
// is also loaded as a vocab.json with that merges.txt. Each tokenizer encodes and decodes.
#include "depass/tokenizer_hf.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    depass_fuzz::guarded("tokenizer_hf", [&] {
        const auto parts = depass_fuzz::split(data, size, 3);
        const std::string json = depass_fuzz::write_file("tokenizer.json", parts[0]);
        if (!parts[1].empty()) depass_fuzz::write_file("tokenizer_config.json", parts[1]);
        if (!parts[2].empty()) {
            const std::string vocab = depass_fuzz::write_file("vocab.json", parts[0]);
            const std::string merges = depass_fuzz::write_file("merges.txt", parts[2]);
            try {
                const depass::HfTokenizer tok = depass::HfTokenizer::load_vocab_merges(vocab, merges);
                depass_fuzz::exercise_tokenizer(tok);
            } catch (const depass::Error&) {
            }
        }
        const depass::HfTokenizer tok = depass::HfTokenizer::load(json);
        depass_fuzz::exercise_tokenizer(tok);
        for (int id = 0; id < tok.vocab_size() && id < 4096; ++id) (void)tok.is_special(id);
        (void)tok.bos_ids();
        (void)tok.eos_ids();
    });
    return 0;
}
