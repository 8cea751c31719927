// config.cpp -- what the model layer derives from a config.
#include "depass/config.hpp"

#include <string>

namespace depass {

std::vector<double> rope_inv_freq(const Config& cfg) {
    std::vector<double> f = rope_inv_freq(cfg.Dh, cfg.rope_theta, cfg.rope_scaling);
    if (!cfg.rope_freq_factors.empty()) {
        if (cfg.rope_freq_factors.size() != f.size()) {
            throw Error("rope_inv_freq: " + std::to_string(cfg.rope_freq_factors.size()) +
                        " frequency factors for " + std::to_string(f.size()) + " RoPE pairs");
        }
        for (size_t i = 0; i < f.size(); ++i) f[i] /= cfg.rope_freq_factors[i];
    }
    return f;
}

}  // namespace depass
