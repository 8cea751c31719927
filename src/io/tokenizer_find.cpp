// tokenizer_find.cpp -- which tokenizer belongs to a model, and how a piece is shown.
#include <filesystem>

#include "depass/tokenizer.hpp"
#include "depass/tokenizer_hf.hpp"

namespace fs = std::filesystem;

namespace depass {

namespace {

// One line: newlines in a nested message become spaces.
std::string one_line(std::string s) {
    for (char& ch : s)
        if (ch == '\n' || ch == '\r') ch = ' ';
    return s;
}

}  // namespace

std::unique_ptr<Tokenizer> find_tokenizer(const std::string& model, const std::string& tokenizer, int V,
                                          bool required, const std::string& how_to_name) {
    if (!tokenizer.empty()) {
        auto tok = open_tokenizer(tokenizer);
        // A smaller vocabulary is usable (every id it produces exists in the model);
        // a larger one could produce ids the model has no embedding for.
        if (V > 0 && tok->vocab_size() > V)
            throw Error(tokenizer + ": tokenizer has " + std::to_string(tok->vocab_size()) +
                        " pieces but the model's vocabulary has only " + std::to_string(V));
        return tok;
    }
    if (model.empty()) {
        if (!required) return nullptr;
        throw Error("no tokenizer: " + how_to_name + " or give a model to look next to");
    }
    // A GGUF model carries its own vocabulary: try it first.
    if (fs::path(model).extension() == ".gguf" && fs::is_regular_file(model)) {
        auto tok = load_gguf_tokenizer(model);
        if (tok->vocab_size() <= V || V <= 0) return tok;
    }
    const fs::path base = fs::is_directory(model)                 ? fs::path(model)
                          : fs::path(model).parent_path().empty() ? fs::path(".")
                                                                  : fs::path(model).parent_path();
    // tokenizer.json first: it is what Hugging Face itself loads when a directory has both it
    // and tokenizer.model. Its vocabulary may be smaller than the model's (padded embeddings).
    const std::vector<fs::path> candidates = {base / "tokenizer.json", base / "tokenizer.model",
                                              base / "vocab.json", base / "tokenizer.bin",
                                              base / ("tok" + std::to_string(V) + ".bin")};
    std::string tried;
    for (const fs::path& p : candidates) {
        std::string why;
        if (!fs::is_regular_file(p)) {
            why = "missing";
        } else {
            try {
                std::unique_ptr<Tokenizer> tok;
                const bool hf = p.extension() == ".json";
                if (hf && p.filename() == "vocab.json" && !fs::is_regular_file(base / "merges.txt"))
                    throw Error("no merges.txt beside it");
                if (hf)
                    tok = load_hf_tokenizer(p.string());
                else if (p.extension() == ".model")
                    tok = load_sentencepiece_tokenizer(p.string());
                else
                    tok = std::make_unique<Llama2cTokenizer>(Llama2cTokenizer::load(p.string()));
                if (tok->vocab_size() == V || (hf && tok->vocab_size() <= V)) return tok;
                why = std::to_string(tok->vocab_size()) + " pieces";
            } catch (const Error& e) {
                why = "unreadable: " + one_line(e.what());
            }
        }
        tried += (tried.empty() ? "" : ", ") + p.string() + " (" + why + ")";
    }
    if (!required) return nullptr;
    throw Error("no tokenizer with the model's " + std::to_string(V) + " pieces: tried " + tried +
                "; " + how_to_name);
}

std::string show_piece(const Tokenizer* tok, int id) {
    if (!tok || id < 0 || id >= tok->vocab_size()) return "#" + std::to_string(id);
    std::string s = tok->piece(id), out;
    // llama2.c stores BOS / EOS as "\n<s>\n" / "\n</s>\n".
    if (s.size() > 2 && s.front() == '\n' && s.back() == '\n') s = s.substr(1, s.size() - 2);
    // SentencePiece vocabularies spell the space U+2581.
    const std::string mark = "\xE2\x96\x81";
    const bool spm = tok->kind() == "sentencepiece" || tok->kind() == "gguf-spm";
    for (size_t i = 0; i < s.size(); ++i) {
        const char ch = s[i];
        if (spm && s.compare(i, mark.size(), mark) == 0) {
            out += ' ';
            i += mark.size() - 1;
        } else if (ch == '\n') {
            out += "\\n";
        } else if (ch == '\t') {
            out += "\\t";
        } else if (ch == '\r') {
            out += "\\r";
        } else {
            out += ch;
        }
    }
    return out;
}

}  // namespace depass
