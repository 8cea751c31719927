// rope_freq.cpp -- the inverse-frequency table of the rotary position embedding.
//
// Pair i of a head of dimension Dh turns with the inverse frequency
//     f_i = theta^(-2i/Dh)            (radians per position)
// unless the model scales it:
//   linear  f_i / factor: position p is rotated as position p / factor would be.
//   llama3  (Llama 3.1 / 3.2 / 3.3) with wavelength w_i = 2 pi / f_i, the original
//           context length M and the two band edges  w_lo = M / low_freq_factor,
//           w_hi = M / high_freq_factor (w_hi < w_lo):
//             w_i <  w_hi          f_i kept (fast pairs, shorter than the band)
//             w_i >  w_lo          f_i / factor (slow pairs, longer than the band)
//             otherwise            (1 - s) f_i / factor + s f_i,
//                                  s = (M / w_i - low_freq_factor) / (high_freq_factor - low_freq_factor)
//           s runs from 0 at w_lo to 1 at w_hi, so the table is continuous.
// A GGUF file of a llama3 model carries the same result as the tensor
// `rope_freqs.weight`: one divisor per pair (1, the interpolated 1 / ((1 - s) / factor + s),
// or factor), which llama.cpp's RoPE applies as f_i / rope_freqs[i].
//
// Everything is computed in double. (The Hugging Face code computes the table in float32,
// also for a float64 model; the all-double result is the exact one.)
#include <cmath>
#include <string>

#include "depass/ops.hpp"

namespace depass {

std::vector<double> rope_inv_freq(int Dh, double theta, const RopeScaling& s) {
    if (Dh <= 0 || Dh % 2)
        throw Error("rope_inv_freq: head dimension " + std::to_string(Dh) + " must be even and positive");
    const int half = Dh / 2;
    std::vector<double> f(static_cast<size_t>(half));
    for (int i = 0; i < half; ++i) f[size_t(i)] = 1.0 / std::pow(theta, double(2 * i) / double(Dh));
    switch (s.kind) {
        case RopeScalingKind::None:
            break;
        case RopeScalingKind::Linear:
            for (double& x : f) x /= s.factor;
            break;
        case RopeScalingKind::Llama3: {
            const double pi = std::acos(-1.0);
            const double M = s.original_max_positions;
            const double w_lo = M / s.low_freq_factor, w_hi = M / s.high_freq_factor;
            for (double& x : f) {
                const double w = 2 * pi / x;
                if (w < w_hi) continue;
                if (w > w_lo) {
                    x /= s.factor;
                    continue;
                }
                const double sm = (M / w - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
                x = (1 - sm) * x / s.factor + sm * x;
            }
            break;
        }
    }
    return f;
}

}  // namespace depass
