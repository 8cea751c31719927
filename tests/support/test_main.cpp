// test_main.cpp -- Catch2 entry point that reports skipped reference-data tests
// to CTest (exit code 77) instead of letting them pass silently.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <unistd.h>

#include <cstdio>

#include "depass/blas.hpp"

namespace depass_test {
int skipped_count();
}

int main(int argc, char* argv[]) {
    // The BLAS kernels the programs use (depass/blas.hpp): may start the test again, once.
    if (depass::choose_blas_kernels()) execv("/proc/self/exe", argv);
    int failed = Catch::Session().run(argc, argv);
    if (failed) return failed;
    if (depass_test::skipped_count() > 0) {
        std::fprintf(
            stderr,
            "\n*** %d test case(s) SKIPPED: something they need is missing (see the warnings above: "
            "the reference data in tests/data or $DEPASS_SHARED_DIR, or a program such as chromium). ***\n\n",
            depass_test::skipped_count());
        return 77;
    }
    return 0;
}
