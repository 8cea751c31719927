// bench_adjoint -- every layer's head (and neuron) maps with the taylor rule: one decomposed
// pass per layer (attribute_all_layers, the forward path) against one reverse pass of the
// frozen network (the same with request.adjoint), on the recorded trace of one prompt.
//
// "maps" = logit_attribution of every unit of every layer for the model's argmax target at
// every position ([L, M, N, 1], what `depass attribute --level head --layer all` writes);
// "last" = the same for the target at the last position only (what `depass eval heads|neurons`
// use), by depass_unit_scores. Times are medians over rounds (both paths in every round).
// The largest relative difference between the two paths is printed too.
//
// Usage: bench_adjoint [--model FILE] [--reps K] [--n N,...] [--neurons-max-n N]
//   default: weights/stories260K.bin if present and a random stories15M-shape model (seed 1).
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "depass/adjoint.hpp"
#include "depass/eval.hpp"
#include "depass/io.hpp"

using namespace depass;
using namespace depass::bench;

namespace {

double rel_diff(const std::vector<Attribution<float>>& a, const std::vector<Attribution<float>>& b) {
    double e = 0, s = 1e-30;
    for (size_t l = 0; l < a.size(); ++l)
        for (size_t i = 0; i < a[l].logit_attribution.size(); ++i) {
            e = std::max(e,
                         double(std::abs(a[l].logit_attribution.data[i] - b[l].logit_attribution.data[i])));
            s = std::max(s, double(std::abs(b[l].logit_attribution.data[i])));
        }
    return e / s;
}

void run(const std::string& name, const Model<float>& model, const std::vector<int>& Ns, int reps,
         int neurons_max_n) {
    for (int N : Ns) {
        const std::vector<int> ids = random_ids(model.cfg, N, 1);
        const Trace<float> trace = forward(model, ids);
        Eigen::Index best;
        trace.logits.row(N - 1).maxCoeff(&best);
        for (Level level : {Level::Head, Level::Neuron}) {
            if (level == Level::Neuron && N > neurons_max_n) continue;
            AttributionRequest rq;
            rq.start.level = level;
            rq.rule = MlpRule::Taylor;
            AttributionRequest rqa = rq;
            rqa.adjoint = true;
            std::vector<Attribution<float>> f, a;
            f = attribute_all_layers(model, trace, rq);  // warm-up
            a = attribute_all_layers(model, trace, rqa);
            const double diff = rel_diff(a, f);
            const std::vector<double> t = median_times(
                reps, 60.0, [&] { f = attribute_all_layers(model, trace, rq); },
                [&] { a = attribute_all_layers(model, trace, rqa); });
            const eval::UnitKind kind = level == Level::Head ? eval::UnitKind::Head : eval::UnitKind::Neuron;
            std::vector<double> sf, sa;
            const std::vector<double> u = median_times(
                reps, 60.0,
                [&] {
                    sf = eval::depass_unit_scores(model, trace, kind, int(best), 0.1, MlpRule::Taylor, false);
                },
                [&] {
                    sa = eval::depass_unit_scores(model, trace, kind, int(best), 0.1, MlpRule::Taylor, true);
                });
            std::printf(
                "%-22s N=%-4d %-6s maps: L passes %9.4f s, one reverse pass %9.4f s, ratio %7.1fx (rel diff "
                "%.1e)"
                " | last target: %9.4f s vs %9.4f s, ratio %7.1fx\n",
                name.c_str(), N, level == Level::Head ? "heads" : "neurons", t[0], t[1], t[0] / t[1], diff,
                u[0], u[1], u[0] / u[1]);
            std::fflush(stdout);
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::string model_path = "weights/stories260K.bin";
    int reps = 5, neurons_max_n = 64;
    std::vector<int> Ns = {32, 64, 128};
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--model" && i + 1 < argc)
            model_path = argv[++i];
        else if (a == "--reps" && i + 1 < argc)
            reps = std::atoi(argv[++i]);
        else if (a == "--neurons-max-n" && i + 1 < argc)
            neurons_max_n = std::atoi(argv[++i]);
        else if (a == "--n" && i + 1 < argc) {
            Ns.clear();
            for (char* p = std::strtok(argv[++i], ","); p; p = std::strtok(nullptr, ","))
                Ns.push_back(std::atoi(p));
        } else {
            std::fprintf(stderr,
                         "usage: bench_adjoint [--model FILE] [--reps K] [--n N,...] [--neurons-max-n N]\n");
            return 2;
        }
    }
    configure_malloc(false);
    std::printf("bench_adjoint: taylor rule, float, %d thread(s), medians of up to %d rounds\n",
                max_threads(), reps);
    if (file_exists(model_path)) run(model_path, load_model<float>(model_path), Ns, reps, 1 << 30);
    run("random stories15M", random_model<float>(stories_shape("stories15M"), 1, 0.02), Ns, reps,
        neurons_max_n);
    return 0;
}
