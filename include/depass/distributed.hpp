// distributed.hpp -- one run split over several processes (`mpirun -np P depass ...`).
//
// The decomposed pass is almost embarrassingly parallel over components: attention with
// frozen probabilities, the frozen norms and every linear map act on each component alone.
// Only the MLP share rules couple them, through per-(position, neuron) reductions over the
// components present (depass-math.md section 5):
//   preparation  whether any share of a neuron is non-zero       (a maximum of 0/1 flags)
//   softmax      the largest share, then the sum of exponentials  (a maximum, then a sum)
//   max          the largest share and whose it is                (a maximum with its index)
//   relu         the sum of the positive parts and the count      (a sum)
//   linear       the smallest share and the count, then a sum     (a minimum and a sum, then a sum)
//   taylor       nothing
// So the components are split over the processes ("ranks") in contiguous blocks
// (split_components below); every rank pushes its block through the network and the MLP
// twin (ops/mlp.cpp) combines its per-neuron vectors with the other ranks' through a
// Group: vectors of I values per position, never components.
//
// A Group is the set of processes of one run. The base class is ONE process: rank 0 of 1,
// every reduction the identity, every gather a copy, so the library called without a group
// behaves exactly as before. The MPI build (-DDEPASS_MPI, src/mpi/mpi_group.cpp) adds the
// group of MPI ranks (start_ranks); nothing else in the library knows about MPI, and a build
// without it compiles no MPI code.
//
// Failures. A rank that fails must not leave the others waiting in a collective call for
// ever. Two rules keep that from happening:
//   1. Every section of collective calls (propagate(), the gathers) starts at a check-in
//      (sync_point) where each rank says whether it has failed; a rank that failed earlier
//      answers that check-in from its error handler (the command line's main()), so every
//      rank learns of the failure there and stops with the same message (RankFailure).
//   2. A rank that fails inside a section (run through collective(), which marks the group
//      broken) cannot tell the others, which are waiting in a reduction it will never join:
//      its error handler prints the message and ends every rank (Group::abort).
// Deterministic errors (bad input, a completeness violation) happen on every rank at the same
// place, outside the sections, and end every rank through rule 1 with one message.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "depass/components.hpp"
#include "depass/types.hpp"

namespace depass {

// What a rank reports at a check-in when it has failed: the exit code it would end with
// (1 runtime error, 2 usage error) and the message.
struct RankReport {
    int code = 1;
    std::string message;
    int rank = 0;  // filled in by check_in: the rank that reported it
};

// Thrown by sync_point on every rank when a rank reported a failure at that check-in. The
// failure is already known everywhere: its handler must not check in again.
class RankFailure : public Error {
public:
    explicit RankFailure(RankReport r) : Error(r.message), report(std::move(r)) {}
    RankReport report;
};

class Group {
public:
    virtual ~Group() = default;
    virtual int rank() const { return 0; }
    virtual int size() const { return 1; }
    bool is_root() const { return rank() == 0; }  // rank 0 writes the files and prints

    // ---- the share-rule reductions (ops/mlp.cpp) -------------------------------------------
    // In place and elementwise over the ranks; every rank gets the same result.
    virtual void max(float* v, int64_t n) const;
    virtual void max(double* v, int64_t n) const;
    virtual void min(float* v, int64_t n) const;
    virtual void min(double* v, int64_t n) const;
    virtual void sum(float* v, int64_t n) const;
    virtual void sum(double* v, int64_t n) const;
    // v[i] = the largest v[i] of any rank and at[i] = that rank's at[i]; among equal values the
    // smallest at[i] (at[] holds component indices: the first component wins a tie, as in one process).
    virtual void max_at(float* v, int* at, int64_t n) const;
    virtual void max_at(double* v, int* at, int64_t n) const;

    // ---- a sum in the order of one process ----------------------------------------------
    // s = 0, then rank 0, rank 1, ... in turn call add(s) with the running sum (each adds its
    // own terms in its own order); the result is broadcast. The additions are those of one
    // process adding every term in rank order, so the result is the same to the last bit. The
    // completeness monitor sums the components this way (attribute.cpp).
    virtual void ordered_sum(float* s, int64_t n, const std::function<void(float*)>& add) const;
    virtual void ordered_sum(double* s, int64_t n, const std::function<void(double*)>& add) const;

    // ---- moving results -----------------------------------------------------------------
    // On rank 0 every rank's bytes, in rank order; elsewhere nothing.
    virtual std::vector<std::string> gather(const std::string& mine) const;
    // On rank 0, rank r's `bytes` bytes are written to all + (bytes_of[0] + ... + bytes_of[r-1]);
    // bytes_of (every rank's size, known to rank 0) and `all` are read on rank 0 only.
    virtual void gather_into(const void* mine, uint64_t bytes, void* all,
                             const std::vector<uint64_t>& bytes_of) const;
    // Every rank's bytes, in rank order, on every rank.
    virtual std::vector<std::string> all_gather(const std::string& mine) const;

    // ---- failures (see the file comment) --------------------------------------------------
    // Every rank reports (nothing = fine); returns, on every rank, the report of the lowest
    // rank that failed, or nothing.
    virtual std::optional<RankReport> check_in(const std::optional<RankReport>& mine) const;
    // Ends every rank with `code` (MPI_Abort); one process: std::exit.
    [[noreturn]] virtual void abort(int code) const;
    // Set when an exception left a section of collective calls on this rank (collective()).
    void mark_broken() const { broken_ = true; }
    bool broken() const { return broken_; }

    // ---- bookkeeping ----------------------------------------------------------------------
    // Bytes this rank has passed to the share-rule reductions (0 for one process).
    uint64_t share_bytes() const { return share_bytes_; }

protected:
    void count_share_bytes(uint64_t b) const { share_bytes_ += b; }

private:
    mutable uint64_t share_bytes_ = 0;
    mutable bool broken_ = false;
};

// The group of one process (a static object: every reduction the identity).
const Group& one_process();

// The processes of this run when it was started by an MPI launcher (mpirun, srun: detected
// from the environment it sets) in an MPI build; MPI is initialised then, and finalised when
// the group is destroyed. Null otherwise (one process, MPI never touched). A build without
// MPI started by a launcher with more than one process throws depass::Error saying so.
std::unique_ptr<Group> start_ranks(int* argc, char*** argv);
// Whether this build can run over MPI ranks (-DDEPASS_MPI).
bool built_with_mpi();

// The check-in that opens a section of collective calls: throws RankFailure on every rank
// when any rank has reported a failure (its message and code).
void sync_point(const Group& group);

// Runs f(), a section of collective calls; an exception leaving it marks the group broken
// (its handler must then end every rank, Group::abort) before it propagates.
template <class F>
decltype(auto) collective(const Group& group, F&& f) {
    try {
        return f();
    } catch (...) {
        if (group.size() > 1) group.mark_broken();
        throw;
    }
}

// The contiguous block of components [begin, end) that `rank` of `ranks` holds: the M
// components (first[m]: component m's first stored position, components.hpp) are cut so
// that every rank holds about the same number of stored rows, the rest (the last component)
// on the last rank that holds anything. Blocks may be empty when there are more ranks than
// components.
struct ComponentBlock {
    int begin = 0, end = 0;
};
ComponentBlock split_components(const std::vector<int>& first, int N, int rank, int ranks);

// The whole decomposition on rank 0, from every rank's slice: the slices are contiguous
// blocks in rank order, so their stored rows, one after another, are the whole one's.
// Elsewhere an empty Components (M = 0). Collective; one process: the slice itself.
template <class T>
Components<T> gather_components(const Components<T>& slice, const Group& group);
// The same for a tensor whose first axis is this rank's components ([M_slice, ...],
// component-major, as logit_attribution): [M, ...] on rank 0, empty elsewhere.
template <class T>
Tensor<T> gather_components_tensor(const Tensor<T>& slice, const Group& group);

}  // namespace depass
