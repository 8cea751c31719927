// Helpers shared by the tokenizers: byte pieces and token id checks.
#pragma once

#include <string>

#include "depass/types.hpp"

namespace depass::detail {

inline int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

// A byte-fallback piece "<0xXX>" -> the byte XX; any other piece -> -1.
inline int raw_byte_piece(const std::string& s) {
    if (s.size() != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return -1;
    const int hi = hex_digit(s[3]), lo = hex_digit(s[4]);
    if (hi < 0 || lo < 0) return -1;
    return hi * 16 + lo;
}

// Throws unless 0 <= id < vocab_size, naming the tokenizer file.
inline void check_token_id(int id, int vocab_size, const std::string& path) {
    if (id < 0 || id >= vocab_size)
        throw Error("token id " + std::to_string(id) + " is out of range for vocab size " +
                    std::to_string(vocab_size) + " (tokenizer '" + path + "')");
}

}  // namespace depass::detail
