// The QK split (qk.hpp): the bilinear twin against a naive per-pair loop, the RoPE twin
// against RoPE of the summed state, and on every fixture architecture, level, cut and block
// the two identities (the summed pairs are the logits recomputed from q and k; their causal
// softmax is the recorded attention), and the errors of a bad request.
#include <cmath>
#include <cstdio>
#include <random>

#include "depass/attribute.hpp"
#include "depass/io.hpp"
#include "depass/tolerance.hpp"
#include "test_support.hpp"

using namespace depass;

namespace {

// Components with the given first positions and random rows.
template <class T>
Components<T> random_components(int N, int D, const std::vector<int>& first, std::mt19937_64& rng) {
    std::vector<std::string> names;
    for (size_t m = 0; m < first.size(); ++m) names.push_back("c" + std::to_string(m));
    Components<T> c = Components<T>::zeros(N, D, first, names);
    c.X = depass_test::randn<T>(c.X.rows(), D, rng);
    return c;
}

// Requests at or before block l's input: token / subspace / custom at h[c] (c <= l), head,
// neuron and module levels of every block before l.
std::vector<std::pair<std::string, LevelRequest>> requests_before(const Config& cfg, int l,
                                                                  const std::vector<Mat<double>>& states,
                                                                  std::mt19937_64& rng) {
    std::vector<std::pair<std::string, LevelRequest>> out;
    for (int c = 0; c <= l; ++c) {
        LevelRequest q;
        q.layer = c;
        out.push_back({"token h[" + std::to_string(c) + "]", q});
        q.level = Level::Subspace;
        q.projectors = {projector_from(depass_test::randn<double>(cfg.D, 3, rng), cfg.D, "basis")};
        out.push_back({"subspace h[" + std::to_string(c) + "]", q});
        LevelRequest u;
        u.layer = c;
        u.level = Level::Custom;
        const Mat<double>& h = states[size_t(c)];
        const Mat<double> a = depass_test::randn<double>(h.rows(), h.cols(), rng);
        Tensor<double> C({2, h.rows(), h.cols()});
        for (long i = 0; i < h.size(); ++i) {
            C.data[size_t(i)] = a.data()[i];
            C.data[size_t(h.size() + i)] = h.data()[i] - a.data()[i];
        }
        u.custom = C;
        out.push_back({"custom h[" + std::to_string(c) + "]", u});
    }
    for (int b = 0; b < l; ++b) {
        LevelRequest q;
        q.layer = b;
        q.level = Level::Head;
        out.push_back({"head L" + std::to_string(b), q});
        q.level = Level::Neuron;
        q.neuron_groups = 3;
        out.push_back({"neuron groups L" + std::to_string(b), q});
        q = LevelRequest{};
        q.layer = b;
        q.level = Level::Module;
        q.module_mlp = true;
        out.push_back({"module mlp L" + std::to_string(b), q});
    }
    LevelRequest attn;  // the attention output of block l-1 is cut at m[l-1], before h[l]
    if (l > 0) {
        attn.level = Level::Module;
        attn.layer = l - 1;
        out.push_back({"module attn L" + std::to_string(l - 1), attn});
    }
    return out;
}

// Worst of both identities over every block, request and a few head / query subsets.
template <class T>
QkCheck worst_split(const Model<T>& model, const std::vector<int>& ids, const std::string& what) {
    const Trace<T> trace = forward(model, ids);
    std::vector<Mat<double>> states;
    for (const Mat<T>& h : trace.h) states.push_back(h.template cast<double>());
    std::mt19937_64 rng(11);
    QkCheck worst;
    int runs = 0;
    const int N = trace.N(), H = model.cfg.H;
    for (int l = 0; l < model.cfg.L; ++l) {
        for (const auto& [name, q] : requests_before(model.cfg, l, states, rng)) {
            for (const QkRequest& qk : {QkRequest{l, {}, {}}, QkRequest{l, {H - 1, 0}, {N - 1, 0, N / 2}}}) {
                AttributionRequest rq;
                rq.start = q;
                rq.qk = qk;
                rq.start.custom_rel_tol = sizeof(T) == 8 ? 1e-9 : 1e-5;
                const Attribution<T> a = attribute(model, trace, rq);
                INFO(what << ": " << name << ", block " << l << ", " << qk.heads.size() << " heads given");
                REQUIRE(a.qk);
                const QkSplit<T>& s = *a.qk;
                const size_t Hs = qk.heads.empty() ? size_t(H) : qk.heads.size();
                const size_t Nq = qk.queries.empty() ? size_t(N) : qk.queries.size();
                REQUIRE(s.logits.shape == std::vector<int64_t>{int64_t(Hs), a.M(), a.M(), int64_t(Nq), N});
                // The identities, measured again here from the split (check_qk_split), and held.
                const QkCheck c = check_qk_split(model, trace, s);
                CHECK(c.logits_max_rel <= tolerance::qk_rel<T>());
                CHECK(c.probs_max_abs <= tolerance::qk_rel<T>());
                // Non-causal entries are zero.
                for (size_t h = 0; h < Hs; ++h)
                    for (int i = 0; i < int(Nq); ++i)
                        for (int j = s.queries[size_t(i)] + 1; j < N; ++j) CHECK(s.at(int(h), 0, a.M() - 1, i, j) == 0);
                worst.logits_max_rel = std::max(worst.logits_max_rel, c.logits_max_rel);
                worst.probs_max_abs = std::max(worst.probs_max_abs, c.probs_max_abs);
                ++runs;
            }
        }
    }
    std::printf("%-16s %-4s %4d splits: summed pairs vs logits %.2e (rel), softmax vs probs %.2e (abs), tol %.0e\n",
                what.c_str(), sizeof(T) == 8 ? "f64" : "f32", runs, worst.logits_max_rel, worst.probs_max_abs,
                tolerance::qk_rel<T>());
    return worst;
}

}  // namespace

TEMPLATE_TEST_CASE("the bilinear QK twin equals a naive loop over pairs", "[qk][ops]", float, double) {
    using T = TestType;
    std::mt19937_64 rng(3);
    const int N = 6, H = 4, Hkv = 2, Dh = 4;
    const std::vector<int> first = {0, 2, 5, 0};
    const Components<T> q = random_components<T>(N, H * Dh, first, rng);
    const Components<T> k = random_components<T>(N, Hkv * Dh, first, rng);
    for (const auto& [heads, queries] : {std::pair{std::vector<int>{}, std::vector<int>{}},
                                         std::pair{std::vector<int>{3, 1}, std::vector<int>{5, 2}}}) {
        const Tensor<T> S = qk_logits_decomposed(q, k, H, Hkv, Dh, heads, queries);
        const std::vector<int> hs = heads.empty() ? std::vector<int>{0, 1, 2, 3} : heads;
        const std::vector<int> qs = queries.empty() ? std::vector<int>{0, 1, 2, 3, 4, 5} : queries;
        const int M = q.M, Nq = int(qs.size());
        REQUIRE(S.shape == std::vector<int64_t>{int64_t(hs.size()), M, M, Nq, N});
        double worst = 0;
        for (size_t hi = 0; hi < hs.size(); ++hi) {
            const int h = hs[hi], g = h / (H / Hkv);
            for (int m = 0; m < M; ++m)
                for (int m2 = 0; m2 < M; ++m2) {
                    const Mat<T> Qm = q.component(m), Km = k.component(m2);
                    for (int i = 0; i < Nq; ++i)
                        for (int j = 0; j < N; ++j) {
                            double ref = 0;
                            if (j <= qs[size_t(i)])
                                for (int d = 0; d < Dh; ++d)
                                    ref += double(Qm(qs[size_t(i)], h * Dh + d)) * double(Km(j, g * Dh + d));
                            ref /= std::sqrt(double(Dh));
                            const double got = double(S.data[(((hi * M + m) * M + m2) * Nq + i) * N + j]);
                            worst = std::max(worst, std::abs(got - ref));
                        }
                }
        }
        CHECK(worst <= (sizeof(T) == 8 ? 1e-13 : 1e-5));
    }
    depass_test::expect_error([&] { qk_logits_decomposed(q, k, H, Hkv, Dh, {4}, {}); }, {"head 4", "[0, 4)"});
    depass_test::expect_error([&] { qk_logits_decomposed(q, k, H, Hkv, Dh, {}, {6}); },
                              {"query position 6", "[0, 6)"});
}

TEMPLATE_TEST_CASE("the RoPE twin: rotated components sum to the rotated state", "[qk][ops]", float, double) {
    using T = TestType;
    std::mt19937_64 rng(5);
    const int N = 7, nh = 2, Dh = 8;
    const std::vector<double> inv = rope_inv_freq(Dh, 10000.0);
    for (RopeStyle style : {RopeStyle::Interleaved, RopeStyle::Half}) {
        Components<T> c = random_components<T>(N, nh * Dh, {0, 3, 6, 0}, rng);
        Mat<T> state = c.sum();
        rope(state, nh, Dh, style, inv);
        std::vector<Mat<T>> dense;
        for (int m = 0; m < c.M; ++m) dense.push_back(c.component(m));
        rope_decomposed(c, nh, Dh, style, inv);
        const Mat<T> sum = c.sum();
        CHECK((sum - state).cwiseAbs().maxCoeff() <= (sizeof(T) == 8 ? 1e-13 : 1e-5) * state.cwiseAbs().maxCoeff());
        for (int m = 0; m < c.M; ++m) {  // each component as its dense rows rotated at their own positions
            rope(dense[size_t(m)], nh, Dh, style, inv);
            CHECK((c.component(m) - dense[size_t(m)]).cwiseAbs().maxCoeff() <= (sizeof(T) == 8 ? 1e-13 : 1e-5));
        }
    }
}

TEMPLATE_TEST_CASE("the QK split sums to the logits and the recorded attention on every fixture", "[qk]", float,
                   double) {
    using T = TestType;
    SKIP_WITHOUT_SHARED();
    for (std::string name : {"llama-gqa-s1", "qwen2-s1", "llama3-rope-s2", "gpt2-s1"}) {
        const std::string dir = depass_test::fixtures_dir() + "/" + name;
        const Model<T> model = load_model<T>(dir);
        worst_split(model, depass_test::fixture_ids(dir), name);
    }
    // Interleaved RoPE (llama2.c layout) on the shipped model.
    const Model<T> model = load_model<T>(depass_test::weights_dir() + "/stories260K.bin");
    worst_split(model, {1, 403, 407, 261, 378, 13, 92}, "stories260K");
}

TEST_CASE("a bad QK request: one clear error each, before any work", "[qk][errors]") {
    SKIP_WITHOUT_SHARED();
    const Model<double> model = load_model<double>(depass_test::weights_dir() + "/stories260K.bin");
    const Trace<double> trace = forward(model, {1, 403, 407, 261});
    auto run = [&](LevelRequest start, QkRequest qk, uint64_t max_bytes = 0) {
        AttributionRequest rq;
        rq.start = start;
        rq.qk = qk;
        rq.qk_max_bytes = max_bytes;
        (void)attribute(model, trace, rq);
    };
    LevelRequest token;
    depass_test::expect_error([&] { run(token, {5, {}, {}}); }, {"qk: layer 5", "[0, 4]", "5-layer"});
    depass_test::expect_error([&] { run(token, {1, {8}, {}}); }, {"qk: head 8", "[0, 8)"});
    depass_test::expect_error([&] { run(token, {1, {2, 2}, {}}); }, {"head 2", "twice"});
    depass_test::expect_error([&] { run(token, {1, {}, {4}}); }, {"query position 4", "[0, 4)"});
    LevelRequest late;
    late.layer = 3;
    depass_test::expect_error([&] { run(late, {1, {}, {}}); }, {"starts at h[3]", "after h[1]", "block 1"});
    LevelRequest attn;
    attn.level = Level::Module;
    attn.layer = 1;
    depass_test::expect_error([&] { run(attn, {1, {}, {}}); }, {"starts at m[1]", "after h[1]"});
    depass_test::expect_error([&] { run(token, {1, {}, {}}, 1024); }, {"needs", "more than", "fewer heads"});
    AttributionRequest adj;
    adj.rule = MlpRule::Taylor;
    adj.adjoint = true;
    adj.qk = QkRequest{1, {}, {}};
    depass_test::expect_error([&] { (void)attribute(model, trace, adj); }, {"adjoint path never forms"});
}

TEST_CASE("depass attribute --qk: the split and its views in the output file", "[qk][cli]") {
    SKIP_WITHOUT_SHARED();
    const std::string model_path = depass_test::source_dir() + "/weights/stories260K.bin";
    const std::string out = depass_test::temp_path("qk_cli.safetensors");
    std::string log;
    REQUIRE(depass_test::run_cli("attribute -m " + depass_test::shell_quoted(model_path) +
                                     " --ids 1,403,407,261,378 --dtype f64 --qk 2 --qk-heads 3,0 --out " +
                                     depass_test::shell_quoted(out) + " -q",
                                 &log) == 0);
    const SafeTensors st = SafeTensors::open(out);
    const Tensor<double> S = st.read<double>("qk_logits");
    const int Hs = 2, M = 6, N = 5;
    REQUIRE(S.shape == std::vector<int64_t>{Hs, M, M, N, N});
    const Tensor<double> key = st.read<double>("qk_key_share"), query = st.read<double>("qk_query_share");
    const Tensor<double> top = st.read<double>("qk_top_values");
    const Tensor<int64_t> pairs = st.read<int64_t>("qk_top_pairs");
    CHECK(st.read<int64_t>("qk_heads").data == std::vector<int64_t>{3, 0});
    CHECK(st.metadata().at("qk_layer") == "2");
    // The summed pairs are the logits of the model's own block 2 (recomputed independently here).
    const Model<double> model = load_model<double>(model_path);
    const Trace<double> trace = forward(model, {1, 403, 407, 261, 378});
    auto s = [&](int h, int m, int m2, int i, int j) { return S.data[(((size_t(h) * M + m) * M + m2) * N + i) * N + j]; };
    for (int hi = 0; hi < Hs; ++hi) {
        const Mat<double> ref = attention_logits(model, trace, 2, hi == 0 ? 3 : 0);
        for (int i = 0; i < N; ++i)
            for (int j = 0; j <= i; ++j) {
                double total = 0, best = 0;
                for (int m = 0; m < M; ++m) {
                    double k_side = 0, q_side = 0;
                    for (int m2 = 0; m2 < M; ++m2) {
                        total += s(hi, m, m2, i, j);
                        k_side += s(hi, m2, m, i, j);  // m on the key side, summed over the query side
                        q_side += s(hi, m, m2, i, j);
                        best = std::max(best, std::abs(s(hi, m, m2, i, j)));
                    }
                    CHECK(std::abs(key.data[((size_t(hi) * M + m) * N + i) * N + j] - k_side) <= 1e-12);
                    CHECK(std::abs(query.data[((size_t(hi) * M + m) * N + i) * N + j] - q_side) <= 1e-12);
                }
                CHECK(std::abs(total - ref(i, j)) <= 1e-12 * std::max(1.0, ref.cwiseAbs().maxCoeff()));
                // The first of the top pairs is the largest |pair|, and names its components.
                const size_t t0 = ((size_t(hi) * N + i) * N + j) * 5;
                CHECK(std::abs(std::abs(top.data[t0]) - best) <= 1e-15 * std::max(1.0, best));
                CHECK(top.data[t0] == s(hi, int(pairs.data[2 * t0]), int(pairs.data[2 * t0 + 1]), i, j));
            }
    }
    CHECK(log.find("qk: block 2 head 3") != std::string::npos);
    // Bad requests: one error, no file.
    const std::string bad = depass_test::temp_path("qk_bad.safetensors");
    for (const auto& [args, must] : std::vector<std::pair<std::string, std::string>>{
             {"--qk 9", "qk: layer 9 is out of range"},
             {"--qk 1 --layer 3", "starts at h[3], after h[1]"},
             {"--qk 1 --qk-heads 8", "qk: head 8"},
             {"--query-positions 2", "--query-positions applies to --qk"},
             {"--qk 1 --query-positions 7", "query position 7"},
             {"--qk 1 --rule taylor --adjoint", "--adjoint never forms"}}) {
        std::string err;
        CHECK(depass_test::run_cli("attribute -m " + depass_test::shell_quoted(model_path) + " --ids 1,403,407 " +
                                       args + " --out " + depass_test::shell_quoted(bad),
                                   &err) != 0);
        INFO(args << ": " << err);
        CHECK(err.find(must) != std::string::npos);
        CHECK(!file_exists(bad));
    }
}
