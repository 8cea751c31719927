// dump.hpp -- the trace as named tensors, with the names, shapes and axis order of
// the reference goldens (fixtures/README.md), so that two implementations can be
// compared tensor by tensor.
//
//   embeddings [N, D], hidden_states [L+1, N, D] (index L = final norm output),
//   layer_outputs [L, N, D], final_residual_prenorm [N, D], final_norm_out [N, D],
//   final_norm_inv_rms [N], final_norm_mean [N] (LayerNorm models), attn_probs
//   [L, H, N, N], attn_out [L, N, D], post_attn_residual [L, N, D], mlp_act [L, N, I],
//   logits [N, V]; plus input_ids [N] (int).
#pragma once

#include <vector>

#include "depass/forward.hpp"
#include "depass/io.hpp"

namespace depass {

template <class T>
std::vector<NamedTensor> trace_tensors(const Config& cfg, const Trace<T>& t);

}  // namespace depass
