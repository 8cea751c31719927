// mpi_group.cpp -- the group of MPI ranks (distributed.hpp). Built only with -DDEPASS_MPI;
// the only file of the project that calls MPI.
//
// Every call is made from the thread that called into the library (MPI_THREAD_FUNNELED): the
// MLP twin runs its chunks one after another when the group has more than one rank.
// Counts above 2^30 elements are passed in pieces (MPI counts are int).
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "depass/distributed.hpp"

namespace depass {

namespace {

constexpr int64_t kPiece = int64_t(1) << 30;  // elements per MPI call
constexpr int kTag = 7;                       // point-to-point messages (gathers, ordered sums)

template <class T>
MPI_Datatype type_of();
template <>
MPI_Datatype type_of<float>() {
    return MPI_FLOAT;
}
template <>
MPI_Datatype type_of<double>() {
    return MPI_DOUBLE;
}
template <class T>
MPI_Datatype pair_type_of();  // {T value; int index} for MPI_MAXLOC
template <>
MPI_Datatype pair_type_of<float>() {
    return MPI_FLOAT_INT;
}
template <>
MPI_Datatype pair_type_of<double>() {
    return MPI_DOUBLE_INT;
}

void check(int rc, const char* what) {
    if (rc == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    throw Error(std::string("MPI: ") + what + " failed: " + std::string(text, size_t(len)));
}

class MpiGroup final : public Group {
public:
    MpiGroup() {
        check(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
        // Errors are returned (and thrown as depass::Error), not fatal inside MPI.
        MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
        MPI_Comm_rank(comm_, &rank_);
        MPI_Comm_size(comm_, &size_);
    }
    ~MpiGroup() override {
        MPI_Comm_free(&comm_);
        MPI_Finalize();
    }
    int rank() const override { return rank_; }
    int size() const override { return size_; }

    void max(float* v, int64_t n) const override { reduce(v, n, MPI_MAX); }
    void max(double* v, int64_t n) const override { reduce(v, n, MPI_MAX); }
    void min(float* v, int64_t n) const override { reduce(v, n, MPI_MIN); }
    void min(double* v, int64_t n) const override { reduce(v, n, MPI_MIN); }
    void sum(float* v, int64_t n) const override { reduce(v, n, MPI_SUM); }
    void sum(double* v, int64_t n) const override { reduce(v, n, MPI_SUM); }
    void max_at(float* v, int* at, int64_t n) const override { reduce_at(v, at, n); }
    void max_at(double* v, int* at, int64_t n) const override { reduce_at(v, at, n); }

    void ordered_sum(float* s, int64_t n, const std::function<void(float*)>& add) const override {
        chain(s, n, add);
    }
    void ordered_sum(double* s, int64_t n, const std::function<void(double*)>& add) const override {
        chain(s, n, add);
    }

    std::vector<std::string> gather(const std::string& mine) const override {
        const uint64_t len = mine.size();
        std::vector<uint64_t> lens(size_t(size_), 0);
        check(MPI_Gather(&len, 1, MPI_UINT64_T, lens.data(), 1, MPI_UINT64_T, 0, comm_), "MPI_Gather");
        std::vector<std::string> all;
        if (rank_ == 0) {
            all.resize(size_t(size_));
            all[0] = mine;
            for (int r = 1; r < size_; ++r) {
                all[size_t(r)].resize(lens[size_t(r)]);
                recv_bytes(&all[size_t(r)][0], lens[size_t(r)], r);
            }
        } else {
            send_bytes(mine.data(), len, 0);
        }
        return all;
    }

    void gather_into(const void* mine, uint64_t bytes, void* all,
                     const std::vector<uint64_t>& bytes_of) const override {
        if (rank_ != 0) {
            send_bytes(mine, bytes, 0);
            return;
        }
        char* out = static_cast<char*>(all);
        if (bytes) std::memcpy(out, mine, bytes);
        uint64_t at = bytes_of.at(0);
        for (int r = 1; r < size_; ++r) {
            recv_bytes(out + at, bytes_of.at(size_t(r)), r);
            at += bytes_of[size_t(r)];
        }
    }

    std::vector<std::string> all_gather(const std::string& mine) const override {
        std::vector<std::string> all(static_cast<size_t>(size_));
        for (int r = 0; r < size_; ++r) {
            uint64_t len = r == rank_ ? mine.size() : 0;
            check(MPI_Bcast(&len, 1, MPI_UINT64_T, r, comm_), "MPI_Bcast");
            std::string& s = all[size_t(r)];
            s = r == rank_ ? mine : std::string(len, '\0');
            for (uint64_t at = 0; at < len; at += uint64_t(kPiece)) {
                const int count = int(std::min<uint64_t>(uint64_t(kPiece), len - at));
                check(MPI_Bcast(&s[at], count, MPI_CHAR, r, comm_), "MPI_Bcast");
            }
        }
        return all;
    }

    // The lowest failed rank (MPI_MIN of "my rank if I failed, else P"), then its code and
    // message broadcast from it.
    std::optional<RankReport> check_in(const std::optional<RankReport>& mine) const override {
        const int me = mine ? rank_ : size_;
        int first = size_;
        check(MPI_Allreduce(&me, &first, 1, MPI_INT, MPI_MIN, comm_), "MPI_Allreduce");
        if (first == size_) return std::nullopt;
        RankReport r;
        int head[2] = {0, 0};  // code, message length
        if (rank_ == first) {
            r = *mine;
            head[0] = r.code;
            head[1] = int(std::min<size_t>(r.message.size(), 1 << 20));
        }
        check(MPI_Bcast(head, 2, MPI_INT, first, comm_), "MPI_Bcast");
        r.code = head[0];
        r.message.resize(size_t(head[1]));
        if (head[1] > 0) check(MPI_Bcast(&r.message[0], head[1], MPI_CHAR, first, comm_), "MPI_Bcast");
        r.rank = first;
        return r;
    }

    [[noreturn]] void abort(int code) const override {
        MPI_Abort(MPI_COMM_WORLD, code);
        std::_Exit(code);  // MPI_Abort does not return; in case it does
    }

private:
    template <class T>
    void reduce(T* v, int64_t n, MPI_Op op) const {
        count_share_bytes(uint64_t(n) * sizeof(T));
        for (int64_t at = 0; at < n; at += kPiece)
            check(MPI_Allreduce(MPI_IN_PLACE, v + at, int(std::min(kPiece, n - at)), type_of<T>(), op, comm_),
                  "MPI_Allreduce");
    }

    template <class T>
    void reduce_at(T* v, int* at, int64_t n) const {
        struct Pair {
            T value;
            int index;
        };
        count_share_bytes(uint64_t(n) * sizeof(Pair));
        std::vector<Pair> p(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) p[size_t(i)] = {v[i], at[i]};
        for (int64_t a = 0; a < n; a += kPiece)
            check(MPI_Allreduce(MPI_IN_PLACE, p.data() + a, int(std::min(kPiece, n - a)), pair_type_of<T>(),
                                MPI_MAXLOC, comm_),
                  "MPI_Allreduce");
        for (int64_t i = 0; i < n; ++i) {
            v[i] = p[size_t(i)].value;
            at[i] = p[size_t(i)].index;
        }
    }

    // The running sum passes from rank to rank (0 -> 1 -> ... -> P-1), each adding its terms;
    // the last rank's total is broadcast.
    template <class T>
    void chain(T* s, int64_t n, const std::function<void(T*)>& add) const {
        if (rank_ == 0)
            std::fill(s, s + n, T(0));
        else
            recv_bytes(s, uint64_t(n) * sizeof(T), rank_ - 1);
        add(s);
        if (rank_ + 1 < size_) send_bytes(s, uint64_t(n) * sizeof(T), rank_ + 1);
        for (int64_t at = 0; at < n; at += kPiece)
            check(MPI_Bcast(s + at, int(std::min(kPiece, n - at)), type_of<T>(), size_ - 1, comm_),
                  "MPI_Bcast");
    }

    void send_bytes(const void* p, uint64_t bytes, int to) const {
        const char* c = static_cast<const char*>(p);
        for (uint64_t at = 0; at < bytes; at += uint64_t(kPiece))
            check(MPI_Send(c + at, int(std::min<uint64_t>(uint64_t(kPiece), bytes - at)), MPI_BYTE, to, kTag,
                           comm_),
                  "MPI_Send");
    }
    void recv_bytes(void* p, uint64_t bytes, int from) const {
        char* c = static_cast<char*>(p);
        for (uint64_t at = 0; at < bytes; at += uint64_t(kPiece))
            check(MPI_Recv(c + at, int(std::min<uint64_t>(uint64_t(kPiece), bytes - at)), MPI_BYTE, from,
                           kTag, comm_, MPI_STATUS_IGNORE),
                  "MPI_Recv");
    }

    MPI_Comm comm_ = MPI_COMM_NULL;
    int rank_ = 0, size_ = 1;
};

// Set by the launchers: Open MPI's mpirun, PMIx (Open MPI 5, srun --mpi=pmix), PMI (MPICH's
// hydra, srun --mpi=pmi2).
bool started_by_launcher() {
    for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
        if (std::getenv(var)) return true;
    return false;
}

}  // namespace

bool built_with_mpi() { return true; }

std::unique_ptr<Group> start_ranks(int* argc, char*** argv) {
    if (!started_by_launcher()) return nullptr;
    int provided = 0;
    check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    if (provided < MPI_THREAD_FUNNELED) {
        MPI_Finalize();
        throw Error("MPI: the library provides thread level " + std::to_string(provided) +
                    ", below MPI_THREAD_FUNNELED (OpenMP threads run beside the MPI calls)");
    }
    return std::make_unique<MpiGroup>();
}

}  // namespace depass
