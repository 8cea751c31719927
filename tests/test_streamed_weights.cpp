// Streamed weights (WeightMode::Streamed): the blocks stay in the file as stored and are
// widened one at a time when a pass reaches them. Everything a streamed model computes must
// be bit-identical to the same file loaded resident -- the forward trace, every attribution
// level, the backward pass -- for safetensors (F32 fixtures, a BF16 re-save) and GGUF (F16).
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "depass/attribute.hpp"
#include "depass/backward.hpp"
#include "depass/io.hpp"
#include "test_support.hpp"

using namespace depass;
namespace fs = std::filesystem;

namespace {

std::string fixture(const std::string& name) { return depass_test::fixtures_dir() + "/" + name; }

template <class T>
bool same(const Mat<T>& a, const Mat<T>& b) {
    return a.rows() == b.rows() && a.cols() == b.cols() &&
           (a.size() == 0 || std::memcmp(a.data(), b.data(), sizeof(T) * size_t(a.size())) == 0);
}
template <class T>
bool same(const Tensor<T>& a, const Tensor<T>& b) {
    return a.shape == b.shape && std::memcmp(a.data.data(), b.data.data(), sizeof(T) * a.data.size()) == 0;
}

// The upper 16 bits of a float: its bfloat16 (truncated).
uint16_t to_bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return uint16_t(u >> 16);
}
float from_bf16(uint16_t b) {
    const uint32_t u = uint32_t(b) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// A copy of a Hugging Face fixture whose tensors are stored as BF16.
std::string bf16_copy(const std::string& name) {
    const std::string dir = depass_test::temp_dir() + "/" + name + "-bf16";
    fs::create_directories(dir);
    fs::copy_file(fixture(name) + "/config.json", dir + "/config.json", fs::copy_options::overwrite_existing);
    const SafeTensors st = SafeTensors::open(fixture(name) + "/model.safetensors");
    nlohmann::json header = nlohmann::json::object();
    std::string data;
    for (const std::string& n : st.names()) {
        const Tensor<float> t = st.read<float>(n);
        const size_t begin = data.size();
        for (float f : t.data) {
            const uint16_t b = to_bf16(f);
            data.append(reinterpret_cast<const char*>(&b), 2);
        }
        header[n] = {{"dtype", "BF16"}, {"shape", t.shape}, {"data_offsets", {begin, data.size()}}};
    }
    std::string h = header.dump();
    const uint64_t len = h.size();
    std::string file(reinterpret_cast<const char*>(&len), 8);
    file += h + data;
    write_file_atomic(dir + "/model.safetensors", file);
    return dir;
}

// Streamed and resident runs of one model file agree bit for bit.
template <class T>
void check_streamed_matches(const std::string& path, const std::vector<int>& ids) {
    const Model<T> r = load_model<T>(path, WeightMode::Resident);
    const Model<T> s = load_model<T>(path, WeightMode::Streamed);
    REQUIRE(s.streamed != nullptr);
    CHECK(s.w.layers.empty());
    REQUIRE(r.streamed == nullptr);
    CHECK(same(s.w.tok_emb, r.w.tok_emb));
    CHECK(same(s.w.lm_head, r.w.lm_head));
    // Each widened block equals the resident one.
    LayerWeights<T> scratch;
    for (int l = 0; l < r.cfg.L; ++l) {
        const LayerWeights<T>& a = s.layer(l, scratch);
        const LayerWeights<T>& b = r.w.layers[size_t(l)];
        CHECK(same(a.wq, b.wq));
        CHECK(same(a.wo, b.wo));
        CHECK(same(a.w_up, b.w_up));
        CHECK(same(a.w_down, b.w_down));
        CHECK(same(Mat<T>(a.norm1_g), Mat<T>(b.norm1_g)));
    }

    const Trace<T> tr = forward(r, ids), ts = forward(s, ids);
    CHECK(same(ts.logits, tr.logits));
    for (int l = 0; l <= r.cfg.L; ++l) CHECK(same(ts.h[size_t(l)], tr.h[size_t(l)]));

    for (Level level : {Level::Token, Level::Module, Level::Head, Level::Neuron}) {
        INFO(level_name(level));
        AttributionRequest rq;
        rq.start.level = level;
        rq.start.layer = level == Level::Token ? 0 : r.cfg.L - 1;
        const Attribution<T> a = attribute(r, ids, rq), b = attribute(s, ids, rq);
        CHECK(same(b.logit_attribution, a.logit_attribution));
        CHECK(b.completeness_max_rel == a.completeness_max_rel);
    }

    const int N = int(ids.size());
    const Gradients<T> gr = backward(r, tr, N - 1, ids[0]), gs = backward(s, ts, N - 1, ids[0]);
    CHECK(same(gs.h0, gr.h0));
    CHECK(same(gs.mlp_act[0], gr.mlp_act[0]));
    // forward_blocks (the evaluations' partial forward) from the middle of the network.
    CHECK(same(forward_blocks(s, tr.h[1], 1), forward_blocks(r, tr.h[1], 1)));
}

}  // namespace

TEMPLATE_TEST_CASE("streamed weights: Hugging Face fixtures compute bit for bit what resident ones do",
                   "[io][streamed]", float, double) {
    SKIP_WITHOUT_SHARED();
    for (const std::string name : {"llama-gqa-s1", "qwen2-s1", "gpt2-s1", "llama3-rope-s2"}) {
        INFO(name);
        check_streamed_matches<TestType>(fixture(name), {1, 7, 3, 9, 4, 2});
    }
}

TEMPLATE_TEST_CASE("streamed weights: a BF16 checkpoint widens exactly and streams bit for bit",
                   "[io][streamed][bf16]", float, double) {
    SKIP_WITHOUT_SHARED();
    using T = TestType;
    const std::string dir = bf16_copy("llama-gqa-s1");
    // Resident widening of BF16 = the 16 stored bits placed above 16 zero bits.
    const Model<T> m = load_model<T>(dir, WeightMode::Resident);
    const SafeTensors orig = SafeTensors::open(fixture("llama-gqa-s1") + "/model.safetensors");
    const Tensor<float> wq = orig.read<float>("model.layers.1.self_attn.q_proj.weight");
    const long cols = m.w.layers[1].wq.cols();
    size_t k = 0, differs = 0;
    for (float f : wq.data) {
        const T want = T(from_bf16(to_bf16(f)));
        CHECK(m.w.layers[1].wq(long(k / size_t(cols)), long(k % size_t(cols))) == want);
        differs += T(f) != want;
        ++k;
    }
    CHECK(differs > 0);  // the BF16 copy really holds other values than the F32 original
    check_streamed_matches<T>(dir, {1, 7, 3, 9, 4, 2});
}

TEMPLATE_TEST_CASE("streamed weights: the third-party GGUF (F16) streams bit for bit", "[gguf][streamed]",
                   float, double) {
    SKIP_WITHOUT_SHARED();
    check_streamed_matches<TestType>(depass_test::weights_dir() + "/third_party/llama-2-tiny-random.gguf",
                                     {1, 9038, 2501, 263, 931});
}

TEST_CASE("streamed weights: a streamed model refuses what needs resident weights", "[io][streamed]") {
    SKIP_WITHOUT_SHARED();
    const Model<float> s = load_model<float>(fixture("llama-gqa-s1"), WeightMode::Streamed);
    depass_test::expect_error([&] { cast_model<double>(s); }, {"streamed", "load it again"});
}
