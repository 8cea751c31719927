// forward.cpp -- the recorded forward pass: one block loop for every architecture.
//
//   h[0]   = embed(ids)                               (+ learned positions)
//   for each layer l (block_forward):
//     x    = Norm1(h[l])                              factors recorded
//     q, k, v = x W_q^T + b_q, x W_k^T + b_k, x W_v^T + b_v ;  RoPE on q, k
//     ctx  = attention(q, k, v)                       probabilities recorded
//     m[l] = h[l] + ctx W_o^T + b_o
//     y    = Norm2(m[l])                              factors recorded
//     h[l+1] = m[l] + MLP(y)                          activations recorded
//   logits = NormF(h[L]) W_U^T
#include "depass/forward.hpp"

#include <algorithm>

#include "depass/ops.hpp"

namespace depass {

void check_ids(const Config& cfg, const std::vector<int>& ids) {
    if (ids.empty()) throw Error("token ids: the sequence is empty (need at least one token)");
    if (cfg.max_positions > 0 && int(ids.size()) > cfg.max_positions)
        throw Error("token ids: " + std::to_string(ids.size()) + " tokens exceed the model's maximum of " +
                    std::to_string(cfg.max_positions) + " positions");
    for (size_t n = 0; n < ids.size(); ++n)
        if (ids[n] < 0 || ids[n] >= cfg.V)
            throw Error("token ids: id " + std::to_string(ids[n]) + " at position " + std::to_string(n) +
                        " is outside the vocabulary [0, " + std::to_string(cfg.V) + ")");
}

// q, k, v of block l from its normed input x, with RoPE on q and k.
template <class T>
AttentionInputs<T> attention_inputs(const Config& c, const LayerWeights<T>& lw, const Mat<T>& x,
                                    const std::vector<double>& inv_freq) {
    AttentionInputs<T> a{linear(x, lw.wq, lw.bq), linear(x, lw.wk, lw.bk), linear(x, lw.wv, lw.bv)};
    rope(a.q, c.H, c.Dh, c.rope, inv_freq);
    rope(a.k, c.Hkv, c.Dh, c.rope, inv_freq);
    return a;
}

// The MLP half of a block, m -> m + MLP(Norm2(m)); its frozen quantities go into *rec when given
// (lt receives the output either way).
template <class T>
static Mat<T> mlp_half(const Config& c, const LayerWeights<T>& lw, const Mat<T>& m, LayerTrace<T>& lt, bool rec) {
    const Mat<T> y = apply_norm(c.norm, c.norm_eps, m, lw.norm2_g, lw.norm2_b, rec ? &lt.norm2 : nullptr);
    if (c.mlp == MlpKind::SwiGLU)
        lt.mlp_out = rec ? swiglu_mlp(y, lw.w_gate, lw.w_up, lw.w_down, &lt.mlp_pre, &lt.mlp_up, &lt.mlp_act)
                         : swiglu_mlp(y, lw.w_gate, lw.w_up, lw.w_down);
    else
        lt.mlp_out = rec ? gelu_mlp(y, lw.w_up, lw.b_up, lw.w_down, lw.b_down, &lt.mlp_pre, &lt.mlp_act)
                         : gelu_mlp(y, lw.w_up, lw.b_up, lw.w_down, lw.b_down);
    return m + lt.mlp_out;
}

// One block, h[l] -> h[l+1]; every frozen quantity goes into *rec when given.
template <class T>
Mat<T> block_forward(const Config& c, const LayerWeights<T>& lw, const std::vector<double>& inv_freq,
                     const Mat<T>& h, LayerTrace<T>* rec) {
    LayerTrace<T> local;
    LayerTrace<T>& lt = rec ? *rec : local;

    // Attention block:  m = h + attention(q, k, v) W_o^T + b_o,  q, k, v from Norm1(h).
    const Mat<T> x = apply_norm(c.norm, c.norm_eps, h, lw.norm1_g, lw.norm1_b, rec ? &lt.norm1 : nullptr);
    const AttentionInputs<T> a = attention_inputs(c, lw, x, inv_freq);
    lt.attn_ctx = attention(a.q, a.k, a.v, c.H, c.Hkv, c.Dh, rec ? &lt.probs : nullptr);
    lt.attn_out = linear(lt.attn_ctx, lw.wo, lw.bo);
    lt.m = h + lt.attn_out;

    // MLP block:  h[l+1] = m + MLP(Norm2(m)).
    return mlp_half(c, lw, lt.m, lt, rec != nullptr);
}

template <class T>
Mat<T> forward_blocks(const Model<T>& model, Mat<T> h, int layer) {
    const Config& c = model.cfg;
    if (layer < 0 || layer > c.L)
        throw Error("forward_blocks: layer " + std::to_string(layer) + " is outside [0, " +
                    std::to_string(c.L) + "]");
    if (h.cols() != c.D)
        throw Error("forward_blocks: state has " + std::to_string(h.cols()) +
                    " columns, expected D = " + std::to_string(c.D));
    const std::vector<double> inv_freq = rope_inv_freq(c);
    LayerWeights<T> scratch;  // the block being run, when the blocks are streamed
    for (int l = layer; l < c.L; ++l) h = block_forward<T>(c, model.layer(l, scratch), inv_freq, h, nullptr);
    return h;
}

template <class T>
Mat<T> forward_blocks_from_mid(const Model<T>& model, const Mat<T>& m, int layer) {
    const Config& c = model.cfg;
    if (layer < 0 || layer >= c.L)
        throw Error("forward_blocks_from_mid: layer " + std::to_string(layer) + " is outside [0, " +
                    std::to_string(c.L - 1) + "]");
    if (m.cols() != c.D)
        throw Error("forward_blocks_from_mid: state has " + std::to_string(m.cols()) +
                    " columns, expected D = " + std::to_string(c.D));
    LayerWeights<T> scratch;
    LayerTrace<T> unused;
    return forward_blocks(model, mlp_half(c, model.layer(layer, scratch), m, unused, false), layer + 1);
}

template <class T>
Trace<T> forward(const Model<T>& model, const std::vector<int>& ids, const BlockObserver& after_block) {
    const Config& c = model.cfg;
    const Weights<T>& w = model.w;
    check_ids(c, ids);
    return forward_from_embeddings(model, embed(w.tok_emb, w.pos_emb, ids), ids, -1, after_block);
}

template <class T>
Trace<T> forward_from_embeddings(const Model<T>& model, Mat<T> h0, const std::vector<int>& ids,
                                 int logits_row, const BlockObserver& after_block) {
    const Config& c = model.cfg;
    const Weights<T>& w = model.w;
    check_ids(c, ids);
    if (h0.rows() != long(ids.size()) || h0.cols() != c.D)
        throw Error("forward_from_embeddings: embeddings have shape [" + std::to_string(h0.rows()) + ", " +
                    std::to_string(h0.cols()) + "], expected [" + std::to_string(ids.size()) + ", " +
                    std::to_string(c.D) + "] (one row per token id, D columns)");

    Trace<T> t;
    t.ids = ids;
    t.h.reserve(c.L + 1);
    t.layers.resize(c.L);
    t.h.push_back(std::move(h0));

    const std::vector<double> inv_freq = rope_inv_freq(c);  // RoPE table (scaled as the config says)
    LayerWeights<T> scratch;  // the block being run, when the blocks are streamed
    for (int l = 0; l < c.L; ++l) {
        t.h.push_back(block_forward(c, model.layer(l, scratch), inv_freq, t.h[l], &t.layers[l]));
        if (after_block) after_block(l);
    }

    t.final_norm_out = apply_norm(c.norm, c.norm_eps, t.h[c.L], w.normf_g, w.normf_b, &t.normf);
    if (logits_row < 0) {
        t.logits = unembed(t.final_norm_out, w.unembedding());
    } else {
        if (logits_row >= t.N())
            throw Error("forward_from_embeddings: logits row " + std::to_string(logits_row) +
                        " is outside the sequence [0, " + std::to_string(t.N()) + ")");
        t.logits = Mat<T>::Zero(t.N(), c.V);
        t.logits.row(logits_row) = unembed(Mat<T>(t.final_norm_out.row(logits_row)), w.unembedding());
    }
    return t;
}

template <class T>
std::vector<int> generate_greedy(const Model<T>& model, std::vector<int> ids, int n_new) {
    std::vector<int> out;
    for (int step = 0; step < n_new; ++step) {
        if (model.cfg.max_positions > 0 && int(ids.size()) >= model.cfg.max_positions) break;
        Trace<T> t = forward(model, ids);
        Eigen::Index next;
        t.logits.row(t.N() - 1).maxCoeff(&next);
        out.push_back(int(next));
        if (int(next) == model.cfg.eos_id) break;
        ids.push_back(int(next));
    }
    return out;
}

#define DEPASS_INSTANTIATE(T)                                                                          \
    template AttentionInputs<T> attention_inputs(const Config&, const LayerWeights<T>&, const Mat<T>&, \
                                                 const std::vector<double>&);                          \
    template Mat<T> block_forward(const Config&, const LayerWeights<T>&, const std::vector<double>&,   \
                                  const Mat<T>&, LayerTrace<T>*);                                      \
    template Mat<T> forward_blocks(const Model<T>&, Mat<T>, int);                                      \
    template Mat<T> forward_blocks_from_mid(const Model<T>&, const Mat<T>&, int);
DEPASS_INSTANTIATE(float)
DEPASS_INSTANTIATE(double)
#undef DEPASS_INSTANTIATE
template Trace<float> forward(const Model<float>&, const std::vector<int>&, const BlockObserver&);
template Trace<double> forward(const Model<double>&, const std::vector<int>&, const BlockObserver&);
template Trace<float> forward_from_embeddings(const Model<float>&, Mat<float>, const std::vector<int>&, int,
                                             const BlockObserver&);
template Trace<double> forward_from_embeddings(const Model<double>&, Mat<double>, const std::vector<int>&,
                                               int, const BlockObserver&);
template std::vector<int> generate_greedy(const Model<float>&, std::vector<int>, int);
template std::vector<int> generate_greedy(const Model<double>&, std::vector<int>, int);

}  // namespace depass
