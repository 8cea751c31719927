// estimate.hpp -- what a run will cost before it starts: memory and multiply-adds of the
// recorded forward pass and of the decomposed pass at every attribution level.
//
//   CostEstimate e = estimate_cost(cfg, N, sizeof(float), opt);
//
// Every figure follows the code that does the work (forward.cpp, decompose.cpp, the ops'
// decomposed twins, initialisers.cpp, cmd_attribute.cpp's output); the formulas are next to
// each field in estimate.cpp. Multiply-adds count the matrix products (one multiply and one
// add = 1); element-wise work (norms, softmax, share rules) is left out: it is O(rows x D)
// against O(rows x D x I) for the products.
//
// Components are stored without their known-zero rows (components.hpp): the token level
// holds N(N+1)/2 + N rows, every other level (#components) x N. The levels are taken at their
// earliest cut (--layer 0): token and subspace at h[0], module (attention) and head at m[0],
// neuron and neuron groups at h[1]; a later --layer costs less. A custom level of K
// components costs what the subspace row with K subspaces does, less the projections.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "depass/config.hpp"

namespace depass {

struct EstimateOptions {
    int neuron_groups = 16;  // the neuron-groups row: --neuron-groups G
    int subspaces = 1;       // the subspace row: that many --basis files
    int targets = 1;         // targets per position (K)
    int threads = 1;         // OpenMP threads (each holds its own MLP chunk buffers)
    // The weights as stored in the file, in bytes (the sum of the tensors' bytes);
    // 0 = unknown: taken as stored_bytes_per_weight per weight.
    uint64_t stored_weight_bytes = 0;
    int stored_bytes_per_weight = 2;  // BF16 / F16, as models are published
    // Held only while the loader widens a tensor, beside the widened weights (load_transient_bytes()
    // of model_info.hpp): the whole file for llama2.c, one tensor raw + converted otherwise.
    uint64_t load_extra_bytes = 0;
    // A run split over `ranks` processes (distributed.hpp), the memory of rank `rank`: the
    // decomposed pass holds about 1/ranks of the stored rows on each rank; the gathered result
    // and the output are on rank 0 only. The time (macs) stays the whole run's.
    int ranks = 1, rank = 0;
};

// Multiply-adds of one recorded forward pass over N tokens.
struct ForwardCost {
    double projections = 0;  // q, k, v, o of every layer:  N D (2 H Dh + 2 Hkv Dh) per layer
    double attention = 0;    // scores and weighted values, causal blocks of 64 rows: ~ H Dh N^2 per layer
    double mlp = 0;          // N D I x 3 (SwiGLU) or x 2 (GELU MLP) per layer
    double unembedding = 0;  // N V D
    double total() const { return projections + attention + mlp + unembedding; }
};

struct LevelCost {
    std::string level;              // "token", "module", "head", "neuron", "neuron groups", "subspace"
    std::string cut;                // "h[0]", "m[0]", "h[1]"
    int64_t components = 0;         // M, the rest included
    int64_t rows = 0;               // stored rows R
    uint64_t components_bytes = 0;  // one copy of the components: R x D x scalar
    uint64_t decompose_bytes = 0;   // held at once inside the decomposed pass (besides weights and trace)
    uint64_t output_bytes = 0;  // held while writing --out: the result, its dense double copy, the file image
    double macs = 0;            // initialiser + decomposed pass + logit attribution (forward excluded)
    uint64_t peak_bytes = 0;    // resident weights: every weight widened + the larger of: trace + the
                                // larger of the two above, and what the loader holds besides
    uint64_t peak_streamed_bytes = 0;  // streamed weights: weights_streamed_bytes + the larger of: the
                                       // loader's transient, and trace + the larger of the two above + a
                                       // block tensor's transient
};

struct CostEstimate {
    int N = 0;
    int scalar_bytes = 4;
    uint64_t weight_count = 0;           // every weight of the model
    uint64_t layer_weight_count = 0;     // the weights of one block
    uint64_t weights_stored_bytes = 0;   // as stored in the file
    uint64_t weights_widened_bytes = 0;  // weight_count x scalar (every weight widened: resident weights)
    uint64_t layer_widened_bytes = 0;    // one block widened
    uint64_t weights_streamed_bytes =
        0;  // streamed: everything outside the blocks widened + one block widened
    uint64_t block_transient_bytes =
        0;                     // streamed: a block's largest matrix, stored + widened, while it is widened
    uint64_t trace_bytes = 0;  // the recorded pass: states, attention probabilities, activations, logits
    uint64_t forward_extra_bytes = 0;  // transients of the forward pass (q, k, v of a layer)
    ForwardCost forward;
    uint64_t forward_peak_bytes = 0;  // depass forward: widened weights + trace + transients (or load)
    uint64_t forward_peak_streamed_bytes = 0;  // the same with streamed weights
    std::vector<LevelCost> levels;             // token, module, head, neuron, neuron groups, subspace
};

// Throws depass::Error for N < 1, a scalar other than 4 / 8, or option values < 1.
CostEstimate estimate_cost(const Config& cfg, int N, int scalar_bytes, const EstimateOptions& opt = {});

// The weights of a config: embeddings (+ positions), per block, final norm, unembedding if untied.
uint64_t weight_count(const Config& cfg);
uint64_t layer_weight_count(const Config& cfg);

// "1.5 GiB", "312 MiB", "8.0 KiB", "17 B"; "3.1 G", "250 M", "12 k" for counts.
std::string format_bytes(uint64_t bytes);
std::string format_count(double n);

}  // namespace depass
