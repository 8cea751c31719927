// depass inspect -- what a model file holds and what a run on it will cost, read from the
// file headers (no weight is loaded).
#include <cstdio>
#include <iostream>
#include <map>

#include "common.hpp"
#include "depass/estimate.hpp"
#include "depass/model_info.hpp"
#include "resources.hpp"

namespace depass::cli {

namespace {

struct InspectOptions {
    std::string model;
    std::string tokenizer;
    std::vector<int> tokens{16};
    std::string dtype = "f32";
    int neuron_groups = 16;
    int threads = 1;
    bool all_tensors = false;
};

std::string shape_text(const std::vector<int64_t>& s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
}

void print_levels(const Config& cfg, int N, int scalar, const ModelFileInfo& info, const InspectOptions& o) {
    EstimateOptions opt;
    if (info.weights_present) {
        opt.stored_weight_bytes = info.tensor_bytes;
        opt.load_extra_bytes = load_transient_bytes(info, scalar);
    } else {
        // config.json alone: the weights as its torch_dtype says; the loader's largest tensor
        // taken as the embedding matrix.
        opt.stored_bytes_per_weight = info.config_dtype == "float32" ? 4 : 2;
        opt.load_extra_bytes =
            uint64_t(cfg.V) * uint64_t(cfg.D) * uint64_t(opt.stored_bytes_per_weight + scalar);
    }
    opt.neuron_groups = o.neuron_groups;
    opt.threads = o.threads;
    const CostEstimate e = estimate_cost(cfg, N, scalar, opt);
    std::printf("\ncost of a run on N = %d tokens in %s (estimate; levels at --layer 0, %d thread%s):\n", N,
                scalar == 8 ? "f64" : "f32", o.threads, o.threads == 1 ? "" : "s");
    std::printf(
        "  weights: %s as stored; %s all widened (--weights resident); %s streamed (--weights streamed:\n"
        "  embeddings, final norm and unembedding widened, one block widened at a time)\n",
        format_bytes(e.weights_stored_bytes).c_str(), format_bytes(e.weights_widened_bytes).c_str(),
        format_bytes(e.weights_streamed_bytes).c_str());
    std::printf(
        "  trace (the recorded pass): %s; forward multiply-adds %s (projections %s, attention %s, MLP %s, "
        "unembedding %s)\n",
        format_bytes(e.trace_bytes).c_str(), format_count(e.forward.total()).c_str(),
        format_count(e.forward.projections).c_str(), format_count(e.forward.attention).c_str(),
        format_count(e.forward.mlp).c_str(), format_count(e.forward.unembedding).c_str());
    std::printf(
        "  (comp. bytes: one copy of the components; working: what the pass holds besides weights and\n"
        "   trace; peak resident / peak streamed: the whole run with --weights resident / streamed)\n");
    std::printf("  %-18s %6s %10s %11s %11s %13s %13s %13s\n", "run", "cut", "components", "comp. bytes",
                "working", "peak resident", "peak streamed", "multiply-adds");
    std::printf("  %-18s %6s %10s %11s %11s %13s %13s %13s\n", "forward", "", "", "", "",
                format_bytes(e.forward_peak_bytes).c_str(),
                format_bytes(e.forward_peak_streamed_bytes).c_str(), format_count(e.forward.total()).c_str());
    for (const LevelCost& l : e.levels) {
        std::string name = l.level;
        if (name == "neuron groups")
            name = "neuron groups " + std::to_string(std::min(o.neuron_groups, cfg.I));
        if (name == "subspace") name = "subspace (1 basis)";
        std::printf("  %-18s %6s %10lld %11s %11s %13s %13s %13s\n", name.c_str(), l.cut.c_str(),
                    static_cast<long long>(l.components), format_bytes(l.components_bytes).c_str(),
                    format_bytes(std::max(l.decompose_bytes, l.output_bytes)).c_str(),
                    format_bytes(l.peak_bytes).c_str(), format_bytes(l.peak_streamed_bytes).c_str(),
                    format_count(e.forward.total() + l.macs).c_str());
    }
}

void run_inspect(const InspectOptions& o) {
    const ModelFileInfo info = describe_model_file(o.model);
    const Config& cfg = info.cfg;
    if (o.dtype != "f32" && o.dtype != "f64")
        throw UsageError("--dtype: '" + o.dtype + "' (expected f32 or f64)");
    for (int N : o.tokens)
        if (N < 1) throw UsageError("--tokens: " + std::to_string(N) + " (expected at least 1)");
    if (o.neuron_groups < 1) throw UsageError("--neuron-groups: expected at least 1");
    if (o.threads < 1) throw UsageError("--threads: expected at least 1");

    std::printf("model: %s (%s)\n", o.model.c_str(), info.format.c_str());
    std::printf("architecture: %s\n", describe(cfg).c_str());
    std::printf("context length: %d tokens; vocabulary: %d\n", cfg.max_positions, cfg.V);

    // Tensors: totals per dtype, then grouped by layer pattern (or every one with --all-tensors).
    std::map<std::string, std::pair<int, uint64_t>> by_dtype;
    for (const StoredTensor& t : info.tensors) {
        by_dtype[t.dtype].first++;
        by_dtype[t.dtype].second += t.bytes;
    }
    if (!info.weights_present)
        std::printf(
            "\nweights: not in the directory (config.json only); estimated as %s, %d bytes per weight\n",
            info.config_dtype.empty() ? "bfloat16 (the config names no dtype)" : info.config_dtype.c_str(),
            info.config_dtype == "float32" ? 4 : 2);
    else
        std::printf("\nweights: %zu tensors, %s in %zu file%s (%s on disk)\n", info.tensors.size(),
                    format_bytes(info.tensor_bytes).c_str(), info.weight_files.size(),
                    info.weight_files.size() == 1 ? "" : "s", format_bytes(info.file_bytes).c_str());
    for (const auto& [dtype, cb] : by_dtype) {
        const bool loadable =
            dtype == "F32" || dtype == "F16" || dtype == "BF16" || (dtype == "F64" && info.format != "gguf");
        std::printf("  %-6s %5d tensors %12s%s\n", dtype.c_str(), cb.first, format_bytes(cb.second).c_str(),
                    loadable
                        ? ""
                        : "  (not loadable: only F32, F16, BF16 weights are; forward / attribute refuse it)");
    }
    if (!info.weights_present) {
    } else if (o.all_tensors) {
        std::printf("  %-60s %-6s %-22s %12s\n", "tensor", "dtype", "shape", "bytes");
        for (const StoredTensor& t : info.tensors)
            std::printf("  %-60s %-6s %-22s %12llu\n", t.name.c_str(), t.dtype.c_str(),
                        shape_text(t.shape).c_str(), static_cast<unsigned long long>(t.bytes));
    } else {
        std::printf("  %-52s %5s %-10s %-20s %11s\n", "tensors (* = every layer; --all-tensors lists each)",
                    "count", "dtype", "shape", "bytes");
        for (const TensorGroup& g : group_tensors(info.tensors))
            std::printf("  %-52s %5d %-10s %-20s %11s\n", g.pattern.c_str(), g.count, g.dtypes.c_str(),
                        shape_text(g.shape).c_str(), format_bytes(g.bytes).c_str());
    }

    // The tokenizer --prompt would use (the same search as every command).
    std::printf("\ntokenizer: ");
    try {
        std::unique_ptr<Tokenizer> tok = depass::find_tokenizer(o.model, o.tokenizer, cfg.V, true);
        std::printf("%s, %d pieces", tok->kind().c_str(), tok->vocab_size());
        if (!info.tokenizers.empty() && o.tokenizer.empty())
            std::printf(" (found: %s)", info.tokenizers.front().c_str());
        std::printf("\n");
    } catch (const Error& e) {
        std::printf("none usable (%s); --prompt needs --tokenizer FILE, --ids works\n", e.what());
    }

    const int scalar = o.dtype == "f64" ? 8 : 4;
    for (int N : o.tokens) {
        if (N > cfg.max_positions)
            std::printf("\nN = %d exceeds the context length %d: such a run is refused\n", N,
                        cfg.max_positions);
        print_levels(cfg, N, scalar, info, o);
    }

    const FreeMemory fm = free_memory();
    std::printf("\nfree memory: %s", fm.mem_available ? format_bytes(fm.mem_available).c_str() : "unknown");
    std::printf(" (MemAvailable)");
    if (fm.cgroup_limit)
        std::printf("; cgroup limit %s, %s in use", format_bytes(fm.cgroup_limit).c_str(),
                    format_bytes(fm.cgroup_used).c_str());
    else
        std::printf("; no cgroup limit");
    if (fm.free)
        std::printf(
            "\nruns whose peak (resident or streamed, as --weights chooses) exceeds %s (%s) are refused "
            "before loading\n",
            format_bytes(fm.free).c_str(), fm.source.c_str());
    else
        std::printf("\n");
}

}  // namespace

void register_inspect(CLI::App& app) {
    auto o = std::make_shared<InspectOptions>();
    CLI::App* sub = app.add_subcommand(
        "inspect",
        "Describe a model file and estimate what a run on it costs, reading only the file headers\n"
        "(no weight is loaded, so it is quick even for a 16 GB checkpoint).\n"
        "Prints: the architecture; the stored tensors (dtype, shape, bytes), grouped by layer pattern;\n"
        "the tokenizer --prompt would use; for N tokens, the memory and multiply-adds of `depass forward`\n"
        "and of `depass attribute` at every level (token, module, head, neuron, neuron groups, subspace,\n"
        "each at --layer 0, the most expensive cut); and the free memory of the machine (MemAvailable,\n"
        "and the cgroup limit when one is set).\n"
        "Memory columns: 'working' = the components and buffers held at once besides weights and trace;\n"
        "'peak resident' = every weight widened to --dtype (--weights resident) + trace + working;\n"
        "'peak streamed' = embeddings, final norm and unembedding widened + one block widened at a time\n"
        "(--weights streamed) + trace + working.\n"
        "`depass attribute` and `depass forward` refuse, before loading, a run whose peak for the\n"
        "--weights mode it uses exceeds the free memory (--weights auto streams when every weight\n"
        "widened would take more than half of it).\n"
        "Examples:\n"
        "  depass inspect -m weights/stories260K.bin\n"
        "  depass inspect -m SmolLM2-135M/ --tokens 16,64 --dtype f64\n"
        "  depass inspect -m model.gguf --all-tensors");
    sub->add_option("--model,-m", o->model, "Model: Hugging Face directory, .gguf file or llama2.c .bin")
        ->required();
    sub->add_option("--tokenizer", o->tokenizer,
                    "Tokenizer file to check instead of the one found beside the model");
    sub->add_option("--tokens,-n", o->tokens, "Token counts N to estimate for (comma-separated, e.g. 16,64)")
        ->delimiter(',')
        ->capture_default_str();
    sub->add_option("--dtype", o->dtype, "Compute type of the estimate: f32 or f64")
        ->check(CLI::IsMember({"f32", "f64"}))
        ->capture_default_str();
    sub->add_option("--neuron-groups", o->neuron_groups, "G of the neuron-groups row")->capture_default_str();
    sub->add_option("--threads", o->threads, "Threads of the estimate (each holds its own MLP buffers)")
        ->capture_default_str();
    sub->add_flag("--all-tensors", o->all_tensors, "List every tensor instead of one line per layer pattern");
    sub->callback([o] { run_inspect(*o); });
}

}  // namespace depass::cli
