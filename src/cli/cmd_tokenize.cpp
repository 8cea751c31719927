// depass tokenize -- the token ids of a text, as the model would see them.
#include <iostream>

#include "common.hpp"

namespace depass::cli {

namespace {

struct TokenizeOptions {
    std::string model;
    std::string tokenizer;
    std::string prompt;
    bool pieces = false;
    bool no_bos = false;
};

void run_tokenize(const TokenizeOptions& o) {
    if (o.model.empty() && o.tokenizer.empty())
        throw UsageError(
            "give the model with --model PATH (its tokenizer is looked up) or the tokenizer with --tokenizer "
            "FILE");
    // Only the model's vocabulary size is needed: its config is read (read_config), no weight.
    const int V = o.model.empty() ? 0 : model_vocab_size(o.model);
    std::unique_ptr<Tokenizer> tok = depass::find_tokenizer(o.model, o.tokenizer, V, true);
    const std::vector<int> ids = tok->encode(o.prompt, !o.no_bos, false);

    // Line 1: the ids, space-separated (empty when the text is empty and --no-bos).
    for (size_t n = 0; n < ids.size(); ++n) std::cout << (n ? " " : "") << ids[n];
    std::cout << "\n";
    // With --pieces: one line per token, id<TAB>piece.
    if (o.pieces)
        for (int id : ids) std::cout << id << "\t" << show_piece(tok.get(), id) << "\n";
}

}  // namespace

void register_tokenize(CLI::App& app) {
    auto o = std::make_shared<TokenizeOptions>();
    CLI::App* sub = app.add_subcommand(
        "tokenize",
        "Print the token ids of a text: one line of space-separated ids (BOS first unless --no-bos).\n"
        "With --pieces, also one line per token: id<TAB>piece (spaces shown as spaces; newlines and\n"
        "tabs inside a piece escaped as \\n and \\t).\n"
        "The tokenizer is --tokenizer FILE (Hugging Face tokenizer.json, GPT-2 vocab.json with merges.txt\n"
        "beside it, SentencePiece tokenizer.model, llama2.c tokenizer .bin or the vocabulary inside a\n"
        ".gguf file),\n"
        "or else the one found next to / inside --model that fits the model's vocabulary\n"
        "(tokenizer.json, tokenizer.model, vocab.json + merges.txt, tokenizer.bin, tok<V>.bin, in that\n"
        "order; tokenizer.json first as Hugging Face itself prefers it).\n"
        "Examples:\n"
        "  depass tokenize -m weights/stories260K.bin --prompt \"Once upon a time\"\n"
        "  depass tokenize --tokenizer tokenizer.model --prompt \"Hello world\" --pieces\n"
        "  depass tokenize --tokenizer Qwen2.5-0.5B/tokenizer.json --prompt \"Hello world\" --no-bos");
    sub->add_option(
        "--model,-m", o->model,
        "Model (Hugging Face directory, .gguf or llama2.c .bin) whose tokenizer to use; only its config is "
        "read, never its weights; optional when --tokenizer is given (then the tokenizer's vocabulary must "
        "fit "
        "the model)");
    sub->add_option(
        "--tokenizer", o->tokenizer,
        "Tokenizer file: tokenizer.json (or vocab.json + merges.txt), SentencePiece .model, llama2.c "
        "tokenizer .bin or .gguf (its vocabulary)");
    sub->add_option("--prompt,-p", o->prompt, "Text to tokenise")->required();
    sub->add_flag("--pieces", o->pieces, "Also print one line per token: id<TAB>piece");
    sub->add_flag("--no-bos", o->no_bos,
                  "Do not put BOS in front (tokenizer.json: the post-processor's template tokens)");
    sub->callback([o] { run_tokenize(*o); });
}

}  // namespace depass::cli
