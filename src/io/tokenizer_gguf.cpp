// tokenizer_gguf.cpp -- the vocabularies stored in GGUF metadata (tokenizer.ggml.*):
//
//   "llama"  SentencePiece-style BPE over Unicode code points with scores. The text
//            gets a dummy-prefix space (tokenizer.ggml.add_space_prefix, default on) and
//            every space becomes U+2581 "▁", as SentencePiece does. Each code point starts
//            as its own symbol; the adjacent pair whose concatenation is a normal or
//            user-defined piece with the highest score merges (leftmost on ties), until
//            no pair merges. A remaining symbol that is not a piece is emitted as its
//            bytes, each as the byte piece <0xXX> (byte fallback).
//   "gpt2"   byte-level BPE. The GPT-2 pre-tokenizer
//              's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//            (PCRE2, byte_level.hpp) cuts the text into chunks; each chunk's
//            bytes map to the GPT-2 byte alphabet (printable Latin-1 bytes stand for
//            themselves, the other 68 bytes for U+0100..U+0143 in order), and adjacent
//            symbols merge by the rank of "left right" in tokenizer.ggml.merges (lowest
//            rank first, leftmost on ties). tokenizer.ggml.pre "llama-bpe" (Llama 3) and
//            "qwen2" select those models' regexes instead (byte_level.hpp); "llama-bpe"
//            also takes a chunk that is a token whole (ignore_merges); other values are
//            refused.
//
// Token types (tokenizer.ggml.token_type): 1 normal, 2 unknown, 3 control, 4 user
// defined, 5 unused, 6 byte.
#include <algorithm>
#include <climits>
#include <iterator>
#include <memory>
#include <queue>
#include <sstream>

#include "byte_level.hpp"
#include "depass/gguf.hpp"
#include "pieces.hpp"

namespace depass {

using detail::byte_alphabet;
using detail::ByteAlphabet;
using detail::raw_byte_piece;

namespace {

constexpr int kTypeNormal = 1, kTypeControl = 3, kTypeUserDefined = 4, kTypeByte = 6;
const char* const kSpmSpace = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK

// ---- UTF-8 ----------------------------------------------------------------------------

// Decodes the code point starting at s[i]; returns its byte length. A malformed
// sequence yields 0xFFFFFFFF with length 1 (that byte alone).
size_t next_code_point(const std::string& s, size_t i, uint32_t* cp) { return detail::utf8_next(s, i, cp); }

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

// ---- GPT-2 pre-tokenizer ------------------------------------------------------------------

// Cuts `text` into the chunks of GPT-2's pre-tokenizer regex (detail::kGpt2Pattern, through
// PCRE2, shared with the Hugging Face tokenizers); bytes that are not valid UTF-8 fall between
// the matches and stay chunks of their own. Returns byte spans of `text`.
// `pre` picks the regex of tokenizer.ggml.pre: 0 GPT-2, 1 Llama 3, 2 Qwen2.
std::vector<std::pair<size_t, size_t>> gpt2_pretokenize(const std::string& text, int pre) {
    static const detail::SplitRegex gpt2(detail::kGpt2Pattern, "GPT-2 pre-tokenizer");
    static const detail::SplitRegex llama3(detail::kLlama3Pattern, "Llama 3 pre-tokenizer");
    static const detail::SplitRegex qwen2(detail::kQwen2Pattern, "Qwen2 pre-tokenizer");
    const detail::SplitRegex& re = pre == 1 ? llama3 : pre == 2 ? qwen2 : gpt2;
    std::vector<std::pair<size_t, size_t>> out;
    for (const auto& part : re.split(text, 0, text.size())) out.push_back(part.first);
    return out;
}

// ---- pair merging ----------------------------------------------------------------------------

// Symbols are adjacent byte spans of one string. `rate(start, len_left, len_right, &prio)`
// says whether the two neighbours may merge and with which priority; the best pair
// (highest priority, leftmost on ties) merges first, repeatedly. Returns the final spans.
//
// Each candidate pair is cached in a heap; a merge changes only the pairs on either side,
// and stale entries are recognised by per-symbol version counters.
template <class Rate>
std::vector<std::pair<size_t, size_t>> merge_pairs(std::vector<std::pair<size_t, size_t>> spans,
                                                   const Rate& rate) {
    struct Sym {
        size_t start, len;
        int prev, next;
        unsigned version;
        bool alive;
    };
    struct Cand {
        double prio;
        int left, right;
        unsigned vleft, vright;
    };
    struct Worse {
        bool operator()(const Cand& a, const Cand& b) const {
            if (a.prio != b.prio) return a.prio < b.prio;
            return a.left > b.left;
        }
    };
    const int n = static_cast<int>(spans.size());
    std::vector<Sym> sym(spans.size());
    for (int k = 0; k < n; ++k)
        sym[size_t(k)] = {
            spans[size_t(k)].first, spans[size_t(k)].second, k - 1, k + 1 < n ? k + 1 : -1, 0u, true};
    std::priority_queue<Cand, std::vector<Cand>, Worse> heap;
    auto consider = [&](int l) {
        if (l < 0) return;
        const Sym& a = sym[size_t(l)];
        if (a.next < 0) return;
        const Sym& b = sym[size_t(a.next)];
        double prio;
        if (rate(a.start, a.len, b.len, &prio)) heap.push({prio, l, a.next, a.version, b.version});
    };
    for (int k = 0; k + 1 < n; ++k) consider(k);
    while (!heap.empty()) {
        const Cand c = heap.top();
        heap.pop();
        Sym& a = sym[size_t(c.left)];
        Sym& b = sym[size_t(c.right)];
        if (!a.alive || !b.alive || a.next != c.right || a.version != c.vleft || b.version != c.vright)
            continue;
        a.len += b.len;
        ++a.version;
        b.alive = false;
        a.next = b.next;
        if (b.next >= 0) sym[size_t(b.next)].prev = c.left;
        consider(a.prev);
        consider(c.left);
    }
    std::vector<std::pair<size_t, size_t>> out;
    for (int k = n > 0 ? 0 : -1; k >= 0; k = sym[size_t(k)].next)
        out.emplace_back(sym[size_t(k)].start, sym[size_t(k)].len);
    return out;
}

}  // namespace

// ---- loading ---------------------------------------------------------------------------------

GgufTokenizer GgufTokenizer::load(const std::string& path) { return from_file(GgufFile::open(path)); }

GgufTokenizer GgufTokenizer::from_file(const GgufFile& g) {
    const std::string& path = g.path();
    GgufTokenizer t;
    t.path_ = path;
    const std::string model = g.get_string("tokenizer.ggml.model");
    if (model == "llama") {
        t.kind_ = Kind::Spm;
    } else if (model == "gpt2") {
        t.kind_ = Kind::Bpe;
    } else {
        throw Error(path + ": metadata key 'tokenizer.ggml.model' = '" + model +
                    "' is not supported (only 'llama' and 'gpt2' vocabularies)");
    }
    t.tokens_ = g.get_string_array("tokenizer.ggml.tokens");
    const size_t n = t.tokens_.size();
    if (n == 0) throw Error(path + ": metadata key 'tokenizer.ggml.tokens' is an empty array");
    if (n > size_t(INT_MAX))
        throw Error(path + ": tokenizer.ggml.tokens has too many entries (" + std::to_string(n) + ")");
    auto check_len = [&](const std::string& key, size_t len) {
        if (len != n) {
            throw Error(path + ": metadata key '" + key + "' has " + std::to_string(len) +
                        " elements, expected " + std::to_string(n) +
                        " (one per token of tokenizer.ggml.tokens)");
        }
    };
    if (g.has("tokenizer.ggml.scores")) {
        const std::vector<double> s = g.get_float_array("tokenizer.ggml.scores");
        check_len("tokenizer.ggml.scores", s.size());
        t.scores_.assign(s.begin(), s.end());
    } else {
        t.scores_.assign(n, 0.0f);
    }
    if (g.has("tokenizer.ggml.token_type")) {
        const std::vector<int64_t> ty = g.get_int_array("tokenizer.ggml.token_type");
        check_len("tokenizer.ggml.token_type", ty.size());
        t.types_.resize(n);
        for (size_t k = 0; k < n; ++k) {
            if (ty[k] < 0 || ty[k] > 6) {
                throw Error(path + ": metadata key 'tokenizer.ggml.token_type' element " + std::to_string(k) +
                            " = " + std::to_string(ty[k]) + " is not a token type (0..6)");
            }
            t.types_[k] = static_cast<int>(ty[k]);
        }
    } else {
        // Without types: byte pieces of an SPM vocabulary are recognised by their spelling.
        t.types_.assign(n, kTypeNormal);
        if (t.kind_ == Kind::Spm)
            for (size_t k = 0; k < n; ++k)
                if (raw_byte_piece(t.tokens_[k]) >= 0) t.types_[k] = kTypeByte;
    }
    t.index_.reserve(n * 2);
    for (size_t k = 0; k < n; ++k) t.index_.emplace(t.tokens_[k], static_cast<int>(k));

    auto special = [&](const std::string& key) {
        if (!g.has(key)) return -1;
        const int64_t id = g.get_int(key);
        if (id < 0) return -1;  // "none"
        if (id >= static_cast<int64_t>(n)) {
            throw Error(path + ": metadata key '" + key + "' = " + std::to_string(id) +
                        " is outside the vocabulary of " + std::to_string(n) + " tokens");
        }
        return static_cast<int>(id);
    };
    t.bos_id_ = special("tokenizer.ggml.bos_token_id");
    t.eos_id_ = special("tokenizer.ggml.eos_token_id");
    t.unk_id_ = special("tokenizer.ggml.unknown_token_id");
    t.add_bos_ = g.get_bool("tokenizer.ggml.add_bos_token", t.kind_ == Kind::Spm);
    t.add_space_prefix_ = g.get_bool("tokenizer.ggml.add_space_prefix", t.kind_ == Kind::Spm);

    std::fill(std::begin(t.byte_ids_), std::end(t.byte_ids_), -1);
    if (t.kind_ == Kind::Spm) {
        if (t.unk_id_ < 0) t.unk_id_ = t.lookup("<unk>");
        for (size_t k = 0; k < n; ++k) {
            const int b = raw_byte_piece(t.tokens_[k]);
            if (b >= 0 && t.types_[k] == kTypeByte && t.byte_ids_[b] < 0)
                t.byte_ids_[b] = static_cast<int>(k);
        }
    } else {
        const std::vector<std::string>& merges = g.get_string_array("tokenizer.ggml.merges");
        t.merge_rank_.reserve(merges.size() * 2);
        for (size_t r = 0; r < merges.size(); ++r) {
            const std::string& m = merges[r];
            const size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
            if (sp == std::string::npos || sp + 1 >= m.size()) {
                throw Error(path + ": metadata key 'tokenizer.ggml.merges' element " + std::to_string(r) +
                            " = '" + m + "' is not two pieces separated by a space");
            }
            if (r > size_t(INT_MAX)) throw Error(path + ": tokenizer.ggml.merges has too many entries");
            t.merge_rank_.emplace(m, static_cast<int>(r));
        }
        // The pre-tokenizer (llama.cpp's names); absent: GPT-2's.
        const std::string pre = g.has("tokenizer.ggml.pre") ? g.get_string("tokenizer.ggml.pre") : "default";
        if (pre == "llama-bpe" || pre == "llama3") {
            t.pre_ = 1;
            t.ignore_merges_ = true;
        } else if (pre == "qwen2") {
            t.pre_ = 2;
        } else if (pre != "default" && pre != "gpt-2" && pre != "gpt2") {
            throw Error(path + ": metadata key 'tokenizer.ggml.pre' = '" + pre +
                        "' is not supported (only 'default', 'gpt-2', 'llama-bpe' and 'qwen2')");
        }
        const ByteAlphabet& ab = byte_alphabet();
        for (int b = 0; b < 256; ++b) {
            std::string s;
            append_utf8(s, ab.cp[b]);
            t.byte_ids_[b] = t.lookup(s);
        }
    }
    return t;
}

std::unique_ptr<Tokenizer> load_gguf_tokenizer(const std::string& path) {
    return std::make_unique<GgufTokenizer>(GgufTokenizer::load(path));
}

// ---- lookups -------------------------------------------------------------------------------

void GgufTokenizer::check_id(int id) const { detail::check_token_id(id, vocab_size(), path_); }

const std::string& GgufTokenizer::piece(int id) const {
    check_id(id);
    return tokens_[size_t(id)];
}

int GgufTokenizer::token_type(int id) const {
    check_id(id);
    return types_[size_t(id)];
}

int GgufTokenizer::lookup(const std::string& s) const {
    auto it = index_.find(s);
    return it == index_.end() ? -1 : it->second;
}

// ---- encoding ------------------------------------------------------------------------------

std::vector<int> GgufTokenizer::encode(const std::string& text, bool bos, bool eos) const {
    std::vector<int> ids = kind_ == Kind::Spm ? encode_spm(text) : encode_bpe(text);
    if (bos && bos_id_ >= 0) ids.insert(ids.begin(), bos_id_);
    if (eos && eos_id_ >= 0) ids.push_back(eos_id_);
    return ids;
}

std::vector<int> GgufTokenizer::encode_spm(const std::string& text) const {
    if (text.empty()) return {};
    // Dummy prefix, then every space becomes U+2581.
    std::string s;
    s.reserve(text.size() * 3 + 3);
    for (char c : (add_space_prefix_ ? " " + text : text)) {
        if (c == ' ')
            s += kSpmSpace;
        else
            s += c;
    }
    // One symbol per code point (a malformed byte is a symbol of its own).
    std::vector<std::pair<size_t, size_t>> spans;
    for (size_t i = 0; i < s.size();) {
        uint32_t cp;
        const size_t len = next_code_point(s, i, &cp);
        spans.emplace_back(i, len);
        i += len;
    }
    // A merge must produce a normal or user-defined piece; its score is the priority.
    auto mergeable = [&](int id) {
        return id >= 0 && (types_[size_t(id)] == kTypeNormal || types_[size_t(id)] == kTypeUserDefined);
    };
    std::string buf;
    auto rate = [&](size_t start, size_t len_l, size_t len_r, double* prio) {
        buf.assign(s, start, len_l + len_r);
        const int id = lookup(buf);
        if (!mergeable(id)) return false;
        *prio = scores_[size_t(id)];
        return true;
    };
    std::vector<int> out;
    for (const auto& sp : merge_pairs(std::move(spans), rate)) {
        buf.assign(s, sp.first, sp.second);
        const int id = lookup(buf);
        if (mergeable(id)) {
            out.push_back(id);
            continue;
        }
        for (size_t k = 0; k < sp.second; ++k) {  // byte fallback
            const unsigned char b = static_cast<unsigned char>(s[sp.first + k]);
            int bid = byte_ids_[b];
            if (bid < 0) bid = unk_id_;
            if (bid < 0) {
                std::ostringstream os;
                os << "tokenizer '" << path_ << "': byte 0x" << std::hex << int(b)
                   << " has no byte piece and the vocabulary has no unknown token";
                throw Error(os.str());
            }
            out.push_back(bid);
        }
    }
    return out;
}

std::vector<int> GgufTokenizer::encode_bpe(const std::string& text) const {
    const ByteAlphabet& ab = byte_alphabet();
    std::vector<int> out;
    std::string word, key, buf;
    for (const auto& chunk : gpt2_pretokenize(text, pre_)) {
        // The chunk's bytes in the byte alphabet; one symbol per byte.
        word.clear();
        std::vector<std::pair<size_t, size_t>> spans;
        for (size_t k = 0; k < chunk.second; ++k) {
            const size_t start = word.size();
            append_utf8(word, ab.cp[static_cast<unsigned char>(text[chunk.first + k])]);
            spans.emplace_back(start, word.size() - start);
        }
        // Llama 3 (ignore_merges): a chunk that is a token is that token.
        if (ignore_merges_) {
            const int whole = lookup(word);
            if (whole >= 0) {
                out.push_back(whole);
                continue;
            }
        }
        auto rate = [&](size_t start, size_t len_l, size_t len_r, double* prio) {
            key.assign(word, start, len_l);
            key += ' ';
            key.append(word, start + len_l, len_r);
            auto it = merge_rank_.find(key);
            if (it == merge_rank_.end()) return false;
            *prio = -static_cast<double>(it->second);  // lower rank first
            return true;
        };
        for (const auto& sp : merge_pairs(std::move(spans), rate)) {
            buf.assign(word, sp.first, sp.second);
            const int id = lookup(buf);
            if (id >= 0) {
                out.push_back(id);
                continue;
            }
            // Not a token: its bytes one by one (each byte's character is a token in any
            // complete byte-level vocabulary).
            for (size_t p = sp.first; p < sp.first + sp.second;) {
                uint32_t cp;
                const size_t len = next_code_point(word, p, &cp);
                const int b = cp < 0x100 + 68 ? ab.byte_of[cp] : -1;
                const int bid = b >= 0 ? byte_ids_[b] : -1;
                if (bid < 0) {
                    throw Error("tokenizer '" + path_ +
                                "': the vocabulary has no token for byte-alphabet piece '" +
                                word.substr(p, len) + "'");
                }
                out.push_back(bid);
                p += len;
            }
        }
    }
    return out;
}

// ---- decoding --------------------------------------------------------------------------------

std::string GgufTokenizer::decode_piece(int prev_id, int id) const {
    check_id(id);
    const std::string& p = tokens_[size_t(id)];
    const int type = types_[size_t(id)];
    if (type == kTypeControl) return "";
    if (kind_ == Kind::Spm) {
        if (type == kTypeByte) {
            const int b = raw_byte_piece(p);
            if (b >= 0) return std::string(1, static_cast<char>(b));
        }
        std::string out;
        for (size_t i = 0; i < p.size();) {
            if (p.compare(i, 3, kSpmSpace) == 0) {
                out += ' ';
                i += 3;
            } else {
                out += p[i++];
            }
        }
        // The dummy prefix of the first piece (at the start or after BOS) is not text.
        if (add_space_prefix_ && (prev_id < 0 || prev_id == bos_id_) && !out.empty() && out[0] == ' ')
            out.erase(0, 1);
        return out;
    }
    // Byte-level: each character of the byte alphabet is one byte; other characters
    // (user-defined pieces spelled in plain text) pass through.
    return type == kTypeUserDefined ? p : detail::bytes_of_piece(p);
}

}  // namespace depass
