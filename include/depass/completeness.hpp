// completeness.hpp -- the completeness validation suite behind `depass validate`.
//
// For one model and one token sequence, every requested (level, variant, cut layer,
// MLP rule) is initialised with initialise() and pushed through the rest of the
// network with propagate(). At EVERY residual point from the cut to the end
// (h[l] and m[l], observed through propagate's callback) the sum over components
// is compared with the true state of the recorded pass (state_at):
//
//   max_abs = max_{n,d} | sum_m X_m[n,d] - S[n,d] |
//   max_rel = max_abs / max_{n,d} |S[n,d]|
//
// and a point passes when max_rel <= tolerance::completeness_rel<T>().
//
// Levels and what is run for each (every MLP rule for each):
//   token     cut h[l], l = 0..L; ignore-special-token both on and off
//   module    block l = 0..L-1; the attention output (cut m[l]) and the MLP output (cut h[l+1])
//   head      block l = 0..L-1; every head (cut m[l])
//   neuron    block l = 0..L-1; every neuron as its own component, and the neurons in groups (cut h[l+1])
//   subspace  cut h[l], l = 0..L; a random (seeded) subspace of dimension k = D/4 and its complement
//   custom    cut h[l], l = 0..L; K = 3 random components that sum to the state
//
// Library code: nothing is printed; results go to the caller (and to an optional
// callback after each run, so a caller can report progress).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "depass/config.hpp"
#include "depass/decompose.hpp"
#include "depass/initialisers.hpp"
#include "depass/weights.hpp"

namespace depass::validation {

// The levels in their canonical order.
const std::vector<std::string>& all_levels();

struct CompletenessPlan {
    std::vector<std::string> levels = all_levels();  // subset of all_levels()
    std::vector<MlpRule> rules = {MlpRule::Softmax, MlpRule::Max, MlpRule::Relu, MlpRule::Linear,
                                  MlpRule::Taylor};
    // Cut layers. Empty = all. Residual-point levels (token, subspace, custom) take
    // l in 0..L (h[l]); block levels (module, head, neuron) take the blocks l in
    // 0..L-1 and skip l = L. A layer outside 0..L is an error.
    std::vector<int> layers;
    uint64_t seed = 1;          // random subspaces and custom components
    int neuron_groups = 4;      // the grouped neuron variant (capped at I)
    int custom_components = 3;  // K of the custom level
    double temperature = 0.1;   // softmax rule
    // For testing the validator itself: after initialisation the rest component is
    // perturbed by 1e-3 of max |state| (as a lost bias would do), so completeness
    // must fail at every point of every run.
    bool inject_leak = false;
};

// Completeness at one residual point.
struct PointResult {
    CutPoint point;
    double max_abs = 0;  // max |sum - state|
    double scale = 0;    // max |state|
    double max_rel = 0;  // max_abs / scale
    bool pass = true;
};

// One decomposed pass: an initialisation propagated from its cut to the end.
struct RunResult {
    std::string level;    // token | module | head | neuron | subspace | custom
    std::string variant;  // e.g. "special on", "attn", "all", "4 groups", "k=16", "K=3"
    MlpRule rule = MlpRule::Softmax;
    int layer = 0;  // the layer given to the initialiser
    CutPoint cut;
    int components = 0;  // M, rest included
    double tolerance = 0;
    std::vector<PointResult> points;  // forward order, cut first
    int worst = -1;                   // index of the largest max_rel in points
    int first_fail = -1;              // index of the first failing point (forward order), -1 if none
    std::string problem;              // non-empty when the observed points were not the expected sequence
    bool pass = true;

    std::string label() const;  // "token (special on) rule=softmax cut=h[0]"
};

// Runs every case of the plan on (model, ids). `on_run` is called after each run.
// Throws depass::Error for invalid plans (unknown level, layer out of range) and
// for errors of the library (bad ids, ...).
template <class T>
std::vector<RunResult> check_completeness(const Model<T>& model, const std::vector<int>& ids,
                                          const CompletenessPlan& plan,
                                          const std::function<void(const RunResult&)>& on_run = {});

// ---- inputs for the suite ------------------------------------------------------------

// A tiny configuration of the named architecture (llama, mistral, qwen2, gpt2) for
// random_model(). D must be a multiple of H, H of Hkv; gpt2 requires Hkv == H;
// RoPE architectures require an even head dimension. Throws depass::Error.
Config random_config(const std::string& arch, int L, int H, int Hkv, int D, int max_positions);

// N token ids drawn uniformly from [0, V) with the given seed.
std::vector<int> random_ids(int N, int V, uint64_t seed);

// Token ids from a JSON file: {"input_ids": [...]} (fixture tokens.json) or a bare
// array. Throws depass::Error naming the file and the problem.
std::vector<int> read_ids_file(const std::string& path);

}  // namespace depass::validation
