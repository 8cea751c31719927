// model_info.cpp -- read_config() and describe_model_file(): a model's configuration and
// its stored tensors from the file headers, without reading a weight.
#include "depass/model_info.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "depass/gguf.hpp"
#include "depass/io.hpp"
#include "json_guard.hpp"

namespace fs = std::filesystem;

namespace depass {

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

enum class Format { HfDir, Gguf, Llama2c };

// Which reader load_model() would use for PATH, and the directory of a Hugging Face model.
Format format_of(const std::string& path, std::string* hf_dir) {
    if (path.empty()) throw Error("empty model path");
    if (!file_exists(path)) throw Error("no such file or directory: " + path);
    if (is_directory(path)) {
        if (!file_exists((fs::path(path) / "config.json").string()))
            throw Error(path +
                        ": directory has no config.json; expected a Hugging Face model directory "
                        "(config.json + model.safetensors) or a llama2.c .bin checkpoint file");
        *hf_dir = path;
        return Format::HfDir;
    }
    const fs::path p(path);
    if (p.filename() == "config.json" || ends_with(path, ".safetensors") ||
        ends_with(path, ".safetensors.index.json")) {
        const std::string parent = p.parent_path().string();
        *hf_dir = parent.empty() ? std::string(".") : parent;
        return Format::HfDir;
    }
    if (ends_with(path, ".gguf")) return Format::Gguf;
    return Format::Llama2c;
}

uint64_t size_of(const std::string& file) {
    std::error_code ec;
    const uint64_t n = fs::file_size(file, ec);
    if (ec) throw Error(file + ": cannot determine the file size (" + ec.message() + ")");
    return n;
}

// The tokenizer files the command line looks at (src/cli/common.cpp find_tokenizer), present ones only.
std::vector<std::string> tokenizer_files(const std::string& model, int V) {
    const fs::path base = fs::is_directory(model)                 ? fs::path(model)
                          : fs::path(model).parent_path().empty() ? fs::path(".")
                                                                  : fs::path(model).parent_path();
    std::vector<std::string> found;
    for (const char* name : {"tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer.bin"}) {
        const fs::path p = base / name;
        if (!fs::is_regular_file(p)) continue;
        if (p.filename() == "vocab.json" && !fs::is_regular_file(base / "merges.txt")) continue;
        found.push_back(p.string() + (p.filename() == "vocab.json" ? " (+ merges.txt)" : ""));
    }
    const fs::path tokv = base / ("tok" + std::to_string(V) + ".bin");
    if (fs::is_regular_file(tokv)) found.push_back(tokv.string());
    return found;
}

}  // namespace

Config read_config(const std::string& path) {
    std::string dir;
    switch (format_of(path, &dir)) {
        case Format::HfDir:
            return read_hf_config((fs::path(dir) / "config.json").string());
        case Format::Gguf:
            return gguf_config(GgufFile::open(path));
        case Format::Llama2c:
            break;
    }
    return read_llama2c_config(path);
}

ModelFileInfo describe_model_file(const std::string& path) {
    ModelFileInfo info;
    info.path = path;
    std::string dir;
    const Format f = format_of(path, &dir);
    if (f == Format::HfDir) {
        info.format = "huggingface";
        info.cfg = read_hf_config((fs::path(dir) / "config.json").string());
        // The dtype the config says the weights are stored in (for a directory without them).
        const nlohmann::json cj =
            detail::parse_json_checked(read_text_file((fs::path(dir) / "config.json").string()),
                                       (fs::path(dir) / "config.json").string());
        for (const char* key : {"torch_dtype", "dtype"})
            if (cj.is_object() && cj.contains(key) && cj[key].is_string())
                info.config_dtype = cj[key].get<std::string>();
        std::string st_path = (fs::path(dir) / "model.safetensors").string();
        if (!file_exists(st_path)) st_path = (fs::path(dir) / "model.safetensors.index.json").string();
        if (!file_exists(st_path)) {
            info.weights_present = false;  // config.json alone: described, not loadable
            for (std::string& t : tokenizer_files(dir, info.cfg.V)) info.tokenizers.push_back(std::move(t));
            return info;
        }
        const SafeTensors st = SafeTensors::open(st_path);  // the header(s) only
        std::set<std::string> files;
        for (const std::string& n : st.names()) {
            const TensorInfo& t = st.info(n);
            info.tensors.push_back({n, dtype_name(t.dtype), t.shape, t.end - t.begin, t.file});
            files.insert(t.file);
        }
        info.weight_files.assign(files.begin(), files.end());
        if (info.weight_files.empty()) info.weight_files.push_back(st_path);
    } else if (f == Format::Gguf) {
        info.format = "gguf";
        const GgufFile g = GgufFile::open(path);
        info.cfg = gguf_config(g);
        for (const GgufTensorInfo& t : g.tensors())
            info.tensors.push_back({t.name, ggml_type_name(t.type), t.shape(), t.nbytes, path});
        info.weight_files.push_back(path);
        if (g.has("tokenizer.ggml.tokens"))
            info.tokenizers.push_back("embedded (" + path + ", tokenizer.ggml.model = " +
                                      g.get_string("tokenizer.ggml.model", "?") + ")");
    } else {
        info.format = "llama2c";
        const Config c = read_llama2c_config(path);
        info.cfg = c;
        // The arrays of the file, in file order (llama2.c's run.c names), every one F32.
        const int64_t D = c.D, I = c.I, L = c.L, V = c.V, QD = int64_t(c.H) * c.Dh,
                      KVD = int64_t(c.Hkv) * c.Dh, S = c.max_positions, P = c.Dh / 2;
        auto add = [&](const std::string& name, std::vector<int64_t> shape) {
            uint64_t n = 1;
            for (int64_t d : shape) n *= uint64_t(d);
            info.tensors.push_back({name, "F32", std::move(shape), 4 * n, path});
        };
        add("token_embedding_table", {V, D});
        add("rms_att_weight", {L, D});
        add("wq", {L, QD, D});
        add("wk", {L, KVD, D});
        add("wv", {L, KVD, D});
        add("wo", {L, D, QD});
        add("rms_ffn_weight", {L, D});
        add("w1", {L, I, D});
        add("w2", {L, D, I});
        add("w3", {L, I, D});
        add("rms_final_weight", {D});
        add("freq_cis_real", {S, P});
        add("freq_cis_imag", {S, P});
        if (!c.tied_embeddings) add("wcls", {V, D});
        info.weight_files.push_back(path);
    }
    for (const std::string& file : info.weight_files) info.file_bytes += size_of(file);
    for (const StoredTensor& t : info.tensors) info.tensor_bytes += t.bytes;
    for (std::string& t : tokenizer_files(f == Format::HfDir ? dir : path, info.cfg.V))
        info.tokenizers.push_back(std::move(t));
    return info;
}

uint64_t load_transient_bytes(const ModelFileInfo& info, int scalar_bytes) {
    if (info.format == "llama2c") return info.file_bytes;
    uint64_t most = 0;
    for (const StoredTensor& t : info.tensors) {
        uint64_t n = 1;
        for (int64_t d : t.shape) n *= uint64_t(d);
        most = std::max(most, t.bytes + n * uint64_t(scalar_bytes));
    }
    return most;
}

std::vector<TensorGroup> group_tensors(const std::vector<StoredTensor>& tensors) {
    static const std::regex layer_index(R"((^|\.)(layers|blk|h)\.[0-9]+\.)");
    std::vector<TensorGroup> groups;
    std::map<std::string, size_t> where;
    for (const StoredTensor& t : tensors) {
        const std::string pattern = std::regex_replace(t.name, layer_index, "$1$2.*.");
        auto it = where.find(pattern);
        if (it == where.end()) {
            it = where.emplace(pattern, groups.size()).first;
            groups.push_back({pattern, 0, "", t.shape, 0});
        }
        TensorGroup& g = groups[it->second];
        ++g.count;
        g.bytes += t.bytes;
        const std::string sep = g.dtypes.empty() ? "" : ",";
        if (("," + g.dtypes + ",").find("," + t.dtype + ",") == std::string::npos) g.dtypes += sep + t.dtype;
    }
    return groups;
}

}  // namespace depass
