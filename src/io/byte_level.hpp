// byte_level.hpp -- pieces shared by the byte-level BPE tokenizers (Hugging Face
// tokenizer.json, the GPT-2 vocab.json + merges.txt pair, GGUF "gpt2" vocabularies):
//
//   * SplitRegex: a pre-tokenizer pattern compiled by PCRE2 (8-bit, UTF + UCP, so \p{L},
//     \p{N} and \s are the Unicode classes; JIT when the library has it). Text that is not
//     valid UTF-8 never matches (PCRE2_MATCH_INVALID_UTF), so a caller that keeps the gaps
//     between matches loses no byte.
//   * the GPT-2 byte alphabet: each byte stands for one printable code point.
//   * kGpt2Pattern: GPT-2's own pre-tokenizer regex (also ByteLevel's use_regex default).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace depass::detail {

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
extern const char* const kGpt2Pattern;
// Llama 3's (as in its tokenizer.json): case-insensitive contractions, a letter run with one
// optional non-letter in front, numbers of at most 3 digits, punctuation with trailing newlines,
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//   \s*[\r\n]+|\s+(?!\S)|\s+
extern const char* const kLlama3Pattern;
// Qwen2's: Llama 3's with single digits (\p{N} for \p{N}{1,3}).
extern const char* const kQwen2Pattern;

class SplitRegex {
public:
    // Compiles `pattern` (a regex, or with literal = true a plain string to find). A pattern
    // PCRE2 refuses throws depass::Error "<where>: ... at offset N: <PCRE2's reason>".
    SplitRegex(const std::string& pattern, const std::string& where, bool literal = false);

    // The non-empty matches in s[begin, begin + len), left to right, as (start, length)
    // byte spans of s.
    std::vector<std::pair<size_t, size_t>> matches(const std::string& s, size_t begin, size_t len) const;

    // s[begin, begin + len) cut into the matches and the gaps between them, in order (the
    // "Isolated" behaviour); the flag says whether a span is a match.
    std::vector<std::pair<std::pair<size_t, size_t>, bool>> split(const std::string& s, size_t begin,
                                                                  size_t len) const;

private:
    std::shared_ptr<void> code_;  // pcre2_code_8
};

// GPT-2's byte alphabet: printable bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF stand for
// themselves, the other 68 bytes for U+0100, U+0101, ... in byte order.
struct ByteAlphabet {
    uint32_t cp[256];         // code point of each byte
    std::string utf8[256];    // the same as UTF-8
    int byte_of[0x100 + 68];  // inverse, -1 where no byte maps
    ByteAlphabet();
};
const ByteAlphabet& byte_alphabet();

// Decodes the UTF-8 code point at s[i] into *cp and returns its length; a malformed
// sequence gives *cp = 0xFFFFFFFF and length 1.
size_t utf8_next(const std::string& s, size_t i, uint32_t* cp);

// The bytes a byte-level piece stands for: each character of the byte alphabet becomes its
// byte; any other character (text spelled outside the alphabet) is kept as it is.
std::string bytes_of_piece(const std::string& piece);

}  // namespace depass::detail
