#include "common.hpp"

#include "depass/forward.hpp"
#include "depass/io.hpp"

#include <filesystem>
#include <iostream>

#include <unistd.h>

namespace fs = std::filesystem;

namespace depass::cli {

void add_input_options(CLI::App* sub, InputOptions& o, bool need_tokens) {
    sub->add_option("--model,-m", o.model,
                    "Model: a Hugging Face directory (config.json + *.safetensors) or a llama2.c .bin checkpoint")
        ->required();
    if (need_tokens) {
        auto* ids = sub->add_option("--ids", o.ids, "Token ids, comma-separated (e.g. 1,403,407,261,378)");
        auto* prompt = sub->add_option("--prompt,-p", o.prompt, "Text to tokenise (BOS is prepended)");
        ids->excludes(prompt);
    }
    sub->add_option("--tokenizer", o.tokenizer,
                    "llama2.c tokenizer .bin (default: tokenizer.bin or tok<V>.bin next to the model)");
    sub->add_option("--dtype", o.dtype, "Compute type: f32 (fast) or f64 (ground truth)")
        ->check(CLI::IsMember({"f32", "f64"}))
        ->capture_default_str();
    sub->add_flag("--quiet,-q", o.quiet, "No progress or summary on stderr");
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

std::unique_ptr<Tokenizer> find_tokenizer(const InputOptions& o, const Config& cfg, bool required) {
    if (!o.tokenizer.empty()) {
        auto tok = std::make_unique<Llama2cTokenizer>(Llama2cTokenizer::load(o.tokenizer));
        if (tok->vocab_size() != cfg.V)
            throw Error(o.tokenizer + ": tokenizer has " + std::to_string(tok->vocab_size()) +
                        " pieces but the model's vocabulary has " + std::to_string(cfg.V));
        return tok;
    }
    fs::path base = fs::is_directory(o.model) ? fs::path(o.model) : fs::path(o.model).parent_path();
    if (base.empty()) base = ".";
    std::vector<fs::path> tried = {base / "tokenizer.bin", base / ("tok" + std::to_string(cfg.V) + ".bin")};
    for (const fs::path& p : tried) {
        if (!fs::is_regular_file(p)) continue;
        auto tok = std::make_unique<Llama2cTokenizer>(Llama2cTokenizer::load(p.string()));
        if (tok->vocab_size() == cfg.V) return tok;
    }
    if (!required) return nullptr;
    throw Error("no tokenizer for this model: looked for " + tried[0].string() + " and " + tried[1].string() +
                " with " + std::to_string(cfg.V) + " pieces; pass --tokenizer FILE or give --ids");
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
    for (char ch : s) {
        if (ch == '\n') out += "\\n";
        else if (ch == '\t') out += "\\t";
        else out += ch;
    }
    return out;
}

}  // namespace depass::cli
