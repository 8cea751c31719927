// report.hpp -- an attribution as something to look at (one self-contained HTML
// page) or to load elsewhere (one JSON document, or a directory of .npy files),
// and writing several outputs so that they appear together or not at all.
//
// The report is a plain struct: the command line fills it from a decomposition,
// and anything else (a test, another program) can fill it from its own numbers.
//
//   logit_attribution[m][n][k]  share of component m in the logit of target
//                               targets[n][k] at position n; summed over m it
//                               is target_logits[n][k] (minus any unembedding bias)
//
// The HTML page needs no network: inline CSS, the numbers as one inline JSON
// block and an inline script that draws the views from them (with a position /
// target selector), nothing else. Every piece of text is escaped.
// The output depends only on the report (no dates, no random ids).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "depass/io.hpp"
#include "depass/types.hpp"

namespace depass {

// Where a head or neuron component sits in the network. index = the head or the
// neuron; -1 when the component is not a single head / neuron (a group, the rest).
struct ComponentSite {
    int layer = -1;
    int index = -1;
};

// The QK split of one block's attention logits (qk.hpp) as the page shows it: for each
// split query head heads[h] and query position queries[i], what each key-side component
// adds to the logit of every key j (the pairs summed over the query side) and the largest
// pairs of that logit.
//
//   key_share[h][m][i][j]     sum over the query side m' of S_h[m', m][queries[i], j]
//                             (qk_key_share); 0 where j > queries[i]
//   logits[h][i][j]           the summed pairs: the pre-softmax logit (0 where j > queries[i])
//   probs[h][i][j]            their causal softmax: the attention, as the split gives it back
//   top_pairs[h][i][j][t]     (query-side, key-side) component of the t-th largest |pair|
//   top_values[h][i][j][t]    its value (qk_top_pairs, qk_top_values)
struct QkReport {
    int layer = -1;                  // the block split; -1 = no split (the page has no QK section)
    std::vector<int> heads;          // [H'] the query heads split, in order
    std::vector<int> queries;        // [Nq] the query positions split, in order
    int top = 0;                     // pairs kept per logit
    std::vector<double> key_share;   // [H', M, Nq, N]
    std::vector<double> logits;      // [H', Nq, N]
    std::vector<double> probs;       // [H', Nq, N]
    std::vector<int> top_pairs;      // [H', Nq, N, top, 2]
    std::vector<double> top_values;  // [H', Nq, N, top]
    // The split's own checks (check_qk_split): summed pairs vs the logits recomputed from q
    // and k (relative), their softmax vs the recorded probabilities (absolute).
    double logits_max_rel = 0, probs_max_abs = 0;

    bool present() const { return layer >= 0; }
};

struct AttributionReport {
    // What was run.
    std::string model;                            // path or name of the model
    std::string dtype;                            // "f32" | "f64"
    std::string level;                            // token | module | head | neuron | subspace | custom
    std::string rule;                             // MLP distribution rule
    std::string cut;                              // residual point where the decomposition starts, "h[0]"
    std::map<std::string, std::string> metadata;  // further facts, recorded as given (temperature, ...)

    int N = 0, M = 0, K = 0;                   // positions, components (rest last), targets per position
    std::vector<std::string> component_names;  // [M]
    std::vector<ComponentSite> sites;          // [M] for head / neuron levels, else empty
    int heads_per_layer = 0;                   // H: width of the layer x head grid (head level)

    std::vector<int> input_ids;              // [N]
    std::vector<std::string> token_pieces;   // [N] display text of each token
    std::vector<int> targets;                // [N, K]
    std::vector<std::string> target_pieces;  // [N, K]
    std::vector<double> target_logits;       // [N, K]
    std::vector<double> logit_attribution;   // [M, N, K]

    // Largest |sum of components - true state| seen at any residual point, absolute
    // and relative to max |state|, and where the relative one was largest.
    double completeness_max_abs = 0, completeness_max_rel = 0;
    std::string completeness_worst_point;

    int position = -1;  // position shown first in the HTML page (-1 = the last)

    QkReport qk;  // with a QK split: the page's QK section (the JSON and npy outputs keep it in tensors)

    double attribution(int m, int n, int k) const { return logit_attribution[(size_t(m) * N + n) * K + k]; }
    // Sizes agree with N, M, K; throws depass::Error naming the field.
    void check() const;
};

// One self-contained HTML page: header (model, level, rule, cut, completeness),
// the prompt coloured by each source token's share (token level) for the chosen
// position, the components ranked by |share| there (top 20), for head level a
// layer x head grid, and a position x component heatmap with tooltips. With a QK split
// (r.qk), also a QK section: a head and a query position to choose among those split, a
// key position x key-side component heatmap of the chosen logit row, and the largest
// (query-side, key-side) pairs of the chosen key; pages without a split are unchanged.
std::string render_report_html(const AttributionReport& r);

// Everything in the report but the number arrays, as a JSON object: format,
// model, dtype, level, rule, cut, metadata, completeness, sizes, component names
// (and sites), token and target pieces. Written as meta.json beside .npy files.
std::string report_meta_json(const AttributionReport& r);

// The whole report as one JSON document: report_meta_json's fields plus
// input_ids [N], targets [N, K], target_logits [N, K], logit_attribution
// [M, N, K] as nested arrays, and each of `extra` (e.g. components [M, N, D])
// as a nested array of its shape under its name.
std::string render_report_json(const AttributionReport& r, const std::vector<NamedTensor>& extra = {});

// Writes each tensor as DIR/<name>.npy (floats as `float_dtype`, F32 or F64; ints as
// int64) and `meta_json` as DIR/meta.json. DIR must exist (see OutputBatch::stage_dir).
void write_npy_directory(const std::string& dir, const std::vector<NamedTensor>& tensors, DType float_dtype,
                         const std::string& meta_json);

// Throws unless PATH may receive a .npy output directory: it does not exist, or it
// is an empty directory, or it holds an earlier output (meta.json of format
// "depass-attribution" and .npy files, nothing else). Anything else is never replaced.
void check_npy_directory_target(const std::string& path);

// Several outputs that appear together or not at all. Each is written under a
// temporary name beside its target (the name stage_file / stage_dir returns);
// commit() renames them all into place. An uncommitted batch removes its
// temporaries when destroyed, so a failure part way leaves nothing behind.
class OutputBatch {
public:
    OutputBatch() = default;
    OutputBatch(const OutputBatch&) = delete;
    OutputBatch& operator=(const OutputBatch&) = delete;
    ~OutputBatch();

    // A fresh temporary file next to TARGET (TARGET must not be a directory).
    std::string stage_file(const std::string& target);
    // A fresh temporary directory next to TARGET (see check_npy_directory_target);
    // an earlier output directory at TARGET is replaced on commit.
    std::string stage_dir(const std::string& target);
    // Renames every staged output into place, in the order staged.
    void commit();

private:
    struct Staged {
        std::string target, temp;
        bool is_dir = false;
    };
    std::vector<Staged> staged_;
    bool committed_ = false;
};

}  // namespace depass
