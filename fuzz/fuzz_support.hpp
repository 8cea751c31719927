// fuzz_support.hpp -- what every harness shares: a private scratch directory, writing
// the input (or pieces of it) to files there, and the one verdict rule.
//
// Verdict: a reader may return normally or throw depass::Error. Any other exception is a
// finding: guarded() reports it and aborts, so libFuzzer keeps the input. Crashes,
// sanitizer reports, timeouts and oversized allocations are caught by libFuzzer itself.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace depass {
class Tokenizer;
}

namespace depass_fuzz {

// A directory of this process (created once, under $TMPDIR or /dev/shm), emptied by clear().
const std::string& scratch_dir();
void clear_scratch();

// Writes `bytes` to scratch_dir()/name and returns the full path.
std::string write_file(const std::string& name, const std::string& bytes);
// The same for the whole fuzzer input.
std::string write_input(const std::string& name, const uint8_t* data, size_t size);

// Splits the input at every occurrence of kSeparator (a line "--8<--"): the pieces of a
// multi-file input such as config.json + model.safetensors. Missing pieces are empty.
extern const char* const kSeparator;
std::vector<std::string> split(const uint8_t* data, size_t size, size_t want);

// Runs `body`; a depass::Error is the expected outcome for bad input, anything else aborts.
// With DEPASS_FUZZ_VERBOSE set, the message of each depass::Error is printed.
void guarded(const char* reader, const std::function<void()>& body);

// Encodes a few fixed texts (ASCII, accents, CJK, emoji, control bytes, invalid UTF-8,
// special-token spellings), decodes the ids back and reads every piece of the vocabulary.
void exercise_tokenizer(const depass::Tokenizer& tok);

}  // namespace depass_fuzz
