// test_split.cpp -- a run split over ranks (depass/distributed.hpp) equals the run in one
// process. The ranks here are threads of this process (support/thread_group.hpp), so the split
// is tested in every build; tests/mpi runs the command line through mpirun the same way.
//
//  1. split_components: contiguous blocks covering every component, balanced by stored rows.
//  2. The share rules on rows split over ranks give one process's weights (max exactly; the
//     sums to rounding), including neurons whose every share is 0 on some ranks or on all.
//  3. attribute() on 2, 3 and 4 ranks against one process: every level, every rule, float and
//     double, three architectures: components and logit attribution within split_rel, the
//     completeness figures identical to the last bit (summed in one process's order), the
//     points' components and the QK split too.
//  4. Failures: a rank that failed before the pass stops every rank at its check-in with its
//     message; a bad request fails on every rank without any collective call.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <random>

#include "depass/adjoint.hpp"
#include "depass/attribute.hpp"
#include "depass/distributed.hpp"
#include "depass/initialisers.hpp"
#include "depass/tolerance.hpp"
#include "test_support.hpp"
#include "thread_group.hpp"

using namespace depass;
using depass_test::run_ranks;

namespace {

template <class T>
const char* type_name() {
    return sizeof(T) == 8 ? "double" : "float";
}

// max |a - b| / max |b| over two arrays of the same size (the size checked).
template <class A, class B>
double rel_diff(const A* a, const B* b, size_t n) {
    return depass_test::diff(a, b, n).rel();
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}
template <class T>
bool same_bits(const Mat<T>& a, const Mat<T>& b) {
    return a.rows() == b.rows() && a.cols() == b.cols() &&
           (a.size() == 0 || std::memcmp(a.data(), b.data(), size_t(a.size()) * sizeof(T)) == 0);
}

}  // namespace

// =====================================================================================
// 1. The blocks.
// =====================================================================================

TEST_CASE("split_components: contiguous blocks of every component, balanced by stored rows, rest last",
          "[split]") {
    const int N = 12;
    std::vector<int> token(N + 1, 0), flat(50, 0), pair(2, 0);
    for (int j = 0; j < N; ++j) token[size_t(j)] = j;
    for (const std::vector<int>* first : {&token, &flat, &pair}) {
        const int M = int(first->size());
        int64_t R = 0;
        for (int f : *first) R += N - f;
        for (int P : {1, 2, 3, 5, 8, 64}) {
            INFO("M " << M << " P " << P);
            int at = 0, last_nonempty = -1;
            for (int r = 0; r < P; ++r) {
                const ComponentBlock b = split_components(*first, N, r, P);
                CHECK(b.begin == at);  // contiguous, in rank order
                CHECK(b.end >= b.begin);
                at = b.end;
                int64_t rows = 0;
                for (int m = b.begin; m < b.end; ++m) rows += N - (*first)[size_t(m)];
                // No block holds more than its share plus one component's rows (N at most).
                CHECK(rows <= R / P + N);
                if (b.end > b.begin) last_nonempty = r;
            }
            CHECK(at == M);  // every component exactly once
            // The rest (component M - 1) is on the last rank that holds anything.
            CHECK(split_components(*first, N, last_nonempty, P).end == M);
        }
    }
    // Equal components split evenly: 50 components over 4 ranks -> 13, 12, 13, 12 (by rows).
    std::vector<int> sizes;
    for (int r = 0; r < 4; ++r) {
        const ComponentBlock b = split_components(flat, N, r, 4);
        sizes.push_back(b.end - b.begin);
    }
    CHECK(sizes == std::vector<int>{13, 12, 13, 12});
    CHECK_THROWS_AS(split_components(flat, N, 4, 4), Error);
}

// =====================================================================================
// 2. The share rules, rows split over ranks.
// =====================================================================================

TEMPLATE_TEST_CASE("share rules: rows split over ranks give one process's weights", "[split][rules]", float,
                   double) {
    using T = TestType;
    const int K = 11, I = 40;  // components present at the position (the rest last), neurons
    std::mt19937_64 rng(5);
    std::normal_distribution<double> nd(0.0, 1.0);
    Mat<T> G0(K, I);
    for (long i = 0; i < G0.size(); ++i) G0.data()[i] = T(nd(rng));
    // Neurons where shares are exactly 0 (do not participate): on the first rows only, on
    // every row but the rest, and on every row with the rest negligible (it then takes all).
    for (int k = 0; k < 4; ++k) G0(k, 3) = 0;
    for (int k = 0; k < K - 1; ++k) G0(k, 5) = G0(k, 6) = 0;
    G0(K - 1, 6) = T(1e-7);
    G0(2, 7) = G0(8, 7) = T(2.5);  // a tie for the max rule: the first component wins
    std::vector<int> comp(K);
    for (int k = 0; k < K; ++k) comp[size_t(k)] = k;
    const int rest = K - 1;

    auto one_rank = [&](MlpRule rule, Mat<T>& g, int k0, int k1, const Group& group) {
        std::vector<T> scratch(3 * size_t(I));
        std::vector<int> at(static_cast<size_t>(I));
        Eigen::Array<T, Eigen::Dynamic, 1> e(I);
        DecomposeOptions opt;
        opt.ignore_special_token = true;
        T* rows = g.data() + long(k0) * I;
        const int Kr = k1 - k0;
        prepare_gate_shares(rows, comp.data() + k0, Kr, I, 3, opt, rest, scratch.data(), group);
        switch (rule) {
            case MlpRule::Softmax:
                softmax_rule(rows, Kr, I, T(0.1), scratch.data(), e.data(), group);
                break;
            case MlpRule::Max:
                max_rule(rows, comp.data() + k0, Kr, I, scratch.data(), at.data(), group);
                break;
            case MlpRule::Relu:
                relu_rule(rows, Kr, I, scratch.data(), group);
                break;
            case MlpRule::Linear:
                linear_rule(rows, Kr, I, scratch.data(), group);
                break;
            case MlpRule::Taylor:
                break;
        }
    };
    for (MlpRule rule : {MlpRule::Softmax, MlpRule::Max, MlpRule::Relu, MlpRule::Linear}) {
        Mat<T> whole = G0;
        one_rank(rule, whole, 0, K, one_process());
        for (const std::vector<int>& cuts :
             {std::vector<int>{0, 4, K}, std::vector<int>{0, 1, 6, K}, std::vector<int>{0, 0, 10, K},
              std::vector<int>{0, 3, 3, 9, K}}) {
            const int P = int(cuts.size()) - 1;
            Mat<T> split = G0;
            const std::vector<std::string> failures = run_ranks(P, [&](const Group& g) {
                one_rank(rule, split, cuts[size_t(g.rank())], cuts[size_t(g.rank()) + 1], g);
            });
            for (const std::string& f : failures) CHECK(f.empty());
            INFO(rule_name(rule) << " on " << P << " ranks");
            const double e = rel_diff(split.data(), whole.data(), size_t(whole.size()));
            // Weights sum to 1 and are at most 1: the same rounding bound as the pass.
            CHECK(e <= (std::is_same<T, double>::value ? 1e-15 : 1e-6));
            if (rule == MlpRule::Max) CHECK(same_bits(split, whole));  // a selection, no arithmetic
            // The checks on the inputs: column 6 goes wholly to the rest, column 7's max to row 2.
            CHECK(double(split(K - 1, 6)) == 1.0);
            if (rule == MlpRule::Max) CHECK(double(split(2, 7)) == 1.0);
        }
    }
}

// =====================================================================================
// 3. attribute() split over ranks.
// =====================================================================================

namespace {

// attribute() on `ranks` threads; rank 0's result. The other ranks must return no components.
template <class T>
Attribution<T> split_run(const Model<T>& model, const Trace<T>& trace, const AttributionRequest& rq,
                         int ranks, std::string* failure) {
    Attribution<T> out;
    std::vector<int> others_m(size_t(ranks), -1);
    const std::vector<std::string> f = run_ranks(ranks, [&](const Group& g) {
        Attribution<T> a = attribute(model, trace, rq, {}, g);
        others_m[size_t(g.rank())] = a.components.M;
        if (g.is_root()) out = std::move(a);
    });
    for (int r = 0; r < ranks; ++r) {
        if (!f[size_t(r)].empty()) *failure += "rank " + std::to_string(r) + ": " + f[size_t(r)] + "; ";
        if (r > 0 && others_m[size_t(r)] != 0) *failure += "rank " + std::to_string(r) + " kept components; ";
    }
    return out;
}

struct Case {
    std::string name;
    LevelRequest start;
};

template <class T>
std::vector<Case> cases(const Model<T>& model, const Trace<T>& trace, std::mt19937_64& rng) {
    const Config& c = model.cfg;
    std::vector<Case> v;
    auto add = [&](const std::string& name, Level level, int layer) {
        Case k{name, {}};
        k.start.level = level;
        k.start.layer = layer;
        v.push_back(k);
        return &v.back().start;
    };
    add("token h[0]", Level::Token, 0);
    add("token h[1]", Level::Token, 1);
    add("module attn L0", Level::Module, 0);
    add("module mlp L0", Level::Module, 0)->module_mlp = true;
    add("head L0", Level::Head, 0);
    add("head L1 {1,3}", Level::Head, 1)->heads = {1, 3};
    add("neuron L0", Level::Neuron, 0);
    add("neuron groups 5 L0", Level::Neuron, 0)->neuron_groups = 5;
    add("neurons {3,7,40} L0", Level::Neuron, 0)->neurons = {3, 7, 40};
    LevelRequest* sub = add("subspace h[1] x2", Level::Subspace, 1);
    for (int k = 0; k < 2; ++k)
        sub->projectors.push_back(projector_from(depass_test::randn<double>(c.D, 3, rng), c.D, "basis"));
    // Custom: h[1] as three random pieces that sum to it.
    LevelRequest* cu = add("custom h[1] x3", Level::Custom, 1);
    const int N = trace.N();
    const Mat<double> h = trace.h[1].template cast<double>();
    cu->custom = Tensor<double>({3, N, c.D});
    Mat<double> left = h;
    for (int k = 0; k < 3; ++k) {
        Mat<double> part = k < 2 ? Mat<double>(depass_test::randn<double>(N, c.D, rng)) : left;
        left -= part;
        std::copy(part.data(), part.data() + part.size(), cu->custom.data.begin() + size_t(k) * N * c.D);
    }
    cu->custom_rel_tol = 1e-5;
    return v;
}

}  // namespace

TEMPLATE_TEST_CASE("attribute split over 2, 3 and 4 ranks equals one process: every level and rule",
                   "[split][attribute]", float, double) {
    using T = TestType;
    const double tol = tolerance::split_rel<T>();
    using TArch = depass_test::TinyArch;
    std::map<std::string, double> worst;  // by rule
    int runs = 0, bitwise = 0, bitwise_max_taylor = 0, max_taylor = 0;
    for (TArch arch : {TArch::Llama, TArch::Qwen2, TArch::Gpt2}) {
        const Model<T> model = random_model<T>(depass_test::tiny_config(arch), 77 + int(arch));
        std::vector<int> ids{1, 7, 3, 22, 9, 41, 5, 18, 30};
        const Trace<T> trace = forward(model, ids);
        std::mt19937_64 rng(9);
        for (const Case& cs : cases(model, trace, rng))
            for (MlpRule rule :
                 {MlpRule::Softmax, MlpRule::Max, MlpRule::Relu, MlpRule::Linear, MlpRule::Taylor}) {
                AttributionRequest rq;
                rq.start = cs.start;
                rq.rule = rule;
                const Attribution<T> one = attribute(model, trace, rq);
                for (int P : {2, 3, 4}) {
                    if (P == 4 && cs.start.level != Level::Module && cs.start.level != Level::Head) continue;
                    const std::string where = std::string(depass_test::tiny_arch_name(arch)) + " " + cs.name +
                                              " rule " + rule_name(rule) + " " + std::to_string(P) + " ranks";
                    INFO(where);
                    std::string failure;
                    const Attribution<T> s = split_run(model, trace, rq, P, &failure);
                    CHECK(failure.empty());
                    if (!failure.empty()) continue;
                    REQUIRE(s.components.M == one.components.M);
                    REQUIRE(s.components.X.size() == one.components.X.size());
                    REQUIRE(s.logit_attribution.data.size() == one.logit_attribution.data.size());
                    CHECK(s.components.names == one.components.names);
                    CHECK(s.components.first == one.components.first);
                    const double ec = rel_diff(s.components.X.data(), one.components.X.data(),
                                               size_t(one.components.X.size()));
                    const double el =
                        rel_diff(s.logit_attribution.data.data(), one.logit_attribution.data.data(),
                                 one.logit_attribution.data.size());
                    CHECK(ec <= tol);
                    CHECK(el <= tol);
                    worst[rule_name(rule)] = std::max({worst[rule_name(rule)], ec, el});
                    CHECK(s.completeness.size() == one.completeness.size());
                    CHECK(s.completeness_max_rel <= tolerance::completeness_rel<T>());
                    CHECK(s.target_logits == one.target_logits);
                    const bool same = same_bits(s.components.X, one.components.X) &&
                                      same_bits(s.logit_attribution.data, one.logit_attribution.data);
                    // Completeness is summed in one process's order: the same components give the
                    // same figures, bit for bit.
                    if (same) {
                        CHECK(s.completeness_max_rel == one.completeness_max_rel);
                        CHECK(s.completeness_max_abs == one.completeness_max_abs);
                        CHECK(s.completeness_worst_point == one.completeness_worst_point);
                    }

                    ++runs;
                    bitwise += same;
                    if (rule == MlpRule::Max || rule == MlpRule::Taylor) {
                        ++max_taylor;
                        bitwise_max_taylor += same;
                    }
                }
            }
    }
    std::printf("  %s: %d split runs against one process; max rel difference by rule:", type_name<T>(), runs);
    for (const auto& w : worst) std::printf(" %s %.2e", w.first.c_str(), w.second);
    // Not a promise: the sums of the softmax, relu and linear rules add in another order, and
    // Eigen may round a row of a product differently by where it falls in the block it is
    // computed in (each rank's products have other row counts), which depends on the shapes.
    std::printf(
        "\n  bitwise identical: %d of %d runs (max and taylor rules, which sum nothing across "
        "ranks: %d of %d)\n",
        bitwise, runs, bitwise_max_taylor, max_taylor);
}

TEMPLATE_TEST_CASE("attribute split over ranks: components at every point, the QK split, every layer",
                   "[split][attribute]", float, double) {
    using T = TestType;
    const double tol = tolerance::split_rel<T>();
    const Model<T> model = random_model<T>(depass_test::tiny_config(depass_test::TinyArch::Llama), 4);
    const Trace<T> trace = forward(model, {1, 4, 9, 16, 25, 36, 49});
    AttributionRequest rq;
    rq.start.level = Level::Token;
    rq.keep_points = true;
    rq.qk = QkRequest{1, {0, 2}, {6}};
    const Attribution<T> one = attribute(model, trace, rq);
    std::string failure;
    const Attribution<T> s = split_run(model, trace, rq, 3, &failure);
    CHECK(failure.empty());
    REQUIRE(s.at_points.size() == one.at_points.size());
    for (size_t i = 0; i < one.at_points.size(); ++i) {
        INFO("point " << one.points[i].str());
        CHECK(s.points[i].str() == one.points[i].str());
        REQUIRE(s.at_points[i].X.size() == one.at_points[i].X.size());
        CHECK(rel_diff(s.at_points[i].X.data(), one.at_points[i].X.data(),
                       size_t(one.at_points[i].X.size())) <= tol);
    }
    REQUIRE(s.qk.has_value());
    REQUIRE(s.qk->logits.data.size() == one.qk->logits.data.size());
    CHECK(rel_diff(s.qk->logits.data.data(), one.qk->logits.data.data(), one.qk->logits.data.size()) <= tol);

    // --layer all: one split pass per block.
    AttributionRequest all;
    all.start.level = Level::Neuron;
    const std::vector<Attribution<T>> one_all = attribute_all_layers(model, trace, all);
    std::vector<Attribution<T>> split_all;
    const std::vector<std::string> f = run_ranks(2, [&](const Group& g) {
        std::vector<Attribution<T>> r = attribute_all_layers(model, trace, all, g);
        if (g.is_root()) split_all = std::move(r);
    });
    CHECK(f[0].empty());
    CHECK(f[1].empty());
    REQUIRE(split_all.size() == one_all.size());
    for (size_t l = 0; l < one_all.size(); ++l)
        CHECK(rel_diff(split_all[l].logit_attribution.data.data(), one_all[l].logit_attribution.data.data(),
                       one_all[l].logit_attribution.data.size()) <= tol);
}

// =====================================================================================
// 4. Failures.
// =====================================================================================

TEST_CASE("split failures: a rank that failed stops every rank at the check-in; bad requests fail everywhere",
          "[split][failure]") {
    using T = double;
    const Model<T> model = random_model<T>(depass_test::tiny_config(depass_test::TinyArch::Qwen2), 8);
    const Trace<T> trace = forward(model, {1, 2, 3, 4, 5});
    AttributionRequest rq;
    rq.start.level = Level::Neuron;

    // Rank 1 failed before the pass (say, its copy of a file was unreadable) and reports it from
    // its error handler; ranks 0 and 2 are in attribute(): they stop at the pass's check-in.
    std::vector<std::string> kind(3);
    std::vector<int> from(3, -1);
    const std::vector<std::string> f = run_ranks(3, [&](const Group& g) {
        if (g.rank() == 1) {
            const std::optional<RankReport> r =
                g.check_in(RankReport{1, "model.safetensors: no such file", 0});
            kind[1] = r ? "reported" : "lost";
            from[1] = r ? r->rank : -1;
            return;
        }
        try {
            attribute(model, trace, rq, {}, g);
            kind[size_t(g.rank())] = "no failure";
        } catch (const RankFailure& e) {
            kind[size_t(g.rank())] = std::string("RankFailure: ") + e.what();
            from[size_t(g.rank())] = e.report.rank;
        }
    });
    for (const std::string& x : f) CHECK(x.empty());
    CHECK(kind[0] == "RankFailure: model.safetensors: no such file");
    CHECK(kind[2] == "RankFailure: model.safetensors: no such file");
    CHECK(kind[1] == "reported");
    CHECK(from == std::vector<int>{1, 1, 1});

    // A bad request is refused on every rank before any collective call: no rank waits.
    AttributionRequest bad = rq;
    bad.targets = {{int(model.cfg.V) + 3}};
    const std::vector<std::string> fb =
        run_ranks(2, [&](const Group& g) { attribute(model, trace, bad, {}, g); });
    for (const std::string& x : fb) CHECK(x.find("outside the vocabulary") != std::string::npos);
    // The adjoint path forms no components: refused when split.
    AttributionRequest adj = rq;
    adj.rule = MlpRule::Taylor;
    adj.adjoint = true;
    const std::vector<std::string> fa =
        run_ranks(2, [&](const Group& g) { attribute(model, trace, adj, {}, g); });
    for (const std::string& x : fa) CHECK(x.find("run it as one process") != std::string::npos);
}
