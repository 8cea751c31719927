// hf_model.cpp -- Hugging Face model directories (config.json + safetensors)
// and the load_model() entry point that also dispatches to llama2.c files.
//
// Loading runs in three phases so that nothing is read before the whole file
// has been checked (tensor_plan.hpp): (1) list every expected tensor with its
// shape and where it goes, (2) check presence, shapes and that no unexpected
// tensor exists, (3) read and convert -- everything (WeightMode::Resident), or
// the embeddings, final norm and unembedding only, the blocks being widened one
// at a time when a pass reaches them (WeightMode::Streamed).
//
// Names:
//   llama / mistral / qwen2: model.embed_tokens.weight, model.norm.weight,
//     lm_head.weight (untied only; when tied, a stored lm_head.weight is
//     ignored -- it is the same matrix in every tied checkpoint),
//     model.layers.{l}.{input_layernorm,post_attention_layernorm}.weight,
//     model.layers.{l}.self_attn.{q,k,v,o}_proj.weight (+ .bias as the config says),
//     model.layers.{l}.mlp.{gate,up,down}_proj.weight
//   gpt2 (with or without the "transformer." prefix): wte, wpe, ln_f,
//     h.{l}.ln_1 / ln_2 / attn.c_attn / attn.c_proj / mlp.c_fc / mlp.c_proj.
//     Conv1D weights are stored (in, out) and transposed to (out, in) here;
//     c_attn (D x 3D) is split into q | k | v along its output axis.
// Ignored buffers: *rotary_emb.inv_freq, *.attn.bias, *.attn.masked_bias.
#include <filesystem>
#include <functional>
#include <set>

#include "bytes.hpp"
#include "depass/gguf.hpp"
#include "depass/io.hpp"
#include "tensor_plan.hpp"

namespace fs = std::filesystem;

namespace depass {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool ignorable_buffer(const std::string& name) {
    return ends_with(name, "rotary_emb.inv_freq") || name == "attn.bias" || name == "attn.masked_bias" ||
           ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias");
}

// The safetensors checkpoint as the tensor plan's source (tensor_plan.hpp).
struct SafetensorsSource {
    const SafeTensors& st;

    const std::string& path() const { return st.path(); }
    bool has(const std::string& name) const { return st.has(name); }
    void check_tensor(const std::string& name, const std::vector<int64_t>& shape) const {
        const TensorInfo& ti = st.info(name);
        if (ti.shape != shape)
            throw Error(ti.file + ": tensor '" + name + "' has shape " + shape_str(ti.shape) + ", expected " +
                        shape_str(shape));
        if (ti.dtype != DType::F16 && ti.dtype != DType::BF16 && ti.dtype != DType::F32 &&
            ti.dtype != DType::F64)
            throw Error(ti.file + ": tensor '" + name + "' has dtype " + dtype_name(ti.dtype) +
                        ", expected a floating-point dtype");
    }
    std::vector<std::string> tensor_names() const { return st.names(); }
    [[noreturn]] void unexpected_tensor(const std::string& name) const {
        throw Error("unexpected tensor " + name + " in " + st.info(name).file);
    }
    template <class T>
    Tensor<T> read(const std::string& name, const std::vector<int64_t>& shape) const {
        return st.read<T>(name, shape);
    }
};

template <class T>
using Plan = detail::TensorPlan<T, SafetensorsSource>;

// Block l of a GPT-2 checkpoint (tensor names after `pfx`, "transformer." or "").
template <class T>
void plan_gpt2_layer(const Config& c, int l, LayerWeights<T>& ly, Plan<T>& p, const std::string& pfx) {
    const int D = c.D, I = c.I;
    const std::string pre = pfx + "h." + std::to_string(l) + ".";
    p.vec(pre + "ln_1.weight", ly.norm1_g, D);
    p.vec(pre + "ln_1.bias", ly.norm1_b, D);
    // c_attn: (in=D, out=3D); output columns [0,D) = q, [D,2D) = k, [2D,3D) = v.
    p.add(pre + "attn.c_attn.weight", {D, 3 * D}, [&ly, D](Tensor<T>&& t) {
        ConstMatMap<T> m(t.data.data(), D, 3 * D);
        ly.wq = m.middleCols(0, D).transpose();
        ly.wk = m.middleCols(D, D).transpose();
        ly.wv = m.middleCols(2 * D, D).transpose();
    });
    p.add(pre + "attn.c_attn.bias", {3 * D}, [&ly, D](Tensor<T>&& t) {
        Eigen::Map<const Vec<T>> b(t.data.data(), 3 * D);
        ly.bq = b.segment(0, D);
        ly.bk = b.segment(D, D);
        ly.bv = b.segment(2 * D, D);
    });
    p.mat_t(pre + "attn.c_proj.weight", ly.wo, D, D);
    p.vec(pre + "attn.c_proj.bias", ly.bo, D);
    p.vec(pre + "ln_2.weight", ly.norm2_g, D);
    p.vec(pre + "ln_2.bias", ly.norm2_b, D);
    p.mat_t(pre + "mlp.c_fc.weight", ly.w_up, I, D);
    p.vec(pre + "mlp.c_fc.bias", ly.b_up, I);
    p.mat_t(pre + "mlp.c_proj.weight", ly.w_down, D, I);
    p.vec(pre + "mlp.c_proj.bias", ly.b_down, D);
}

// One block of either layout.
template <class T>
void plan_layer(const Config& c, int l, LayerWeights<T>& ly, Plan<T>& p, const std::string& gpt2_pfx) {
    if (c.model_type == "gpt2")
        plan_gpt2_layer(c, l, ly, p, gpt2_pfx);
    else
        detail::plan_llama_block(c, l, ly, p, detail::TensorNames::HuggingFace);
}

// The whole model: embeddings, the blocks (when `layers`), final norm, unembedding.
template <class T>
void plan_model(const Config& c, Weights<T>& w, Plan<T>& p, const std::string& gpt2_pfx, bool layers) {
    if (c.model_type != "gpt2")
        return detail::plan_llama_model(c, w, p, detail::TensorNames::HuggingFace, layers);
    const int D = c.D, V = c.V;
    p.mat(gpt2_pfx + "wte.weight", w.tok_emb, V, D);
    p.mat(gpt2_pfx + "wpe.weight", w.pos_emb, c.max_positions, D);
    if (layers) {
        w.layers.resize(static_cast<size_t>(c.L));
        for (int l = 0; l < c.L; ++l) plan_gpt2_layer(c, l, w.layers[static_cast<size_t>(l)], p, gpt2_pfx);
    }
    p.vec(gpt2_pfx + "ln_f.weight", w.normf_g, D);
    p.vec(gpt2_pfx + "ln_f.bias", w.normf_b, D);
    if (!c.tied_embeddings) p.mat("lm_head.weight", w.lm_head, V, D);
}

}  // namespace

template <class T>
Model<T> read_hf_model(const std::string& dir, WeightMode mode) {
    if (!file_exists(dir)) throw Error("no such file or directory: " + dir);
    if (!is_directory(dir))
        throw Error(dir + ": is not a directory (expected a Hugging Face model directory)");
    const std::string cfg_path = (fs::path(dir) / "config.json").string();
    if (!file_exists(cfg_path)) {
        throw Error(dir +
                    ": no config.json found; expected a Hugging Face model directory with config.json and "
                    "model.safetensors (or model.safetensors.index.json with shards)");
    }
    Model<T> m;
    m.cfg = read_hf_config(cfg_path);
    const Config& c = m.cfg;

    std::string st_path = (fs::path(dir) / "model.safetensors").string();
    if (!file_exists(st_path)) {
        const std::string idx = (fs::path(dir) / "model.safetensors.index.json").string();
        if (!file_exists(idx)) {
            throw Error(dir +
                        ": no model.safetensors or model.safetensors.index.json found next to config.json");
        }
        st_path = idx;
    }
    const SafeTensors st = SafeTensors::open(st_path);

    // The layer count decides how much is planned and allocated below: check it against the
    // tensors the file holds first (every layer has at least this many tensors of its own).
    const bool gpt2 = c.model_type == "gpt2";
    const uint64_t per_layer = gpt2 ? 12 : 9 + (c.qkv_bias ? 3 : 0) + (c.o_bias ? 1 : 0);
    const uint64_t n_tensors = st.names().size();
    if (detail::mul_sat(uint64_t(c.L), per_layer) > n_tensors) {
        throw Error(cfg_path + ": field '" + (gpt2 ? "n_layer" : "num_hidden_layers") + "' = " +
                    std::to_string(c.L) + " needs at least " + std::to_string(per_layer * uint64_t(c.L)) +
                    " tensors, but " + st_path + " holds only " + std::to_string(n_tensors));
    }

    const std::string pfx =
        (gpt2 && !st.has("transformer.wte.weight") && st.has("wte.weight")) ? "" : "transformer.";
    const bool tied = c.tied_embeddings;
    const auto ignored = [tied](const std::string& n) {
        return ignorable_buffer(n) || (tied && n == "lm_head.weight");
    };
    detail::load_planned<T, SafeTensors, SafetensorsSource>(
        m, st, mode, [&c, pfx](Weights<T>& w, Plan<T>& p, bool layers) { plan_model(c, w, p, pfx, layers); },
        [c, pfx](int l, LayerWeights<T>& ly, Plan<T>& p) { plan_layer(c, l, ly, p, pfx); }, ignored);
    return m;
}

template <class T>
Model<T> load_model(const std::string& path, WeightMode mode) {
    if (path.empty()) throw Error("load_model: empty model path");
    if (!file_exists(path)) throw Error("no such file or directory: " + path);
    if (is_directory(path)) {
        if (!file_exists((fs::path(path) / "config.json").string())) {
            throw Error(path +
                        ": directory has no config.json; expected a Hugging Face model directory "
                        "(config.json + model.safetensors) or a llama2.c .bin checkpoint file");
        }
        return read_hf_model<T>(path, mode);
    }
    // A config.json or .safetensors file inside a model directory stands for the directory.
    const fs::path p(path);
    if (p.filename() == "config.json" || ends_with(path, ".safetensors") ||
        ends_with(path, ".safetensors.index.json")) {
        std::string parent = p.parent_path().string();
        return read_hf_model<T>(parent.empty() ? std::string(".") : parent, mode);
    }
    if (ends_with(path, ".gguf")) return read_gguf_model<T>(path, mode);
    return read_llama2c<T>(path);
}

template Model<float> read_hf_model<float>(const std::string&, WeightMode);
template Model<double> read_hf_model<double>(const std::string&, WeightMode);
template Model<float> load_model<float>(const std::string&, WeightMode);
template Model<double> load_model<double>(const std::string&, WeightMode);

}  // namespace depass
