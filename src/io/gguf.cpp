// gguf.cpp -- the GGUF container (header, metadata, tensor infos, tensor data) and
// the llama-architecture model loader. Format summary in include/depass/gguf.hpp.
//
// The parser reads the file sequentially and checks every length against the bytes
// that remain before it reads or allocates anything, so a damaged or hostile file
// gives a depass::Error naming the file and the offending key / tensor / value, never
// a crash or a huge allocation.
#include "depass/gguf.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <sstream>

#include "bytes.hpp"
#include "depass/io.hpp"
#include "mapped_file.hpp"
#include "tensor_plan.hpp"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "depass reads little-endian GGUF files by memcpy and needs a little-endian host"
#endif

namespace fs = std::filesystem;

namespace depass {

using detail::add_sat;
using detail::bf16_to_float;
using detail::half_to_double;
using detail::mul_sat;

namespace {

// ---- ggml tensor types ------------------------------------------------------------

// Element types of ggml: a block of `block` elements takes `bytes` bytes. Numbers that
// ggml has retired (4, 5, 31-33, 36-38) are absent and rejected as unknown.
struct GgmlType {
    uint32_t id;
    const char* name;
    uint64_t block;
    uint64_t bytes;
};
constexpr GgmlType kGgmlTypes[] = {
    {0, "F32", 1, 4},         {1, "F16", 1, 2},         {2, "Q4_0", 32, 18},      {3, "Q4_1", 32, 20},
    {6, "Q5_0", 32, 22},      {7, "Q5_1", 32, 24},      {8, "Q8_0", 32, 34},      {9, "Q8_1", 32, 40},
    {10, "Q2_K", 256, 84},    {11, "Q3_K", 256, 110},   {12, "Q4_K", 256, 144},   {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},   {15, "Q8_K", 256, 292},   {16, "IQ2_XXS", 256, 66}, {17, "IQ2_XS", 256, 74},
    {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50},   {20, "IQ4_NL", 32, 18},   {21, "IQ3_S", 256, 110},
    {22, "IQ2_S", 256, 82},   {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},         {25, "I16", 1, 2},
    {26, "I32", 1, 4},        {27, "I64", 1, 8},        {28, "F64", 1, 8},        {29, "IQ1_M", 256, 56},
    {30, "BF16", 1, 2},       {34, "TQ1_0", 256, 54},   {35, "TQ2_0", 256, 66},   {39, "MXFP4", 32, 17},
};
constexpr uint32_t kF32 = 0, kF16 = 1, kBF16 = 30;

const GgmlType* find_ggml_type(uint32_t id) {
    for (const GgmlType& t : kGgmlTypes)
        if (t.id == id) return &t;
    return nullptr;
}

constexpr uint32_t kMaxDims = 4;   // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 8;  // nesting of array values

// ---- small helpers ------------------------------------------------------------------

std::string ne_str(const std::vector<uint64_t>& ne) {
    std::string s = "[";
    for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
    return s + "]";
}

std::string hex_bytes(const unsigned char* p, size_t n) {
    static const char* hex = "0123456789abcdef";
    std::string s;
    for (size_t i = 0; i < n; ++i) {
        if (i) s += ' ';
        s += hex[p[i] >> 4];
        s += hex[p[i] & 15];
    }
    return s;
}

size_t scalar_size(GgufType t) {
    switch (t) {
        case GgufType::U8:
        case GgufType::I8:
        case GgufType::Bool:
            return 1;
        case GgufType::U16:
        case GgufType::I16:
            return 2;
        case GgufType::U32:
        case GgufType::I32:
        case GgufType::F32:
            return 4;
        case GgufType::U64:
        case GgufType::I64:
        case GgufType::F64:
            return 8;
        case GgufType::String:
        case GgufType::Array:
            return 0;
    }
    return 0;
}

bool known_value_type(uint32_t t) { return t <= 12; }
bool is_signed_int(GgufType t) {
    return t == GgufType::I8 || t == GgufType::I16 || t == GgufType::I32 || t == GgufType::I64;
}
bool is_unsigned_int(GgufType t) {
    return t == GgufType::U8 || t == GgufType::U16 || t == GgufType::U32 || t == GgufType::U64;
}
bool is_float(GgufType t) { return t == GgufType::F32 || t == GgufType::F64; }

// Smallest encoding of one element of type t (to bound array counts by the file size).
uint64_t min_encoded_size(GgufType t) {
    if (t == GgufType::String) return 8;     // u64 length
    if (t == GgufType::Array) return 4 + 8;  // u32 type + u64 count
    return scalar_size(t);
}

// ---- sequential reader over the file ---------------------------------------------------

class Reader {
public:
    Reader(const std::string& path, uint64_t size) : path_(path), size_(size), in_(path, std::ios::binary) {
        if (!in_) throw Error(path + ": cannot open file for reading (" + std::strerror(errno) + ")");
    }

    uint64_t pos() const { return pos_; }
    uint64_t remaining() const { return size_ - pos_; }

    // Throws unless n more bytes exist; `what` names the field being read.
    void need(uint64_t n, const std::string& what) const {
        if (n > remaining()) {
            throw Error(path_ + ": truncated GGUF file: " + what + " needs " + std::to_string(n) +
                        " bytes at offset " + std::to_string(pos_) + " but the file is " +
                        std::to_string(size_) + " bytes (" + std::to_string(remaining()) + " left)");
        }
    }

    void bytes(void* dst, uint64_t n, const std::string& what) {
        need(n, what);
        if (n == 0) return;
        in_.read(static_cast<char*>(dst), static_cast<std::streamsize>(n));
        if (!in_)
            throw Error(path_ + ": read error at offset " + std::to_string(pos_) + " while reading " + what);
        pos_ += n;
    }

    template <class X>
    X scalar(const std::string& what) {
        X x;
        bytes(&x, sizeof x, what);
        return x;
    }

    // u64 length + bytes; the length is checked against what remains before allocating.
    std::string str(const std::string& what) {
        const uint64_t len = scalar<uint64_t>(what + " (string length)");
        if (len > remaining()) {
            throw Error(path_ + ": " + what + " has string length " + std::to_string(len) + " at offset " +
                        std::to_string(pos_ - 8) + ", beyond the end of the file (" +
                        std::to_string(remaining()) + " bytes left of " + std::to_string(size_) + ")");
        }
        std::string s(static_cast<size_t>(len), '\0');
        bytes(s.data(), len, what);
        return s;
    }

private:
    std::string path_;
    uint64_t size_;
    uint64_t pos_ = 0;
    std::ifstream in_;
};

// Reads one value of type `type`; `what` names it for errors ("metadata key 'x'").
GgufValue read_value(Reader& r, const std::string& path, GgufType type, const std::string& what, int depth) {
    GgufValue v;
    v.type = type;
    switch (type) {
        case GgufType::U8:
            v.u = r.scalar<uint8_t>(what);
            break;
        case GgufType::I8:
            v.i = r.scalar<int8_t>(what);
            break;
        case GgufType::U16:
            v.u = r.scalar<uint16_t>(what);
            break;
        case GgufType::I16:
            v.i = r.scalar<int16_t>(what);
            break;
        case GgufType::U32:
            v.u = r.scalar<uint32_t>(what);
            break;
        case GgufType::I32:
            v.i = r.scalar<int32_t>(what);
            break;
        case GgufType::U64:
            v.u = r.scalar<uint64_t>(what);
            break;
        case GgufType::I64:
            v.i = r.scalar<int64_t>(what);
            break;
        case GgufType::F32:
            v.f = r.scalar<float>(what);
            break;
        case GgufType::F64:
            v.f = r.scalar<double>(what);
            break;
        case GgufType::Bool: {
            const uint8_t b = r.scalar<uint8_t>(what);
            if (b > 1)
                throw Error(path + ": " + what + " is a bool with invalid byte value " + std::to_string(b));
            v.u = b;
            break;
        }
        case GgufType::String:
            v.s = r.str(what);
            break;
        case GgufType::Array: {
            if (depth >= kMaxArrayDepth) {
                throw Error(path + ": " + what + " nests arrays deeper than " +
                            std::to_string(kMaxArrayDepth) + " levels");
            }
            const uint32_t et = r.scalar<uint32_t>(what + " (array element type)");
            if (!known_value_type(et)) {
                throw Error(path + ": " + what + " has unknown array element type " + std::to_string(et) +
                            " (valid types are 0..12)");
            }
            v.elem = static_cast<GgufType>(et);
            v.count = r.scalar<uint64_t>(what + " (array length)");
            const uint64_t min_bytes = mul_sat(v.count, min_encoded_size(v.elem));
            if (min_bytes > r.remaining()) {
                throw Error(path + ": " + what + " declares an array of " + std::to_string(v.count) + " " +
                            gguf_type_name(v.elem) + " elements (at least " + std::to_string(min_bytes) +
                            " bytes) but only " + std::to_string(r.remaining()) +
                            " bytes remain in the file");
            }
            const size_t n = static_cast<size_t>(v.count);
            const size_t es = scalar_size(v.elem);
            if (v.elem == GgufType::String) {
                v.strings.reserve(n);
                for (size_t k = 0; k < n; ++k)
                    v.strings.push_back(r.str(what + " element " + std::to_string(k)));
            } else if (v.elem == GgufType::Array) {
                v.arrays.reserve(n);
                for (size_t k = 0; k < n; ++k)
                    v.arrays.push_back(read_value(r, path, GgufType::Array,
                                                  what + " element " + std::to_string(k), depth + 1));
            } else {
                std::vector<unsigned char> raw(n * es);
                r.bytes(raw.data(), raw.size(), what + " (array data)");
                const unsigned char* p = raw.data();
                auto get = [&](auto x, size_t k) {
                    std::memcpy(&x, p + k * sizeof x, sizeof x);
                    return x;
                };
                if (is_signed_int(v.elem)) {
                    v.ints.resize(n);
                    for (size_t k = 0; k < n; ++k) {
                        switch (v.elem) {
                            case GgufType::I8:
                                v.ints[k] = get(int8_t{}, k);
                                break;
                            case GgufType::I16:
                                v.ints[k] = get(int16_t{}, k);
                                break;
                            case GgufType::I32:
                                v.ints[k] = get(int32_t{}, k);
                                break;
                            default:
                                v.ints[k] = get(int64_t{}, k);
                                break;
                        }
                    }
                } else if (is_float(v.elem)) {
                    v.floats.resize(n);
                    for (size_t k = 0; k < n; ++k)
                        v.floats[k] = v.elem == GgufType::F32 ? double(get(float{}, k)) : get(double{}, k);
                } else {  // unsigned and bool
                    v.uints.resize(n);
                    for (size_t k = 0; k < n; ++k) {
                        switch (v.elem) {
                            case GgufType::U8:
                            case GgufType::Bool:
                                v.uints[k] = get(uint8_t{}, k);
                                break;
                            case GgufType::U16:
                                v.uints[k] = get(uint16_t{}, k);
                                break;
                            case GgufType::U32:
                                v.uints[k] = get(uint32_t{}, k);
                                break;
                            default:
                                v.uints[k] = get(uint64_t{}, k);
                                break;
                        }
                        if (v.elem == GgufType::Bool && v.uints[k] > 1) {
                            throw Error(path + ": " + what + " element " + std::to_string(k) +
                                        " is a bool with invalid byte value " + std::to_string(v.uints[k]));
                        }
                    }
                }
            }
            break;
        }
    }
    return v;
}

[[noreturn]] void wrong_type(const std::string& path, const std::string& key, const GgufValue& v,
                             const char* expected) {
    throw Error(path + ": metadata key '" + key + "' has type " + v.type_str() + ", expected " + expected);
}

}  // namespace

// ---- names --------------------------------------------------------------------------------

const char* gguf_type_name(GgufType t) {
    switch (t) {
        case GgufType::U8:
            return "uint8";
        case GgufType::I8:
            return "int8";
        case GgufType::U16:
            return "uint16";
        case GgufType::I16:
            return "int16";
        case GgufType::U32:
            return "uint32";
        case GgufType::I32:
            return "int32";
        case GgufType::F32:
            return "float32";
        case GgufType::Bool:
            return "bool";
        case GgufType::String:
            return "string";
        case GgufType::Array:
            return "array";
        case GgufType::U64:
            return "uint64";
        case GgufType::I64:
            return "int64";
        case GgufType::F64:
            return "float64";
    }
    return "?";
}

std::string ggml_type_name(uint32_t type) {
    const GgmlType* t = find_ggml_type(type);
    return t ? std::string(t->name) : "unknown ggml type " + std::to_string(type);
}

std::string GgufValue::type_str() const {
    if (type != GgufType::Array) return gguf_type_name(type);
    return std::string("array of ") + gguf_type_name(elem);
}

std::vector<int64_t> GgufTensorInfo::shape() const {
    std::vector<int64_t> s(ne.rbegin(), ne.rend());
    return s;
}

// ---- open ---------------------------------------------------------------------------------------

GgufFile GgufFile::open(const std::string& path) {
    std::error_code ec;
    if (!fs::exists(path, ec)) throw Error("no such file or directory: " + path);
    if (fs::is_directory(path, ec)) throw Error(path + ": is a directory, expected a .gguf file");
    const uint64_t size = fs::file_size(path, ec);
    if (ec) throw Error(path + ": cannot determine the file size (" + ec.message() + ")");

    GgufFile g;
    g.path_ = path;
    g.file_size_ = size;
    Reader r(path, size);

    // Header.
    if (size < 4) {
        throw Error(path + ": file is " + std::to_string(size) +
                    " bytes, too short for a GGUF file (24-byte header expected)");
    }
    unsigned char magic[4];
    r.bytes(magic, 4, "magic");
    if (std::memcmp(magic, "GGUF", 4) != 0) {
        throw Error(path + ": bad magic: expected \"GGUF\" (47 47 55 46), found " + hex_bytes(magic, 4) +
                    "; not a GGUF file");
    }
    const uint32_t version = r.scalar<uint32_t>("header field 'version'");
    const uint32_t swapped = __builtin_bswap32(version);
    if (version != 2 && version != 3) {
        if (swapped >= 1 && swapped <= 3)
            throw Error(path + ": big-endian GGUF file (version " + std::to_string(swapped) +
                        ") is not supported");
        if (version == 1) throw Error(path + ": GGUF version 1 is not supported (only versions 2 and 3)");
        throw Error(path + ": unsupported GGUF version " + std::to_string(version) +
                    " (only versions 2 and 3)");
    }
    g.version_ = version;
    const uint64_t n_tensors = r.scalar<uint64_t>("header field 'tensor_count'");
    const uint64_t n_kv = r.scalar<uint64_t>("header field 'metadata_kv_count'");
    // Each key/value needs at least 8 (key length) + 4 (type) + 1 bytes; each tensor info
    // at least 8 (name length) + 4 (n_dims) + 8 (one dim) + 4 (type) + 8 (offset).
    if (mul_sat(n_kv, 13) > r.remaining()) {
        throw Error(path + ": header field 'metadata_kv_count' = " + std::to_string(n_kv) +
                    " cannot fit in the remaining " + std::to_string(r.remaining()) + " bytes of the file");
    }
    if (mul_sat(n_tensors, 32) > r.remaining()) {
        throw Error(path + ": header field 'tensor_count' = " + std::to_string(n_tensors) +
                    " cannot fit in the remaining " + std::to_string(r.remaining()) + " bytes of the file");
    }

    // Metadata.
    for (uint64_t k = 0; k < n_kv; ++k) {
        const std::string key = r.str("metadata key #" + std::to_string(k));
        if (key.empty()) throw Error(path + ": metadata key #" + std::to_string(k) + " is an empty string");
        if (g.values_.count(key))
            throw Error(path + ": duplicate metadata key '" + key + "' (entry #" + std::to_string(k) + ")");
        const std::string what = "metadata key '" + key + "'";
        const uint32_t type = r.scalar<uint32_t>(what + " (value type)");
        if (!known_value_type(type)) {
            throw Error(path + ": " + what + " has unknown value type " + std::to_string(type) +
                        " (valid types are 0..12)");
        }
        GgufValue v = read_value(r, path, static_cast<GgufType>(type), what, 0);
        g.index_[key] = g.keys_.size();
        g.keys_.push_back(key);
        g.values_.emplace(key, std::move(v));
    }

    // Alignment.
    if (g.has("general.alignment")) {
        const GgufValue& a = g.value("general.alignment");
        if (!is_unsigned_int(a.type) && !is_signed_int(a.type))
            wrong_type(path, "general.alignment", a, "uint32");
        const int64_t av =
            is_signed_int(a.type) ? a.i : static_cast<int64_t>(std::min<uint64_t>(a.u, INT64_MAX));
        if (av <= 0 || (av & (av - 1)) != 0 || av > (int64_t(1) << 30)) {
            throw Error(path + ": metadata key 'general.alignment' = " + std::to_string(av) +
                        " is not a positive power of two");
        }
        g.alignment_ = static_cast<uint64_t>(av);
    }

    // Tensor infos.
    for (uint64_t k = 0; k < n_tensors; ++k) {
        GgufTensorInfo t;
        t.name = r.str("name of tensor #" + std::to_string(k));
        const std::string what = "tensor '" + t.name + "'";
        if (t.name.empty()) throw Error(path + ": tensor #" + std::to_string(k) + " has an empty name");
        if (g.tensor_index_.count(t.name))
            throw Error(path + ": duplicate " + what + " (tensor info #" + std::to_string(k) + ")");
        const uint32_t n_dims = r.scalar<uint32_t>(what + " (n_dims)");
        if (n_dims < 1 || n_dims > kMaxDims) {
            throw Error(path + ": " + what + " has n_dims = " + std::to_string(n_dims) + " (must be 1.." +
                        std::to_string(kMaxDims) + ")");
        }
        uint64_t numel = 1;
        for (uint32_t d = 0; d < n_dims; ++d) {
            const uint64_t n = r.scalar<uint64_t>(what + " (dimension " + std::to_string(d) + ")");
            t.ne.push_back(n);
            if (n > uint64_t(INT64_MAX)) {
                throw Error(path + ": " + what + " has dimension " + std::to_string(d) + " = " +
                            std::to_string(n) + ", larger than INT64_MAX");
            }
            numel = mul_sat(numel, n);
        }
        t.type = r.scalar<uint32_t>(what + " (ggml type)");
        const GgmlType* gt = find_ggml_type(t.type);
        if (!gt) {
            throw Error(path + ": " + what + " has unknown ggml type " + std::to_string(t.type) +
                        " (shape ne " + ne_str(t.ne) + ")");
        }
        if (t.ne[0] % gt->block != 0) {
            throw Error(path + ": " + what + " of type " + gt->name +
                        " has ne[0] = " + std::to_string(t.ne[0]) +
                        ", not a multiple of the type's block size " + std::to_string(gt->block));
        }
        if (numel >= uint64_t(INT64_MAX)) {
            throw Error(path + ": " + what + " has shape ne " + ne_str(t.ne) +
                        " whose element count overflows");
        }
        t.nbytes = mul_sat(numel / gt->block, gt->bytes);
        t.offset = r.scalar<uint64_t>(what + " (data offset)");
        if (t.offset % g.alignment_ != 0) {
            throw Error(path + ": " + what + " has data offset " + std::to_string(t.offset) +
                        ", not a multiple of the alignment " + std::to_string(g.alignment_));
        }
        g.tensor_index_[t.name] = g.tensors_.size();
        g.tensors_.push_back(std::move(t));
    }

    // Data section: starts at the next multiple of the alignment after the tensor infos.
    const uint64_t end_of_infos = r.pos();
    g.data_start_ = add_sat(end_of_infos, (g.alignment_ - end_of_infos % g.alignment_) % g.alignment_);
    const uint64_t data_size = g.data_start_ <= size ? size - g.data_start_ : 0;
    for (const GgufTensorInfo& t : g.tensors_) {
        const uint64_t end = add_sat(t.offset, t.nbytes);
        if (t.nbytes > 0 && (g.data_start_ > size || end > data_size)) {
            throw Error(path + ": tensor '" + t.name + "' (" + ggml_type_name(t.type) + ", ne " +
                        ne_str(t.ne) + ") occupies bytes [" + std::to_string(t.offset) + ", " +
                        (end == std::numeric_limits<uint64_t>::max() ? std::string("overflow")
                                                                     : std::to_string(end)) +
                        ") of the data section, which is only " + std::to_string(data_size) +
                        " bytes (data starts at byte " + std::to_string(g.data_start_) + " of " +
                        std::to_string(size) + ")");
        }
    }
    std::vector<const GgufTensorInfo*> by_offset;
    for (const GgufTensorInfo& t : g.tensors_)
        if (t.nbytes > 0) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(),
              [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
    for (size_t k = 1; k < by_offset.size(); ++k) {
        const GgufTensorInfo& a = *by_offset[k - 1];
        const GgufTensorInfo& b = *by_offset[k];
        if (a.offset + a.nbytes > b.offset) {
            throw Error(path + ": tensor '" + a.name + "' (bytes [" + std::to_string(a.offset) + ", " +
                        std::to_string(a.offset + a.nbytes) + ")) overlaps tensor '" + b.name + "' (bytes [" +
                        std::to_string(b.offset) + ", " + std::to_string(b.offset + b.nbytes) +
                        ")) in the data section");
        }
    }
    g.map_ = detail::MappedFile::open(path, size);
    return g;
}

// ---- metadata getters -------------------------------------------------------------------------

const GgufValue& GgufFile::value(const std::string& key) const {
    auto it = values_.find(key);
    if (it == values_.end()) throw Error(path_ + ": missing metadata key '" + key + "'");
    return it->second;
}

std::string GgufFile::get_string(const std::string& key) const {
    const GgufValue& v = value(key);
    if (v.type != GgufType::String) wrong_type(path_, key, v, "string");
    return v.s;
}
std::string GgufFile::get_string(const std::string& key, const std::string& fallback) const {
    return has(key) ? get_string(key) : fallback;
}

uint64_t GgufFile::get_uint(const std::string& key) const {
    const GgufValue& v = value(key);
    if (is_unsigned_int(v.type)) return v.u;
    if (is_signed_int(v.type)) {
        if (v.i < 0)
            throw Error(path_ + ": metadata key '" + key + "' = " + std::to_string(v.i) +
                        " must not be negative");
        return static_cast<uint64_t>(v.i);
    }
    wrong_type(path_, key, v, "an unsigned integer");
}
uint64_t GgufFile::get_uint(const std::string& key, uint64_t fallback) const {
    return has(key) ? get_uint(key) : fallback;
}

int64_t GgufFile::get_int(const std::string& key) const {
    const GgufValue& v = value(key);
    if (is_signed_int(v.type)) return v.i;
    if (is_unsigned_int(v.type)) {
        if (v.u > uint64_t(INT64_MAX))
            throw Error(path_ + ": metadata key '" + key + "' = " + std::to_string(v.u) +
                        " does not fit in int64");
        return static_cast<int64_t>(v.u);
    }
    wrong_type(path_, key, v, "an integer");
}

double GgufFile::get_float(const std::string& key) const {
    const GgufValue& v = value(key);
    if (is_float(v.type)) return v.f;
    if (is_signed_int(v.type)) return static_cast<double>(v.i);
    if (is_unsigned_int(v.type)) return static_cast<double>(v.u);
    wrong_type(path_, key, v, "a number (float32 / float64)");
}
double GgufFile::get_float(const std::string& key, double fallback) const {
    return has(key) ? get_float(key) : fallback;
}

bool GgufFile::get_bool(const std::string& key) const {
    const GgufValue& v = value(key);
    if (v.type != GgufType::Bool) wrong_type(path_, key, v, "bool");
    return v.u != 0;
}
bool GgufFile::get_bool(const std::string& key, bool fallback) const {
    return has(key) ? get_bool(key) : fallback;
}

const std::vector<std::string>& GgufFile::get_string_array(const std::string& key) const {
    const GgufValue& v = value(key);
    if (v.type != GgufType::Array || v.elem != GgufType::String) wrong_type(path_, key, v, "array of string");
    return v.strings;
}

std::vector<double> GgufFile::get_float_array(const std::string& key) const {
    const GgufValue& v = value(key);
    if (v.type != GgufType::Array) wrong_type(path_, key, v, "array of numbers");
    if (is_float(v.elem)) return v.floats;
    if (is_signed_int(v.elem)) return std::vector<double>(v.ints.begin(), v.ints.end());
    if (is_unsigned_int(v.elem)) return std::vector<double>(v.uints.begin(), v.uints.end());
    wrong_type(path_, key, v, "array of numbers");
}

std::vector<int64_t> GgufFile::get_int_array(const std::string& key) const {
    const GgufValue& v = value(key);
    if (v.type != GgufType::Array) wrong_type(path_, key, v, "array of integers");
    if (is_signed_int(v.elem)) return v.ints;
    if (is_unsigned_int(v.elem)) {
        std::vector<int64_t> out(v.uints.size());
        for (size_t k = 0; k < out.size(); ++k) {
            if (v.uints[k] > uint64_t(INT64_MAX)) {
                throw Error(path_ + ": metadata key '" + key + "' element " + std::to_string(k) + " = " +
                            std::to_string(v.uints[k]) + " does not fit in int64");
            }
            out[k] = static_cast<int64_t>(v.uints[k]);
        }
        return out;
    }
    wrong_type(path_, key, v, "array of integers");
}

// ---- tensors ----------------------------------------------------------------------------------

const GgufTensorInfo& GgufFile::tensor(const std::string& name) const {
    auto it = tensor_index_.find(name);
    if (it == tensor_index_.end()) throw Error(path_ + ": missing tensor '" + name + "'");
    return tensors_[it->second];
}

template <class T>
Tensor<T> GgufFile::read(const std::string& name, const std::vector<int64_t>& expected_shape) const {
    const GgufTensorInfo& t = tensor(name);
    if (t.type != kF32 && t.type != kF16 && t.type != kBF16) {
        throw Error("unsupported tensor type " + ggml_type_name(t.type) + " for tensor '" + name + "' in " +
                    path_ + " (only F32, F16, BF16 are supported)");
    }
    const std::vector<int64_t> shape = t.shape();
    if (!expected_shape.empty() && shape != expected_shape) {
        throw Error(path_ + ": tensor '" + name + "' has shape " + shape_str(shape) + " (ggml ne " +
                    ne_str(t.ne) + "), expected " + shape_str(expected_shape));
    }
    Tensor<T> out(shape);
    const uint64_t offset = data_start_ + t.offset;
    const DType stored = t.type == kF32 ? DType::F32 : t.type == kF16 ? DType::F16 : DType::BF16;
    detail::widen_bytes(map_->bytes(offset, t.nbytes, "the data of tensor '" + name + "'"), stored,
                        out.size(), out.data.data());
    map_->release(offset, t.nbytes);
    return out;
}

template Tensor<float> GgufFile::read<float>(const std::string&, const std::vector<int64_t>&) const;
template Tensor<double> GgufFile::read<double>(const std::string&, const std::vector<int64_t>&) const;

// ---- llama model -------------------------------------------------------------------------------

namespace {

// A positive int from a metadata key (sizes, counts).
int positive_int(const GgufFile& g, const std::string& key, uint64_t v) {
    if (v == 0 || v > uint64_t(kMaxDim)) {
        throw Error(g.path() + ": metadata key '" + key + "' = " + std::to_string(v) +
                    " is out of range (1.." + std::to_string(kMaxDim) + ")");
    }
    return static_cast<int>(v);
}
int required_int(const GgufFile& g, const std::string& key) { return positive_int(g, key, g.get_uint(key)); }

// The GGUF file as the tensor plan's source (tensor_plan.hpp).
struct GgufSource {
    const GgufFile& g;

    const std::string& path() const { return g.path(); }
    bool has(const std::string& name) const { return g.has_tensor(name); }
    void check_tensor(const std::string& name, const std::vector<int64_t>& shape) const {
        const GgufTensorInfo& t = g.tensor(name);
        if (t.type != kF32 && t.type != kF16 && t.type != kBF16)
            throw Error("unsupported tensor type " + ggml_type_name(t.type) + " for tensor '" + name +
                        "' in " + g.path() + " (only F32, F16, BF16 are supported)");
        if (t.shape() != shape)
            throw Error(g.path() + ": tensor '" + name + "' has shape " + shape_str(t.shape()) +
                        " (ggml ne " + ne_str(t.ne) + "), expected " + shape_str(shape));
    }
    std::vector<std::string> tensor_names() const {
        std::vector<std::string> out;
        for (const GgufTensorInfo& t : g.tensors()) out.push_back(t.name);
        return out;
    }
    [[noreturn]] void unexpected_tensor(const std::string& name) const {
        throw Error(g.path() + ": unexpected tensor '" + name + "' for a llama model");
    }
    template <class T>
    Tensor<T> read(const std::string& name, const std::vector<int64_t>& shape) const {
        return g.read<T>(name, shape);
    }
};

template <class T>
using GgufPlan = detail::TensorPlan<T, GgufSource>;

using detail::TensorNames;

// rope_freqs.weight is read with the config (read_gguf_model).
bool ignored_tensor(const std::string& name) { return name == "rope_freqs.weight"; }

}  // namespace

Config gguf_config(const GgufFile& g) {
    const std::string& path = g.path();
    const std::string arch = g.get_string("general.architecture");
    if (arch != "llama") {
        throw Error(path + ": general.architecture is '" + arch +
                    "'; only 'llama' (LLaMA / Mistral family) GGUF models are supported");
    }
    if (g.get_uint("split.count", 1) > 1)
        throw Error(path + ": split GGUF models (split.count = " + std::to_string(g.get_uint("split.count")) +
                    ") are not supported; merge the parts first");
    if (g.get_uint("llama.expert_count", 0) > 0)
        throw Error(path + ": mixture-of-experts llama models (llama.expert_count = " +
                    std::to_string(g.get_uint("llama.expert_count")) + ") are not supported");
    const std::string scaling = g.get_string("llama.rope.scaling.type", "none");
    if (scaling != "none" && scaling != "linear")
        throw Error(path + ": metadata key 'llama.rope.scaling.type' = '" + scaling +
                    "' is not supported (none, linear)");

    Config c = preset(Arch::Llama);
    c.source = path;
    c.D = required_int(g, "llama.embedding_length");
    c.I = required_int(g, "llama.feed_forward_length");
    c.L = required_int(g, "llama.block_count");
    c.H = required_int(g, "llama.attention.head_count");
    c.Hkv = g.has("llama.attention.head_count_kv") ? required_int(g, "llama.attention.head_count_kv") : c.H;
    if (g.has("llama.attention.key_length")) {
        c.Dh = required_int(g, "llama.attention.key_length");
        const int dv =
            g.has("llama.attention.value_length") ? required_int(g, "llama.attention.value_length") : c.Dh;
        if (dv != c.Dh) {
            throw Error(path + ": llama.attention.value_length = " + std::to_string(dv) +
                        " differs from llama.attention.key_length = " + std::to_string(c.Dh) +
                        " (unsupported)");
        }
    } else {
        if (c.D % c.H != 0) {
            throw Error(path + ": llama.embedding_length = " + std::to_string(c.D) +
                        " is not a multiple of llama.attention.head_count = " + std::to_string(c.H));
        }
        c.Dh = c.D / c.H;
    }
    if (g.has("llama.rope.dimension_count")) {
        const uint64_t rd = g.get_uint("llama.rope.dimension_count");
        if (rd != uint64_t(c.Dh)) {
            throw Error(path + ": llama.rope.dimension_count = " + std::to_string(rd) +
                        " differs from the head dim " + std::to_string(c.Dh) +
                        " (partial rotary embeddings are not supported)");
        }
    }
    c.max_positions = required_int(g, "llama.context_length");
    c.norm_eps = g.get_float("llama.attention.layer_norm_rms_epsilon");
    c.rope_theta = g.get_float("llama.rope.freq_base", 10000.0);
    c.rope = RopeStyle::Interleaved;  // see gguf.hpp: q / k rows are stored pair-interleaved
    if (scaling == "linear") {
        c.rope_scaling.kind = RopeScalingKind::Linear;
        c.rope_scaling.factor = g.get_float("llama.rope.scaling.factor");
    }
    // Llama 3.1-style scaling is stored as the tensor rope_freqs.weight [Dh/2] (F32): the
    // divisor of each pair's frequency, as llama.cpp's converter writes it and its RoPE
    // applies it (frequency / rope_freqs[i]).
    if (g.has_tensor("rope_freqs.weight")) {
        const GgufTensorInfo& rf = g.tensor("rope_freqs.weight");
        if (rf.type != kF32)
            throw Error(path + ": tensor 'rope_freqs.weight' has type " + ggml_type_name(rf.type) +
                        ", expected F32");
        const Tensor<double> f = g.read<double>("rope_freqs.weight", {int64_t(c.Dh / 2)});
        c.rope_freq_factors = f.data;
    }

    const GgufTensorInfo& emb = g.tensor("token_embd.weight");
    if (emb.ne.size() != 2) {
        throw Error(path + ": tensor 'token_embd.weight' has ggml ne " + ne_str(emb.ne) +
                    ", expected 2 dimensions [embedding_length, vocab]");
    }
    c.V = g.has("llama.vocab_size") ? required_int(g, "llama.vocab_size")
                                    : positive_int(g, "token_embd.weight rows", emb.ne[1]);
    c.tied_embeddings = !g.has_tensor("output.weight");
    auto token_id = [&](const std::string& key, int fallback) {
        if (!g.has(key)) return fallback;
        const uint64_t id = g.get_uint(key);
        if (id >= uint64_t(c.V)) {
            throw Error(path + ": metadata key '" + key + "' = " + std::to_string(id) +
                        " is outside the vocabulary of " + std::to_string(c.V) + " tokens");
        }
        return static_cast<int>(id);
    };
    c.bos_id = token_id("tokenizer.ggml.bos_token_id", 1);
    c.eos_id = token_id("tokenizer.ggml.eos_token_id", 2);
    validate_config(c);

    // Every block has 9 tensors of its own: check the block count against the tensors present
    // before planning (and allocating) anything per block.
    if (mul_sat(uint64_t(c.L), 9) > g.tensors().size()) {
        throw Error(path + ": metadata key 'llama.block_count' = " + std::to_string(c.L) +
                    " needs at least " + std::to_string(9 * uint64_t(c.L)) +
                    " tensors, but the file holds only " + std::to_string(g.tensors().size()));
    }
    return c;
}

template <class T>
Model<T> read_gguf_model(const std::string& path, WeightMode mode) {
    const GgufFile g = GgufFile::open(path);
    Model<T> m;
    m.cfg = gguf_config(g);
    const Config& c = m.cfg;
    detail::load_planned<T, GgufFile, GgufSource>(
        m, g, mode,
        [&c](Weights<T>& w, GgufPlan<T>& p, bool layers) {
            detail::plan_llama_model(c, w, p, TensorNames::Gguf, layers);
        },
        [c](int l, LayerWeights<T>& ly, GgufPlan<T>& p) {
            detail::plan_llama_block(c, l, ly, p, TensorNames::Gguf);
        },
        ignored_tensor);
    return m;
}

template Model<float> read_gguf_model<float>(const std::string&, WeightMode);
template Model<double> read_gguf_model<double>(const std::string&, WeightMode);

}  // namespace depass
