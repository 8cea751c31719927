// byte_level.cpp -- PCRE2 pre-tokenizer patterns and the GPT-2 byte alphabet.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "byte_level.hpp"

#include <pcre2.h>

#include <algorithm>
#include <iterator>

#include "depass/types.hpp"

namespace depass::detail {

const char* const kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const char* const kLlama3Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* const kQwen2Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

namespace {

pcre2_code* code_of(const std::shared_ptr<void>& p) { return static_cast<pcre2_code*>(p.get()); }

}  // namespace

SplitRegex::SplitRegex(const std::string& pattern, const std::string& where, bool literal) {
    // (PCRE2 refuses UCP together with LITERAL; a literal has no classes anyway.)
    const uint32_t options = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    int err = 0;
    PCRE2_SIZE err_offset = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options,
                                     &err, &err_offset, nullptr);
    if (!code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        throw Error(where + ": the regex is refused by PCRE2 at offset " + std::to_string(err_offset) + ": " +
                    reinterpret_cast<const char*>(msg));
    }
    // JIT is an optimisation only: without it (or when it fails) the interpreter runs.
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    code_ = std::shared_ptr<void>(code, [](void* c) { pcre2_code_free(static_cast<pcre2_code*>(c)); });
}

std::vector<std::pair<size_t, size_t>> SplitRegex::matches(const std::string& s, size_t begin,
                                                           size_t len) const {
    std::vector<std::pair<size_t, size_t>> out;
    pcre2_code* code = code_of(code_);
    std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data*)> md(
        pcre2_match_data_create_from_pattern(code, nullptr), pcre2_match_data_free);
    if (!md) throw Error("PCRE2: out of memory for match data");
    const PCRE2_SPTR subject = reinterpret_cast<PCRE2_SPTR>(s.data() + begin);
    size_t pos = 0;
    while (pos < len) {
        const int rc = pcre2_match(code, subject, len, pos, 0, md.get(), nullptr);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            throw Error(std::string("PCRE2 match failed: ") + reinterpret_cast<const char*>(msg));
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
        const size_t a = ov[0], b = ov[1];
        if (b > a) {
            out.emplace_back(begin + a, b - a);
            pos = b;
        } else {
            // An empty match: step over one character (or one stray byte).
            uint32_t cp;
            pos = a + utf8_next(s, begin + a, &cp);
        }
    }
    return out;
}

std::vector<std::pair<std::pair<size_t, size_t>, bool>> SplitRegex::split(const std::string& s, size_t begin,
                                                                          size_t len) const {
    std::vector<std::pair<std::pair<size_t, size_t>, bool>> out;
    size_t at = begin;
    for (const auto& m : matches(s, begin, len)) {
        if (m.first > at) out.push_back({{at, m.first - at}, false});
        out.push_back({m, true});
        at = m.first + m.second;
    }
    if (at < begin + len) out.push_back({{at, begin + len - at}, false});
    return out;
}

ByteAlphabet::ByteAlphabet() {
    std::fill(std::begin(byte_of), std::end(byte_of), -1);
    uint32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
        const bool printable =
            (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        cp[b] = printable ? uint32_t(b) : next++;
        byte_of[cp[b]] = b;
        // All these code points are below U+0800: one or two UTF-8 bytes.
        if (cp[b] < 0x80) {
            utf8[b] = std::string(1, static_cast<char>(cp[b]));
        } else {
            utf8[b] = {static_cast<char>(0xC0 | (cp[b] >> 6)), static_cast<char>(0x80 | (cp[b] & 0x3F))};
        }
    }
}

const ByteAlphabet& byte_alphabet() {
    static const ByteAlphabet a;
    return a;
}

size_t utf8_next(const std::string& s, size_t i, uint32_t* cp) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        v = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        v = c & 0x07;
    } else {
        *cp = 0xFFFFFFFFu;
        return 1;
    }
    if (i + len > s.size()) {
        *cp = 0xFFFFFFFFu;
        return 1;
    }
    for (size_t k = 1; k < len; ++k) {
        const unsigned char cc = static_cast<unsigned char>(s[i + k]);
        if ((cc & 0xC0) != 0x80) {
            *cp = 0xFFFFFFFFu;
            return 1;
        }
        v = (v << 6) | (cc & 0x3F);
    }
    if ((len == 3 && v < 0x800) || (len == 4 && (v < 0x10000 || v > 0x10FFFF)) ||
        (v >= 0xD800 && v <= 0xDFFF)) {
        *cp = 0xFFFFFFFFu;
        return 1;
    }
    *cp = v;
    return len;
}

std::string bytes_of_piece(const std::string& piece) {
    const ByteAlphabet& ab = byte_alphabet();
    std::string out;
    for (size_t i = 0; i < piece.size();) {
        uint32_t cp;
        const size_t len = utf8_next(piece, i, &cp);
        const int b = cp < 0x100 + 68 ? ab.byte_of[cp] : -1;
        if (b >= 0)
            out += static_cast<char>(b);
        else
            out.append(piece, i, len);
        i += len;
    }
    return out;
}

}  // namespace depass::detail
