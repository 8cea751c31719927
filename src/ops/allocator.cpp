// allocator.cpp -- see include/depass/allocator.hpp.
#include "depass/allocator.hpp"

#include <cstdlib>

#ifdef __GLIBC__
#include <malloc.h>
#endif

namespace depass {

namespace {
bool g_kept = false;
// Keeps the probe's block observable, so that the allocation is not optimised away.
void* volatile g_probe = nullptr;
}  // namespace

bool keep_freed_memory() {
#ifdef __GLIBC__
    g_kept = mallopt(M_MMAP_THRESHOLD, 1 << 30) == 1 && mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1;
#endif
    return g_kept;
}

bool freed_memory_kept() { return g_kept; }

bool large_blocks_mapped() {
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 33)
    // 64 MiB is above glibc's largest automatic mmap threshold (32 MiB), and freeing a mapped
    // block this large does not move that threshold: the probe leaves the defaults as they were.
    const size_t before = mallinfo2().hblks;
    g_probe = std::malloc(size_t(64) << 20);
    const size_t during = mallinfo2().hblks;
    std::free(g_probe);
    g_probe = nullptr;
    return during > before;
#else
    return false;
#endif
}

std::string allocator_summary() {
#ifdef __GLIBC__
    return std::string(
               g_kept ? "malloc: glibc mmap/trim thresholds raised to 1 GiB (freed memory kept for reuse)"
                      : "malloc: glibc defaults") +
           "; a 64 MiB block is " + (large_blocks_mapped() ? "mapped on its own" : "taken from the heap");
#else
    return "malloc: system defaults";
#endif
}

}  // namespace depass
