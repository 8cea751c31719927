// depass attribute -- the decomposed forward pass from the command line.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <optional>

#include "common.hpp"
#include "depass/adjoint.hpp"
#include "depass/attribute.hpp"
#include "depass/attribution_files.hpp"
#include "depass/io.hpp"
#include "depass/report.hpp"
#include "depass/tolerance.hpp"
#include "resources.hpp"

namespace depass::cli {

namespace {

struct AttributeOptions {
    InputOptions in;
    std::string level = "token";
    std::string layer_spec = "0";  // a layer, or "all" (module, head, neuron)
    int layer = 0;
    bool all = false;  // --layer all
    bool adjoint = false;
    int qk = -1;                       // --qk L: split block L's attention logits over component pairs
    std::string qk_heads, qk_queries;  // --qk-heads, --query-positions
    std::string module;                // attn | mlp
    std::string heads, neurons;        // lists
    int neuron_groups = 0;
    std::vector<std::string> bases;
    std::string components;
    std::string rule = "softmax";
    double temperature = 0.1;
    std::string ignore_special;  // on | off | "" (level default)
    std::string targets = "auto";
    bool all_layers = false;
    int mlp_chunk = 0;
    std::string out;
    std::string format = "safetensors";  // of --out: safetensors | json | npy
    bool json_components = false;
    std::string html;
};

// Checks the flag combination before any work is done.
void check_combination(CLI::App* sub, const AttributeOptions& o) {
    auto given = [&](const char* flag) { return sub->count(flag) > 0; };
    auto only_for = [&](const char* flag, const char* level) {
        if (given(flag) && o.level != level)
            throw UsageError(std::string(flag) + " applies to --level " + level + " only (got --level " +
                             o.level + ")");
    };
    only_for("--module", "module");
    only_for("--heads", "head");
    only_for("--neurons", "neuron");
    only_for("--neuron-groups", "neuron");
    only_for("--basis", "subspace");
    only_for("--components", "custom");
    if (o.adjoint && o.rule != "taylor")
        throw UsageError("--adjoint needs --rule taylor (got --rule " + o.rule +
                         "): only the taylor rule is linear in the components, so only it can be computed by "
                         "one reverse pass; the other rules need the decomposed forward pass");
    if ((o.adjoint || o.all) && o.json_components)
        throw UsageError(std::string("--json-components: ") + (o.adjoint
                                                                   ? "--adjoint never forms the components"
                                                                   : "--layer all writes no components"));
    if (o.adjoint && o.all_layers)
        throw UsageError(
            "--all-layers stores the components at every residual point, which --adjoint never forms");
    if (o.all && o.level != "module" && o.level != "head" && o.level != "neuron")
        throw UsageError("--layer all applies to --level module, head and neuron only (got --level " +
                         o.level + ")");
    if ((given("--qk-heads") || given("--query-positions")) && o.qk < 0)
        throw UsageError(std::string(given("--qk-heads") ? "--qk-heads" : "--query-positions") +
                         " applies to --qk L, which is not given");
    if (o.qk >= 0 && o.adjoint)
        throw UsageError("--qk needs the components at its block's input, which --adjoint never forms");
    if (o.qk >= 0 && o.all) throw UsageError("--qk takes one cut (--layer N), not --layer all");
    if (given("--qk") && o.qk < 0)
        throw UsageError("--qk: " + std::to_string(o.qk) + " (expected a block >= 0)");
    if (o.all && o.all_layers)
        throw UsageError("--layer all writes logit_attribution_by_layer only; drop --all-layers");
    if (given("--neurons") && given("--neuron-groups"))
        throw UsageError("give either --neurons or --neuron-groups, not both");
    if (o.level == "subspace" && o.bases.empty())
        throw UsageError(
            "--level subspace needs at least one --basis B.npy ([D, k] basis or [D, D] projector)");
    if (o.level == "custom" && o.components.empty())
        throw UsageError("--level custom needs --components C.npy ([K, N, D], summing to the state)");
    if (o.neuron_groups < 0)
        throw UsageError("--neuron-groups: " + std::to_string(o.neuron_groups) + " (expected > 0)");
    if (!(o.temperature > 0)) throw UsageError("--temperature must be > 0");
    if (o.mlp_chunk < 0) throw UsageError("--mlp-chunk must be >= 0");
    if (o.out.empty() && o.html.empty())
        throw UsageError("give --out (and/or --html): nothing would be written");
    if (o.out.empty() && given("--format")) throw UsageError("--format applies to --out, which is not given");
    if (o.json_components && o.format != "json")
        throw UsageError("--json-components applies to --format json only (got --format " + o.format + ")");
    if (!o.out.empty() && o.out == o.html) throw UsageError("--out and --html name the same file: " + o.out);
    // An existing directory that is not an earlier npy output is never replaced: say so before any work.
    if (o.format == "npy") check_npy_directory_target(o.out);
}

// --targets: "auto" (the model's argmax at every position, the library's default) or ids for every position.
std::vector<std::vector<int>> parse_targets(const std::string& spec, int V) {
    if (spec == "auto") return {};
    std::vector<int> ids = parse_int_list("--targets", spec);
    for (int v : ids)
        if (v < 0 || v >= V)
            throw Error("--targets: token id " + std::to_string(v) + " is outside the vocabulary [0, " +
                        std::to_string(V) + ")");
    return {ids};
}

// Every layer's attribution as one: the components of layer 0, then of layer 1, ... (each
// layer's rest named "rest (layer l)"), so logit_attribution [L*M, N, K] is
// logit_attribution_by_layer [L, M, N, K]. Each layer's M shares sum to the target logit.
template <class T>
Attribution<T> stack_layers(std::vector<Attribution<T>> layers) {
    Attribution<T> a = std::move(layers[0]);
    const int M = a.M(), N = a.N(), L = int(layers.size());
    std::vector<std::string> names;
    std::vector<ComponentInfo> info;
    Tensor<T> attr({int64_t(L) * M, N, a.K()});
    for (int l = 0; l < L; ++l) {
        const Attribution<T>& x = l == 0 ? a : layers[size_t(l)];
        for (int m = 0; m < M; ++m) {
            ComponentInfo ci = x.info[size_t(m)];
            if (ci.kind == ComponentInfo::Kind::Rest) ci.label = "rest (layer " + std::to_string(l) + ")";
            names.push_back(ci.label);
            info.push_back(ci);
        }
        std::copy(x.logit_attribution.data.begin(), x.logit_attribution.data.end(),
                  attr.data.begin() + size_t(l) * x.logit_attribution.size());
        if (!(x.completeness_max_rel <= a.completeness_max_rel)) {
            a.completeness_max_rel = x.completeness_max_rel;
            a.completeness_worst_point = x.completeness_worst_point + " (layer " + std::to_string(l) + ")";
        }
        a.completeness_max_abs = std::max(a.completeness_max_abs, x.completeness_max_abs);
    }
    a.components = Components<T>::zeros(N, 0, std::vector<int>(names.size(), 0), names);
    a.info = std::move(info);
    a.logit_attribution = std::move(attr);
    return a;
}

template <class T>
void run_attribute(const AttributeOptions& o) {
    // Before anything is loaded: the config (no weights), the tokens (checked against the
    // vocabulary and the context length), and the memory the run will need.
    const Config header = read_config(o.in.model);
    auto tok = find_tokenizer(o.in, header, !o.in.prompt.empty());
    std::vector<int> ids = resolve_ids(o.in, header, tok.get());
    EstimateOptions need;
    if (o.neuron_groups > 0) need.neuron_groups = o.neuron_groups;
    need.subspaces = std::max<int>(1, int(o.bases.size()));
    need.ranks = ranks().size();  // split over MPI ranks: this rank's share
    need.rank = ranks().rank();
    // The adjoint path stores one block of rows per target, positions 0 .. n: N (N + 1) / 2 rows for
    // one target per position, as many as the token level's components.
    const std::string run = o.adjoint                                    ? "token"
                            : o.level == "neuron" && o.neuron_groups > 0 ? "neuron groups"
                            : o.level == "custom"                        ? "forward"
                                                                         : o.level;
    const WeightMode mode = weight_mode(o.in, header, int(sizeof(T)));
    require_memory(o.in.model, header, int(ids.size()), int(sizeof(T)), run, mode, need);
    Model<T> model = load_model<T>(o.in.model, mode);
    if (model.streamed)
        say(o.in, "weights: streamed (each block widened from the file when a pass reaches it)");
    const Config& cfg = model.cfg;
    say(o.in, "model: " + describe(cfg));
    Trace<T> trace = forward(model, ids);
    const int N = trace.N();

    AttributionRequest rq;
    LevelRequest& req = rq.start;
    req.level = parse_level(o.level);
    req.layer = o.all ? 0 : o.layer;
    req.module_mlp = o.module == "mlp";
    if (!o.heads.empty()) req.heads = parse_int_list("--heads", o.heads);
    if (!o.neurons.empty()) req.neurons = parse_int_list("--neurons", o.neurons);
    req.neuron_groups = o.neuron_groups;
    for (const std::string& b : o.bases) {
        req.projectors.push_back(projector_from(read_npy<double>(b, true, /*floats_only=*/true), cfg.D, b));
        req.projector_names.push_back(b);
    }
    if (!o.components.empty()) {
        req.custom = read_npy<double>(o.components, true, /*floats_only=*/true);
        req.custom_source = o.components;
        req.custom_rel_tol = sizeof(T) == 8 ? 1e-9 : 1e-5;
    }
    rq.rule = parse_mlp_rule(o.rule);
    rq.temperature = o.temperature;
    if (!o.ignore_special.empty()) rq.ignore_special_token = o.ignore_special == "on";
    rq.mlp_chunk = o.mlp_chunk;
    rq.targets = parse_targets(o.targets, cfg.V);
    rq.keep_points = o.all_layers;
    rq.adjoint = o.adjoint;
    if (o.qk >= 0) {
        QkRequest qk{o.qk, {}, {}};
        if (!o.qk_heads.empty()) qk.heads = parse_int_list("--qk-heads", o.qk_heads);
        if (!o.qk_queries.empty()) qk.queries = parse_int_list("--query-positions", o.qk_queries);
        rq.qk = qk;
        // The split is refused before any work when it would take more than half the free memory.
        const FreeMemory fm = free_memory();
        rq.qk_max_bytes = fm.free / 2;
    }

    bool started = false;
    const auto report_progress = [&](const CutPoint& p, const Components<T>& c) {
        if (!started)  // the first point is the cut, with the initial components
            say(o.in, "decomposing from " + p.str() + " (" + o.level + " level, " + std::to_string(c.total) +
                          " components, rule " + rule_name(rq.rule) + ")");
        started = true;
        progress(o.in, "decomposed up to " + p.str() + " of h[" + std::to_string(cfg.L) + "]");
    };
    if (o.adjoint)
        say(o.in, "attributing from " + std::string(o.all ? "every layer" : "one cut") + " (" + o.level +
                      " level) by one reverse pass of the frozen network (taylor rule)");
    // Over MPI ranks each rank propagates its block of the components; rank 0 gets the whole
    // result, writes the files and prints the summary (the other ranks are done here).
    const Group& group = ranks();
    if (group.size() > 1)
        say(o.in, "split over " + std::to_string(group.size()) + " ranks (components in contiguous blocks)");
    std::vector<Attribution<T>> layers;
    std::optional<Attribution<T>> one;
    if (o.all)
        layers = attribute_all_layers(model, trace, rq, group);
    else
        one = attribute(model, trace, rq, ComponentObserver<T>(report_progress), group);
    if (!group.is_root()) return;
    const Attribution<T> a = o.all ? stack_layers(std::move(layers)) : std::move(*one);
    if (group.size() > 1 && !o.all) {
        // Every rank passes the same vectors to the share rules' all-reduces ([I] per position,
        // a few per MLP block): what one rank sent, in all and per MLP block of the pass.
        const int blocks = cfg.L - a.cut.layer;
        const uint64_t bytes = group.share_bytes();
        say(o.in, "share rules: " + std::to_string(bytes) + " bytes all-reduced per rank (" +
                      std::to_string(blocks > 0 ? bytes / uint64_t(blocks) : 0) + " per MLP block, " +
                      std::to_string(blocks) + " blocks)");
    }
    const int L_out = o.all ? cfg.L : 1;  // layers in the output
    progress(o.in, "");
    const Components<T>& out = a.components;
    const auto& targets = a.targets;
    const int K = a.K();
    const Tensor<T>& attr = a.logit_attribution;

    // The files (attribution_files.hpp): all appear, or none.
    AttributionRun desc{o.in.model, o.in.dtype, o.layer, ids, tok.get(), o.adjoint, L_out};
    AttributionOutputs where{o.out, parse_attribution_format(o.format), o.json_components, o.html};
    write_attribution(a, cfg, desc, where);

    // Summary: the components that push the last position's first target most.
    const int n = N - 1;
    std::vector<std::pair<double, int>> ranked;
    for (int m = 0; m < out.M; ++m) ranked.push_back({double(attr.data[(size_t(m) * N + n) * K]), m});
    std::sort(ranked.begin(), ranked.end(),
              [](auto& a, auto& b) { return std::abs(a.first) > std::abs(b.first); });
    std::printf("target at position %d: id %d '%s', logit %.6g; completeness max rel error %.3g\n", n,
                targets[n][0], show_piece(tok.get(), targets[n][0]).c_str(), a.target_logits(n, 0),
                a.completeness_max_rel);
    std::printf("%-6s %-40s %14s\n", "rank", "component", "logit share");
    for (size_t r = 0; r < std::min<size_t>(10, ranked.size()); ++r) {
        std::string name = out.names[ranked[r].second];
        if (a.level == Level::Token && ranked[r].second < N)
            name += " '" + show_piece(tok.get(), ids[ranked[r].second]) + "'";
        std::printf("%-6zu %-40s %14.6g\n", r + 1, name.c_str(), ranked[r].first);
    }
    if (a.qk) {
        // The QK split at a glance: the first head split, the last query position split, the key
        // it attends to most, and the pairs that make that logit.
        const QkSplit<T>& q = *a.qk;
        const int h = q.heads[0], i = int(q.queries.size()) - 1, qpos = q.queries.back(), M = q.M;
        const Mat<T>& probs = trace.layers[size_t(q.layer)].probs[size_t(h)];
        Eigen::Index key = 0;
        probs.row(qpos).head(qpos + 1).maxCoeff(&key);
        double logit = 0;
        std::vector<std::pair<double, std::pair<int, int>>> pairs;
        for (int m = 0; m < M; ++m)
            for (int m2 = 0; m2 < M; ++m2) {
                const double v = double(q.at(0, m, m2, i, int(key)));
                logit += v;
                pairs.push_back({v, {m, m2}});
            }
        std::sort(pairs.begin(), pairs.end(),
                  [](auto& x, auto& y) { return std::abs(x.first) > std::abs(y.first); });
        std::printf(
            "qk: block %d head %d, query position %d attends most to key %d (probability %.4g, logit %.6g); "
            "split checked: logits %.2g, probabilities %.2g\n",
            q.layer, h, qpos, int(key), double(probs(qpos, key)), logit, a.qk_check.logits_max_rel,
            a.qk_check.probs_max_abs);
        std::printf("%-6s %-30s %-30s %14s\n", "rank", "query side", "key side", "logit share");
        for (size_t r = 0; r < std::min<size_t>(5, pairs.size()); ++r)
            std::printf("%-6zu %-30s %-30s %14.6g\n", r + 1, out.names[size_t(pairs[r].second.first)].c_str(),
                        out.names[size_t(pairs[r].second.second)].c_str(), pairs[r].first);
    }
    if (!o.out.empty()) say(o.in, "wrote " + o.out + (o.format == "npy" ? "/" : ""));
    if (!o.html.empty()) say(o.in, "wrote " + o.html);
}

}  // namespace

void register_attribute(CLI::App& app) {
    auto o = std::make_shared<AttributeOptions>();
    CLI::App* sub = app.add_subcommand(
        "attribute",
        "Decompose a hidden state into components and attribute the logits to them.\n"
        "Levels (where the decomposition starts):\n"
        "  token     one component per input token at the residual h[--layer] (0 = embeddings)\n"
        "  module    the attention (--module attn) or MLP (--module mlp) output of block --layer\n"
        "  head      each attention head's output of block --layer (--heads to choose some)\n"
        "  neuron    each MLP neuron of block --layer (--neurons to choose, --neuron-groups G to group)\n"
        "  subspace  projections of h[--layer] onto the subspaces --basis B.npy ([D,k] basis or [D,D] "
        "projector)\n"
        "  custom    your own components --components C.npy [K,N,D] at h[--layer], summing to the state\n"
        "The last component is always the rest (biases and whatever the chosen components do not cover).\n"
        "Cost: the decomposed pass carries all M components through every later block (about M forward\n"
        "passes of work; every rule). With --rule taylor, --adjoint computes the same logit_attribution by "
        "one\n"
        "reverse pass of the frozen network instead (about one backward pass per target position, whatever "
        "M;\n"
        "no components tensor), and --layer all (module, head, neuron) gets every block from that one pass;\n"
        "without --adjoint, --layer all runs one decomposed pass per block. See docs/gradients-adjoint.md.\n"
        "Processes (MPI builds): mpirun -np P depass attribute ... splits the components over P ranks in\n"
        "contiguous blocks (each holds ~1/P of the state; the share rules all-reduce [I] vectors per\n"
        "position); rank 0 gathers and writes the same files (docs/scaling.md). Not with --adjoint.\n"
        "Output (--out, safetensors): components [M,N,D] at the final residual, logit_attribution [M,N,K],\n"
        "targets [N,K], target_logits [N,K], input_ids [N], components_by_point [S,M,N,D] with "
        "--all-layers.\n"
        "--format json writes one JSON document instead (components only with --json-components); --format "
        "npy\n"
        "makes --out a directory of <tensor>.npy files plus meta.json. --html FILE writes a self-contained "
        "page\n"
        "to look at (coloured prompt, rankings, heatmap). Give --out, --html or both; all appear or none.\n"
        "Before any weight is loaded, the tokens are checked against the context length and the run's\n"
        "memory estimate (`depass inspect`) against the free memory; DEPASS_FREE_MEMORY=BYTES overrides it.\n"
        "Example: depass attribute -m weights/stories260K.bin --prompt \"Once upon a time\" --out "
        "attr.safetensors\n"
        "         depass attribute -m weights/stories260K.bin --prompt \"Once upon a time\" --html "
        "attr.html");
    add_input_options(sub, o->in);
    add_weights_option(sub, o->in);
    sub->add_option("--level", o->level, "token | module | head | neuron | subspace | custom")
        ->check(CLI::IsMember({"token", "module", "head", "neuron", "subspace", "custom"}))
        ->capture_default_str();
    sub->add_option(
           "--layer", o->layer_spec,
           "token/subspace/custom: residual point h[L] (0 = embeddings); module/head/neuron: block L, "
           "or 'all' for every block (logit_attribution_by_layer [L,M,N,K])")
        ->capture_default_str();
    sub->add_option("--module", o->module, "module level: attn or mlp")
        ->check(CLI::IsMember({"attn", "mlp"}));
    sub->add_option("--heads", o->heads, "head level: heads to decompose, comma-separated (default all)");
    sub->add_option("--neurons", o->neurons,
                    "neuron level: neurons to decompose, comma-separated (default all)");
    sub->add_option("--neuron-groups", o->neuron_groups, "neuron level: all neurons in G contiguous groups");
    sub->add_option(
        "--basis", o->bases,
        "subspace level: .npy basis [D,k] or projector [D,D] (float16/32/64); repeat for several");
    sub->add_option("--components", o->components, "custom level: .npy [K,N,D] components");
    sub->add_option("--rule", o->rule, "MLP distribution rule: softmax | max | relu | linear | taylor")
        ->check(CLI::IsMember({"softmax", "max", "relu", "linear", "taylor"}))
        ->capture_default_str();
    sub->add_option("--temperature", o->temperature, "softmax rule temperature")->capture_default_str();
    sub->add_option("--ignore-special-token", o->ignore_special,
                    "on | off: exclude the first component from MLP shares (default: on for token level, off "
                    "otherwise)")
        ->check(CLI::IsMember({"on", "off"}));
    sub->add_option("--targets", o->targets,
                    "auto (the model's argmax next token at every position) or token ids for every position")
        ->capture_default_str();
    sub->add_flag("--all-layers", o->all_layers, "also write the components at every residual point");
    sub->add_option(
        "--qk", o->qk,
        "also split block L's attention logits over (query-side, key-side) component pairs, from\n"
        "the components at its input h[L] (the cut must be at or before it): qk_logits\n"
        "[H',M,M,Nq,N] and its views (docs/levels/qk.md)");
    sub->add_option("--qk-heads", o->qk_heads,
                    "with --qk: the query heads to split, comma-separated (default all)");
    sub->add_option(
        "--query-positions", o->qk_queries,
        "with --qk: the query positions to split, comma-separated (default all; the split grows as\n"
        "heads x M^2 x positions x N)");
    sub->add_flag(
        "--adjoint", o->adjoint,
        "taylor rule only: compute logit_attribution by one reverse pass of the frozen network instead "
        "of carrying the components (same numbers to rounding; no components tensor)");
    sub->add_option("--mlp-chunk", o->mlp_chunk,
                    "positions per MLP chunk (0 = automatic; results do not depend on it)");
    sub->add_option(
        "--out,-o", o->out,
        "output: a .safetensors file, a .json file (--format json) or a directory (--format npy); "
        "optional when --html is given");
    sub->add_option("--format", o->format, "format of --out: safetensors | json | npy")
        ->check(CLI::IsMember({"safetensors", "json", "npy"}))
        ->capture_default_str();
    sub->add_flag("--json-components", o->json_components,
                  "--format json: also store the components [M,N,D] (large)");
    sub->add_option("--html", o->html, "also (or only) write a self-contained HTML report to this file");
    sub->callback([o, sub] {
        o->all = o->layer_spec == "all";
        if (!o->all) {
            try {
                size_t used = 0;
                o->layer = std::stoi(o->layer_spec, &used);
                if (used != o->layer_spec.size()) throw std::invalid_argument("trailing");
            } catch (const std::exception&) {
                throw UsageError("--layer: '" + o->layer_spec + "' is neither a layer number nor 'all'");
            }
        }
        check_combination(sub, *o);
        wants_double(o->in) ? run_attribute<double>(*o) : run_attribute<float>(*o);
    });
}

}  // namespace depass::cli
