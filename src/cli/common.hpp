// common.hpp -- options shared by the subcommands: which model, which tokens, which dtype.
#pragma once

#include "commands.hpp"

#include "depass/tokenizer.hpp"
#include "depass/weights.hpp"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace depass::cli {

struct InputOptions {
    std::string model;      // HF directory or llama2.c .bin
    std::string ids;        // "1,5,9"
    std::string prompt;     // text, tokenised with the model's tokenizer
    std::string tokenizer;  // explicit tokenizer file
    std::string dtype = "f32";
    bool quiet = false;
};

// --model, --ids, --prompt, --tokenizer, --dtype, --quiet
void add_input_options(CLI::App* sub, InputOptions& o, bool need_tokens = true);

// Finds the tokenizer for a model: --tokenizer if given, else tokenizer.bin or
// tok<V>.bin next to the model file (or inside the model directory) whose
// vocabulary size matches the model. Throws depass::Error saying what was tried.
std::unique_ptr<Tokenizer> find_tokenizer(const InputOptions& o, const Config& cfg, bool required);

// Token ids from --ids or --prompt (exactly one must be given); checked against the model.
std::vector<int> resolve_ids(const InputOptions& o, const Config& cfg, const Tokenizer* tok);

// "f32" / "f64" -> true for double; UsageError otherwise.
bool wants_double(const InputOptions& o);

// Prints to stderr unless quiet.
void say(const InputOptions& o, const std::string& line);
// Progress of long work: on stderr, only when it is a terminal, never with --quiet.
// Overwrites the current line.
void progress(const InputOptions& o, const std::string& line);

// A piece for display: printable, newlines escaped.
std::string show_piece(const Tokenizer* tok, int id);

}  // namespace depass::cli
