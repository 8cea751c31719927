// tensor_plan.hpp -- the tensors a model loader expects, checked all together before
// any data is read. Shared by the safetensors (hf_model.cpp) and GGUF (gguf.cpp) loaders.
//
// A loader lists every tensor it expects: name, shape and where the widened values go
// (a matrix, a vector, or a function that splits or transposes them). check() then tests
// the whole list against the file -- presence, shape, dtype, and that the file holds no
// tensor nobody asked for -- and only load() reads data, one tensor at a time.
//
// Source is the file: it provides
//   const std::string& path() const;  bool has(const std::string& name) const;
//   void check_tensor(const std::string& name, const std::vector<int64_t>& shape) const;
//       (a present tensor) throws depass::Error when it has another shape or a dtype that
//       cannot be widened;
//   std::vector<std::string> tensor_names() const;
//   [[noreturn]] void unexpected_tensor(const std::string& name) const;  // throws
//   template <class T> Tensor<T> read(const std::string& name, const std::vector<int64_t>& shape) const;
// so the messages stay in the words of each format.
#pragma once

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "depass/io.hpp"  // WeightMode
#include "depass/types.hpp"
#include "depass/weights.hpp"

namespace depass::detail {

template <class T, class Source>
class TensorPlan {
public:
    using Sink = std::function<void(Tensor<T>&&)>;

    explicit TensorPlan(const Source& source) : source_(source) {}

    void add(const std::string& name, std::vector<int64_t> shape, Sink sink) {
        items_.push_back({name, std::move(shape), std::move(sink)});
        names_.insert(name);
    }
    // An (out, in) matrix stored as it is applied.
    void mat(const std::string& name, Mat<T>& dst, int rows, int cols) {
        add(name, {rows, cols},
            [&dst, rows, cols](Tensor<T>&& t) { dst = ConstMatMap<T>(t.data.data(), rows, cols); });
    }
    // A matrix stored transposed, (in, out) = (cols, rows) (GPT-2's Conv1D); dst becomes (rows, cols).
    void mat_t(const std::string& name, Mat<T>& dst, int rows, int cols) {
        add(name, {cols, rows}, [&dst, rows, cols](Tensor<T>&& t) {
            dst = ConstMatMap<T>(t.data.data(), cols, rows).transpose();
        });
    }
    void vec(const std::string& name, Vec<T>& dst, int n) {
        add(name, {n}, [&dst, n](Tensor<T>&& t) { dst = Eigen::Map<const Vec<T>>(t.data.data(), n); });
    }

    // Every planned tensor is present with its shape and a float dtype, and every tensor of
    // the file is planned or `ignored`.
    void check(const std::function<bool(const std::string&)>& ignored) const {
        for (const Item& it : items_) {
            if (!source_.has(it.name))
                throw Error(source_.path() + ": missing tensor '" + it.name + "' (expected shape " +
                            shape_str(it.shape) + ")");
            source_.check_tensor(it.name, it.shape);
        }
        for (const std::string& n : source_.tensor_names())
            if (!names_.count(n) && !ignored(n)) source_.unexpected_tensor(n);
    }

    // Reads and widens every planned tensor into its destination, in plan order.
    void load() {
        for (Item& it : items_) it.sink(source_.template read<T>(it.name, it.shape));
    }

private:
    struct Item {
        std::string name;
        std::vector<int64_t> shape;
        Sink sink;
    };
    const Source& source_;
    std::vector<Item> items_;
    std::set<std::string> names_;
};

// The blocks of a streamed model: the opened (mapped) file kept alive, and one block planned
// into `out` and widened on every load().
template <class T, class File, class Source>
class PlannedLayers final : public LayerSource<T> {
public:
    using PlanBlock = std::function<void(int, LayerWeights<T>&, TensorPlan<T, Source>&)>;
    PlannedLayers(File file, Config cfg, PlanBlock plan_block)
        : file_(std::move(file)), cfg_(std::move(cfg)), plan_block_(std::move(plan_block)) {}
    void load(int l, LayerWeights<T>& out) const override {
        const Source source{file_};
        TensorPlan<T, Source> p(source);
        plan_block_(l, out, p);
        p.load();
        check_layer_weights(cfg_, l, out);
    }

private:
    File file_;
    Config cfg_;
    PlanBlock plan_block_;
};

// Reads the planned tensors of `file` into m.w (m.cfg set): every tensor (Resident), or --
// after checking every tensor all the same, with the blocks planned into a throwaway target --
// only the tensors outside the blocks, the blocks staying in the file (Streamed).
// plan_model(w, plan, layers) plans the model (its blocks when `layers`); plan_block plans one.
template <class T, class File, class Source>
void load_planned(Model<T>& m, const File& file, WeightMode mode,
                  const std::function<void(Weights<T>&, TensorPlan<T, Source>&, bool)>& plan_model,
                  const typename PlannedLayers<T, File, Source>::PlanBlock& plan_block,
                  const std::function<bool(const std::string&)>& ignored) {
    const Source source{file};
    if (mode == WeightMode::Resident) {
        TensorPlan<T, Source> plan(source);
        plan_model(m.w, plan, true);
        plan.check(ignored);
        plan.load();
        check_weights(m.cfg, m.w);
        return;
    }
    {
        Weights<T> probe;
        TensorPlan<T, Source> all(source);
        plan_model(probe, all, true);
        all.check(ignored);
    }
    TensorPlan<T, Source> outer(source);
    plan_model(m.w, outer, false);
    outer.load();
    check_weights(m.cfg, m.w, true);
    m.streamed = std::make_shared<PlannedLayers<T, File, Source>>(file, m.cfg, plan_block);
}

// The tensors of a LLaMA-family model (llama, mistral, qwen2) in plan order, with their names in
// either file format -- one list for both loaders:
//   Hugging Face                                  GGUF
//   model.embed_tokens.weight                     token_embd.weight
//   model.layers.{l}.input_layernorm.weight       blk.{l}.attn_norm.weight
//   model.layers.{l}.self_attn.{q,k,v,o}_proj.*   blk.{l}.attn_{q,k,v,output}.*
//   model.layers.{l}.post_attention_layernorm.*   blk.{l}.ffn_norm.weight
//   model.layers.{l}.mlp.{gate,up,down}_proj.*    blk.{l}.ffn_{gate,up,down}.weight
//   model.norm.weight                             output_norm.weight
//   lm_head.weight (untied only)                  output.weight (untied only)
enum class TensorNames { HuggingFace, Gguf };

template <class T, class Source>
void plan_llama_block(const Config& c, int l, LayerWeights<T>& ly, TensorPlan<T, Source>& p,
                      TensorNames names) {
    const int D = c.D, I = c.I, QD = c.H * c.Dh, KVD = c.Hkv * c.Dh;
    const bool hf = names == TensorNames::HuggingFace;
    const std::string pre = (hf ? "model.layers." : "blk.") + std::to_string(l) + ".";
    const auto name = [&](const char* in_hf, const char* in_gguf) { return pre + (hf ? in_hf : in_gguf); };
    p.vec(name("input_layernorm.weight", "attn_norm.weight"), ly.norm1_g, D);
    p.mat(name("self_attn.q_proj.weight", "attn_q.weight"), ly.wq, QD, D);
    p.mat(name("self_attn.k_proj.weight", "attn_k.weight"), ly.wk, KVD, D);
    p.mat(name("self_attn.v_proj.weight", "attn_v.weight"), ly.wv, KVD, D);
    p.mat(name("self_attn.o_proj.weight", "attn_output.weight"), ly.wo, D, QD);
    if (c.qkv_bias) {
        p.vec(name("self_attn.q_proj.bias", "attn_q.bias"), ly.bq, QD);
        p.vec(name("self_attn.k_proj.bias", "attn_k.bias"), ly.bk, KVD);
        p.vec(name("self_attn.v_proj.bias", "attn_v.bias"), ly.bv, KVD);
    }
    if (c.o_bias) p.vec(name("self_attn.o_proj.bias", "attn_output.bias"), ly.bo, D);
    p.vec(name("post_attention_layernorm.weight", "ffn_norm.weight"), ly.norm2_g, D);
    p.mat(name("mlp.gate_proj.weight", "ffn_gate.weight"), ly.w_gate, I, D);
    p.mat(name("mlp.up_proj.weight", "ffn_up.weight"), ly.w_up, I, D);
    p.mat(name("mlp.down_proj.weight", "ffn_down.weight"), ly.w_down, D, I);
}

// The whole model: embedding, the blocks (when `layers`), final norm, unembedding if untied.
template <class T, class Source>
void plan_llama_model(const Config& c, Weights<T>& w, TensorPlan<T, Source>& p, TensorNames names,
                      bool layers) {
    const bool hf = names == TensorNames::HuggingFace;
    p.mat(hf ? "model.embed_tokens.weight" : "token_embd.weight", w.tok_emb, c.V, c.D);
    if (layers) {
        w.layers.resize(static_cast<size_t>(c.L));
        for (int l = 0; l < c.L; ++l) plan_llama_block(c, l, w.layers[static_cast<size_t>(l)], p, names);
    }
    p.vec(hf ? "model.norm.weight" : "output_norm.weight", w.normf_g, c.D);
    if (!c.tied_embeddings) p.mat(hf ? "lm_head.weight" : "output.weight", w.lm_head, c.V, c.D);
}

}  // namespace depass::detail
