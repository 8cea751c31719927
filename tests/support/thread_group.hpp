// thread_group.hpp -- a Group (depass/distributed.hpp) of P threads of one process, so that a
// run split over ranks is tested in every build, MPI or not (tests/test_split.cpp).
//
// Each thread is one rank. Every collective call meets the others at a barrier and combines
// through a shared board of pointers: each rank posts its buffer, waits, reads the others'
// (every rank computes the same combination, in rank order), waits again, then writes its
// result. Sums add in rank order ((v_0 + v_1) + v_2 ...), so every rank gets the same bits.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "depass/distributed.hpp"

namespace depass_test {

class ThreadBoard {
public:
    explicit ThreadBoard(int ranks) : P(ranks), slot(size_t(ranks), nullptr), bytes(size_t(ranks), 0) {}
    void barrier() {
        std::unique_lock<std::mutex> lock(mu_);
        const uint64_t gen = generation_;
        if (++arrived_ == P) {
            arrived_ = 0;
            ++generation_;
            cv_.notify_all();
        } else {
            cv_.wait(lock, [&] { return generation_ != gen; });
        }
    }
    const int P;
    std::vector<const void*> slot;  // each rank's posted buffer
    std::vector<uint64_t> bytes;    // and its size where it matters

private:
    std::mutex mu_;
    std::condition_variable cv_;
    int arrived_ = 0;
    uint64_t generation_ = 0;
};

class ThreadRank final : public depass::Group {
public:
    ThreadRank(ThreadBoard& board, int rank) : b_(board), r_(rank) {}
    int rank() const override { return r_; }
    int size() const override { return b_.P; }

    void max(float* v, int64_t n) const override {
        reduce(v, n, [](float a, float c) { return std::max(a, c); });
    }
    void max(double* v, int64_t n) const override {
        reduce(v, n, [](double a, double c) { return std::max(a, c); });
    }
    void min(float* v, int64_t n) const override {
        reduce(v, n, [](float a, float c) { return std::min(a, c); });
    }
    void min(double* v, int64_t n) const override {
        reduce(v, n, [](double a, double c) { return std::min(a, c); });
    }
    void sum(float* v, int64_t n) const override {
        reduce(v, n, [](float a, float c) { return a + c; });
    }
    void sum(double* v, int64_t n) const override {
        reduce(v, n, [](double a, double c) { return a + c; });
    }
    void max_at(float* v, int* at, int64_t n) const override { reduce_at(v, at, n); }
    void max_at(double* v, int* at, int64_t n) const override { reduce_at(v, at, n); }

    void ordered_sum(float* s, int64_t n, const std::function<void(float*)>& add) const override {
        chain(s, n, add);
    }
    void ordered_sum(double* s, int64_t n, const std::function<void(double*)>& add) const override {
        chain(s, n, add);
    }

    std::vector<std::string> gather(const std::string& mine) const override {
        std::vector<std::string> all = all_gather(mine);
        if (r_ != 0) all.clear();
        return all;
    }
    void gather_into(const void* mine, uint64_t bytes, void* all,
                     const std::vector<uint64_t>& bytes_of) const override {
        b_.slot[size_t(r_)] = mine;
        b_.bytes[size_t(r_)] = bytes;
        b_.barrier();
        if (r_ == 0) {
            uint64_t at = 0;
            for (int q = 0; q < b_.P; ++q) {
                if (b_.bytes[size_t(q)] != bytes_of.at(size_t(q)))
                    throw std::logic_error("gather_into: rank " + std::to_string(q) + " sent another size");
                if (b_.bytes[size_t(q)])
                    std::memcpy(static_cast<char*>(all) + at, b_.slot[size_t(q)], b_.bytes[size_t(q)]);
                at += b_.bytes[size_t(q)];
            }
        }
        b_.barrier();
    }
    std::vector<std::string> all_gather(const std::string& mine) const override {
        b_.slot[size_t(r_)] = &mine;
        b_.barrier();
        std::vector<std::string> all;
        for (int q = 0; q < b_.P; ++q) all.push_back(*static_cast<const std::string*>(b_.slot[size_t(q)]));
        b_.barrier();
        return all;
    }
    std::optional<depass::RankReport> check_in(const std::optional<depass::RankReport>& mine) const override {
        b_.slot[size_t(r_)] = &mine;
        b_.barrier();
        std::optional<depass::RankReport> first;
        for (int q = 0; q < b_.P && !first; ++q) {
            const auto& o = *static_cast<const std::optional<depass::RankReport>*>(b_.slot[size_t(q)]);
            if (o) {
                first = *o;
                first->rank = q;
            }
        }
        b_.barrier();
        return first;
    }
    [[noreturn]] void abort(int code) const override {
        std::fprintf(stderr, "ThreadRank::abort(%d) on rank %d\n", code, r_);
        std::abort();
    }

private:
    template <class T, class Op>
    void reduce(T* v, int64_t n, Op op) const {
        count_share_bytes(uint64_t(n) * sizeof(T));
        b_.slot[size_t(r_)] = v;
        b_.barrier();
        std::vector<T> out(static_cast<const T*>(b_.slot[0]), static_cast<const T*>(b_.slot[0]) + n);
        for (int q = 1; q < b_.P; ++q) {
            const T* x = static_cast<const T*>(b_.slot[size_t(q)]);
            for (int64_t i = 0; i < n; ++i) out[size_t(i)] = op(out[size_t(i)], x[i]);
        }
        b_.barrier();
        std::copy(out.begin(), out.end(), v);
    }
    template <class T>
    void reduce_at(T* v, int* at, int64_t n) const {
        count_share_bytes(uint64_t(n) * (sizeof(T) + sizeof(int)));
        const void* mine[2] = {v, at};
        b_.slot[size_t(r_)] = mine;
        b_.barrier();
        std::vector<T> bv(static_cast<size_t>(n));
        std::vector<int> ba(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) {
            for (int q = 0; q < b_.P; ++q) {
                const void* const* p = static_cast<const void* const*>(b_.slot[size_t(q)]);
                const T x = static_cast<const T*>(p[0])[i];
                const int a = static_cast<const int*>(p[1])[i];
                if (q == 0 || x > bv[size_t(i)] || (x == bv[size_t(i)] && a < ba[size_t(i)])) {
                    bv[size_t(i)] = x;
                    ba[size_t(i)] = a;
                }
            }
        }
        b_.barrier();
        std::copy(bv.begin(), bv.end(), v);
        std::copy(ba.begin(), ba.end(), at);
    }
    template <class T>
    void chain(T* s, int64_t n, const std::function<void(T*)>& add) const {
        b_.slot[size_t(r_)] = s;
        b_.barrier();
        for (int q = 0; q < b_.P; ++q) {
            if (q == r_) {
                if (q == 0)
                    std::fill(s, s + n, T(0));
                else
                    std::memcpy(s, b_.slot[size_t(q) - 1], size_t(n) * sizeof(T));
                add(s);
            }
            b_.barrier();
        }
        if (r_ != b_.P - 1) std::memcpy(s, b_.slot[size_t(b_.P) - 1], size_t(n) * sizeof(T));
        b_.barrier();
    }

    ThreadBoard& b_;
    int r_;
};

// Runs body(group) on `ranks` threads, one ThreadRank each, and waits for all. An exception
// in a thread is kept (its what()) and returned per rank ("" for none).
inline std::vector<std::string> run_ranks(int ranks, const std::function<void(const depass::Group&)>& body) {
    ThreadBoard board(ranks);
    std::vector<std::string> failures(static_cast<size_t>(ranks));
    std::vector<std::thread> threads;
    for (int r = 0; r < ranks; ++r)
        threads.emplace_back([&, r] {
            ThreadRank g(board, r);
            try {
                body(g);
            } catch (const std::exception& e) {
                failures[size_t(r)] = e.what();
                if (failures[size_t(r)].empty()) failures[size_t(r)] = "(exception)";
            }
        });
    for (std::thread& t : threads) t.join();
    return failures;
}

}  // namespace depass_test
