#include "common.hpp"

#include <unistd.h>

#include <iostream>

#include "depass/forward.hpp"
#include "depass/io.hpp"
#include "depass/tokenizer_hf.hpp"

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

namespace {
const Group* g_ranks = nullptr;
}  // namespace

const Group& ranks() { return g_ranks ? *g_ranks : one_process(); }
void set_ranks(const Group* group) { g_ranks = group; }
bool is_root() { return ranks().is_root(); }

void say(const InputOptions& o, const std::string& line) {
    if (!o.quiet && is_root()) std::cerr << line << "\n";
}

void progress(const InputOptions& o, const std::string& line) {
    static const bool tty = isatty(2);
    if (o.quiet || !tty || !is_root()) return;
    std::cerr << "\r\033[K" << line << std::flush;
    if (line.empty()) std::cerr << "\r";
}

std::unique_ptr<Tokenizer> find_tokenizer(const InputOptions& o, const Config& cfg, bool required) {
    return depass::find_tokenizer(o.model, o.tokenizer, cfg.V, required);
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

}  // namespace depass::cli
