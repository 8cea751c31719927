#include "common.hpp"

#include <unistd.h>

#include <filesystem>
#include <iostream>

#include "depass/forward.hpp"
#include "depass/io.hpp"
#include "depass/tokenizer_hf.hpp"

namespace fs = std::filesystem;

namespace depass::cli {

void add_input_options(CLI::App* sub, InputOptions& o, bool need_tokens) {
    sub->add_option("--model,-m", o.model,
                    "Model: a Hugging Face directory (config.json + *.safetensors), a .gguf file or a "
                    "llama2.c .bin checkpoint")
        ->required();
    if (need_tokens) {
        auto* ids = sub->add_option("--ids", o.ids, "Token ids, comma-separated (e.g. 1,403,407,261,378)");
        auto* prompt = sub->add_option("--prompt,-p", o.prompt,
                                       "Text to tokenise (BOS is prepended when the tokenizer has one)");
        ids->excludes(prompt);
    }
    sub->add_option("--tokenizer", o.tokenizer,
                    "Tokenizer: Hugging Face tokenizer.json (or vocab.json with merges.txt beside it),\n"
                    "SentencePiece tokenizer.model, llama2.c tokenizer .bin or .gguf\n"
                    "(default: tokenizer.json, tokenizer.model, vocab.json + merges.txt, tokenizer.bin or\n"
                    "tok<V>.bin next to / inside the model, the first that fits the model's vocabulary)");
    sub->add_option("--dtype", o.dtype, "Compute type: f32 (fast) or f64 (ground truth)")
        ->check(CLI::IsMember({"f32", "f64"}))
        ->capture_default_str();
    sub->add_flag("--quiet,-q", o.quiet, "No progress or summary on stderr");
}

void add_weights_option(CLI::App* sub, InputOptions& o) {
    sub->add_option(
           "--weights", o.weights,
           "resident: widen every weight when loading; streamed: keep the blocks' weights in the file\n"
           "as stored (memory-mapped) and widen one block at a time when a pass reaches it (same\n"
           "results, bit for bit; for models that do not fit once widened); auto: streamed when the\n"
           "widened weights could exceed half the available memory")
        ->check(CLI::IsMember({"auto", "resident", "streamed"}))
        ->capture_default_str();
}

bool wants_double(const InputOptions& o) {
    if (o.dtype == "f64") return true;
    if (o.dtype == "f32") return false;
    throw UsageError("--dtype: '" + o.dtype + "' (expected f32 or f64)");
}

void say(const InputOptions& o, const std::string& line) {
    if (!o.quiet) std::cerr << line << "\n";
}

void progress(const InputOptions& o, const std::string& line) {
    static const bool tty = isatty(2);
    if (o.quiet || !tty) return;
    std::cerr << "\r\033[K" << line << std::flush;
    if (line.empty()) std::cerr << "\r";
}

namespace {

// One line: newlines in a nested message become spaces.
std::string one_line(std::string s) {
    for (char& ch : s)
        if (ch == '\n' || ch == '\r') ch = ' ';
    return s;
}

}  // namespace

std::unique_ptr<Tokenizer> find_tokenizer(const std::string& model, const std::string& tokenizer, int V,
                                          bool required) {
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
        throw Error("no tokenizer: give --tokenizer FILE or a --model to look next to");
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
                "; pass --tokenizer FILE");
}

std::unique_ptr<Tokenizer> find_tokenizer(const InputOptions& o, const Config& cfg, bool required) {
    return find_tokenizer(o.model, o.tokenizer, cfg.V, required);
}

int model_vocab_size(const std::string& model) {
    // config.json, the GGUF metadata or the llama2.c header: no weight is read.
    return read_config(model).V;
}

std::vector<int> resolve_ids(const InputOptions& o, const Config& cfg, const Tokenizer* tok) {
    std::vector<int> ids;
    if (!o.ids.empty()) {
        ids = parse_int_list("--ids", o.ids);
    } else if (!o.prompt.empty()) {
        if (!tok) throw Error("--prompt needs a tokenizer (none found)");
        ids = tok->encode(o.prompt, true, false);
    } else {
        throw UsageError("give the tokens with --ids 1,5,9 or the text with --prompt \"...\"");
    }
    check_ids(cfg, ids);
    return ids;
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

}  // namespace depass::cli
