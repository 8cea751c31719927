// main.cpp -- the `depass` command line. Thin: parses options and calls the library.
#include <CLI/CLI.hpp>

int main(int argc, char** argv) {
    CLI::App app{"depass: decomposed forward pass attribution for transformer language models"};
    app.require_subcommand(1);
    CLI11_PARSE(app, argc, argv);
    return 0;
}
