// common.hpp -- options shared by the subcommands: which model, which tokens, which dtype.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "commands.hpp"
#include "depass/distributed.hpp"
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

// The tokenizer of --model / --tokenizer (depass::find_tokenizer, tokenizer.hpp).
std::unique_ptr<Tokenizer> find_tokenizer(const InputOptions& o, const Config& cfg, bool required);

// The vocabulary size of a model without reading its weights (read_config): config.json of a
// Hugging Face directory, a GGUF file's metadata or the header of a llama2.c .bin. Throws depass::Error.
int model_vocab_size(const std::string& model);

// Token ids from --ids or --prompt (exactly one must be given); checked against the model.
std::vector<int> resolve_ids(const InputOptions& o, const Config& cfg, const Tokenizer* tok);

// "f32" / "f64" -> true for double; UsageError otherwise.
bool wants_double(const InputOptions& o);

// The processes of this run (`mpirun -np P depass ...`, distributed.hpp): one process unless
// main() started MPI ranks. Only rank 0 prints (say, progress, the summaries) and writes files.
const Group& ranks();
void set_ranks(const Group* group);  // main(): the group it started (null: one process)
bool is_root();                      // ranks().is_root()

// Prints to stderr unless quiet (rank 0 only).
void say(const InputOptions& o, const std::string& line);
// Progress of long work: on stderr, only when it is a terminal, never with --quiet.
// Overwrites the current line.
void progress(const InputOptions& o, const std::string& line);

}  // namespace depass::cli
