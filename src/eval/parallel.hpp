// parallel.hpp -- the little OpenMP the evaluations need, with fallbacks when it is off.
#pragma once

#include <cstring>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "depass/distributed.hpp"
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
// This one runs the prompts begin .. end-1 (one rank's block, prompt_block below) and calls
// progress(done, end - begin); for_each_prompt(what, P, ...) below runs all P.
template <class Body, class Progress>
void for_each_prompt(const char* what, int begin, int end, const Progress& progress, Body&& body) {
    const int count = end - begin;
    int done = 0;
    std::string failure;
#pragma omp parallel for schedule(dynamic)
    for (int i = begin; i < end; ++i) {
        try {
            body(i);
        } catch (const std::exception& e) {
#pragma omp critical(depass_eval_failure)
            if (failure.empty()) failure = "prompt " + std::to_string(i) + ": " + e.what();
        }
#pragma omp critical(depass_eval_progress)
        {
            ++done;
            if (progress && on_calling_thread()) progress(done, count);
        }
    }
    if (!failure.empty()) throw Error(std::string(what) + ": " + failure);
}

template <class Body, class Progress>
void for_each_prompt(const char* what, int P, const Progress& progress, Body&& body) {
    for_each_prompt(what, 0, P, progress, body);
}

// The prompts a rank evaluates when a run is split over ranks (distributed.hpp): the
// contiguous block [P r / ranks, P (r + 1) / ranks).
inline std::pair<int, int> prompt_block(int P, const Group& group) {
    const int64_t r = group.rank(), ranks = group.size();
    return {int(P * r / ranks), int(P * (r + 1) / ranks)};
}

// Every rank's block of per-prompt values, on every rank: mine holds the values of this rank's
// prompts one after another; returns every rank's, in rank order (so in prompt order). Opens
// with the check-in of a section of collective calls (a rank whose prompts failed has left
// the evaluation and answers it from its error handler, distributed.hpp).
inline std::vector<double> exchange_prompt_values(const std::vector<double>& mine, const Group& group) {
    sync_point(group);
    const std::vector<std::string> all = group.all_gather(
        std::string(reinterpret_cast<const char*>(mine.data()), mine.size() * sizeof(double)));
    std::vector<double> out;
    for (const std::string& part : all) {
        const size_t n = part.size() / sizeof(double);
        const size_t at = out.size();
        out.resize(at + n);
        std::memcpy(out.data() + at, part.data(), n * sizeof(double));
    }
    return out;
}

}  // namespace depass::eval::detail
