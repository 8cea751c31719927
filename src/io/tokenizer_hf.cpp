// tokenizer_hf.cpp -- Hugging Face byte-level BPE (tokenizer.json, vocab.json + merges.txt).
// The pipeline is described in include/depass/tokenizer_hf.hpp.
#include "depass/tokenizer_hf.hpp"

#include <utf8proc.h>

#include <climits>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>
#include <unordered_map>

#include "byte_level.hpp"
#include "depass/io.hpp"
#include "json_guard.hpp"
#include "pieces.hpp"

namespace depass {

using json = nlohmann::json;
using detail::byte_alphabet;
using detail::SplitRegex;
using detail::utf8_next;

namespace {

constexpr size_t kMaxCacheEntries = 1 << 16;

// ---- JSON reading with field names in every error ---------------------------------------

json parse_json_file(const std::string& path) {
    const std::string text = read_text_file(path);
    detail::check_json_depth(text, path);  // before the parser, which recurses per level
    try {
        return json::parse(text);
    } catch (const json::parse_error& e) {
        // Our own message: the library's quotes the token it last read, which may be long.
        const size_t at = std::min<size_t>(e.byte, text.size());
        size_t line = 1, col = 1;
        for (size_t i = 0; i + 1 < at; ++i) {
            if (text[i] == '\n') {
                ++line;
                col = 1;
            } else {
                ++col;
            }
        }
        throw Error(path + ": not valid JSON at line " + std::to_string(line) + ", column " +
                    std::to_string(col) +
                    (e.byte >= text.size() ? " (the file ends early: truncated?)" : " (syntax error)"));
    } catch (const json::exception& e) {
        // Well-formed but not representable, e.g. a number too large for a double.
        throw Error(path + ": not valid JSON: " + e.what());
    }
}

// A field of a JSON document, known by its dotted name for error messages.
struct Field {
    const json* v;
    std::string name;
    const std::string* path;

    [[noreturn]] void fail(const std::string& what) const {
        throw Error(*path + ": field '" + name + "' " + what);
    }
    bool present() const { return v && !v->is_null(); }
    Field at(const std::string& key) const {  // nullptr v when absent
        const json* c = nullptr;
        if (v && v->is_object()) {
            auto it = v->find(key);
            if (it != v->end()) c = &*it;
        }
        return {c, name.empty() ? key : name + "." + key, path};
    }
    Field at(size_t k) const { return {&(*v)[k], name + "[" + std::to_string(k) + "]", path}; }
    const json& need(json::value_t t, const char* what) const {
        if (!v) fail(std::string("is missing (expected ") + what + ")");
        const bool ok = t == json::value_t::number_integer
                            ? v->is_number_integer()
                            : (t == json::value_t::boolean ? v->is_boolean() : v->type() == t);
        if (!ok) fail(std::string("must be ") + what + " (found " + v->type_name() + ")");
        return *v;
    }
    const json& object() const { return need(json::value_t::object, "an object"); }
    const json& array() const { return need(json::value_t::array, "an array"); }
    std::string string() const { return need(json::value_t::string, "a string").get<std::string>(); }
    bool boolean(bool dflt) const {
        if (!present()) return dflt;
        return need(json::value_t::boolean, "true or false").get<bool>();
    }
    int id(int64_t limit) const {
        const json& j = need(json::value_t::number_integer, "an integer token id");
        if (j.is_number_unsigned() ? j.get<uint64_t>() >= uint64_t(limit)
                                   : (j.get<int64_t>() < 0 || j.get<int64_t>() >= limit))
            fail("= " + j.dump() + " is outside the vocabulary of " + std::to_string(limit) + " tokens");
        return static_cast<int>(j.get<int64_t>());
    }
    std::string type() const {  // the "type" member of an object
        object();
        return at("type").string();
    }
};

// A short, printable rendering of a piece for messages.
std::string show(const std::string& s) {
    std::string out;
    for (char c : s.substr(0, 40)) {
        if (c == '\n')
            out += "\\n";
        else if (c == '\t')
            out += "\\t";
        else if (c == '\r')
            out += "\\r";
        else
            out += c;
    }
    return "'" + out + (s.size() > 40 ? "...'" : "'");
}

// ---- Unicode helpers -------------------------------------------------------------------

bool is_white(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000;
}

bool is_word_char(uint32_t cp) {
    if (cp == '_') return true;
    if (cp > 0x10FFFF) return false;
    switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
        case UTF8PROC_CATEGORY_LU:
        case UTF8PROC_CATEGORY_LL:
        case UTF8PROC_CATEGORY_LT:
        case UTF8PROC_CATEGORY_LM:
        case UTF8PROC_CATEGORY_LO:
        case UTF8PROC_CATEGORY_ND:
        case UTF8PROC_CATEGORY_NL:
        case UTF8PROC_CATEGORY_NO:
            return true;
        default:
            return false;
    }
}

// The code point ending at s[end) (the last one before `end`), or 0xFFFFFFFF.
uint32_t code_point_before(const std::string& s, size_t end) {
    if (end == 0) return 0xFFFFFFFFu;
    size_t i = end - 1;
    while (i > 0 && end - i < 4 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
    uint32_t cp;
    return i + utf8_next(s, i, &cp) == end ? cp : 0xFFFFFFFFu;
}

enum class NormForm { NFC, NFD, NFKC, NFKD };

// One normalisation form of s. Valid UTF-8 runs are normalised; stray bytes stay as they are.
std::string normalize(const std::string& s, NormForm f) {
    int options = UTF8PROC_STABLE;
    switch (f) {
        case NormForm::NFC:
            options |= UTF8PROC_COMPOSE;
            break;
        case NormForm::NFD:
            options |= UTF8PROC_DECOMPOSE;
            break;
        case NormForm::NFKC:
            options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
            break;
        case NormForm::NFKD:
            options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
            break;
    }
    std::string out;
    auto flush = [&](size_t a, size_t b) {
        if (a == b) return;
        utf8proc_uint8_t* res = nullptr;
        const utf8proc_ssize_t n =
            utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + a),
                         static_cast<utf8proc_ssize_t>(b - a), &res, static_cast<utf8proc_option_t>(options));
        if (n < 0) {
            out.append(s, a, b - a);
        } else {
            out.append(reinterpret_cast<const char*>(res), size_t(n));
        }
        std::free(res);
    };
    size_t run = 0;
    for (size_t i = 0; i < s.size();) {
        uint32_t cp;
        const size_t len = utf8_next(s, i, &cp);
        if (cp == 0xFFFFFFFFu) {
            flush(run, i);
            out += s[i];
            run = i + 1;
        }
        i += len;
    }
    flush(run, s.size());
    return out;
}

// ---- the tokenizer's parts ---------------------------------------------------------------

struct AddedToken {
    std::string content;
    int id = -1;
    bool special = false, lstrip = false, rstrip = false, single_word = false, normalized = true;
};

struct PreStep {
    enum Kind { Split, ByteLevel } kind = ByteLevel;
    std::shared_ptr<SplitRegex> re;
    bool removed = false;  // Split: drop the matches (else keep each as a piece: Isolated)
    bool invert = false;   // Split: the gaps are the matches
    bool add_prefix_space = false;
};

// Keyed by the pair of symbol ids.
struct PairHash {
    size_t operator()(uint64_t k) const { return std::hash<uint64_t>()(k * 0x9E3779B97F4A7C15ull); }
};
inline uint64_t pair_key(int a, int b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

}  // namespace

struct HfTokenizer::Impl {
    std::string path;
    std::vector<std::string> pieces;             // id -> piece (added tokens: their text)
    std::unordered_map<std::string, int> vocab;  // the BPE model's vocabulary
    struct Merge {
        int rank, id;
    };
    std::unordered_map<uint64_t, Merge, PairHash> merges;
    bool ignore_merges = false;
    int unk_id = -1;
    std::vector<NormForm> normalizer;
    std::vector<PreStep> pre;
    std::vector<AddedToken> added;
    std::vector<char> special, is_added;  // per id
    std::vector<int> bos, eos;
    // Added tokens by first byte, longest first: [0] raw-text tokens, [1] normalised ones.
    std::vector<int> by_first[2][256];

    mutable std::mutex cache_mutex;
    mutable std::unordered_map<std::string, std::vector<int>> cache;

    void finish();  // indexes, checks
    void split_added(const std::string& s, int which,
                     std::vector<std::pair<std::string, int>>* out) const;  // (text, added id or -1)
    void pre_tokenize(const std::string& s, std::vector<std::string>* out) const;
    void bpe(const std::string& word, std::vector<int>* out) const;
    void bpe_uncached(const std::string& word, std::vector<int>* out) const;
};

// Indexes added tokens and the per-id flags once pieces/vocab/added are set.
void HfTokenizer::Impl::finish() {
    special.assign(pieces.size(), 0);
    is_added.assign(pieces.size(), 0);
    for (size_t k = 0; k < added.size(); ++k) {
        const AddedToken& a = added[k];
        special[size_t(a.id)] = a.special;
        is_added[size_t(a.id)] = 1;
        const int which = a.normalized && !normalizer.empty() ? 1 : 0;
        by_first[which][static_cast<unsigned char>(a.content[0])].push_back(static_cast<int>(k));
    }
    for (auto& table : by_first)
        for (auto& list : table)
            std::stable_sort(list.begin(), list.end(), [&](int x, int y) {
                return added[size_t(x)].content.size() > added[size_t(y)].content.size();
            });
}

void HfTokenizer::Impl::split_added(const std::string& s, int which,
                                    std::vector<std::pair<std::string, int>>* out) const {
    size_t plain = 0;  // start of the text not yet emitted
    size_t i = 0;
    while (i < s.size()) {
        const AddedToken* hit = nullptr;
        for (int k : by_first[which][static_cast<unsigned char>(s[i])]) {
            const AddedToken& a = added[size_t(k)];
            if (s.compare(i, a.content.size(), a.content) != 0) continue;
            if (a.single_word) {
                uint32_t after = 0xFFFFFFFFu;
                if (i + a.content.size() < s.size()) utf8_next(s, i + a.content.size(), &after);
                if (is_word_char(code_point_before(s, i)) || is_word_char(after)) continue;
            }
            hit = &a;
            break;
        }
        if (!hit) {
            ++i;
            continue;
        }
        size_t start = i, end = i + hit->content.size();
        if (hit->lstrip)
            while (start > plain) {
                const uint32_t cp = code_point_before(s, start);
                if (!is_white(cp)) break;
                start -= cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
            }
        if (hit->rstrip)
            while (end < s.size()) {
                uint32_t cp;
                const size_t len = utf8_next(s, end, &cp);
                if (!is_white(cp)) break;
                end += len;
            }
        if (start > plain) out->emplace_back(s.substr(plain, start - plain), -1);
        out->emplace_back(std::string(), hit->id);
        plain = i = end;
    }
    if (plain < s.size()) out->emplace_back(s.substr(plain), -1);
}

void HfTokenizer::Impl::pre_tokenize(const std::string& s, std::vector<std::string>* out) const {
    const auto& ab = byte_alphabet();
    std::vector<std::string> cur{s}, next;
    for (const PreStep& step : pre) {
        next.clear();
        for (std::string& p : cur) {
            if (step.kind == PreStep::Split) {
                for (const auto& part : step.re->split(p, 0, p.size())) {
                    const bool match = part.second != step.invert;
                    if (step.removed && match) continue;
                    next.push_back(p.substr(part.first.first, part.first.second));
                }
                continue;
            }
            if (step.add_prefix_space && (p.empty() || p[0] != ' ')) p.insert(0, 1, ' ');
            std::vector<std::pair<size_t, size_t>> spans;
            if (step.re) {
                for (const auto& part : step.re->split(p, 0, p.size())) spans.push_back(part.first);
            } else {
                spans.emplace_back(0, p.size());
            }
            for (const auto& sp : spans) {
                std::string mapped;
                mapped.reserve(sp.second * 2);
                for (size_t k = 0; k < sp.second; ++k)
                    mapped += ab.utf8[static_cast<unsigned char>(p[sp.first + k])];
                next.push_back(std::move(mapped));
            }
        }
        cur.swap(next);
    }
    for (std::string& p : cur)
        if (!p.empty()) out->push_back(std::move(p));
}

void HfTokenizer::Impl::bpe(const std::string& word, std::vector<int>* out) const {
    {
        std::lock_guard<std::mutex> lock(cache_mutex);
        auto it = cache.find(word);
        if (it != cache.end()) {
            out->insert(out->end(), it->second.begin(), it->second.end());
            return;
        }
    }
    std::vector<int> ids;
    bpe_uncached(word, &ids);
    out->insert(out->end(), ids.begin(), ids.end());
    std::lock_guard<std::mutex> lock(cache_mutex);
    if (cache.size() >= kMaxCacheEntries) cache.clear();
    cache.emplace(word, std::move(ids));
}

// BPE of one pre-token (already in the byte alphabet).
void HfTokenizer::Impl::bpe_uncached(const std::string& word, std::vector<int>* out) const {
    if (ignore_merges) {
        auto it = vocab.find(word);
        if (it != vocab.end()) {
            out->push_back(it->second);
            return;
        }
    }
    // One symbol per character; a doubly linked list over the symbols.
    struct Sym {
        int id, prev, next;
        bool alive;
    };
    std::vector<Sym> sym;
    std::string ch;
    for (size_t i = 0; i < word.size();) {
        uint32_t cp;
        const size_t len = utf8_next(word, i, &cp);
        ch.assign(word, i, len);
        auto it = vocab.find(ch);
        int id = it != vocab.end() ? it->second : unk_id;
        if (id < 0)
            throw Error("tokenizer '" + path + "': character " + show(ch) +
                        " is not in the vocabulary and there is no unk_token");
        const int k = static_cast<int>(sym.size());
        sym.push_back({id, k - 1, -1, true});
        if (k > 0) sym[size_t(k - 1)].next = k;
        i += len;
    }
    // Candidates (rank, left symbol): the lowest rank first, then the leftmost.
    using Cand = std::pair<int, int>;
    std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
    auto consider = [&](int l) {
        if (l < 0 || sym[size_t(l)].next < 0) return;
        auto it = merges.find(pair_key(sym[size_t(l)].id, sym[size_t(sym[size_t(l)].next)].id));
        if (it != merges.end()) heap.push({it->second.rank, l});
    };
    for (int k = 0; k + 1 < static_cast<int>(sym.size()); ++k) consider(k);
    while (!heap.empty()) {
        const Cand c = heap.top();
        heap.pop();
        Sym& a = sym[size_t(c.second)];
        if (!a.alive || a.next < 0) continue;
        Sym& b = sym[size_t(a.next)];
        // Stale when either side has changed since the candidate was queued.
        auto it = merges.find(pair_key(a.id, b.id));
        if (it == merges.end() || it->second.rank != c.first) continue;
        a.id = it->second.id;
        b.alive = false;
        a.next = b.next;
        if (b.next >= 0) sym[size_t(b.next)].prev = c.second;
        consider(a.prev);
        consider(c.second);
    }
    for (int k = sym.empty() ? -1 : 0; k >= 0; k = sym[size_t(k)].next) out->push_back(sym[size_t(k)].id);
}

// ---- loading -----------------------------------------------------------------------------

namespace {

// Registers the model vocabulary (piece -> id) as ids 0..V-1 and the added tokens, checking
// that ids are distinct and dense.
void set_vocabulary(HfTokenizer::Impl& t, const Field& vocab_field, std::vector<AddedToken> added,
                    const std::string& added_name) {
    const json& vocab = vocab_field.object();
    // Total size: the model's entries plus the added tokens that are not among them.
    size_t extra = 0;
    for (const AddedToken& a : added)
        if (!vocab.contains(a.content)) ++extra;
    const size_t total = vocab.size() + extra;
    if (total == 0) vocab_field.fail("is empty");
    if (total > size_t(INT_MAX)) vocab_field.fail("has too many entries");
    t.pieces.assign(total, std::string());
    std::vector<char> used(total, 0);
    t.vocab.reserve(vocab.size() * 2);
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
        const Field f{&it.value(), vocab_field.name + "[" + show(it.key()) + "]", vocab_field.path};
        const int id = f.id(static_cast<int64_t>(total));
        if (used[size_t(id)])
            f.fail("= " + std::to_string(id) + " repeats the id of " + show(t.pieces[size_t(id)]));
        used[size_t(id)] = 1;
        t.pieces[size_t(id)] = it.key();
        t.vocab.emplace(it.key(), id);
    }
    for (size_t k = 0; k < added.size(); ++k) {
        const AddedToken& a = added[k];
        const std::string where = added_name + "[" + std::to_string(k) + "] (" + show(a.content) + ")";
        if (a.id >= static_cast<int>(total))
            throw Error(*vocab_field.path + ": " + where + ": id " + std::to_string(a.id) +
                        " is outside the vocabulary of " + std::to_string(total) + " tokens");
        auto it = t.vocab.find(a.content);
        if (it != t.vocab.end()) {
            if (it->second != a.id)
                throw Error(*vocab_field.path + ": " + where + ": id " + std::to_string(a.id) +
                            " differs from the vocabulary's id " + std::to_string(it->second) +
                            " for the same text");
            continue;
        }
        if (used[size_t(a.id)])
            throw Error(*vocab_field.path + ": " + where + ": id " + std::to_string(a.id) +
                        " is already taken by " + show(t.pieces[size_t(a.id)]));
        used[size_t(a.id)] = 1;
        t.pieces[size_t(a.id)] = a.content;
    }
    // Every id is taken exactly once (distinct ids below `total`, `total` of them).
    t.added = std::move(added);
}

// Merges as "a b" strings or ["a", "b"] pairs; every piece and the merged one must be in
// the vocabulary.
void add_merge(HfTokenizer::Impl& t, const std::string& a, const std::string& b, const std::string& where,
               int rank) {
    auto find = [&](const std::string& p) {
        auto it = t.vocab.find(p);
        if (it == t.vocab.end())
            throw Error(t.path + ": " + where + ": piece " + show(p) + " is not in the vocabulary");
        return it->second;
    };
    const int ia = find(a), ib = find(b), ab = find(a + b);
    t.merges.emplace(pair_key(ia, ib), HfTokenizer::Impl::Merge{rank, ab});
}

std::vector<NormForm> read_normalizer(const Field& f) {
    std::vector<NormForm> out;
    if (!f.present()) return out;
    const std::string type = f.type();
    if (type == "Sequence") {
        const Field list = f.at("normalizers");
        list.array();
        for (size_t k = 0; k < list.v->size(); ++k) {
            auto more = read_normalizer(list.at(k));
            out.insert(out.end(), more.begin(), more.end());
        }
    } else if (type == "NFC") {
        out.push_back(NormForm::NFC);
    } else if (type == "NFD") {
        out.push_back(NormForm::NFD);
    } else if (type == "NFKC") {
        out.push_back(NormForm::NFKC);
    } else if (type == "NFKD") {
        out.push_back(NormForm::NFKD);
    } else {
        f.fail("has type '" + type + "', which is not supported (only NFC, NFD, NFKC, NFKD and Sequence)");
    }
    return out;
}

void read_pre_tokenizer(const Field& f, std::vector<PreStep>* out) {
    if (!f.present()) return;
    const std::string type = f.type();
    if (type == "Sequence") {
        const Field list = f.at("pretokenizers");
        list.array();
        for (size_t k = 0; k < list.v->size(); ++k) read_pre_tokenizer(list.at(k), out);
    } else if (type == "ByteLevel") {
        PreStep s;
        s.kind = PreStep::ByteLevel;
        s.add_prefix_space = f.at("add_prefix_space").boolean(true);
        if (f.at("use_regex").boolean(true))
            s.re = std::make_shared<SplitRegex>(detail::kGpt2Pattern, *f.path + ": " + f.name);
        out->push_back(std::move(s));
    } else if (type == "Split") {
        PreStep s;
        s.kind = PreStep::Split;
        const Field pat = f.at("pattern");
        pat.object();
        const Field re = pat.at("Regex"), str = pat.at("String");
        if (re.present())
            s.re = std::make_shared<SplitRegex>(re.string(), *f.path + ": field '" + re.name + "'");
        else if (str.present())
            s.re = std::make_shared<SplitRegex>(str.string(), *f.path + ": field '" + str.name + "'", true);
        else
            pat.fail("has neither 'Regex' nor 'String'");
        const std::string behavior = f.at("behavior").string();
        if (behavior == "Removed")
            s.removed = true;
        else if (behavior != "Isolated")
            f.at("behavior").fail("= '" + behavior + "' is not supported (only Isolated and Removed)");
        s.invert = f.at("invert").boolean(false);
        out->push_back(std::move(s));
    } else if (type == "Digits") {
        // Numbers apart from the rest: each digit alone, or each run of digits.
        PreStep s;
        s.kind = PreStep::Split;
        const bool single = f.at("individual_digits").boolean(false);
        s.re = std::make_shared<SplitRegex>(single ? "\\p{N}" : "\\p{N}+", *f.path + ": " + f.name);
        out->push_back(std::move(s));
    } else {
        f.fail("has type '" + type +
               "', which is not supported (only ByteLevel, Split, Digits and Sequence)");
    }
}

// The ids of a TemplateProcessing "single" template around $A.
void read_post_processor(HfTokenizer::Impl& t, const Field& f) {
    if (!f.present()) return;
    const std::string type = f.type();
    if (type == "Sequence") {
        const Field list = f.at("processors");
        list.array();
        for (size_t k = 0; k < list.v->size(); ++k) read_post_processor(t, list.at(k));
    } else if (type == "ByteLevel") {
        // Only adjusts offsets.
    } else if (type == "TemplateProcessing") {
        const Field single = f.at("single"), specials = f.at("special_tokens");
        single.array();
        bool seen_a = false;
        for (size_t k = 0; k < single.v->size(); ++k) {
            const Field item = single.at(k);
            item.object();
            if (item.at("Sequence").present()) {
                seen_a = true;
                continue;
            }
            const Field sp = item.at("SpecialToken");
            if (!sp.present()) item.fail("is neither a SpecialToken nor a Sequence");
            const std::string name = sp.at("id").string();
            const Field entry = specials.at(name);
            entry.object();
            const Field ids = entry.at("ids");
            ids.array();
            for (size_t j = 0; j < ids.v->size(); ++j)
                (seen_a ? t.eos : t.bos).push_back(ids.at(j).id(static_cast<int64_t>(t.pieces.size())));
        }
    } else {
        f.fail("has type '" + type +
               "', which is not supported (only TemplateProcessing, ByteLevel and Sequence)");
    }
}

void check_decoder(const Field& f) {
    if (!f.present()) return;
    const std::string type = f.type();
    if (type == "Sequence") {
        const Field list = f.at("decoders");
        list.array();
        for (size_t k = 0; k < list.v->size(); ++k) check_decoder(list.at(k));
    } else if (type != "ByteLevel") {
        f.fail("has type '" + type + "', which is not supported (only ByteLevel and Sequence)");
    }
}

// The text of a token entry in tokenizer_config.json / special_tokens_map.json: a string or
// an object with "content".
std::string token_text(const json& j) {
    if (j.is_string()) return j.get<std::string>();
    if (j.is_object() && j.contains("content") && j["content"].is_string())
        return j["content"].get<std::string>();
    return "";
}

// tokenizer_config.json next to `file`, or null.
json sibling_json(const std::string& file, const char* name) {
    const std::filesystem::path p = std::filesystem::path(file).parent_path() / name;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(p, ec)) return json();
    return parse_json_file(p.string());
}

// BOS without a template (tokenizer_config.json: add_bos_token true) and EOS (eos_token).
void read_config_bos_eos(HfTokenizer::Impl& t, const HfTokenizer& self) {
    const json cfg = sibling_json(t.path, "tokenizer_config.json");
    if (!cfg.is_object()) return;
    if (t.bos.empty() && cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean() &&
        cfg["add_bos_token"].get<bool>() && cfg.contains("bos_token")) {
        const int id = self.lookup(token_text(cfg["bos_token"]));
        if (id >= 0) t.bos.push_back(id);
    }
    if (t.eos.empty() && cfg.contains("eos_token")) {
        const int id = self.lookup(token_text(cfg["eos_token"]));
        if (id >= 0) t.eos.push_back(id);
    }
}

}  // namespace

HfTokenizer HfTokenizer::load(const std::string& path) {
    auto t = std::make_shared<Impl>();
    t->path = path;
    const json doc = parse_json_file(path);
    const Field root{&doc, "", &t->path};
    root.object();
    const Field model = root.at("model");
    model.object();
    const Field mtype = model.at("type");
    if (mtype.present() && mtype.string() != "BPE")
        mtype.fail("= '" + mtype.string() + "': only BPE tokenizer models are supported");
    if (!mtype.present() && !model.at("merges").present())
        model.fail("has no 'type' and no 'merges' (only BPE tokenizer models are supported)");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
        const Field f = model.at(key);
        if (f.present() && !f.string().empty())
            f.fail("= '" + f.string() + "' is not supported (only empty)");
    }
    const Field dropout = model.at("dropout");
    if (dropout.present() && !(dropout.v->is_number() && dropout.v->get<double>() == 0.0))
        dropout.fail("is not supported (only null: no BPE dropout)");
    t->ignore_merges = model.at("ignore_merges").boolean(false);

    // Added tokens.
    std::vector<AddedToken> added;
    const Field added_f = root.at("added_tokens");
    if (added_f.present()) {
        added_f.array();
        for (size_t k = 0; k < added_f.v->size(); ++k) {
            const Field e = added_f.at(k);
            e.object();
            AddedToken a;
            a.content = e.at("content").string();
            if (a.content.empty()) e.at("content").fail("is empty");
            a.id = e.at("id").id(INT_MAX);
            a.special = e.at("special").boolean(false);
            a.lstrip = e.at("lstrip").boolean(false);
            a.rstrip = e.at("rstrip").boolean(false);
            a.single_word = e.at("single_word").boolean(false);
            a.normalized = e.at("normalized").boolean(!a.special);
            added.push_back(std::move(a));
        }
    }
    set_vocabulary(*t, model.at("vocab"), std::move(added), "added_tokens");

    const Field merges = model.at("merges");
    merges.array();
    t->merges.reserve(merges.v->size() * 2);
    for (size_t r = 0; r < merges.v->size(); ++r) {
        const Field m = merges.at(r);
        std::string a, b;
        if (m.v->is_string()) {
            const std::string s = m.v->get<std::string>();
            const size_t sp = s.find(' ');
            if (sp == std::string::npos || sp == 0 || sp + 1 >= s.size() ||
                s.find(' ', sp + 1) != std::string::npos)
                m.fail("= " + show(s) + " is not two pieces separated by one space");
            a = s.substr(0, sp);
            b = s.substr(sp + 1);
        } else if (m.v->is_array()) {
            if (m.v->size() != 2)
                m.fail("must be a pair of two pieces (has " + std::to_string(m.v->size()) + ")");
            a = m.at(0).string();
            b = m.at(1).string();
        } else {
            m.fail(std::string("must be a string \"a b\" or a pair [\"a\", \"b\"] (found ") +
                   m.v->type_name() + ")");
        }
        if (r > size_t(INT_MAX)) merges.fail("has too many entries");
        add_merge(*t, a, b, "field '" + m.name + "'", static_cast<int>(r));
    }
    const Field unk = model.at("unk_token");
    if (unk.present()) {
        auto it = t->vocab.find(unk.string());
        if (it == t->vocab.end()) unk.fail("= " + show(unk.string()) + " is not in the vocabulary");
        t->unk_id = it->second;
    }

    t->normalizer = read_normalizer(root.at("normalizer"));
    read_pre_tokenizer(root.at("pre_tokenizer"), &t->pre);
    bool byte_level = false;
    for (const PreStep& s : t->pre) byte_level |= s.kind == PreStep::ByteLevel;
    if (!byte_level)
        root.at("pre_tokenizer").fail("has no ByteLevel step (only byte-level BPE tokenizers are supported)");
    read_post_processor(*t, root.at("post_processor"));
    check_decoder(root.at("decoder"));
    t->finish();

    HfTokenizer out;
    out.impl_ = t;
    read_config_bos_eos(*t, out);
    return out;
}

HfTokenizer HfTokenizer::load_vocab_merges(const std::string& vocab_json, const std::string& merges_txt) {
    auto t = std::make_shared<Impl>();
    t->path = vocab_json;
    const json doc = parse_json_file(vocab_json);
    const Field root{&doc, "", &t->path};
    root.object();

    // The special tokens the configuration names, when they are vocabulary entries.
    std::vector<AddedToken> added;
    for (const char* cfg_name : {"tokenizer_config.json", "special_tokens_map.json"}) {
        const json cfg = sibling_json(vocab_json, cfg_name);
        if (!cfg.is_object()) continue;
        for (const char* key : {"bos_token", "eos_token", "unk_token", "pad_token"}) {
            if (!cfg.contains(key)) continue;
            const std::string text = token_text(cfg[key]);
            if (text.empty() || !doc.contains(text) || !doc[text].is_number_integer()) continue;
            bool have = false;
            for (const AddedToken& a : added) have |= a.content == text;
            if (have) continue;
            AddedToken a;
            a.content = text;
            a.id = doc[text].get<int>();
            a.special = true;
            a.normalized = false;
            added.push_back(std::move(a));
        }
    }
    set_vocabulary(*t, Field{&doc, "vocab", &t->path}, std::move(added), "special token");

    // merges.txt: an optional "#version" line, then one "a b" per line.
    const std::string text = read_text_file(merges_txt);
    std::istringstream in(text);
    std::string line;
    int rank = 0;
    for (size_t lineno = 1; std::getline(in, line); ++lineno) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty() || (lineno == 1 && line.rfind("#version", 0) == 0)) continue;
        const size_t sp = line.find(' ');
        if (sp == std::string::npos || sp == 0 || sp + 1 >= line.size() ||
            line.find(' ', sp + 1) != std::string::npos)
            throw Error(merges_txt + ": line " + std::to_string(lineno) + " = " + show(line) +
                        " is not two pieces separated by one space");
        try {
            add_merge(*t, line.substr(0, sp), line.substr(sp + 1),
                      "merges.txt line " + std::to_string(lineno), rank++);
        } catch (const Error& e) {
            throw Error(merges_txt + " (with " + std::string(e.what()) + ")");
        }
    }
    PreStep s;
    s.kind = PreStep::ByteLevel;
    s.re = std::make_shared<SplitRegex>(detail::kGpt2Pattern, "GPT-2 pre-tokenizer");
    t->pre.push_back(std::move(s));
    t->finish();
    HfTokenizer out;
    out.impl_ = t;
    return out;
}

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& path) {
    namespace fs = std::filesystem;
    const fs::path p(path);
    const fs::path merges = p.parent_path() / "merges.txt";
    std::error_code ec;
    if (p.filename() != "tokenizer.json" && fs::is_regular_file(merges, ec))
        return std::make_unique<HfTokenizer>(HfTokenizer::load_vocab_merges(path, merges.string()));
    if (p.filename() == "vocab.json")
        throw Error(path + ": a GPT-2 vocab.json needs its merges.txt beside it (" + merges.string() +
                    " is missing)");
    return std::make_unique<HfTokenizer>(HfTokenizer::load(path));
}

// ---- encoding and decoding -------------------------------------------------------------

std::vector<int> HfTokenizer::encode(const std::string& text, bool bos, bool eos) const {
    const Impl& t = *impl_;
    std::vector<int> ids;
    if (bos) ids = t.bos;
    std::vector<std::pair<std::string, int>> raw, parts;
    t.split_added(text, 0, &raw);
    std::vector<std::string> words;
    for (auto& seg : raw) {
        if (seg.second >= 0) {
            ids.push_back(seg.second);
            continue;
        }
        std::string s = std::move(seg.first);
        for (NormForm f : t.normalizer) s = normalize(s, f);
        parts.clear();
        if (t.normalizer.empty())
            parts.emplace_back(std::move(s), -1);
        else
            t.split_added(s, 1, &parts);
        for (auto& part : parts) {
            if (part.second >= 0) {
                ids.push_back(part.second);
                continue;
            }
            words.clear();
            t.pre_tokenize(part.first, &words);
            for (const std::string& w : words) t.bpe(w, &ids);
        }
    }
    if (eos) ids.insert(ids.end(), t.eos.begin(), t.eos.end());
    return ids;
}

std::string HfTokenizer::decode_piece(int /*prev_id*/, int id) const {
    const Impl& t = *impl_;
    detail::check_token_id(id, vocab_size(), t.path);
    const std::string& p = t.pieces[size_t(id)];
    if (t.special[size_t(id)]) return "";
    if (t.is_added[size_t(id)] && !t.vocab.count(p)) return p;
    return detail::bytes_of_piece(p);
}

const std::string& HfTokenizer::piece(int id) const {
    detail::check_token_id(id, vocab_size(), impl_->path);
    return impl_->pieces[size_t(id)];
}

int HfTokenizer::vocab_size() const { return static_cast<int>(impl_->pieces.size()); }
const std::vector<int>& HfTokenizer::bos_ids() const { return impl_->bos; }
const std::vector<int>& HfTokenizer::eos_ids() const { return impl_->eos; }
const std::string& HfTokenizer::path() const { return impl_->path; }

int HfTokenizer::lookup(const std::string& s) const {
    for (const AddedToken& a : impl_->added)
        if (a.content == s) return a.id;
    auto it = impl_->vocab.find(s);
    return it == impl_->vocab.end() ? -1 : it->second;
}

bool HfTokenizer::is_special(int id) const {
    detail::check_token_id(id, vocab_size(), impl_->path);
    return impl_->special[size_t(id)];
}

}  // namespace depass
