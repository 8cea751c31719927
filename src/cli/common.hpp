// common.hpp -- options shared by the subcommands: which model, which tokens, which dtype.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "commands.hpp"
#include "depass/io.hpp"  // WeightMode
#include "depass/tokenizer.hpp"
#include "depass/weights.hpp"

namespace depass::cli {

struct InputOptions {
    std::string model;      // HF directory or llama2.c .bin
    std::string ids;        // "1,5,9"
    std::string prompt;     // text, tokenised with the model's tokenizer
    std::string tokenizer;  // explicit tokenizer file
    std::string dtype = "f32";
    std::string weights = "auto";  // resident | streamed | auto
    bool quiet = false;
};

// --model, --ids, --prompt, --tokenizer, --dtype, --quiet
void add_input_options(CLI::App* sub, InputOptions& o, bool need_tokens = true);
// --weights (commands that run a model loaded from a file and never edit its weights)
void add_weights_option(CLI::App* sub, InputOptions& o);

// Finds the tokenizer for a model.
//   --tokenizer FILE: opened by file type (open_tokenizer); its vocabulary must not be
//   larger than the model's (V <= 0: no model, no check).
//   Otherwise, inside the model directory and then next to the model (file or
//   directory), in this order: tokenizer.json (Hugging Face, what HF itself prefers),
//   tokenizer.model (SentencePiece), vocab.json + merges.txt (GPT-2), tokenizer.bin,
//   tok<V>.bin (llama2.c); the first whose vocabulary size equals V wins (the two .json
//   kinds may also be smaller than V: models often pad their embedding matrix).
// Returns nullptr when nothing fits and !required; else throws depass::Error listing
// every candidate tried and why it was passed over.
std::unique_ptr<Tokenizer> find_tokenizer(const std::string& model, const std::string& tokenizer, int V,
                                          bool required);
std::unique_ptr<Tokenizer> find_tokenizer(const InputOptions& o, const Config& cfg, bool required);

// The vocabulary size of a model without reading its weights (read_config): config.json of a
// Hugging Face directory, a GGUF file's metadata or the header of a llama2.c .bin. Throws depass::Error.
int model_vocab_size(const std::string& model);

// Token ids from --ids or --prompt (exactly one must be given); checked against the model.
std::vector<int> resolve_ids(const InputOptions& o, const Config& cfg, const Tokenizer* tok);

// "f32" / "f64" -> true for double; UsageError otherwise.
bool wants_double(const InputOptions& o);

// Prints to stderr unless quiet.
void say(const InputOptions& o, const std::string& line);
// Progress of long work: on stderr, only when it is a terminal, never with --quiet.
// Overwrites the current line.
void progress(const InputOptions& o, const std::string& line);

// A piece for display: SentencePiece's U+2581 shown as a space, llama2.c's "\n<s>\n"
// as "<s>", newlines / tabs / carriage returns escaped.
std::string show_piece(const Tokenizer* tok, int id);

}  // namespace depass::cli
