// metrics.cpp -- the arithmetic of the evaluations: masked counts, scores, curve
// areas, ranks, Spearman correlation, a portable seeded generator, token masking.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "depass/eval.hpp"

namespace depass::eval {

// k = max(1, floor(percent * candidates / 100)); integers, so 30% of 10 is exactly 3.
int masked_count(int percent, int candidates) {
    if (percent < 1 || percent > 100)
        throw Error("masked_count: percent " + std::to_string(percent) + " is outside [1, 100]");
    if (candidates < 1)
        throw Error("masked_count: " + std::to_string(candidates) + " candidate tokens (need at least 1)");
    return std::max(1, int((int64_t(percent) * candidates) / 100));
}

// score = min(100, |P_clean - P_masked| / P_clean * 100)
double mask_score(double p_clean, double p_masked) {
    if (!(p_clean > 0))
        throw Error("mask_score: clean probability " + std::to_string(p_clean) + " is not > 0");
    return std::min(100.0, std::abs(p_clean - p_masked) / p_clean * 100.0);
}

// area = sum_i (x[i+1] - x[i]) (y[i] + y[i+1]) / 2, divided by x.back() - x.front()
double curve_area(const std::vector<double>& x, const std::vector<double>& y) {
    if (x.size() != y.size())
        throw Error("curve_area: " + std::to_string(x.size()) + " x values for " + std::to_string(y.size()) +
                    " y values");
    if (x.size() < 2) throw Error("curve_area: a curve needs at least two points");
    double area = 0;
    for (size_t i = 0; i + 1 < x.size(); ++i) {
        if (!(x[i + 1] > x[i]))
            throw Error("curve_area: x is not strictly increasing at index " + std::to_string(i + 1));
        area += (x[i + 1] - x[i]) * (y[i] + y[i + 1]) / 2;
    }
    return area / (x.back() - x.front());
}

std::vector<double> average_ranks(const std::vector<double>& v) {
    const size_t n = v.size();
    std::vector<size_t> idx(n);
    std::iota(idx.begin(), idx.end(), size_t(0));
    std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
    std::vector<double> r(n);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && v[idx[j]] == v[idx[i]]) ++j;
        // positions i..j-1 hold ranks i+1..j: their mean is (i + 1 + j) / 2
        const double mean_rank = (double(i + 1) + double(j)) / 2;
        for (size_t k = i; k < j; ++k) r[idx[k]] = mean_rank;
        i = j;
    }
    return r;
}

// rho = cov(ra, rb) / sqrt(var(ra) var(rb)) over the average ranks
double spearman(const std::vector<double>& a, const std::vector<double>& b) {
    if (a.size() != b.size())
        throw Error("spearman: " + std::to_string(a.size()) + " values against " + std::to_string(b.size()));
    if (a.size() < 2) throw Error("spearman: needs at least two pairs");
    const std::vector<double> ra = average_ranks(a), rb = average_ranks(b);
    const double mean = (double(a.size()) + 1) / 2;  // mean rank, with or without ties
    double sab = 0, saa = 0, sbb = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        const double da = ra[i] - mean, db = rb[i] - mean;
        sab += da * db;
        saa += da * da;
        sbb += db * db;
    }
    if (saa == 0 || sbb == 0) return 0;
    return sab / std::sqrt(saa * sbb);
}

std::vector<int> order_descending(const std::vector<double>& scores) {
    std::vector<int> idx(scores.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return scores[a] > scores[b]; });
    return idx;
}

// SplitMix64 (Steele, Lea, Flood 2014).
uint64_t Rng::next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

double Rng::uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }

int Rng::below(int n) {
    if (n <= 0) throw Error("Rng::below: bound " + std::to_string(n) + " is not positive");
    return int(uniform() * n);
}

uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
    Rng r(seed);
    uint64_t s = r.next();
    for (uint64_t v : {a, b, c}) {
        Rng q(s ^ (v * 0xD1342543DE82EF95ULL + 0x2545F4914F6CDD1DULL));
        s = q.next();
    }
    return s;
}

namespace {

// Sets flags[p] at each of `positions` (one flag per token); a position outside [0, N) is an
// error of `who`.
void flag_positions(const char* who, const std::vector<int>& positions, std::vector<char>& flags) {
    for (int p : positions) {
        if (p < 0 || p >= int(flags.size()))
            throw Error(std::string(who) + ": position " + std::to_string(p) + " is outside [0, " +
                        std::to_string(flags.size()) + ")");
        flags[p] = 1;
    }
}

}  // namespace

std::vector<int> delete_positions(const std::vector<int>& ids, const std::vector<int>& positions) {
    std::vector<char> drop(ids.size(), 0);
    flag_positions("delete_positions", positions, drop);
    std::vector<int> out;
    for (size_t n = 0; n < ids.size(); ++n)
        if (!drop[n]) out.push_back(ids[n]);
    return out;
}

std::vector<int> keep_positions(const std::vector<int>& ids, const std::vector<int>& positions) {
    if (ids.size() < 2) throw Error("keep_positions: needs at least BOS and a last token");
    std::vector<char> keep(ids.size(), 0);
    keep.front() = keep.back() = 1;
    flag_positions("keep_positions", positions, keep);
    std::vector<int> out;
    for (size_t n = 0; n < ids.size(); ++n)
        if (keep[n]) out.push_back(ids[n]);
    return out;
}

}  // namespace depass::eval
