// depass forward -- run the recorded forward pass and dump the trace.
#include <iostream>

#include "common.hpp"
#include "depass/dump.hpp"
#include "depass/forward.hpp"
#include "depass/io.hpp"
#include "resources.hpp"

namespace depass::cli {

namespace {

struct ForwardOptions {
    InputOptions in;
    std::string dump;
};

template <class T>
void run_forward(const ForwardOptions& o) {
    // Before anything is loaded: the config (no weights), the tokens, the memory needed.
    const Config header = read_config(o.in.model);
    auto tok = find_tokenizer(o.in, header, !o.in.prompt.empty());
    std::vector<int> ids = resolve_ids(o.in, header, tok.get());
    const WeightMode mode = weight_mode(o.in, header, int(sizeof(T)));
    require_memory(o.in.model, header, int(ids.size()), int(sizeof(T)), "forward", mode);
    Model<T> model = load_model<T>(o.in.model, mode);
    if (model.streamed)
        say(o.in, "weights: streamed (each block widened from the file when a pass reaches it)");
    say(o.in, "model: " + describe(model.cfg));
    Trace<T> t = forward(model, ids);
    if (!o.dump.empty()) {
        write_safetensors(o.dump, trace_tensors(model.cfg, t), sizeof(T) == 8 ? DType::F64 : DType::F32,
                          {{"format", "depass-trace"}, {"model", o.in.model}, {"dtype", o.in.dtype}});
        say(o.in, "wrote " + o.dump);
    }
    // Summary: the greedy next token at each position.
    std::cout << "position\tid\tpiece\tnext_id\tnext_piece\tlogit\n";
    for (int n = 0; n < t.N(); ++n) {
        Eigen::Index best;
        T v = t.logits.row(n).maxCoeff(&best);
        std::cout << n << "\t" << ids[n] << "\t" << show_piece(tok.get(), ids[n]) << "\t" << best << "\t"
                  << show_piece(tok.get(), int(best)) << "\t" << v << "\n";
    }
}

}  // namespace

void register_forward(CLI::App& app) {
    auto o = std::make_shared<ForwardOptions>();
    CLI::App* sub = app.add_subcommand(
        "forward",
        "Run the model once and record everything DePass freezes.\n"
        "Prints the greedy next token at every position; with --dump writes the trace (embeddings,\n"
        "hidden_states, layer_outputs, attn_probs, attn_out, post_attn_residual, mlp_act, final norm,\n"
        "logits) with the tensor names and axis order of the reference goldens.\n"
        "Before any weight is loaded, the tokens are checked against the context length and the run's\n"
        "memory estimate (`depass inspect`) against the free memory; DEPASS_FREE_MEMORY=BYTES overrides it.\n"
        "Example: depass forward -m weights/stories260K.bin --prompt \"Once upon a time\" --dump "
        "trace.safetensors");
    add_input_options(sub, o->in);
    add_weights_option(sub, o->in);
    sub->add_option("--dump", o->dump, "Write the trace to this .safetensors file (F32 or F64 per --dtype)");
    sub->callback([o] { wants_double(o->in) ? run_forward<double>(*o) : run_forward<float>(*o); });
}

}  // namespace depass::cli
