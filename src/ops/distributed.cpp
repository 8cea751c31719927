// distributed.cpp -- the group of one process (distributed.hpp), the split of the components
// over ranks, and the check-in. The MPI group is in src/mpi/mpi_group.cpp (MPI builds only).
#include "depass/distributed.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace depass {

// One process: the reductions over one rank are the identity.
void Group::max(float*, int64_t) const {}
void Group::max(double*, int64_t) const {}
void Group::min(float*, int64_t) const {}
void Group::min(double*, int64_t) const {}
void Group::sum(float*, int64_t) const {}
void Group::sum(double*, int64_t) const {}
void Group::max_at(float*, int*, int64_t) const {}
void Group::max_at(double*, int*, int64_t) const {}

void Group::ordered_sum(float* s, int64_t n, const std::function<void(float*)>& add) const {
    std::fill(s, s + n, 0.0f);
    add(s);
}
void Group::ordered_sum(double* s, int64_t n, const std::function<void(double*)>& add) const {
    std::fill(s, s + n, 0.0);
    add(s);
}

std::vector<std::string> Group::gather(const std::string& mine) const { return {mine}; }

void Group::gather_into(const void* mine, uint64_t bytes, void* all, const std::vector<uint64_t>&) const {
    if (bytes) std::memcpy(all, mine, bytes);
}

std::vector<std::string> Group::all_gather(const std::string& mine) const { return {mine}; }

std::optional<RankReport> Group::check_in(const std::optional<RankReport>& mine) const { return mine; }

void Group::abort(int code) const { std::exit(code); }

const Group& one_process() {
    static const Group g;
    return g;
}

void sync_point(const Group& group) {
    if (group.size() == 1) return;
    if (std::optional<RankReport> f = group.check_in(std::nullopt)) throw RankFailure(*f);
}

// Block r starts at the first component whose first stored row is at or past r R / P
// (R stored rows in all): b_r = min { m : offset[m] P >= r R }, b_0 = 0, b_P = M.
ComponentBlock split_components(const std::vector<int>& first, int N, int rank, int ranks) {
    const int M = int(first.size());
    if (ranks < 1 || rank < 0 || rank >= ranks)
        throw Error("split_components: rank " + std::to_string(rank) + " of " + std::to_string(ranks));
    std::vector<int64_t> offset(size_t(M) + 1, 0);
    for (int m = 0; m < M; ++m) offset[size_t(m) + 1] = offset[size_t(m)] + (N - first[size_t(m)]);
    const int64_t R = offset.back();
    auto start = [&](int r) {
        if (r == 0) return 0;
        if (r == ranks) return M;
        int m = 0;
        while (m < M && offset[size_t(m)] * ranks < int64_t(r) * R) ++m;
        return m;
    };
    return {start(rank), start(rank + 1)};
}

namespace {

// Packing of the small things a gather needs besides the rows: the
// ranks of one run share a machine type, so the bytes are copied as they are.
struct Packer {
    std::string bytes;
    template <class V>
    void put(const V& v) {
        bytes.append(reinterpret_cast<const char*>(&v), sizeof v);
    }
    void put_string(const std::string& s) {
        put(uint64_t(s.size()));
        bytes += s;
    }
};
struct Unpacker {
    const std::string& bytes;
    size_t at = 0;
    template <class V>
    V get() {
        if (at + sizeof(V) > bytes.size()) throw Error("gather: a rank sent a truncated description");
        V v;
        std::memcpy(&v, bytes.data() + at, sizeof v);
        at += sizeof v;
        return v;
    }
    std::string get_string() {
        const uint64_t n = get<uint64_t>();
        if (at + n > bytes.size()) throw Error("gather: a rank sent a truncated description");
        std::string s = bytes.substr(at, size_t(n));
        at += size_t(n);
        return s;
    }
};

}  // namespace

template <class T>
Components<T> gather_components(const Components<T>& slice, const Group& group) {
    if (group.size() == 1) return slice;
    // 1. Each slice's layout: where it starts, its first positions and names.
    Packer p;
    p.put(int32_t(slice.m0));
    p.put(int32_t(slice.M));
    p.put(int64_t(slice.rows()));
    for (int m = 0; m < slice.M; ++m) {
        p.put(int32_t(slice.first[size_t(m)]));
        p.put_string(slice.names[size_t(m)]);
    }
    const std::vector<std::string> layouts = group.gather(p.bytes);
    Components<T> whole;
    std::vector<uint64_t> bytes_of;
    if (group.is_root()) {
        std::vector<int> first;
        std::vector<std::string> names;
        for (const std::string& l : layouts) {
            Unpacker u{l};
            const int m0 = u.get<int32_t>(), M = u.get<int32_t>();
            const int64_t rows = u.get<int64_t>();
            if (m0 != int(first.size()))
                throw Error("gather: a slice starts at component " + std::to_string(m0) + ", expected " +
                            std::to_string(first.size()));
            for (int m = 0; m < M; ++m) {
                first.push_back(u.get<int32_t>());
                names.push_back(u.get_string());
            }
            bytes_of.push_back(uint64_t(rows) * uint64_t(slice.D) * sizeof(T));
        }
        if (int(first.size()) != slice.total)
            throw Error("gather: the slices hold " + std::to_string(first.size()) + " of " +
                        std::to_string(slice.total) + " components");
        whole = Components<T>::zeros(slice.N, slice.D, std::move(first), std::move(names));
    }
    // 2. The rows, straight into place.
    group.gather_into(slice.X.data(), uint64_t(slice.X.size()) * sizeof(T), whole.X.data(), bytes_of);
    return whole;
}

template <class T>
Tensor<T> gather_components_tensor(const Tensor<T>& slice, const Group& group) {
    if (group.size() == 1) return slice;
    if (slice.shape.empty()) throw Error("gather: a tensor without axes");
    Packer p;
    p.put(int64_t(slice.shape[0]));
    const std::vector<std::string> counts = group.gather(p.bytes);
    Tensor<T> whole;
    std::vector<uint64_t> bytes_of;
    if (group.is_root()) {
        uint64_t per = 1;  // values per component
        for (size_t a = 1; a < slice.shape.size(); ++a) per *= uint64_t(slice.shape[a]);
        int64_t M = 0;
        for (const std::string& c : counts) {
            Unpacker u{c};
            const int64_t m = u.get<int64_t>();
            M += m;
            bytes_of.push_back(uint64_t(m) * per * sizeof(T));
        }
        std::vector<int64_t> shape = slice.shape;
        shape[0] = M;
        whole = Tensor<T>(shape);
    }
    group.gather_into(slice.data.data(), uint64_t(slice.data.size()) * sizeof(T), whole.data.data(),
                      bytes_of);
    return whole;
}

template Components<float> gather_components(const Components<float>&, const Group&);
template Components<double> gather_components(const Components<double>&, const Group&);
template Tensor<float> gather_components_tensor(const Tensor<float>&, const Group&);
template Tensor<double> gather_components_tensor(const Tensor<double>&, const Group&);

#ifndef DEPASS_HAVE_MPI
bool built_with_mpi() { return false; }

// Without MPI: one process, unless a launcher started several copies, which would each run
// the whole command and write the same files.
std::unique_ptr<Group> start_ranks(int*, char***) {
    for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}) {
        const char* v = std::getenv(var);
        if (v && std::atoi(v) > 1)
            throw Error(std::string("this depass was built without MPI, but it was started as one of ") + v +
                        " processes (" + var +
                        "): build it with -DDEPASS_MPI=ON (Debian: libopenmpi-dev), "
                        "or run it as one process");
    }
    return nullptr;
}
#endif

}  // namespace depass
