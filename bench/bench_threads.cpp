// bench_threads -- does the second thread pay, on a quiet machine and on a loaded one?
//
// forward() and the token-level propagate() from h[0] (softmax rule, T = 0.1, ignore-special-token
// on) at N = 64 on a random LLaMA of the stories15M shape (float), each with 1 and 2 threads:
// first as the machine is, then with one busy-looping child process competing for a core (started
// by this program, killed when the loaded rows are done). Times are medians over rounds in which
// the 1- and 2-thread calls alternate, so both see the same load; ratio = 2-thread time / 1-thread
// time. The threading policy (depass/threading.hpp) aims at a loaded ratio of at most 1.1: a second
// thread that cannot get a core must not make the call slower than one thread would be.
//
// Usage: bench_threads [--reps K] [--n N] [--system-malloc] [--keep-wait-policy] [--eigen-threads K]
//   --keep-wait-policy: leave OMP_WAIT_POLICY as it is (unset: the runtime's default, spinning waits);
//   --eigen-threads K: let Eigen thread its own products again with K threads; 0 = Eigen's default,
//   as many as OpenMP allows (what depass did before its policy).
//   Both only show what the policy changes. Exit status 0 whatever the ratios.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "depass/decompose.hpp"
#include "depass/forward.hpp"
#include "depass/initialisers.hpp"
#include "depass/weights.hpp"

using namespace depass;
using namespace depass::bench;

namespace {

// A child process that spins on one core until it is killed (or this process dies).
pid_t start_busy_child() {
    const pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        volatile unsigned long spin = 0;
        for (;;) spin = spin + 1;
    }
    return pid;
}

void stop_busy_child(pid_t pid) {
    if (pid <= 0) return;
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
}

std::string load_average() {
    std::FILE* f = std::fopen("/proc/loadavg", "r");
    if (!f) return "?";
    char buf[64] = {0};
    const bool ok = std::fgets(buf, sizeof buf, f) != nullptr;
    std::fclose(f);
    std::string s = ok ? buf : "?";
    while (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
}

struct Row {
    const char* what;
    const char* load;
    double t1, t2;
};

}  // namespace

int main(int argc, char** argv) {
    bool keep_wait_policy = false, system_malloc = false;
    int reps = 9, N = 64, eigen_threads = -1;
    for (int i = 1; i < argc; ++i)
        if (!std::strcmp(argv[i], "--keep-wait-policy")) keep_wait_policy = true;
    if (!keep_wait_policy) use_passive_wait_policy(argv);  // first: may start the program again
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--keep-wait-policy")) {
        } else if (!std::strcmp(argv[i], "--system-malloc")) {
            system_malloc = true;
        } else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = std::max(3, std::atoi(argv[++i]));
        } else if (!std::strcmp(argv[i], "--n") && i + 1 < argc) {
            N = std::max(2, std::min(256, std::atoi(argv[++i])));
        } else if (!std::strcmp(argv[i], "--eigen-threads") && i + 1 < argc) {
            eigen_threads = std::max(0, std::atoi(argv[++i]));
        } else {
            std::fprintf(
                stderr,
                "usage: %s [--reps K] [--n N] [--system-malloc] [--keep-wait-policy] [--eigen-threads K]\n",
                argv[0]);
            return 2;
        }
    }
    const std::string header = configure_malloc(system_malloc);
    if (eigen_threads >= 0) Eigen::setNbThreads(eigen_threads);  // 0: Eigen's default
    try {
        const Config cfg = stories_shape("stories15M");
        const Model<float> model = random_model<float>(cfg, 1234);
        const std::vector<int> ids = random_ids(cfg, N, 7 + N);
        const Trace<float> trace = forward(model, ids);
        const Initialised<float> init = init_tokens(model, trace, 0);
        const DecomposeOptions opt = init.options(MlpRule::Softmax, 0.1);
        std::printf(
            "threads: 1 vs 2; forward() and token-level propagate() at N = %d, random stories15M shape\n"
            "(D %d, L %d, H %d, I %d, V %d), float. Medians of up to %d rounds, 1 and 2 threads "
            "alternating.\n"
            "%s%s\nload average at start: %s (the machine is shared: other jobs add to the load)\n\n",
            N, cfg.D, cfg.L, cfg.H, cfg.I, cfg.V, reps, header.c_str(),
            eigen_threads < 0    ? ""
            : eigen_threads == 0 ? "; Eigen threads its own products (--eigen-threads 0)"
                                 : ("; Eigen set to " + std::to_string(eigen_threads) + " threads").c_str(),
            load_average().c_str());
        auto fwd = [&](int threads) {
            set_threads(threads);
            Trace<float> t = forward(model, ids);
            g_sink = g_sink + double(t.logits(0, 0));
        };
        Components<float> fresh1, fresh2;
        auto prop = [&](int threads, Components<float>& in) {
            set_threads(threads);
            Components<float> out = propagate(model, trace, std::move(in), init.cut, opt);
            g_sink = g_sink + double(out.X(0, 0));
        };
        std::vector<Row> rows;
        for (const char* load : {"quiet", "loaded"}) {
            const pid_t child = std::strcmp(load, "loaded") ? 0 : start_busy_child();
            if (child < 0) throw Error("bench_threads: fork failed");
            fwd(1), fwd(2);  // warm-up under this load
            const std::vector<double> tf = median_times(
                reps, 30.0, [&] { fwd(1); }, [&] { fwd(2); });
            fresh1 = init.comps;
            prop(1, fresh1);
            const std::vector<double> tp = median_times(
                reps, 60.0, [&] { fresh1 = init.comps, fresh2 = init.comps; }, [&] { prop(1, fresh1); },
                [&] { prop(2, fresh2); });
            stop_busy_child(child);
            rows.push_back({"forward", load, tf[0], tf[1]});
            rows.push_back({"propagate token", load, tp[1], tp[2]});
        }
        std::printf("%-16s %-7s %12s %12s %7s\n", "call", "load", "1 thread ms", "2 threads ms", "2T/1T");
        double worst = 0;
        for (const Row& r : rows) {
            std::printf("%-16s %-7s %12.1f %12.1f %7.2f\n", r.what, r.load, r.t1 * 1e3, r.t2 * 1e3,
                        r.t2 / r.t1);
            if (!std::strcmp(r.load, "loaded")) worst = std::max(worst, r.t2 / r.t1);
        }
        std::printf("\nloaded 2T/1T at most %.2f: %s (target <= 1.10)\n", worst,
                    worst <= 1.1 ? "met" : "NOT met");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_threads: %s\n", e.what());
        return 1;
    }
    return 0;
}
