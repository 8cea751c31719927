// estimate.cpp -- memory and multiply-adds of a run, from the config alone (estimate.hpp).
#include "depass/estimate.hpp"

#include <algorithm>
#include <cstdio>

namespace depass {

namespace {

using u64 = uint64_t;

struct Dims {
    u64 D, I, L, H, Dh, QD, KVD, V, N;
    bool ln, gated;
};

Dims dims_of(const Config& c, int N) {
    return {u64(c.D),
            u64(c.I),
            u64(c.L),
            u64(c.H),
            u64(c.Dh),
            u64(c.H) * u64(c.Dh),
            u64(c.Hkv) * u64(c.Dh),
            u64(c.V),
            u64(N),
            c.norm == NormKind::LayerNorm,
            c.mlp == MlpKind::SwiGLU};
}

// Multiply-adds of the recorded attention over N queries (ops/attention.cpp): causal blocks of
// 64 query rows, each a product over the keys up to its last row, for the scores and again for
// the weighted values.
double attention_macs(u64 N, u64 H, u64 Dh) {
    double macs = 0;
    for (u64 r0 = 0; r0 < N; r0 += 64) {
        const u64 b = std::min<u64>(64, N - r0), r1 = r0 + b;
        macs += 2.0 * double(b) * double(r1) * double(Dh);
    }
    return macs * double(H);
}

// One level's components: how many, where the first stored position of each is, where the cut is.
struct Layout {
    std::string level, cut;
    std::vector<int> first;         // [M]
    bool attention_of_first_block;  // the cut is h[l]: block l's attention is decomposed too
    int first_block;                // the first block the decomposed pass goes through
    double init_macs;
};

}  // namespace

uint64_t layer_weight_count(const Config& c) {
    const Dims d = dims_of(c, 1);
    u64 n = 2 * d.D * (d.ln ? 2 : 1);       // norm1, norm2 (+ biases)
    n += 2 * d.QD * d.D + 2 * d.KVD * d.D;  // W_q, W_o, W_k, W_v
    if (c.qkv_bias) n += d.QD + 2 * d.KVD;
    if (c.o_bias) n += d.D;
    n += (d.gated ? 3 : 2) * d.I * d.D;  // gate, up, down / W_1, W_2
    if (c.mlp_bias) n += d.I + d.D;
    return n;
}

uint64_t weight_count(const Config& c) {
    const Dims d = dims_of(c, 1);
    u64 n = d.V * d.D;                                         // token embedding
    if (c.learned_positions) n += u64(c.max_positions) * d.D;  // GPT-2 wpe
    n += d.L * layer_weight_count(c);
    n += d.D * (d.ln ? 2 : 1);               // final norm
    if (!c.tied_embeddings) n += d.V * d.D;  // lm_head
    return n;
}

CostEstimate estimate_cost(const Config& c, int N, int scalar_bytes, const EstimateOptions& opt) {
    if (N < 1) throw Error("estimate: " + std::to_string(N) + " tokens (expected at least 1)");
    if (scalar_bytes != 4 && scalar_bytes != 8)
        throw Error("estimate: scalar size " + std::to_string(scalar_bytes) + " bytes (expected 4 or 8)");
    if (opt.neuron_groups < 1 || opt.subspaces < 1 || opt.targets < 1 || opt.threads < 1 ||
        opt.stored_bytes_per_weight < 1)
        throw Error("estimate: neuron groups, subspaces, targets, threads and bytes per weight must be >= 1");
    const Dims d = dims_of(c, N);
    const u64 s = u64(scalar_bytes), K = u64(opt.targets);
    CostEstimate e;
    e.N = N;
    e.scalar_bytes = scalar_bytes;
    e.weight_count = weight_count(c);
    e.layer_weight_count = layer_weight_count(c);
    e.weights_stored_bytes =
        opt.stored_weight_bytes ? opt.stored_weight_bytes : e.weight_count * u64(opt.stored_bytes_per_weight);
    e.weights_widened_bytes = e.weight_count * s;
    e.layer_widened_bytes = e.layer_weight_count * s;

    // The trace (forward.hpp): h[0..L]; per layer the norm factors, H [N, N] probabilities, the
    // context, attention output, post-attention residual, MLP pre-activation (+ up) and
    // activation, MLP output; the final norm's factors and output; the logits.
    const u64 factors = d.N * (d.ln ? 2 : 1);
    u64 per_layer =
        2 * factors + d.H * d.N * d.N + d.N * d.QD + 3 * d.N * d.D + (d.gated ? 3 : 2) * d.N * d.I;
    e.trace_bytes = s * ((d.L + 1) * d.N * d.D + d.L * per_layer + factors + d.N * d.D + d.N * d.V);
    e.forward_extra_bytes = s * d.N * (d.QD + 2 * d.KVD + d.D);

    e.forward.projections = double(d.L) * double(d.N) * double(d.D) * double(2 * d.QD + 2 * d.KVD);
    e.forward.attention = double(d.L) * attention_macs(d.N, d.H, d.Dh);
    e.forward.mlp = double(d.L) * double(d.N) * double(d.D) * double(d.I) * (d.gated ? 3 : 2);
    e.forward.unembedding = double(d.N) * double(d.V) * double(d.D);
    // Streamed weights (WeightMode::Streamed): the tensors outside the blocks widened, one block
    // widened at a time, and while a block tensor is widened its stored pages and the widened copy
    // (the loader's transient) -- beside the trace, which exists by then.
    // The outer tensors are widened once, before the pass (the loader's transient then); a block
    // tensor's transient -- its largest matrix, stored and widened -- recurs during the pass.
    e.weights_streamed_bytes = (e.weight_count - u64(d.L) * e.layer_weight_count) * s + e.layer_widened_bytes;
    const u64 stored_per_weight = e.weight_count
                                      ? (e.weights_stored_bytes + e.weight_count - 1) / e.weight_count
                                      : u64(opt.stored_bytes_per_weight);
    e.block_transient_bytes = std::max({d.QD * d.D, d.KVD * d.D, d.I * d.D}) * (stored_per_weight + s);
    const u64 widened = e.weights_widened_bytes, streamed = e.weights_streamed_bytes;
    e.forward_peak_bytes = widened + std::max(opt.load_extra_bytes, e.trace_bytes + e.forward_extra_bytes);
    e.forward_peak_streamed_bytes =
        streamed +
        std::max(opt.load_extra_bytes, e.trace_bytes + e.forward_extra_bytes + e.block_transient_bytes);

    // The levels (initialisers.cpp), at their earliest cut.
    const int n = N, I = c.I, H = c.H, G = std::min(opt.neuron_groups, c.I), S = opt.subspaces;
    const double ND = double(d.N) * double(d.D);
    std::vector<Layout> layouts;
    {
        std::vector<int> first(size_t(n) + 1, 0);
        for (int j = 0; j < n; ++j) first[size_t(j)] = j;  // token j is zero before position j
        layouts.push_back({"token", "h[0]", first, true, 0, 0});
    }
    layouts.push_back({"module", "m[0]", std::vector<int>(2, 0), false, 0, 0});
    // Head h: W_O[:, h] (A_h V_h): one [N, Dh] x [Dh, D] product per head.
    layouts.push_back({"head", "m[0]", std::vector<int>(size_t(H) + 1, 0), false, 0, ND * double(d.QD)});
    // Neuron i: a[:, i] W_down[:, i], every neuron: N x I x D.
    layouts.push_back({"neuron", "h[1]", std::vector<int>(size_t(I) + 1, 0), true, 1, ND * double(d.I)});
    layouts.push_back(
        {"neuron groups", "h[1]", std::vector<int>(size_t(G) + 1, 0), true, 1, ND * double(d.I)});
    // Subspace: x P with P [D, D], per subspace.
    layouts.push_back(
        {"subspace", "h[0]", std::vector<int>(size_t(S) + 1, 0), true, 0, S * ND * double(d.D)});

    for (const Layout& lay : layouts) {
        LevelCost lc;
        lc.level = lay.level;
        lc.cut = lay.cut;
        const int M = int(lay.first.size());
        lc.components = M;
        u64 R = 0;
        double attn = 0;  // decomposed attention of one block: per component, per head, A (lower) x V_m
        for (int f : lay.first) {
            const u64 len = u64(n - f);
            R += len;
            attn += double(d.H) * double(d.Dh) * double(len) * double(len + 1) / 2;
        }
        lc.rows = int64_t(R);
        lc.components_bytes = R * d.D * s;

        // The MLP twin's chunks (ops/mlp.cpp): consecutive positions until ~512 rows; each
        // thread holds [rows, D] gathered inputs, [rows, I] shares and [rows, D] outputs.
        std::vector<u64> present(size_t(n), 0);
        for (int f : lay.first) ++present[size_t(f)];
        for (int p = 1; p < n; ++p) present[size_t(p)] += present[size_t(p) - 1];
        u64 max_rows = 0, rows = 0;
        for (int p = 0; p < n; ++p) {
            rows += present[size_t(p)];
            if (rows >= 512 || p + 1 == n) {
                max_rows = std::max(max_rows, rows);
                rows = 0;
            }
        }
        const u64 chunk = u64(opt.threads) * max_rows * (2 * d.D + d.I) * s;
        // Attention block: input, normed input, values, context, output at once; MLP block:
        // input, normed input, output and the chunk buffers; logit attribution: input and normed.
        // Split over ranks: this rank's share of the rows and components (the blocks are cut by
        // rows, split_components, so a share is at most one component's rows above R / ranks).
        const u64 P = u64(std::max(1, opt.ranks)), Rr = (R + P - 1) / P + (P > 1 ? u64(n) : 0),
                  Mr = (u64(M) + P - 1) / P;
        const u64 attn_bytes = Rr * (3 * d.D + d.KVD + d.QD) * s;
        const u64 mlp_bytes = 3 * Rr * d.D * s + chunk;
        const u64 logit_bytes = 2 * Rr * d.D * s + Mr * d.N * K * s;
        lc.decompose_bytes = std::max({attn_bytes, mlp_bytes, logit_bytes});
        // Writing --out (cmd_attribute.cpp): the result (components and logit attribution), the
        // dense [M, N, D] copy in double, the file image in the compute type. Rank 0 only.
        lc.output_bytes =
            opt.rank == 0 ? R * d.D * s + u64(M) * d.N * d.D * (8 + s) + u64(M) * d.N * K * (2 * s + 8) : 0;

        const double per_attention =
            double(R) * double(d.D) * double(d.KVD) + attn + double(R) * double(d.QD) * double(d.D);
        const double per_mlp = 2.0 * double(R) * double(d.D) * double(d.I);
        const int blocks = c.L - lay.first_block;
        const int attentions = blocks - (lay.attention_of_first_block ? 0 : 1);
        const int mlps = blocks;
        lc.macs =
            lay.init_macs + attentions * per_attention + mlps * per_mlp + double(R) * double(K) * double(d.D);

        const u64 extra = std::max(lc.decompose_bytes, lc.output_bytes);
        lc.peak_bytes = widened + std::max(opt.load_extra_bytes, e.trace_bytes + extra);
        lc.peak_streamed_bytes =
            streamed + std::max(opt.load_extra_bytes, e.trace_bytes + extra + e.block_transient_bytes);
        e.levels.push_back(lc);
    }
    return e;
}

std::string format_bytes(uint64_t b) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = double(b);
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        ++u;
    }
    char buf[32];
    if (u == 0)
        std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(b));
    else
        std::snprintf(buf, sizeof buf, v < 10 ? "%.2f %s" : v < 100 ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}

std::string format_count(double n) {
    const char* units[] = {"", "k", "M", "G", "T", "P"};
    int u = 0;
    while (n >= 1000 && u < 5) {
        n /= 1000;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf,
                  u == 0    ? "%.0f"
                  : n < 10  ? "%.2f %s"
                  : n < 100 ? "%.1f %s"
                            : "%.0f %s",
                  n, units[u]);
    return buf;
}

}  // namespace depass
