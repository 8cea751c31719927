// A GGUF file written by another tool (llama.cpp's converter): F16 weights, F32 norms,
// an untied output matrix and the real Llama 2 SentencePiece vocabulary, with random
// weights. It must load, tokenize exactly as the Llama 2 tokenizer does, and attribute
// with completeness at every residual point, in float and in double.
#include <cmath>

#include "depass/attribute.hpp"
#include "depass/io.hpp"
#include "depass/tokenizer.hpp"
#include "depass/tolerance.hpp"
#include "test_support.hpp"

using namespace depass;

namespace {
std::string gguf_path() { return depass_test::weights_dir() + "/third_party/llama-2-tiny-random.gguf"; }
}  // namespace

TEST_CASE("third-party GGUF: loads with the shape its metadata states, untied output",
          "[gguf][third_party]") {
    SKIP_WITHOUT_SHARED();
    const Model<double> m = load_model<double>(gguf_path());
    const Config& c = m.cfg;
    CHECK(c.D == 8);
    CHECK(c.L == 1);
    CHECK(c.H == 2);
    CHECK(c.Hkv == 2);
    CHECK(c.I == 32);
    CHECK(c.V == 32000);
    CHECK(!c.tied_embeddings);
    CHECK(m.w.lm_head.rows() == 32000);
    CHECK(c.rope == RopeStyle::Interleaved);
}

TEST_CASE("third-party GGUF: its vocabulary tokenizes as the Llama 2 SentencePiece model",
          "[gguf][third_party]") {
    SKIP_WITHOUT_SHARED();
    const auto from_gguf = open_tokenizer(gguf_path());
    const auto spm = load_sentencepiece_tokenizer(depass_test::weights_dir() + "/tokenizer.model");
    // The ids the weights' MANIFEST gives for the Llama 2 vocabulary.
    CHECK(from_gguf->encode("Once upon a time", true, false) == std::vector<int>{1, 9038, 2501, 263, 931});
    for (const std::string text : {"Once upon a time", " leading space", "naïve café, 2024!",
                                   "tabs\tand\nnewlines", "日本語のテキスト"}) {
        INFO(text);
        CHECK(from_gguf->encode(text, true, false) == spm->encode(text, true, false));
        CHECK(from_gguf->decode(from_gguf->encode(text, true, false)) == text);
    }
}

TEMPLATE_TEST_CASE("third-party GGUF: token-level attribution is complete and sums to the logits",
                   "[gguf][third_party]", float, double) {
    SKIP_WITHOUT_SHARED();
    using T = TestType;
    const Model<T> m = load_model<T>(gguf_path());
    const std::vector<int> ids =
        open_tokenizer(gguf_path())->encode("Once upon a time, a little fox", true, false);
    for (Level level : {Level::Token, Level::Head, Level::Neuron}) {
        INFO(level_name(level));
        AttributionRequest rq;
        rq.start.level = level;
        const Attribution<T> a = attribute(m, ids, rq);
        CHECK(a.completeness_max_rel <= tolerance::completeness_rel<T>());
        CHECK(int(a.completeness.size()) == (level == Level::Token ? 3 : level == Level::Head ? 2 : 1));
        const int M = a.M(), N = a.N();
        double worst = 0;
        for (int n = 0; n < N; ++n) {
            double s = 0;
            for (int k = 0; k < M; ++k) s += double(a.logit_attribution.data[size_t(k) * N + n]);
            worst = std::max(
                worst, std::abs(s - a.target_logits(n, 0)) / std::max(1.0, std::abs(a.target_logits(n, 0))));
        }
        CHECK(worst <= 50 * tolerance::completeness_rel<T>());
    }
    // Float and double agree on the logits (the stored F16 weights are exact in both).
    if (std::is_same<T, float>::value) {
        const Trace<double> t64 = forward(load_model<double>(gguf_path()), ids);
        const Trace<T> t32 = forward(m, ids);
        const double scale = t64.logits.cwiseAbs().maxCoeff();
        CHECK((t32.logits.template cast<double>() - t64.logits).cwiseAbs().maxCoeff() / scale <= 1e-4);
    }
}
