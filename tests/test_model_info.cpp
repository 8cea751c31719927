// read_config() and describe_model_file(): the config of every format equals the one the
// full loader derives, nothing but headers is read (bytes counted by the kernel, and files
// whose weights cannot be loaded still describe), and the tensor list adds up to the file.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "depass/gguf.hpp"
#include "depass/io.hpp"
#include "depass/model_info.hpp"
#include "test_support.hpp"

using namespace depass;
namespace fs = std::filesystem;

namespace {

std::string file_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
}
void put_file(const std::string& path, const std::string& b) {
    std::ofstream(path, std::ios::binary | std::ios::trunc).write(b.data(), std::streamsize(b.size()));
}

// Bytes this process has read through read(2) so far (/proc/self/io "rchar").
uint64_t bytes_read() {
    std::ifstream in("/proc/self/io");
    std::string key;
    uint64_t v = 0;
    while (in >> key >> v)
        if (key == "rchar:") return v;
    return 0;
}

void check_same_config(const Config& a, const Config& b) {
    CHECK(a.model_type == b.model_type);
    CHECK(a.D == b.D);
    CHECK(a.I == b.I);
    CHECK(a.L == b.L);
    CHECK(a.H == b.H);
    CHECK(a.Hkv == b.Hkv);
    CHECK(a.Dh == b.Dh);
    CHECK(a.V == b.V);
    CHECK(a.max_positions == b.max_positions);
    CHECK(a.norm_eps == b.norm_eps);
    CHECK(a.rope_theta == b.rope_theta);
    CHECK(a.rope == b.rope);
    CHECK(a.tied_embeddings == b.tied_embeddings);
    CHECK(a.rope_freq_factors == b.rope_freq_factors);
    CHECK(a.bos_id == b.bos_id);
    CHECK(a.eos_id == b.eos_id);
    CHECK(describe(a) == describe(b));
}

std::string third_party_gguf() {
    return depass_test::weights_dir() + "/third_party/llama-2-tiny-random.gguf";
}

// A copy of the third-party GGUF with one tensor renamed (same length): its header and
// metadata parse, but the loader refuses the weights.
std::string gguf_with_renamed_tensor() {
    std::string b = file_bytes(third_party_gguf());
    const std::string from = "blk.0.attn_q.weight", to = "blk.0.attn_X.weight";
    const size_t at = b.find(from);
    REQUIRE(at != std::string::npos);
    b.replace(at, from.size(), to);
    const std::string path = depass_test::temp_dir() + "/renamed.gguf";
    put_file(path, b);
    return path;
}

}  // namespace

TEST_CASE("read_config equals the loader's config for llama2.c, Hugging Face and GGUF files",
          "[model_info]") {
    SKIP_WITHOUT_SHARED();
    const std::string bin = depass_test::source_dir() + "/weights/stories260K.bin";
    check_same_config(read_config(bin), load_model<float>(bin).cfg);
    const std::string hf = depass_test::weights_dir() + "/stories260K_hf";
    check_same_config(read_config(hf), load_model<float>(hf).cfg);
    check_same_config(read_config(hf + "/config.json"), load_model<float>(hf).cfg);
    check_same_config(read_config(hf + "/model.safetensors"), load_model<float>(hf).cfg);
    check_same_config(read_config(third_party_gguf()), load_model<float>(third_party_gguf()).cfg);
}

TEST_CASE("read_config reads the headers only", "[model_info]") {
    SKIP_WITHOUT_SHARED();
    // llama2.c: 28 bytes of header out of ~1 MB (allow the stream's buffer).
    const std::string bin = depass_test::source_dir() + "/weights/stories260K.bin";
    uint64_t before = bytes_read();
    const Config c = read_config(bin);
    const uint64_t bin_read = bytes_read() - before;
    INFO("llama2.c bytes read: " << bin_read << " of " << fs::file_size(bin));
    CHECK(c.D == 64);
    CHECK(bin_read < 64 * 1024);
    CHECK(fs::file_size(bin) > 1000 * 1000);

    // GGUF: the header, metadata and tensor infos (up to the data section) and nothing of the data.
    const GgufFile g = GgufFile::open(third_party_gguf());
    before = bytes_read();
    const Config gc = read_config(third_party_gguf());
    const uint64_t gguf_read = bytes_read() - before;
    INFO("GGUF bytes read: " << gguf_read << ", data starts at " << g.data_start() << " of "
                             << g.file_size());
    CHECK(gc.L == load_model<float>(third_party_gguf()).cfg.L);
    CHECK(g.file_size() - g.data_start() > 256 * 1024);  // the weights are a good part of the file
    CHECK(gguf_read < g.data_start() + 64 * 1024);

    // A file whose weights the loader refuses still gives its config and its description.
    const std::string renamed = gguf_with_renamed_tensor();
    depass_test::expect_error([&] { load_model<float>(renamed); }, {"renamed.gguf", "blk.0.attn_q.weight"});
    check_same_config(read_config(renamed), gc);
    CHECK(describe_model_file(renamed).tensors.size() == g.tensors().size());
}

TEST_CASE("describe_model_file: every tensor with its bytes, adding up to the file", "[model_info]") {
    SKIP_WITHOUT_SHARED();
    // llama2.c: the 28-byte header plus the float32 arrays it implies is the file.
    const std::string bin = depass_test::source_dir() + "/weights/stories260K.bin";
    const ModelFileInfo b = describe_model_file(bin);
    CHECK(b.format == "llama2c");
    CHECK(b.file_bytes == fs::file_size(bin));
    CHECK(b.tensor_bytes + 28 == b.file_bytes);
    CHECK(b.tensors.front().name == "token_embedding_table");
    CHECK(b.tensors.front().shape == std::vector<int64_t>{512, 64});
    CHECK(b.tensors.front().bytes == 512 * 64 * 4);
    REQUIRE(b.tokenizers.size() >= 1);
    CHECK(b.tokenizers.back().find("tok512.bin") != std::string::npos);

    // safetensors: 8-byte header length + header + data; the data is the tensors' bytes.
    const std::string hf = depass_test::weights_dir() + "/stories260K_hf";
    const ModelFileInfo h = describe_model_file(hf);
    const std::string raw = file_bytes(hf + "/model.safetensors");
    uint64_t header_len = 0;
    std::memcpy(&header_len, raw.data(), 8);
    CHECK(h.format == "huggingface");
    CHECK(h.file_bytes == raw.size());
    CHECK(h.tensor_bytes == raw.size() - 8 - header_len);
    const SafeTensors st = SafeTensors::open(hf + "/model.safetensors");
    REQUIRE(h.tensors.size() == st.names().size());
    for (const StoredTensor& t : h.tensors) {
        CHECK(t.shape == st.info(t.name).shape);
        CHECK(t.dtype == dtype_name(st.info(t.name).dtype));
    }

    // GGUF: every tensor info, types by name; the data section holds them all.
    const ModelFileInfo gi = describe_model_file(third_party_gguf());
    const GgufFile g = GgufFile::open(third_party_gguf());
    CHECK(gi.format == "gguf");
    CHECK(gi.file_bytes == g.file_size());
    REQUIRE(gi.tensors.size() == g.tensors().size());
    uint64_t sum = 0;
    for (size_t k = 0; k < g.tensors().size(); ++k) {
        CHECK(gi.tensors[k].name == g.tensors()[k].name);
        CHECK(gi.tensors[k].dtype == ggml_type_name(g.tensors()[k].type));
        sum += g.tensors()[k].nbytes;
    }
    CHECK(gi.tensor_bytes == sum);
    CHECK(gi.tensor_bytes <= g.file_size() - g.data_start());
    REQUIRE(!gi.tokenizers.empty());
    CHECK(gi.tokenizers.front().find("embedded") == 0);
}

TEST_CASE("group_tensors: one line per layer pattern with counts, dtypes and bytes", "[model_info]") {
    const std::vector<StoredTensor> t = {
        {"model.embed_tokens.weight", "BF16", {10, 4}, 80, "a"},
        {"model.layers.0.mlp.up_proj.weight", "BF16", {6, 4}, 48, "a"},
        {"model.layers.1.mlp.up_proj.weight", "BF16", {6, 4}, 48, "a"},
        {"model.layers.10.mlp.up_proj.weight", "F32", {6, 4}, 96, "a"},
        {"blk.3.attn_q.weight", "F16", {4, 4}, 32, "b"},
        {"blk.12.attn_q.weight", "F16", {4, 4}, 32, "b"},
        {"h.2.ln_1.weight", "F32", {4}, 16, "c"},
    };
    const std::vector<TensorGroup> g = group_tensors(t);
    REQUIRE(g.size() == 4);
    CHECK(g[0].pattern == "model.embed_tokens.weight");
    CHECK(g[1].pattern == "model.layers.*.mlp.up_proj.weight");
    CHECK(g[1].count == 3);
    CHECK(g[1].dtypes == "BF16,F32");
    CHECK(g[1].bytes == 192);
    CHECK(g[2].pattern == "blk.*.attn_q.weight");
    CHECK(g[2].count == 2);
    CHECK(g[3].pattern == "h.*.ln_1.weight");
}
