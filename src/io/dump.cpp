#include "depass/dump.hpp"

namespace depass {

namespace {

template <class T>
void append(std::vector<double>& out, const Mat<T>& m) {
    for (Eigen::Index i = 0; i < m.size(); ++i) out.push_back(double(m.data()[i]));
}
template <class T>
void append(std::vector<double>& out, const Vec<T>& v) {
    for (Eigen::Index i = 0; i < v.size(); ++i) out.push_back(double(v[i]));
}

}  // namespace

template <class T>
std::vector<NamedTensor> trace_tensors(const Config& c, const Trace<T>& t) {
    const int64_t N = t.N(), D = c.D, L = c.L;
    std::vector<NamedTensor> out;
    auto add = [&](const std::string& name, std::vector<int64_t> shape) -> std::vector<double>& {
        out.push_back(NamedTensor{name, std::move(shape), {}, false});
        return out.back().values;
    };
    {
        auto& v = add("input_ids", {N});
        for (int id : t.ids) v.push_back(id);
        out.back().is_int = true;
    }
    append(add("embeddings", {N, D}), t.h[0]);
    {
        auto& v = add("hidden_states", {L + 1, N, D});
        for (int64_t l = 0; l < L; ++l) append(v, t.h[l]);
        append(v, t.final_norm_out);
    }
    {
        auto& v = add("layer_outputs", {L, N, D});
        for (int64_t l = 1; l <= L; ++l) append(v, t.h[l]);
    }
    append(add("final_residual_prenorm", {N, D}), t.h[L]);
    append(add("final_norm_out", {N, D}), t.final_norm_out);
    append(add("final_norm_inv_rms", {N}), t.normf.inv);
    if (t.normf.mean.size()) append(add("final_norm_mean", {N}), t.normf.mean);
    {
        auto& v = add("attn_probs", {L, c.H, N, N});
        for (const auto& lt : t.layers)
            for (const auto& A : lt.probs) append(v, A);
    }
    {
        auto& v = add("attn_out", {L, N, D});
        for (const auto& lt : t.layers) append(v, lt.attn_out);
    }
    {
        auto& v = add("post_attn_residual", {L, N, D});
        for (const auto& lt : t.layers) append(v, lt.m);
    }
    {
        auto& v = add("mlp_act", {L, N, c.I});
        for (const auto& lt : t.layers) append(v, lt.mlp_act);
    }
    append(add("logits", {N, c.V}), t.logits);
    return out;
}

template std::vector<NamedTensor> trace_tensors(const Config&, const Trace<float>&);
template std::vector<NamedTensor> trace_tensors(const Config&, const Trace<double>&);

}  // namespace depass
