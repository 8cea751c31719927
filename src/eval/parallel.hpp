// parallel.hpp -- the little OpenMP the evaluations need, with fallbacks when it is off.
#pragma once

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

}  // namespace depass::eval::detail
