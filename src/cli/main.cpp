// main.cpp -- the `depass` command line. Thin: parses options and calls the library.
// Every subcommand lives in its own cmd_*.cpp and reports errors by exception; this
// file turns them into one line on stderr and an exit code (2 usage, 1 runtime).
//
// Started by mpirun (an MPI build, distributed.hpp), every rank runs this same main(). Only
// attribute and eval tokens|heads|neurons split their work over the ranks; any other command
// is refused there. A failure on any rank ends every rank with its exit code and one error
// line, printed by rank 0 (with "(on rank r of P)" when rank 0 itself did not fail): the
// failing rank reports at the next check-in every rank makes (sync_point), at the latest the
// one after the command, so no rank is left waiting and rank 0 writes no file. A rank that
// fails inside a section of collective calls cannot be heard by the others: it prints its
// line and aborts every rank.
#include <iostream>
#include <sstream>

#include "commands.hpp"
#include "common.hpp"
#include "depass/allocator.hpp"
#include "depass/distributed.hpp"
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

namespace {

using depass::cli::ranks;

// Whether the command on the parsed command line splits its work over ranks.
bool splits_over_ranks(const CLI::App& app, std::string* name) {
    std::string path;
    bool split = false;
    const auto used = app.get_subcommands();
    if (!used.empty()) {
        const CLI::App* cmd = used.front();
        path = cmd->get_name();
        const auto sub = cmd->get_subcommands();
        const std::string second = sub.empty() ? "" : sub.front()->get_name();
        if (!second.empty()) path += " " + second;
        split =
            path == "attribute" || path == "eval tokens" || path == "eval heads" || path == "eval neurons";
    }
    *name = path;
    return split;
}

// Ends this rank's run after a failure with `code` and the error line `line` (no newline):
// one process prints it; over MPI ranks every rank learns of the lowest failed rank's
// report and rank 0 prints that one line (see the file comment).
int fail(int code, const std::string& line) {
    const depass::Group& g = ranks();
    const auto note = [&](int rank) {
        return rank == 0 ? std::string()
                         : " (on rank " + std::to_string(rank) + " of " + std::to_string(g.size()) + ")";
    };
    if (g.size() == 1) {
        std::cerr << line << "\n";
        return code;
    }
    if (g.broken()) {  // the others wait in a collective call this rank will not join
        std::cerr << line << note(g.rank()) << "\n" << std::flush;
        g.abort(code);
    }
    const std::optional<depass::RankReport> r = g.check_in(depass::RankReport{code, line, g.rank()});
    if (g.is_root()) std::cerr << r->message << note(r->rank) << "\n";
    return r->code;
}

// A failure every rank already knows of (reported at a check-in): rank 0 prints it.
int known_failure(const depass::RankFailure& f) {
    if (ranks().is_root())
        std::cerr << f.report.message
                  << (f.report.rank == 0 ? std::string()
                                         : " (on rank " + std::to_string(f.report.rank) + " of " +
                                               std::to_string(ranks().size()) + ")")
                  << "\n";
    return f.report.code;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace depass::cli;
    // Before anything else: waiting threads sleep (may start the program again, see threading.hpp).
    depass::use_passive_wait_policy(argv);
    // Started by an MPI launcher: the ranks of this run (null otherwise; distributed.hpp).
    std::unique_ptr<depass::Group> group;
    try {
        group = depass::start_ranks(&argc, &argv);
    } catch (const depass::Error& e) {
        std::cerr << "depass: error: " << e.what() << "\n";
        return kExitRuntime;
    }
    set_ranks(group.get());
    const int code = [&] {
        CLI::App app{
            "depass -- DePass attribution by a decomposed forward pass.\n"
            "Runs a transformer once, records it, then splits a hidden state into additive components\n"
            "(tokens, heads, neurons, modules, subspaces) and pushes each through the rest of the network\n"
            "with attention, norm factors and MLP activations frozen. Components always sum to the true "
            "state.\n"
            "Threads: OMP_NUM_THREADS (results do not depend on it); waiting threads sleep unless "
            "OMP_WAIT_POLICY is set.\n"
            "Processes: an MPI build runs `mpirun -np P depass attribute|eval tokens|eval heads|eval neurons "
            "...`\n"
            "with the components (attribute) or the prompts (eval) split over the P ranks; rank 0 writes."};
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
        // Once the options are parsed, before any command runs: over MPI ranks, only the commands
        // that split their work; then keep freed memory for reuse (allocator.hpp) unless the
        // command was given --system-malloc.
        app.parse_complete_callback([&app] {
            std::string name;
            if (ranks().size() > 1 && !splits_over_ranks(app, &name))
                throw UsageError("depass " + name +
                                 " runs as one process: start it without mpirun, or with " +
                                 "mpirun -np 1 (attribute and eval tokens|heads|neurons split over ranks)");
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
            depass::sync_point(ranks());  // the last check-in: every rank's command has ended well
            return 0;
        } catch (const depass::RankFailure& f) {
            return known_failure(f);
        } catch (const CLI::ParseError& e) {
            if (e.get_exit_code() == 0) {  // --help: printed once
                if (is_root()) app.exit(e);
                return 0;
            }
            std::ostringstream out, err;
            app.exit(e, out, err);
            std::string text = err.str();
            while (!text.empty() && text.back() == '\n') text.pop_back();
            if (is_root()) std::cout << out.str();
            return fail(kExitUsage, text);
        } catch (const UsageError& e) {
            return fail(kExitUsage, std::string("depass: usage error: ") + e.what());
        } catch (const std::exception& e) {
            return fail(kExitRuntime, std::string("depass: error: ") + e.what());
        }
    }();
    group.reset();  // MPI_Finalize on every rank that got here
    return code;
}
