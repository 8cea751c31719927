// tokenizer_llama2c.cpp -- loading, encoding and decoding for the llama2.c tokenizer.
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <queue>
#include <sstream>

#include "depass/tokenizer.hpp"
#include "pieces.hpp"

namespace depass {

using detail::raw_byte_piece;

namespace {

// The original keeps the best score in a float initialised to -1e10 and accepts a
// pair only when its score is strictly greater, so pieces scoring <= -1e10 (or NaN)
// never merge. Kept for exactness.
constexpr float kMergeFloor = -1e10f;

uint32_t read_u32_le(const unsigned char* p) {
    return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}
int32_t read_i32_le(const unsigned char* p) {
    uint32_t u = read_u32_le(p);
    int32_t v;
    std::memcpy(&v, &u, sizeof v);
    return v;
}
float read_f32_le(const unsigned char* p) {
    uint32_t u = read_u32_le(p);
    float v;
    std::memcpy(&v, &u, sizeof v);
    return v;
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
    throw Error("tokenizer file '" + path + "': " + what);
}

}  // namespace

Llama2cTokenizer Llama2cTokenizer::load(const std::string& path, int expected_vocab) {
    if (expected_vocab == 0 || expected_vocab < -1) {
        fail(path, "expected_vocab must be a positive piece count or -1 (read to end of file), got " +
                       std::to_string(expected_vocab));
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(path, "cannot open for reading");
    std::vector<unsigned char> buf((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) fail(path, "read error");
    const size_t size = buf.size();

    if (size == 0) fail(path, "file is empty (expected an int32 max_token_length header)");
    if (size < 4) {
        fail(path,
             "file is " + std::to_string(size) + " bytes, too short for the int32 max_token_length header");
    }

    Llama2cTokenizer tok;
    tok.path_ = path;
    tok.max_token_length_ = read_i32_le(buf.data());
    if (tok.max_token_length_ <= 0) {
        fail(path, "max_token_length is " + std::to_string(tok.max_token_length_) + ", must be > 0");
    }

    size_t off = 4;
    for (int64_t i = 0;; ++i) {
        if (expected_vocab > 0) {
            if (i == expected_vocab) break;
            if (off == size) {
                fail(path, "expected " + std::to_string(expected_vocab) + " pieces, file ends after " +
                               std::to_string(i));
            }
        } else if (off == size) {
            break;
        }
        if (i > INT32_MAX - 1) fail(path, "too many pieces");
        const std::string where = "piece " + std::to_string(i) + ": ";
        if (size - off < 8) {
            fail(path, where + "truncated score/length fields at byte offset " + std::to_string(off) + " (" +
                           std::to_string(size - off) + " of 8 bytes present)");
        }
        const float score = read_f32_le(buf.data() + off);
        const int32_t len = read_i32_le(buf.data() + off + 4);
        if (len < 0) fail(path, where + "byte length " + std::to_string(len) + " is negative");
        if (len > tok.max_token_length_) {
            fail(path, where + "byte length " + std::to_string(len) + " exceeds max_token_length " +
                           std::to_string(tok.max_token_length_));
        }
        off += 8;
        if (size - off < size_t(len)) {
            fail(path, where + "truncated: byte length " + std::to_string(len) + " at offset " +
                           std::to_string(off) + " but only " + std::to_string(size - off) + " bytes remain");
        }
        tok.pieces_.emplace_back(reinterpret_cast<const char*>(buf.data() + off), size_t(len));
        tok.scores_.push_back(score);
        off += size_t(len);
    }
    if (off != size) {
        fail(path, std::to_string(size - off) + " trailing bytes after the last of " +
                       std::to_string(tok.pieces_.size()) + " pieces");
    }
    if (tok.pieces_.size() < 3) {
        fail(path, "has " + std::to_string(tok.pieces_.size()) +
                       " pieces; at least 3 (<unk>, BOS, EOS) are required");
    }

    tok.index_.reserve(tok.pieces_.size() * 2);
    for (size_t i = 0; i < tok.pieces_.size(); ++i) tok.index_.emplace(tok.pieces_[i], int(i));
    return tok;
}

void Llama2cTokenizer::check_id(int id) const { detail::check_token_id(id, vocab_size(), path_); }

const std::string& Llama2cTokenizer::piece(int id) const {
    check_id(id);
    return pieces_[size_t(id)];
}

float Llama2cTokenizer::score(int id) const {
    check_id(id);
    return scores_[size_t(id)];
}

int Llama2cTokenizer::lookup(const std::string& s) const {
    auto it = index_.find(s);
    return it == index_.end() ? -1 : it->second;
}

std::vector<int> Llama2cTokenizer::encode(const std::string& text, bool bos, bool eos) const {
    auto byte_id = [&](unsigned char b) {
        int id = int(b) + kByteOffset;
        if (id >= vocab_size()) {
            std::ostringstream os;
            os << "tokenizer '" << path_ << "': byte fallback for byte 0x" << std::hex << int(b) << std::dec
               << " needs token id " << id << " but the vocab size is " << vocab_size();
            throw Error(os.str());
        }
        return id;
    };

    // Initial sequence: dummy prefix, then one piece per code point (or its bytes).
    std::vector<int> seq;
    seq.reserve(text.size() + 1);
    if (!text.empty()) {
        int sp = lookup(" ");
        seq.push_back(sp >= 0 ? sp : byte_id(' '));
    }
    std::string cp;
    for (size_t i = 0; i < text.size(); ++i) {
        const unsigned char c = static_cast<unsigned char>(text[i]);
        if ((c & 0xC0) != 0x80) cp.clear();  // not a continuation byte: a new code point starts
        cp.push_back(char(c));
        const bool next_continues =
            i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80;
        if (next_continues && cp.size() < 4) continue;
        int id = lookup(cp);
        if (id >= 0) {
            seq.push_back(id);
        } else {
            for (char b : cp) seq.push_back(byte_id(static_cast<unsigned char>(b)));
        }
        cp.clear();
    }

    // Merging. The original rescans every adjacent pair after each merge and takes the
    // highest score, the leftmost on ties. Here each pair's merge is cached in a heap
    // ordered the same way (score, then position); a merge only changes the pairs on
    // either side of it. Nodes keep their original position as index, so index order
    // is sequence order.
    struct Node {
        int id, prev, next;
        unsigned version;
        bool alive;
    };
    struct Cand {
        float score;
        int left, right, merged;
        unsigned vleft, vright;
    };
    struct Worse {
        bool operator()(const Cand& a, const Cand& b) const {
            if (a.score != b.score) return a.score < b.score;
            return a.left > b.left;
        }
    };
    const int n = int(seq.size());
    std::vector<Node> nodes(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) nodes[size_t(i)] = {seq[size_t(i)], i - 1, i + 1 < n ? i + 1 : -1, 0u, true};
    std::priority_queue<Cand, std::vector<Cand>, Worse> heap;
    std::string pair;
    auto consider = [&](int l) {
        if (l < 0) return;
        const Node& a = nodes[size_t(l)];
        if (a.next < 0) return;
        const Node& b = nodes[size_t(a.next)];
        pair.assign(pieces_[size_t(a.id)]);
        pair.append(pieces_[size_t(b.id)]);
        int m = lookup(pair);
        if (m < 0) return;
        float s = scores_[size_t(m)];
        if (!(s > kMergeFloor)) return;
        heap.push({s, l, a.next, m, a.version, b.version});
    };
    for (int i = 0; i + 1 < n; ++i) consider(i);
    while (!heap.empty()) {
        Cand c = heap.top();
        heap.pop();
        Node& a = nodes[size_t(c.left)];
        Node& b = nodes[size_t(c.right)];
        if (!a.alive || !b.alive || a.next != c.right || a.version != c.vleft || b.version != c.vright)
            continue;  // stale: one side has merged since
        a.id = c.merged;
        ++a.version;
        b.alive = false;
        a.next = b.next;
        if (b.next >= 0) nodes[size_t(b.next)].prev = c.left;
        consider(a.prev);
        consider(c.left);
    }

    std::vector<int> out;
    out.reserve(size_t(n) + 2);
    if (bos) out.push_back(kBosId);
    for (int i = 0; i >= 0 && i < n; i = nodes[size_t(i)].next) out.push_back(nodes[size_t(i)].id);
    if (eos) out.push_back(kEosId);
    return out;
}

std::string Llama2cTokenizer::decode_piece(int prev_id, int id) const {
    const std::string& p = piece(id);
    int byte = raw_byte_piece(p);
    if (byte >= 0) return std::string(1, char(byte));
    if (prev_id == kBosId && !p.empty() && p[0] == ' ') return p.substr(1);
    return p;
}

std::string Llama2cTokenizer::decode(const std::vector<int>& ids) const {
    std::string out;
    int prev = -1;
    for (int id : ids) {
        check_id(id);
        if (id != kBosId && id != kEosId) out += decode_piece(prev, id);
        prev = id;
    }
    return out;
}

}  // namespace depass
