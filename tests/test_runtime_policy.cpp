// What the depass command sets up before it runs a command: glibc keeps freed memory for reuse
// unless --system-malloc is given (include/depass/allocator.hpp), and OpenMP's waiting threads
// sleep unless the user chose OMP_WAIT_POLICY (include/depass/threading.hpp). Both are observed
// from outside: the allocator by whether a 64 MiB block is mapped on its own, the wait policy by
// what GNU libgomp itself reports at start-up (OMP_DISPLAY_ENV).
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "test_support.hpp"

namespace {

std::string model_path() { return depass_test::source_dir() + "/weights/stories260K.bin"; }
const auto q = depass_test::shell_quoted;

nlohmann::json speed_json(const std::string& extra, const std::string& name) {
    const std::string out = depass_test::temp_dir() + "/" + name;
    std::string log;
    const int rc = depass_test::run_command("OMP_NUM_THREADS=1 " + q(depass_test::cli_path()) +
                                                " eval neurons-speed -m " + q(model_path()) +
                                                " --n 6 --no-ablation --json " + q(out) + " " + extra,
                                            &log);
    INFO(log);
    REQUIRE(rc == 0);
    std::ifstream in(out);
    return nlohmann::json::parse(in);
}

// The last value libgomp printed for `name` (OMP_DISPLAY_ENV=verbose), or "" if none.
std::string last_display(const std::string& log, const std::string& name) {
    const std::regex line("\\s" + name + " = '([^']*)'");
    std::string value;
    for (auto it = std::sregex_iterator(log.begin(), log.end(), line); it != std::sregex_iterator(); ++it)
        value = (*it)[1];
    return value;
}

}  // namespace

TEST_CASE("the command keeps freed memory for reuse, and --system-malloc leaves glibc's defaults",
          "[allocator]") {
#ifndef __GLIBC__
    WARN("not glibc: the allocator is never changed");
    return;
#else
    const nlohmann::json tuned = speed_json("", "tuned.json");
    CHECK(tuned.at("malloc_keeps_freed_memory") == true);
    CHECK(tuned.at("malloc_large_block_mapped") == false);
    const nlohmann::json plain = speed_json("--system-malloc", "plain.json");
    CHECK(plain.at("malloc_keeps_freed_memory") == false);
    CHECK(plain.at("malloc_large_block_mapped") == true);  // glibc's default: mapped on its own
#endif
}

TEST_CASE("the command's waiting threads sleep unless OMP_WAIT_POLICY is set", "[threads]") {
    const std::string cmd =
        q(depass_test::cli_path()) + " tokenize -m " + q(model_path()) + " --prompt 'Once'";
    std::string log;
    REQUIRE(depass_test::run_command(
                "env -u OMP_WAIT_POLICY OMP_NUM_THREADS=2 OMP_DISPLAY_ENV=verbose " + cmd, &log) == 0);
    const std::string spin = last_display(log, "GOMP_SPINCOUNT");
    if (spin.empty()) {
        WARN("the OpenMP runtime is not GNU libgomp (no GOMP_SPINCOUNT in OMP_DISPLAY_ENV): not checked");
        return;
    }
    INFO(log);
    CHECK(last_display(log, "OMP_WAIT_POLICY") == "PASSIVE");
    CHECK(spin == "0");  // passive: no spinning at all (libgomp's default spins 300000 times)

    // The user's choice is kept.
    REQUIRE(depass_test::run_command(
                "OMP_WAIT_POLICY=active OMP_NUM_THREADS=2 OMP_DISPLAY_ENV=verbose " + cmd, &log) == 0);
    CHECK(last_display(log, "OMP_WAIT_POLICY") == "ACTIVE");
    CHECK(last_display(log, "GOMP_SPINCOUNT") != "0");
}
