// parallel.hpp -- the little OpenMP the evaluations need, with fallbacks when it is off.
#pragma once

#include <exception>
#include <string>

#include "depass/types.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace depass::eval::detail {

// True on the thread that called into the library (progress callbacks run only there).
inline bool on_calling_thread() {
#ifdef _OPENMP
    return omp_get_thread_num() == 0;
#else
    return true;
#endif
}

// Threads a parallel loop will use.
inline int max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

// The calling thread's index in the current parallel region (0 outside one).
inline int thread_index() {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

// Runs body(i) for every prompt i in [0, P), spread over the threads (dynamic schedule:
// prompts differ in length). progress(done, P) is called from the calling thread only.
// Exceptions must not leave an OpenMP region: the first one is kept and rethrown after
// the loop as Error("<what>: prompt i: <message>").
template <class Body, class Progress>
void for_each_prompt(const char* what, int P, const Progress& progress, Body&& body) {
    int done = 0;
    std::string failure;
#pragma omp parallel for schedule(dynamic)
    for (int i = 0; i < P; ++i) {
        try {
            body(i);
        } catch (const std::exception& e) {
#pragma omp critical(depass_eval_failure)
            if (failure.empty()) failure = "prompt " + std::to_string(i) + ": " + e.what();
        }
#pragma omp critical(depass_eval_progress)
        {
            ++done;
            if (progress && on_calling_thread()) progress(done, P);
        }
    }
    if (!failure.empty()) throw Error(std::string(what) + ": " + failure);
}

}  // namespace depass::eval::detail
