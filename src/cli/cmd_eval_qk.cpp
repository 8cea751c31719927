// depass eval qk -- what frozen attention misses, per token: the QK path to first order
// against its exact effect, and against each token's ablation (include/depass/eval_qk.hpp).
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "common.hpp"
#include "depass/eval_qk.hpp"
#include "depass/estimate.hpp"
#include "depass/eval_report.hpp"
#include "depass/io.hpp"
#include "depass/resources.hpp"

namespace fs = std::filesystem;

namespace depass::cli {

namespace {

struct QkEvalOptions {
    InputOptions in;
    std::vector<std::string> prompt_files;
    int limit = 0;
    std::string out;
};

template <class T>
void run_qk(const QkEvalOptions& o) {
    if (o.limit < 0) throw UsageError("--limit: " + std::to_string(o.limit) + " (expected >= 0)");
    if (o.prompt_files.empty() && o.in.ids.empty() && o.in.prompt.empty())
        throw UsageError("eval qk: give --prompts FILE, or one prompt with --prompt / --ids");
    if (!o.prompt_files.empty() && (!o.in.ids.empty() || !o.in.prompt.empty()))
        throw UsageError("eval qk: --prompts and --prompt / --ids exclude each other");
    if (o.out.empty()) throw UsageError("--out: an output directory is needed");
    const Model<T> model = load_model<T>(o.in.model);
    auto tok = find_tokenizer(o.in, model.cfg, !o.prompt_files.empty() || !o.in.prompt.empty());
    std::vector<std::vector<int>> prompts;
    for (const std::string& f : o.prompt_files)
        for (const std::string& p : eval::read_prompt_file(f)) {
            if (o.limit > 0 && int(prompts.size()) >= o.limit) break;
            std::vector<int> ids = tok->encode(p, true, false);
            try {
                check_ids(model.cfg, ids);
            } catch (const Error& e) {
                throw Error(f + ": prompt '" + p + "': " + e.what());
            }
            prompts.push_back(std::move(ids));
        }
    if (o.prompt_files.empty()) prompts.push_back(resolve_ids(o.in, model.cfg, tok.get()));
    if (prompts.empty()) throw Error("eval qk: the prompt files hold no prompt");
    // The split of every head over every pair grows as N^4: refuse before any work when the
    // longest prompt would not fit in half the free memory.
    size_t longest = 0;
    for (const std::vector<int>& p : prompts) longest = std::max(longest, p.size());
    const uint64_t need = eval::qk_effects_bytes(model.cfg, int(longest), int(sizeof(T)));
    const FreeMemory fm = free_memory();
    if (fm.free > 0 && need > fm.free / 2)
        throw ResourceError("eval qk: a prompt of " + std::to_string(longest) + " tokens needs about " +
                            format_bytes(need) + " (the split of every head grows as N^4), more than half of the " +
                            format_bytes(fm.free) + " free (" + fm.source +
                            "); use shorter prompts, or --limit to leave the long ones out");
    std::error_code ec;
    fs::create_directories(o.out, ec);
    if (!fs::is_directory(o.out)) throw Error("--out: cannot create the directory " + o.out);

    say(o.in, "model: " + describe(model.cfg) + "; " + std::to_string(prompts.size()) + " prompts");
    const eval::QkEffectSummary s = eval::qk_effects(
        model, prompts, [&](int d, int n) { progress(o.in, "prompts " + std::to_string(d) + " / " + std::to_string(n)); });
    progress(o.in, "");
    std::vector<std::string> pieces;
    for (const eval::QkTokenRow& t : s.tokens) pieces.push_back(show_piece(tok.get(), t.id));
    const eval::EvalRunInfo run{fs::path(o.in.model).filename().string(), o.in.dtype, o.prompt_files};
    for (const auto& [name, text] : {std::pair<std::string, std::string>{"qk_effects.csv", eval::qk_rows_csv(s)},
                                     {"qk_tokens.csv", eval::qk_tokens_csv(s, pieces)},
                                     {"qk_summary.json", eval::qk_summary_json(s, run)}}) {
        write_file_atomic(o.out + "/" + name, text);
        say(o.in, "wrote " + o.out + "/" + name);
    }

    std::printf("QK path of each token on %zu prompts (%.1f s): the first-order pattern change against the exact "
                "one, over every (token, block, head)\n",
                s.prompts.size(), s.seconds);
    std::printf("  err: sum |first - exact| / sum |exact|; r: Pearson of the target logit's change; after the head:\n"
                "  frozen = the frozen network (DePass), gradient = the real network's gradient, exact = re-run\n");
    std::printf("%-6s %6s %9s %9s | %-25s | %-25s | %-25s\n", "side", "rows", "pattern", "context",
                "first+frozen vs exact", "first+gradient vs exact", "first+frozen vs exact pat.");
    for (const eval::QkSideStats& st : eval::qk_side_stats(s))
        std::printf("%-6s %6d %9.4f %9.4f | r %8.4f err %10.4f | r %8.4f err %10.4f | r %8.4f err %10.4f\n",
                    eval::qk_side_name(st.side), st.rows, st.pattern_rel_error, st.ctx_rel_error, st.logit_pearson,
                    st.logit_rel_error, st.logit_pearson_grad, st.logit_rel_error_grad, st.logit_pearson_frozen,
                    st.logit_rel_error_frozen);
    std::printf("tokens: ablation (the token's component removed from h[0], the model re-run) against plain DePass "
                "and the QK path (both sides, every block and head)\n");
    std::printf("  miss = sum |ablation - estimate| / sum |ablation|; explained = 1 - sum (miss - qk)^2 / sum miss^2 "
                "(miss = ablation - taylor)\n");
    std::printf("%-12s %6s %9s %8s %8s %9s %9s %9s %9s %9s %9s\n", "", "tokens", "mean|abl|", "taylor", "softmax",
                "tay+qk", "qk expl", "r(m,qk)", "qkg expl", "r(m,qkg)", "r(abl,t)");
    for (bool skip : {false, true}) {
        const eval::QkTokenStats t = eval::qk_token_stats(s, skip);
        std::printf("%-12s %6d %9.4g %8.4f %8.4f %9.4f %9.4f %9.4f %9.4f %9.4f %9.4f\n", skip ? "without BOS" : "all",
                    t.tokens, t.mean_abs_ablation, t.miss_taylor, t.miss_softmax, t.miss_with_qk, t.qk_explained,
                    t.miss_qk_pearson, t.qk_explained_grad, t.miss_qk_pearson_grad, t.pearson_taylor);
    }
}

}  // namespace

void register_eval_qk(CLI::App* ev) {
    auto o = std::make_shared<QkEvalOptions>();
    CLI::App* sub = ev->add_subcommand(
        "qk",
        "What frozen attention misses. For every token (token level at h[0], taylor rule), every block and\n"
        "head, and each side (removed from the queries, the keys, or both), the change of the attention\n"
        "pattern from the token's share of the logits (the QK split, docs/levels/qk.md) to first order\n"
        "(dA = A (dS - sum A dS)) against the exact softmax, and its effect on the target logit (the\n"
        "greedy next token at the last position): first order through the frozen network after the head,\n"
        "against the real network re-run after the head. Then each token's ablation (its component removed\n"
        "from h[0], the model re-run) against plain DePass and DePass + the first-order QK path.\n"
        "Writes qk_effects.csv (one row per experiment), qk_tokens.csv, qk_summary.json.\n"
        "Cost: one split per block, and one re-run of the blocks after each (token, block, head, side).\n"
        "Example: depass eval qk -m weights/stories260K.bin --prompts data/prompts/handwritten.txt --out out/");
    add_input_options(sub, o->in, true);  // --ids / --prompt: one prompt instead of --prompts
    sub->add_option("--prompts", o->prompt_files, "Prompt file(s): one prompt per line, '#' lines are comments");
    sub->add_option("--limit", o->limit, "Use only the first K prompts (0 = all)")->capture_default_str();
    sub->add_option("--out,-o", o->out, "Output directory (CSV, JSON)")->required();
    sub->callback([o] { wants_double(o->in) ? run_qk<double>(*o) : run_qk<float>(*o); });
}

}  // namespace depass::cli
