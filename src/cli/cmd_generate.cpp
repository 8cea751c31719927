// depass generate -- greedy continuation of a prompt (checks a model loaded correctly).
#include <iostream>

#include "common.hpp"
#include "depass/forward.hpp"
#include "depass/io.hpp"
#include "resources.hpp"

namespace depass::cli {

namespace {

struct GenerateOptions {
    InputOptions in;
    int n_new = 64;
};

template <class T>
void run_generate(const GenerateOptions& o) {
    if (o.n_new < 0) throw UsageError("-n: " + std::to_string(o.n_new) + " (expected a count >= 0)");
    Model<T> model = load_model<T>(o.in.model, weight_mode(o.in, read_config(o.in.model), int(sizeof(T))));
    auto tok = find_tokenizer(o.in, model.cfg, !o.in.prompt.empty());
    std::vector<int> ids = resolve_ids(o.in, model.cfg, tok.get());
    say(o.in, "model: " + describe(model.cfg));
    // Echo the prompt, then stream each new token as it is chosen.
    if (tok) std::cout << tok->decode(ids);
    std::cout.flush();
    int prev = ids.back();
    for (int step = 0; step < o.n_new; ++step) {
        std::vector<int> next = generate_greedy(model, ids, 1);
        if (next.empty() || next[0] == model.cfg.eos_id) break;
        if (tok)
            std::cout << tok->decode_piece(prev, next[0]);
        else
            std::cout << (step ? "," : " -> ") << next[0];
        std::cout.flush();
        prev = next[0];
        ids.push_back(next[0]);
    }
    std::cout << "\n";
}

}  // namespace

void register_generate(CLI::App& app) {
    auto o = std::make_shared<GenerateOptions>();
    CLI::App* sub = app.add_subcommand(
        "generate",
        "Greedy continuation of a prompt, printed as it is produced (stops at EOS or the context length).\n"
        "Example: depass generate -m weights/stories260K.bin --prompt \"Once upon a time\" -n 64");
    add_input_options(sub, o->in);
    add_weights_option(sub, o->in);
    sub->add_option("-n,--new-tokens", o->n_new, "Number of tokens to generate")->capture_default_str();
    sub->callback([o] { wants_double(o->in) ? run_generate<double>(*o) : run_generate<float>(*o); });
}

}  // namespace depass::cli
