// commands.hpp -- each subcommand of `depass` registers itself from its own file.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace depass::cli {

void register_forward(CLI::App& app);
void register_generate(CLI::App& app);
void register_attribute(CLI::App& app);
void register_validate(CLI::App& app);
void register_compare(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_eval(CLI::App& app);
void register_inspect(CLI::App& app);
// `depass eval qk` (cmd_eval_qk.cpp), under the `eval` subcommand.
void register_eval_qk(CLI::App* eval);

// Exit codes: 0 success, 1 runtime error (bad file, bad value found while running),
// 2 usage error (bad flags or flag combinations).
constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;

// A usage error raised after parsing (e.g. an incompatible flag combination).
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// "1,5,9" -> {1, 5, 9}; throws UsageError naming the flag and the bad item.
std::vector<int> parse_int_list(const std::string& flag, const std::string& text);

}  // namespace depass::cli
