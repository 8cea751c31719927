// tokenizer_sentencepiece.cpp -- a SentencePiece model file (tokenizer.model) through libsentencepiece.
//
// The library does the encoding (normalisation, dummy prefix, the model's own
// segmentation, byte fallback). Decoding follows the llama2.c convention so that a
// .model and its llama2.c .bin export print the same text for the same ids:
//   - the word-boundary mark U+2581 ("▁") becomes a space;
//   - right after BOS a leading space is dropped (the dummy prefix);
//   - a byte piece "<0xXX>" becomes that single byte;
//   - control pieces (<s>, </s>, padding) have no text.
#include <sentencepiece_processor.h>

#include <exception>
#include <fstream>
#include <sstream>

#include "depass/tokenizer.hpp"
#include "pieces.hpp"

namespace depass {

using detail::raw_byte_piece;

namespace {

const std::string kWordMark = "\xE2\x96\x81";  // U+2581, SentencePiece's space

[[noreturn]] void fail(const std::string& path, const std::string& what) {
    throw Error("tokenizer file '" + path + "': " + what);
}

std::string replace_word_marks(const std::string& s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        if (s.compare(i, kWordMark.size(), kWordMark) == 0) {
            out += ' ';
            i += kWordMark.size();
        } else {
            out += s[i++];
        }
    }
    return out;
}

// The library's status as one readable line. A protobuf that does not parse is
// reported with the library's source location; say what it means instead.
std::string describe(const sentencepiece::util::Status& status) {
    std::string msg = status.message() ? status.message() : "";
    if (msg.find("ParseFromArray") != std::string::npos) return "the protobuf does not parse";
    while (!msg.empty() && (msg.back() == ' ' || msg.back() == '\n')) msg.pop_back();
    for (char& c : msg)
        if (c == '\n') c = ' ';
    return msg.empty() ? status.ToString() : msg;
}

class SentencePieceTokenizer : public Tokenizer {
public:
    explicit SentencePieceTokenizer(const std::string& path) : path_(path) {
        // Read the file ourselves so a missing or unreadable file gets a plain message.
        std::ifstream in(path, std::ios::binary);
        if (!in) fail(path, "cannot open for reading");
        std::ostringstream bytes;
        bytes << in.rdbuf();
        if (in.bad()) fail(path, "read error");
        const std::string proto = bytes.str();
        if (proto.empty()) fail(path, "file is empty (expected a SentencePiece model protobuf)");

        // libsentencepiece reports most problems in its status, but a few (an empty piece
        // reaching its double-array trie) only as a C++ exception.
        sentencepiece::util::Status status;
        try {
            status = sp_.LoadFromSerializedProto(proto);
        } catch (const std::exception& e) {
            fail(path, std::string("not a valid SentencePiece model: ") + e.what());
        }
        if (!status.ok()) fail(path, "not a valid SentencePiece model: " + describe(status));
        const int V = sp_.GetPieceSize();
        if (V <= 0) fail(path, "SentencePiece model has no pieces");

        pieces_.reserve(size_t(V));
        texts_.reserve(size_t(V));
        for (int id = 0; id < V; ++id) {
            const std::string& p = sp_.IdToPiece(id);
            pieces_.push_back(p);
            if (sp_.IsControl(id)) {
                texts_.emplace_back();
            } else if (sp_.IsByte(id)) {
                const int b = raw_byte_piece(p);
                if (b < 0)
                    fail(path,
                         "byte piece " + std::to_string(id) + " is spelled '" + p + "', expected <0xXX>");
                texts_.emplace_back(1, char(b));
            } else {
                texts_.push_back(replace_word_marks(p));
            }
        }
        bos_ = sp_.bos_id();
        eos_ = sp_.eos_id();
    }

    std::vector<int> encode(const std::string& text, bool bos, bool eos) const override {
        std::vector<int> body;
        sentencepiece::util::Status status;
        try {
            status = sp_.Encode(text, &body);
        } catch (const std::exception& e) {
            fail(path_, std::string("cannot encode the text: ") + e.what());
        }
        if (!status.ok()) fail(path_, "cannot encode the text: " + describe(status));
        std::vector<int> out;
        out.reserve(body.size() + 2);
        if (bos && bos_ >= 0) out.push_back(bos_);
        out.insert(out.end(), body.begin(), body.end());
        if (eos && eos_ >= 0) out.push_back(eos_);
        return out;
    }

    std::string decode_piece(int prev_id, int id) const override {
        check_id(id);
        const std::string& t = texts_[size_t(id)];
        if (prev_id >= 0 && prev_id == bos_ && !sp_.IsByte(id) && !t.empty() && t[0] == ' ')
            return t.substr(1);
        return t;
    }

    std::string decode(const std::vector<int>& ids) const override {
        std::string out;
        int prev = -1;
        for (int id : ids) {
            check_id(id);
            if (!sp_.IsControl(id)) out += decode_piece(prev, id);
            prev = id;
        }
        return out;
    }

    const std::string& piece(int id) const override {
        check_id(id);
        return pieces_[size_t(id)];
    }

    int vocab_size() const override { return int(pieces_.size()); }
    std::string kind() const override { return "sentencepiece"; }

private:
    void check_id(int id) const { detail::check_token_id(id, vocab_size(), path_); }

    std::string path_;
    sentencepiece::SentencePieceProcessor sp_;
    std::vector<std::string> pieces_;  // as stored, with U+2581
    std::vector<std::string> texts_;   // decoded text of each id (before the after-BOS rule)
    int bos_ = -1, eos_ = -1;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path) {
    return std::make_unique<SentencePieceTokenizer>(path);
}

}  // namespace depass
