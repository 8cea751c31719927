// qk.hpp -- the QK circuit decomposed: why a head attends where it does.
//
// DePass freezes the attention probabilities and follows the value path. The logits those
// probabilities come from are themselves exact sums over components: with the input norm's
// per-token factors frozen, the queries and keys of block l are linear in the components of
// h[l] (norm twin, projection twin with the biases to the rest, RoPE twin), so every
// pre-softmax logit is a sum over (query-side component, key-side component) pairs:
//
//   s_h[i, j] = sum_{m, m'} S_h[m, m'][i, j],   S_h[m, m'][i, j] = Q_m,h[i] . K_m',g[j] / sqrt(Dh)
//
// and softmax over j <= i of the summed pairs gives back the recorded probabilities.
// (docs/levels/qk.md has the derivation, the bias terms and what to read off the split.)
#pragma once

#include <vector>

#include "depass/decompose.hpp"
#include "depass/forward.hpp"

namespace depass {

// Which logits to split: block `layer`, its query heads `heads` (empty: all), the query
// positions `queries` (empty: all).
struct QkRequest {
    int layer = 0;
    std::vector<int> heads;
    std::vector<int> queries;
};

template <class T>
struct QkSplit {
    int layer = 0;
    std::vector<int> heads;    // [H'] the query heads, in order
    std::vector<int> queries;  // [Nq] the query positions, in order
    int M = 0, N = 0;
    Tensor<T> logits;  // [H', M, M, Nq, N]: S_h[m, m'][queries[i], j]; 0 where j > queries[i]

    T at(int h, int m, int m2, int i, int j) const {
        return logits.data[(((size_t(h) * M + m) * M + m2) * queries.size() + i) * N + j];
    }
};

// Checks a request against the model and sequence: layer in [0, L), heads in [0, H),
// positions in [0, N), no repeats. Throws depass::Error naming the value.
void check_qk_request(const Config& cfg, int N, const QkRequest& rq);

// Bytes of the split's logits: H' M M Nq N scalars.
uint64_t qk_bytes(const Config& cfg, int M, int N, const QkRequest& rq, int scalar_bytes);

// The split of block rq.layer's logits, from the components x of its input h[rq.layer]
// (components at any cut at or before it, propagated there: attribute() does this).
template <class T>
QkSplit<T> qk_split(const Model<T>& model, const Trace<T>& trace, const Components<T>& x, const QkRequest& rq);

// The logits of one query head of block `layer`, recomputed from the recorded state h[layer]
// (norm, projections, RoPE: attention_inputs): [N, N], 0 above the diagonal. The reference the
// split must sum to.
template <class T>
Mat<T> attention_logits(const Model<T>& model, const Trace<T>& trace, int layer, int head);

// How well a split holds, per the two identities: the summed pairs against the logits
// recomputed from q and k, and the causal softmax of the summed pairs against the recorded
// probabilities. Relative to max |logit| and max probability (1) respectively.
struct QkCheck {
    double logits_max_rel = 0;
    double probs_max_abs = 0;
};
template <class T>
QkCheck check_qk_split(const Model<T>& model, const Trace<T>& trace, const QkSplit<T>& split);

}  // namespace depass
