// main.cpp -- the `depass` command line. Thin: parses options and calls the library.
// Every subcommand lives in its own cmd_*.cpp and reports errors by exception; this
// file turns them into one line on stderr and an exit code (2 usage, 1 runtime).
#include <iostream>

#include "commands.hpp"
#include "depass/allocator.hpp"
#include "depass/threading.hpp"
#include "depass/types.hpp"

namespace depass::cli {

std::vector<int> parse_int_list(const std::string& flag, const std::string& text) {
    std::vector<int> out;
    size_t pos = 0;
    if (text.empty()) throw UsageError(flag + ": empty list (expected comma-separated integers, e.g. 1,5,9)");
    while (pos <= text.size()) {
        size_t comma = text.find(',', pos);
        std::string item = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        size_t a = item.find_first_not_of(" \t"), b = item.find_last_not_of(" \t");
        item = a == std::string::npos ? "" : item.substr(a, b - a + 1);
        try {
            size_t used = 0;
            long v = std::stol(item, &used);
            if (used != item.size() || v < INT32_MIN || v > INT32_MAX) throw std::invalid_argument(item);
            out.push_back(int(v));
        } catch (const std::exception&) {
            throw UsageError(flag + ": '" + item +
                             "' is not an integer (expected comma-separated integers, e.g. 1,5,9)");
        }
        if (comma == std::string::npos) break;
        pos = comma + 1;
    }
    return out;
}

}  // namespace depass::cli

int main(int argc, char** argv) {
    using namespace depass::cli;
    // Before anything else: waiting threads sleep (may start the program again, see threading.hpp).
    depass::use_passive_wait_policy(argv);
    CLI::App app{
        "depass -- DePass attribution by a decomposed forward pass.\n"
        "Runs a transformer once, records it, then splits a hidden state into additive components\n"
        "(tokens, heads, neurons, modules, subspaces) and pushes each through the rest of the network\n"
        "with attention, norm factors and MLP activations frozen. Components always sum to the true state.\n"
        "Threads: OMP_NUM_THREADS (results do not depend on it); waiting threads sleep unless "
        "OMP_WAIT_POLICY is set."};
    app.require_subcommand(1);
    app.set_help_all_flag("--help-all", "Show help for every subcommand");
    register_forward(app);
    register_generate(app);
    register_attribute(app);
    register_validate(app);
    register_compare(app);
    register_tokenize(app);
    register_eval(app);
    register_inspect(app);
    // Once the options are parsed, before any command runs: keep freed memory for reuse
    // (allocator.hpp) unless the command was given --system-malloc.
    app.parse_complete_callback([&app] {
        for (const CLI::App* sub = &app; sub;) {
            const CLI::Option* flag = sub->get_option_no_throw("--system-malloc");
            if (flag && flag->count() > 0) return;
            const auto used = sub->get_subcommands();
            sub = used.empty() ? nullptr : used.front();
        }
        depass::keep_freed_memory();
    });
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int rc = app.exit(e);
        return rc == 0 ? 0 : kExitUsage;
    } catch (const UsageError& e) {
        std::cerr << "depass: usage error: " << e.what() << "\n";
        return kExitUsage;
    } catch (const depass::Error& e) {
        std::cerr << "depass: error: " << e.what() << "\n";
        return kExitRuntime;
    } catch (const std::exception& e) {
        std::cerr << "depass: error: " << e.what() << "\n";
        return kExitRuntime;
    }
    return 0;
}
