// npy.cpp -- numpy .npy files.
//
// Reading uses a small strict parser of our own (magic, version, header dict,
// dtype, fortran_order, shape, exact data size) so that every malformed file
// gets a precise error naming it. Accepted dtypes: float16, float32, float64,
// int32, int64, little- or big-endian (swapped on load); Fortran-order arrays
// are reordered to C order on load, so the result is always row-major. Writing goes through xtensor's npy
// writer (xt::dump_npy) and then an atomic rename.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <xtensor/xadapt.hpp>
#include <xtensor/xnpy.hpp>

#include "bytes.hpp"
#include "depass/io.hpp"
#include "json_guard.hpp"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "depass reads little-endian tensor files by memcpy and needs a little-endian host"
#endif

namespace depass {

namespace {

enum class NpyType { F2, F4, F8, I4, I8 };

size_t npy_itemsize(NpyType t) {
    switch (t) {
        case NpyType::F2:
            return 2;
        case NpyType::F4:
        case NpyType::I4:
            return 4;
        case NpyType::F8:
        case NpyType::I8:
            return 8;
    }
    return 0;
}

struct NpyHeader {
    NpyType type = NpyType::F4;
    bool big_endian = false;  // '>' byte order: every item is byte-swapped on load
    bool fortran = false;     // column-major data: reordered to row-major on load
    std::string descr;
    std::vector<int64_t> shape;
    size_t data_offset = 0;
};

// A minimal reader of the Python literal dict numpy writes, e.g.
//   {'descr': '<f4', 'fortran_order': False, 'shape': (16, 64), }
class DictParser {
public:
    DictParser(const std::string& path, const std::string& text) : path_(path), s_(text) {}

    void parse(std::string* descr, bool* have_descr, bool* fortran, bool* have_fortran,
               std::vector<int64_t>* shape, bool* have_shape) {
        ws();
        expect('{');
        for (;;) {
            ws();
            if (peek() == '}') {
                ++i_;
                break;
            }
            std::string key = quoted();
            ws();
            expect(':');
            ws();
            if (key == "descr") {
                *descr = quoted();
                *have_descr = true;
            } else if (key == "fortran_order") {
                *fortran = boolean();
                *have_fortran = true;
            } else if (key == "shape") {
                *shape = tuple();
                *have_shape = true;
            } else {
                fail("unexpected key '" + key + "'");
            }
            ws();
            if (peek() == ',') {
                ++i_;
                continue;
            }
            ws();
            if (peek() == '}') {
                ++i_;
                break;
            }
            fail("expected ',' or '}'");
        }
        ws();
        if (i_ != s_.size()) fail("trailing characters after the header dict");
    }

private:
    [[noreturn]] void fail(const std::string& what) const {
        throw Error(path_ + ": malformed .npy header (" + what + " at column " + std::to_string(i_) +
                    "): " + detail::text_prefix(s_, 120));
    }
    char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
    void ws() {
        while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
    }
    void expect(char c) {
        if (peek() != c) fail(std::string("expected '") + c + "'");
        ++i_;
    }
    std::string quoted() {
        char q = peek();
        if (q != '\'' && q != '"') fail("expected a quoted string");
        ++i_;
        size_t start = i_;
        while (i_ < s_.size() && s_[i_] != q) ++i_;
        if (i_ >= s_.size()) fail("unterminated string");
        std::string out = s_.substr(start, i_ - start);
        ++i_;
        return out;
    }
    bool boolean() {
        if (s_.compare(i_, 4, "True") == 0) {
            i_ += 4;
            return true;
        }
        if (s_.compare(i_, 5, "False") == 0) {
            i_ += 5;
            return false;
        }
        fail("expected True or False");
    }
    std::vector<int64_t> tuple() {
        std::vector<int64_t> out;
        expect('(');
        for (;;) {
            ws();
            if (peek() == ')') {
                ++i_;
                return out;
            }
            if (!std::isdigit(static_cast<unsigned char>(peek()))) fail("expected a non-negative integer");
            int64_t v = 0;
            while (std::isdigit(static_cast<unsigned char>(peek()))) {
                int d = peek() - '0';
                if (v > (std::numeric_limits<int64_t>::max() - d) / 10) fail("dimension too large");
                v = v * 10 + d;
                ++i_;
            }
            if (peek() == 'L') ++i_;  // Python 2 long suffix
            out.push_back(v);
            ws();
            if (peek() == ',') {
                ++i_;
                continue;
            }
            ws();
            if (peek() != ')') fail("expected ',' or ')' in shape");
        }
    }

    const std::string& path_;
    const std::string& s_;
    size_t i_ = 0;
};

NpyHeader parse_npy_header(const std::string& path, const std::string& bytes) {
    static const char magic[] = "\x93NUMPY";
    if (bytes.size() < 10 || std::memcmp(bytes.data(), magic, 6) != 0) {
        throw Error(path + ": not a .npy file (missing the \\x93NUMPY magic)");
    }
    const unsigned char major = static_cast<unsigned char>(bytes[6]);
    size_t hlen = 0, pre = 0;
    if (major == 1) {
        hlen = static_cast<unsigned char>(bytes[8]) |
               (static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8);
        pre = 10;
    } else if (major == 2 || major == 3) {
        if (bytes.size() < 12) throw Error(path + ": truncated .npy header");
        for (int i = 3; i >= 0; --i) hlen = (hlen << 8) | static_cast<unsigned char>(bytes[8 + i]);
        pre = 12;
    } else {
        throw Error(path + ": unsupported .npy format version " + std::to_string(major));
    }
    if (pre + hlen > bytes.size()) {
        throw Error(path + ": .npy header length " + std::to_string(hlen) + " exceeds the file size " +
                    std::to_string(bytes.size()));
    }
    std::string text = bytes.substr(pre, hlen);

    NpyHeader h;
    bool fortran = false, have_descr = false, have_fortran = false, have_shape = false;
    DictParser(path, text).parse(&h.descr, &have_descr, &fortran, &have_fortran, &h.shape, &have_shape);
    if (!have_descr) throw Error(path + ": .npy header has no 'descr'");
    if (!have_fortran) throw Error(path + ": .npy header has no 'fortran_order'");
    if (!have_shape) throw Error(path + ": .npy header has no 'shape'");
    // descr = byte order ('<' little, '>' big, '=' native, '|' not applicable) + kind + item size.
    static const std::pair<const char*, NpyType> kinds[] = {{"f2", NpyType::F2},
                                                            {"f4", NpyType::F4},
                                                            {"f8", NpyType::F8},
                                                            {"i4", NpyType::I4},
                                                            {"i8", NpyType::I8}};
    bool known = false;
    if (h.descr.size() == 3 && (h.descr[0] == '<' || h.descr[0] == '>' || h.descr[0] == '=')) {
        for (const auto& k : kinds) {
            if (h.descr.compare(1, 2, k.first) == 0) {
                h.type = k.second;
                known = true;
            }
        }
    }
    if (!known) {
        throw Error(path + ": unsupported .npy dtype 'descr' = '" + detail::text_prefix(h.descr, 40) +
                    "' (supported: float16, float32, float64, int32, int64 in either byte order: "
                    "f2, f4, f8, i4, i8 after '<', '>' or '=')");
    }
    h.big_endian = h.descr[0] == '>';
    h.fortran = fortran;
    h.data_offset = pre + hlen;

    uint64_t numel = 1;
    for (int64_t d : h.shape) {
        if (__builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel)) {
            throw Error(path + ": .npy shape " + shape_str(h.shape) + " is too large");
        }
    }
    uint64_t want = 0;
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(npy_itemsize(h.type)), &want)) {
        throw Error(path + ": .npy shape " + shape_str(h.shape) + " is too large");
    }
    const uint64_t have = bytes.size() - h.data_offset;
    if (have != want) {
        throw Error(path + ": .npy data is " + std::to_string(have) + " bytes, but shape " +
                    shape_str(h.shape) + " of " + h.descr + " needs " + std::to_string(want) + " bytes");
    }
    return h;
}

// Item i of the file, in file order, byte-swapped first when the file is big-endian.
template <class Src, class T>
void convert(const char* p, size_t n, bool swap, T* out) {
    for (size_t i = 0; i < n; ++i) {
        char b[sizeof(Src)];
        std::memcpy(b, p + i * sizeof(Src), sizeof(Src));
        if (swap) std::reverse(b, b + sizeof(Src));
        Src v;
        std::memcpy(&v, b, sizeof(Src));
        if constexpr (std::is_same<Src, uint16_t>::value)
            out[i] = static_cast<T>(detail::half_to_double(v));  // float16 bits
        else
            out[i] = static_cast<T>(v);
    }
}

// Column-major (Fortran) values -> row-major: element (i_0, ..., i_{k-1}) sits at
// sum_j i_j * prod_{m<j} d_m in the file and at sum_j i_j * prod_{m>j} d_m in the result.
template <class T>
std::vector<T> fortran_to_c(const std::vector<T>& f, const std::vector<int64_t>& shape) {
    std::vector<T> c(f.size());
    const size_t k = shape.size();
    std::vector<int64_t> idx(k, 0);
    std::vector<size_t> fstride(k, 1);
    for (size_t j = 1; j < k; ++j) fstride[j] = fstride[j - 1] * static_cast<size_t>(shape[j - 1]);
    size_t off = 0;  // file offset of idx
    for (size_t n = 0; n < c.size(); ++n) {
        c[n] = f[off];
        // next row-major index: the last axis runs fastest
        for (size_t j = k; j-- > 0;) {
            if (++idx[j] < shape[j]) {
                off += fstride[j];
                break;
            }
            off -= fstride[j] * static_cast<size_t>(idx[j] - 1);
            idx[j] = 0;
        }
    }
    return c;
}

}  // namespace

template <class T>
Tensor<T> read_npy(const std::string& path, bool require_finite, bool floats_only) {
    const std::string bytes = read_text_file(path);
    const NpyHeader h = parse_npy_header(path, bytes);
    const bool src_float = h.type == NpyType::F2 || h.type == NpyType::F4 || h.type == NpyType::F8;
    if (std::is_integral<T>::value && src_float) {
        throw Error(path + ": .npy dtype '" + h.descr + "' is floating point, expected an integer array");
    }
    if (floats_only && !src_float) {
        throw Error(path + ": .npy dtype '" + h.descr +
                    "' is an integer type, expected float16, float32 or float64 (f2, f4, f8)");
    }
    Tensor<T> t;
    t.shape = h.shape;
    const size_t n = Tensor<T>::numel(h.shape);
    t.data.resize(n);
    const char* p = bytes.data() + h.data_offset;
    const bool sw = h.big_endian;
    switch (h.type) {
        case NpyType::F2:
            convert<uint16_t>(p, n, sw, t.data.data());
            break;
        case NpyType::F4:
            convert<float>(p, n, sw, t.data.data());
            break;
        case NpyType::F8:
            convert<double>(p, n, sw, t.data.data());
            break;
        case NpyType::I4:
            convert<int32_t>(p, n, sw, t.data.data());
            break;
        case NpyType::I8:
            convert<int64_t>(p, n, sw, t.data.data());
            break;
    }
    if (h.fortran && h.shape.size() > 1) t.data = fortran_to_c(t.data, h.shape);
    if constexpr (std::is_floating_point<T>::value) {
        if (require_finite) {
            for (size_t i = 0; i < n; ++i) {
                if (!std::isfinite(t.data[i])) {
                    throw Error(path + ": non-finite value " + std::to_string(t.data[i]) + " at flat index " +
                                std::to_string(i) + " (shape " + shape_str(t.shape) + ")");
                }
            }
        }
    }
    return t;
}

template <class T>
void write_npy(const std::string& path, const Tensor<T>& t) {
    std::vector<size_t> shape;
    for (int64_t d : t.shape) {
        if (d < 0) throw Error(path + ": cannot write shape " + shape_str(t.shape) + " (negative dimension)");
        shape.push_back(static_cast<size_t>(d));
    }
    if (Tensor<T>::numel(t.shape) != t.data.size()) {
        throw Error(path + ": tensor has " + std::to_string(t.data.size()) + " values but shape " +
                    shape_str(t.shape) + " needs " + std::to_string(Tensor<T>::numel(t.shape)));
    }
    auto view = xt::adapt(t.data.data(), t.data.size(), xt::no_ownership(), shape);
    write_file_atomic(path, xt::dump_npy(view));
}

template Tensor<float> read_npy<float>(const std::string&, bool, bool);
template Tensor<double> read_npy<double>(const std::string&, bool, bool);
template Tensor<int32_t> read_npy<int32_t>(const std::string&, bool, bool);
template Tensor<int64_t> read_npy<int64_t>(const std::string&, bool, bool);
template void write_npy<float>(const std::string&, const Tensor<float>&);
template void write_npy<double>(const std::string&, const Tensor<double>&);
template void write_npy<int32_t>(const std::string&, const Tensor<int32_t>&);
template void write_npy<int64_t>(const std::string&, const Tensor<int64_t>&);

}  // namespace depass
