// Small helpers shared by the binary readers (safetensors, GGUF, llama2.c): overflow-safe
// size arithmetic and the widening of 16-bit floats.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "depass/io.hpp"  // DType

namespace depass::detail {

// a * b and a + b, saturating at UINT64_MAX, so that a size computed from a corrupt
// header compares as "too large" instead of wrapping around.
inline uint64_t mul_sat(uint64_t a, uint64_t b) {
    uint64_t r;
    if (__builtin_mul_overflow(a, b, &r)) return std::numeric_limits<uint64_t>::max();
    return r;
}
inline uint64_t add_sat(uint64_t a, uint64_t b) {
    uint64_t r;
    if (__builtin_add_overflow(a, b, &r)) return std::numeric_limits<uint64_t>::max();
    return r;
}

// IEEE 754 binary16 -> double, exact for every input (normals, subnormals, signed
// zeros, infinities, NaN):  (-1)^s 2^(e-15) (1 + m/1024), or 2^-14 (m/1024) when e = 0.
inline double half_to_double(uint16_t h) {
    const bool neg = (h & 0x8000u) != 0;
    const int exp = (h >> 10) & 0x1f;
    const int mant = h & 0x3ff;
    double v;
    if (exp == 0) {
        v = std::ldexp(static_cast<double>(mant), -24);  // zero or subnormal
    } else if (exp == 31) {
        v = mant == 0 ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
    } else {
        v = std::ldexp(static_cast<double>(mant | 0x400), exp - 25);
    }
    return neg ? -v : v;
}

// bfloat16 is the upper half of a binary32: widening is a shift.
inline float bf16_to_float(uint16_t b) {
    const uint32_t bits = static_cast<uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

// n values stored as `dt` (little-endian) at `bytes`, converted to T: the one widening
// of every tensor reader. F16 goes through double (exact), BF16 through float (exact).
template <class T>
void widen_bytes(const unsigned char* bytes, DType dt, size_t n, T* out) {
    switch (dt) {
        case DType::F16:
            for (size_t i = 0; i < n; ++i) {
                uint16_t h;
                std::memcpy(&h, bytes + 2 * i, 2);
                out[i] = static_cast<T>(half_to_double(h));
            }
            break;
        case DType::BF16:
            for (size_t i = 0; i < n; ++i) {
                uint16_t b;
                std::memcpy(&b, bytes + 2 * i, 2);
                out[i] = static_cast<T>(bf16_to_float(b));
            }
            break;
        case DType::F32:
            for (size_t i = 0; i < n; ++i) {
                float f;
                std::memcpy(&f, bytes + 4 * i, 4);
                out[i] = static_cast<T>(f);
            }
            break;
        case DType::F64:
            for (size_t i = 0; i < n; ++i) {
                double d;
                std::memcpy(&d, bytes + 8 * i, 8);
                out[i] = static_cast<T>(d);
            }
            break;
        case DType::I32:
            for (size_t i = 0; i < n; ++i) {
                int32_t v;
                std::memcpy(&v, bytes + 4 * i, 4);
                out[i] = static_cast<T>(v);
            }
            break;
        case DType::I64:
            for (size_t i = 0; i < n; ++i) {
                int64_t v;
                std::memcpy(&v, bytes + 8 * i, 8);
                out[i] = static_cast<T>(v);
            }
            break;
    }
}

}  // namespace depass::detail
