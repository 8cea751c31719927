// prompts.cpp -- prompt files and prefixes sampled from the model itself.
#include <cmath>
#include <sstream>

#include "depass/eval.hpp"
#include "depass/io.hpp"

namespace depass::eval {

std::vector<std::string> read_prompt_file(const std::string& path) {
    const std::string text = read_text_file(path);
    std::vector<std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty() || line[0] == '#') continue;
        out.push_back(line);
    }
    if (out.empty()) throw Error(path + ": no prompts (one prompt per line; '#' starts a comment line)");
    return out;
}

template <class T>
std::vector<std::vector<int>> sample_prefixes(const Model<T>& model, int count, uint64_t seed, int min_tokens,
                                              int max_tokens, double temperature,
                                              const std::vector<bool>& stop) {
    const Config& cfg = model.cfg;
    if (count < 1) throw Error("sample_prefixes: count " + std::to_string(count) + " (expected >= 1)");
    if (min_tokens < 1 || max_tokens < min_tokens)
        throw Error("sample_prefixes: lengths [" + std::to_string(min_tokens) + ", " +
                    std::to_string(max_tokens) + "] (expected 1 <= min <= max)");
    if (cfg.max_positions > 0 && max_tokens + 1 > cfg.max_positions)
        throw Error("sample_prefixes: " + std::to_string(max_tokens) + " tokens exceed the context of " +
                    std::to_string(cfg.max_positions));
    if (!(temperature > 0)) throw Error("sample_prefixes: temperature must be > 0");
    if (int(stop.size()) != cfg.V)
        throw Error("sample_prefixes: stop list has " + std::to_string(stop.size()) +
                    " entries, vocabulary " + std::to_string(cfg.V));
    std::vector<std::vector<int>> out(count);
#pragma omp parallel for schedule(dynamic)
    for (int j = 0; j < count; ++j) {
        Rng rng(mix_seed(seed, uint64_t(j)));
        const int len = min_tokens + rng.below(max_tokens - min_tokens + 1);
        std::vector<int> ids{cfg.bos_id};
        for (int attempt = 0; int(ids.size()) - 1 < len; ++attempt) {
            const Trace<T> t = forward(model, ids);
            // p_v = softmax(logits / temperature)[v], drawn by inverting the cumulative sum
            const auto row = t.logits.row(t.N() - 1);
            const double mx = double(row.maxCoeff());
            std::vector<double> p(cfg.V);
            double z = 0;
            for (int v = 0; v < cfg.V; ++v) z += (p[v] = std::exp((double(row[v]) - mx) / temperature));
            double u = rng.uniform() * z;
            int v = 0;
            while (v + 1 < cfg.V && u >= p[v]) u -= p[v++];
            if (stop[v] || v == cfg.bos_id) {
                if (int(ids.size()) - 1 >= min_tokens) break;
                ids.assign(1, cfg.bos_id);  // too short: start over (the generator moves on)
                if (attempt > 100000) break;
                continue;
            }
            ids.push_back(v);
        }
        out[j] = std::move(ids);
    }
    return out;
}

template std::vector<std::vector<int>> sample_prefixes(const Model<float>&, int, uint64_t, int, int, double,
                                                       const std::vector<bool>&);
template std::vector<std::vector<int>> sample_prefixes(const Model<double>&, int, uint64_t, int, int, double,
                                                       const std::vector<bool>&);

}  // namespace depass::eval
