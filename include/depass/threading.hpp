// threading.hpp -- how depass uses threads. One policy for the whole library:
//
// 1. OpenMP threads only, one level of them. Eigen's own matrix-product threading is switched
//    off (Eigen::setNbThreads(1)) and OpenMP's max-active-levels is set to 1, both when the
//    library is loaded (a static initialiser in src/ops/threading.cpp). Eigen's workers wait for
//    each other by spinning, so on a busy machine one descheduled worker stalls every product;
//    and a product inside one of our parallel regions must not start threads of its own.
// 2. A loop takes threads only if worth_threads(work) says so: it does at least kParallelWork
//    operations and no parallel region is active around it. The evaluations parallelise over
//    prompts or neurons; everything they call then runs on the thread that called it.
// 3. Results never depend on the thread count. Every parallel loop writes disjoint outputs, each
//    computed the same way whichever thread computes it (tests/test_threads.cpp checks bitwise
//    equality). The only size that changes how a value is computed is kTiledProductWork, which
//    depends on the shapes alone.
// 4. Waiting threads sleep instead of spinning: programs call use_passive_wait_policy(argv)
//    first in main() (the depass command and the benchmarks do). A program that embeds the library
//    should set OMP_WAIT_POLICY=PASSIVE in its environment, or call the same function.
//
// Threads come from OMP_NUM_THREADS (or omp_set_num_threads); OMP_WAIT_POLICY set by the user
// is left alone.
#pragma once

#include <string>

namespace depass {

// A loop with fewer operations (multiply-adds, or element updates for memory-bound loops) than
// this runs on one thread: waking a second thread and meeting it at the closing barrier costs
// a few microseconds, tens when it has to be woken from sleep or is descheduled, while 2^18
// operations take some 50-100 microseconds on one core.
inline constexpr double kParallelWork = double(1 << 18);

// Products x W^T with at least this many multiply-adds are cut into fixed output tiles
// (src/ops/linear.cpp); smaller ones are one Eigen product. The cut changes the rounding of the
// results (Eigen's kernels treat the edges of a product differently), so this is part of what
// depass computes: it depends on the shapes only, never on the thread count or the machine.
inline constexpr double kTiledProductWork = 32.0 * 1024 * 1024;

// Whether a loop of `work` operations should run on several threads: work >= kParallelWork,
// more than one thread allowed, and not already inside an active parallel region.
bool worth_threads(double work);

// Applies point 1 above (Eigen one thread, one active level). Runs when the library is loaded;
// calling it again is harmless.
void configure_threads();

// Sets OMP_WAIT_POLICY=PASSIVE unless the user set it or only one thread is allowed (then
// nothing ever waits). GNU libgomp reads its environment when it is loaded, before main()
// starts, so setting the variable is not enough: the program is executed again (execv of
// /proc/self/exe with the same arguments) so that the runtime sees it. Call it first thing in
// main(), before any thread is started; if re-executing fails, the program goes on with the
// runtime's default (waiting threads spin for a while before they sleep). The same restart
// applies OPENBLAS_CORETYPE when choose_blas_kernels() sets it (depass/blas.hpp), also with one thread.
void use_passive_wait_policy(char** argv);

// One line for logs and benchmark headers, e.g.
// "threads: 2 (OpenMP, one level; Eigen 1); OMP_WAIT_POLICY=PASSIVE".
std::string threading_summary();

}  // namespace depass
