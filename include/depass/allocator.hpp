// allocator.hpp -- the one allocator setting of depass (glibc only).
//
// The decomposed pass allocates large [rows, D] temporaries op after op. With glibc's defaults,
// blocks above the mmap threshold (128 KiB, rising to at most 32 MiB) are mapped separately and
// unmapped on free, so every op pages its buffers in and zero-fills them again: a 280-token
// neuron-level attribution took 5.4 s that way and 3.6 s with freed memory kept for reuse
// (and eval neurons-speed on stories260K at N = 32: 0.30 s against 0.047 s, docs/results.md).
// keep_freed_memory() raises glibc's mmap and trim thresholds to 1 GiB: blocks up to 1 GiB come
// from the heap and stay there once freed; larger ones are still mapped and returned.
//
// The depass command calls it unless --system-malloc is given, the benchmarks likewise; the
// library itself never changes the allocator. A program embedding the library can call it.
#pragma once

#include <string>

namespace depass {

// Applies the setting above; returns whether it was applied (false without glibc).
bool keep_freed_memory();

// Whether keep_freed_memory() has been applied in this process.
bool freed_memory_kept();

// Whether a freshly allocated 64 MiB block is mapped on its own (an observation, not a setting:
// true with glibc's defaults, false after keep_freed_memory(); false without glibc).
bool large_blocks_mapped();

// One line for logs and benchmark headers.
std::string allocator_summary();

}  // namespace depass
