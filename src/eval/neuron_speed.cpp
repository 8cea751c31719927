// neuron_speed.cpp -- the cost of neuron-level attribution: DePass (one decomposed pass
// per layer, every neuron a component) against ablation (one forward per neuron).
//
// What each timing includes (both start from the token ids):
//   forward_seconds   the recorded forward pass (needed by both; counted in both totals)
//   depass_seconds    forward + for each layer l: init_neurons (M = I + 1 components at
//                     h[l+1]), propagate() through blocks l+1 .. L-1 on all positions,
//                     logit_attribution() for the target
//   ablation_seconds  forward + for each layer l and neuron i: h[l+1] - a[:, i] W_down[:, i]
//                     (what zeroing W_down[:, i] does; blocks 0..l are reused from the
//                     trace), blocks l+1 .. L-1 on all positions with the ordinary ops,
//                     the final norm and the target logit at the last position only
//   naive (sampled)   per neuron a full forward() of a copy with W_down[:, i] zeroed: every
//                     layer, every logit, the trace recorded -- what an ablation without
//                     reuse costs; timed on a sample and extrapolated
// Each span is measured as wall-clock time and as process CPU time (all threads); on a
// shared machine the CPU time is the steadier measure of work.
// Both use every OpenMP thread: DePass inside each op, ablation across neurons.
#include <chrono>
#include <cmath>
#include <ctime>

#include "depass/attribute.hpp"
#include "depass/eval.hpp"
#include "depass/ops.hpp"
#include "parallel.hpp"

namespace depass::eval {

namespace {

// Wall-clock and process CPU time (every thread) since construction.
struct Clock {
    std::chrono::steady_clock::time_point wall = std::chrono::steady_clock::now();
    double cpu = cpu_now();
    static double cpu_now() {
        timespec ts{};
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
    }
    void stop(double& wall_s, double& cpu_s) const {
        wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall).count();
        cpu_s = cpu_now() - cpu;
    }
};

}  // namespace

// logit = W_U[target] . NormF(hL[N-1])
template <class T>
double last_target_logit(const Model<T>& model, const Mat<T>& hL, int target) {
    if (target < 0 || target >= model.cfg.V)
        throw Error("last_target_logit: target " + std::to_string(target) +
                    " is outside the vocabulary [0, " + std::to_string(model.cfg.V) + ")");
    const Mat<T> last = hL.bottomRows(1);
    const Mat<T> y = apply_norm(model.cfg.norm, model.cfg.norm_eps, last, model.w.normf_g, model.w.normf_b);
    return double(y.row(0).dot(model.w.unembedding().row(target)));
}

template <class T>
NeuronSpeedResult neuron_speed(const Model<T>& model, const std::vector<int>& ids, bool run_ablation,
                               double temperature, int naive_sample, const Progress& progress, MlpRule rule,
                               bool adjoint) {
    const Config& cfg = model.cfg;
    const int L = cfg.L, I = cfg.I;
    if (naive_sample < 0 || naive_sample > L * I)
        throw Error("neuron_speed: naive sample of " + std::to_string(naive_sample) +
                    " neurons is outside [0, " + std::to_string(L * I) + "]");
    NeuronSpeedResult r;
    r.L = L;
    r.I = I;
    r.threads = detail::max_threads();
    r.rule = rule;
    r.adjoint = adjoint;
    const int steps = (adjoint ? 1 : L) + (run_ablation ? L : 0) + (naive_sample > 0 ? 1 : 0);
    int step = 0;

    Clock clock;
    const Trace<T> trace = forward(model, ids);
    clock.stop(r.forward_seconds, r.forward_cpu);
    const int N = trace.N();
    r.N = N;
    Eigen::Index best;
    trace.logits.row(N - 1).maxCoeff(&best);
    r.target = int(best);
    r.target_logit = double(trace.logits(N - 1, r.target));

    // ---- DePass: one decomposed pass per layer ----
    r.depass_scores.assign(size_t(L) * I, 0.0);
    r.depass_layer_seconds.assign(L, 0.0);
    r.depass_seconds = r.forward_seconds;
    r.depass_cpu = r.forward_cpu;
    if (adjoint) {  // one reverse pass scores every neuron of every layer
        clock = Clock();
        r.depass_scores = depass_unit_scores(model, trace, UnitKind::Neuron, r.target, temperature, rule, true);
        double wall = 0, cpu = 0;
        clock.stop(wall, cpu);
        r.depass_layer_seconds.assign(L, wall / L);
        r.depass_seconds += wall;
        r.depass_cpu += cpu;
        if (progress) progress(++step, steps);
    }
    for (int l = 0; l < L && !adjoint; ++l) {
        clock = Clock();
        AttributionRequest rq;  // every neuron of block l
        rq.start.level = Level::Neuron;
        rq.start.layer = l;
        rq.rule = rule;
        rq.temperature = temperature;
        rq.targets = {{r.target}};
        const Tensor<T> attr = attribute(model, trace, rq).logit_attribution;
        for (int i = 0; i < I; ++i)
            r.depass_scores[size_t(l) * I + i] = double(attr.data[size_t(i) * N + (N - 1)]);
        double cpu = 0;
        clock.stop(r.depass_layer_seconds[l], cpu);
        r.depass_seconds += r.depass_layer_seconds[l];
        r.depass_cpu += cpu;
        if (progress) progress(++step, steps);
    }

    // ---- ablation: one forward from layer l+1 per neuron ----
    r.ablation_effects.assign(size_t(L) * I, 0.0);
    r.ablation_layer_seconds.assign(L, 0.0);
    if (run_ablation) {
        r.ablation_seconds = r.forward_seconds;
        r.ablation_cpu = r.forward_cpu;
        const double clean = last_target_logit(model, trace.h[L], r.target);
        LayerWeights<T> scratch;
        for (int l = 0; l < L; ++l) {
            clock = Clock();
            const Mat<T>& a = trace.layers[l].mlp_act;
            const Mat<T>& Wd = model.layer(l, scratch).w_down;
#pragma omp parallel for schedule(dynamic)
            for (int i = 0; i < I; ++i) {
                // zeroing W_down[:, i] removes a[:, i] W_down[:, i]^T from h[l+1]
                Mat<T> h = trace.h[l + 1];
                h.noalias() -= a.col(i) * Wd.col(i).transpose();
                const Mat<T> hL = forward_blocks(model, std::move(h), l + 1);
                r.ablation_effects[size_t(l) * I + i] = clean - last_target_logit(model, hL, r.target);
            }
            double cpu = 0;
            clock.stop(r.ablation_layer_seconds[l], cpu);
            r.ablation_seconds += r.ablation_layer_seconds[l];
            r.ablation_cpu += cpu;
            if (progress) progress(++step, steps);
        }
        r.spearman = spearman(r.depass_scores, r.ablation_effects);
        for (int l = 0; l < L; ++l) {
            std::vector<double> a(r.depass_scores.begin() + size_t(l) * I,
                                  r.depass_scores.begin() + size_t(l + 1) * I);
            std::vector<double> b(r.ablation_effects.begin() + size_t(l) * I,
                                  r.ablation_effects.begin() + size_t(l + 1) * I);
            r.spearman_layer.push_back(spearman(a, b));
        }
    }

    // ---- naive ablation on a sample: the whole forward() per neuron ----
    if (naive_sample > 0) {
        r.naive_sample = naive_sample;
        const double clean = double(trace.logits(N - 1, r.target));
        std::vector<double> effect(naive_sample);
        std::vector<int> flat(naive_sample);
        for (int k = 0; k < naive_sample; ++k) flat[k] = int(int64_t(k) * L * I / naive_sample);
        const int threads = detail::max_threads();
        std::vector<Model<T>> work(threads, model);
        clock = Clock();
#pragma omp parallel for schedule(dynamic)
        for (int k = 0; k < naive_sample; ++k) {
            Model<T>& w = work[detail::thread_index()];
            const int l = flat[k] / I, i = flat[k] % I;
            zero_neuron(w, l, i);
            const Trace<T> t = forward(w, ids);
            restore_unit(w, model, UnitKind::Neuron, l, i);
            effect[k] = clean - double(t.logits(N - 1, r.target));
        }
        clock.stop(r.naive_sample_seconds, r.naive_sample_cpu);
        if (run_ablation)
            for (int k = 0; k < naive_sample; ++k)
                r.naive_max_effect_diff =
                    std::max(r.naive_max_effect_diff, std::abs(effect[k] - r.ablation_effects[flat[k]]));
        if (progress) progress(++step, steps);
    }
    return r;
}

#define DEPASS_INSTANTIATE(T)                                                                            \
    template double last_target_logit(const Model<T>&, const Mat<T>&, int);                              \
    template NeuronSpeedResult neuron_speed(const Model<T>&, const std::vector<int>&, bool, double, int, \
                                            const Progress&, MlpRule, bool);
DEPASS_INSTANTIATE(float)
DEPASS_INSTANTIATE(double)
#undef DEPASS_INSTANTIATE

}  // namespace depass::eval
