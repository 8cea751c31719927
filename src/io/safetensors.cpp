// safetensors.cpp -- reading (single file or sharded index) and writing of the
// safetensors format:
//
//   [u64 little-endian N][N bytes of JSON header][data section]
//
// The header maps tensor names to {dtype, shape, data_offsets=[begin, end]}
// (offsets relative to the data section) plus an optional "__metadata__"
// string -> string map. Everything is validated on open; tensor data is read
// lazily, one tensor at a time, with a seek into the right file.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <type_traits>

#include "bytes.hpp"
#include "depass/io.hpp"
#include "json_guard.hpp"
#include "mapped_file.hpp"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "depass reads little-endian tensor files by memcpy and needs a little-endian host"
#endif

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace depass {

using detail::bf16_to_float;
using detail::half_to_double;

const char* dtype_name(DType t) {
    switch (t) {
        case DType::F16:
            return "F16";
        case DType::BF16:
            return "BF16";
        case DType::F32:
            return "F32";
        case DType::F64:
            return "F64";
        case DType::I32:
            return "I32";
        case DType::I64:
            return "I64";
    }
    return "?";
}

size_t dtype_size(DType t) {
    switch (t) {
        case DType::F16:
            return 2;
        case DType::BF16:
            return 2;
        case DType::F32:
            return 4;
        case DType::F64:
            return 8;
        case DType::I32:
            return 4;
        case DType::I64:
            return 8;
    }
    return 0;
}

namespace {

bool parse_dtype(const std::string& s, DType* out) {
    static const std::pair<const char*, DType> table[] = {{"F16", DType::F16}, {"BF16", DType::BF16},
                                                          {"F32", DType::F32}, {"F64", DType::F64},
                                                          {"I32", DType::I32}, {"I64", DType::I64}};
    for (const auto& e : table) {
        if (s == e.first) {
            *out = e.second;
            return true;
        }
    }
    return false;
}

bool is_float_dtype(DType t) {
    return t == DType::F16 || t == DType::BF16 || t == DType::F32 || t == DType::F64;
}

// a * b, saturating at UINT64_MAX (sizes read from untrusted headers).
uint64_t mul_sat(uint64_t a, uint64_t b) {
    uint64_t r;
    if (__builtin_mul_overflow(a, b, &r)) return std::numeric_limits<uint64_t>::max();
    return r;
}

// Never the whole value: a header field may hold megabytes of nested arrays.
std::string json_short(const json& j) { return detail::json_brief(j); }

// The largest JSON header accepted (the limit of the reference implementation too).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

uint64_t file_size_or_throw(const std::string& path) {
    std::error_code ec;
    if (!fs::exists(path, ec)) throw Error("no such file or directory: " + path);
    if (fs::is_directory(path, ec)) throw Error(path + ": is a directory, expected a .safetensors file");
    uint64_t size = fs::file_size(path, ec);
    if (ec) throw Error(path + ": cannot determine the file size (" + ec.message() + ")");
    return size;
}

// Parses and validates one .safetensors file. Appends its tensors to `tensors`
// (error on a name already present, i.e. duplicated across shards).
void parse_single(const std::string& path, std::map<std::string, TensorInfo>& tensors,
                  std::map<std::string, std::string>& metadata, uint64_t* data_start) {
    const uint64_t size = file_size_or_throw(path);
    if (size < 8) {
        throw Error(path + ": file is " + std::to_string(size) +
                    " bytes, shorter than the 8-byte safetensors header length field");
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path + ": cannot open file for reading");
    unsigned char lenbuf[8];
    in.read(reinterpret_cast<char*>(lenbuf), 8);
    if (!in) throw Error(path + ": cannot read the 8-byte header length");
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | lenbuf[i];
    if (hlen > kMaxHeaderBytes) {
        throw Error(path + ": header length " + std::to_string(hlen) + " is larger than the " +
                    std::to_string(kMaxHeaderBytes) + "-byte limit for a safetensors JSON header");
    }
    if (hlen > size - 8) {
        throw Error(path + ": header length " + std::to_string(hlen) + " exceeds the file size " +
                    std::to_string(size) + " (8 + header length must be <= file size)");
    }
    std::string header(static_cast<size_t>(hlen), '\0');
    in.read(header.data(), static_cast<std::streamsize>(hlen));
    if (!in) throw Error(path + ": cannot read the " + std::to_string(hlen) + "-byte header");
    const uint64_t data_size = size - 8 - hlen;
    *data_start = 8 + hlen;

    const json h = detail::parse_json_checked(header, path, "malformed JSON header");
    if (!h.is_object())
        throw Error(path + ": JSON header is not an object (got " + std::string(detail::json_type(h)) + ")");

    std::vector<TensorInfo> local;
    for (auto it = h.begin(); it != h.end(); ++it) {
        const std::string& name = it.key();
        const json& v = it.value();
        if (name == "__metadata__") {
            if (v.is_null()) continue;
            if (!v.is_object()) throw Error(path + ": field '__metadata__' must be an object of strings");
            for (auto m = v.begin(); m != v.end(); ++m) {
                if (!m.value().is_string()) {
                    throw Error(path + ": field '__metadata__." + m.key() + "' must be a string, got " +
                                json_short(m.value()));
                }
                metadata[m.key()] = m.value().get<std::string>();
            }
            continue;
        }
        const std::string where = path + ": tensor '" + name + "'";
        if (!v.is_object())
            throw Error(where + ": entry must be an object, got " + std::string(detail::json_type(v)));
        for (const char* f : {"dtype", "shape", "data_offsets"}) {
            if (!v.contains(f)) throw Error(where + ": missing field '" + f + "'");
        }
        TensorInfo ti;
        ti.name = name;
        ti.file = path;

        const json& jd = v["dtype"];
        if (!jd.is_string()) throw Error(where + ": field 'dtype' must be a string, got " + json_short(jd));
        if (!parse_dtype(jd.get<std::string>(), &ti.dtype)) {
            throw Error(where + ": unsupported dtype '" + jd.get<std::string>() +
                        "' (supported: F16, BF16, F32, F64, I32, I64)");
        }

        const json& js = v["shape"];
        if (!js.is_array()) throw Error(where + ": field 'shape' must be an array, got " + json_short(js));
        uint64_t numel = 1;
        for (const json& d : js) {
            if (!d.is_number_integer()) {
                throw Error(where + ": field 'shape' must hold integers, got " + json_short(js));
            }
            if (d.is_number_unsigned()) {
                uint64_t u = d.get<uint64_t>();
                if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
                    throw Error(where + ": shape dimension " + std::to_string(u) + " is too large");
                }
                ti.shape.push_back(static_cast<int64_t>(u));
            } else {
                int64_t s = d.get<int64_t>();
                if (s < 0) {
                    throw Error(where + ": field 'shape' has negative dimension " + std::to_string(s) +
                                " in " + json_short(js));
                }
                ti.shape.push_back(s);
            }
            numel = mul_sat(numel, static_cast<uint64_t>(ti.shape.back()));
        }

        const json& jo = v["data_offsets"];
        if (!jo.is_array() || jo.size() != 2 || !jo[0].is_number_integer() || !jo[1].is_number_integer()) {
            throw Error(where + ": field 'data_offsets' must be [begin, end] integers, got " +
                        json_short(jo));
        }
        if ((!jo[0].is_number_unsigned() && jo[0].get<int64_t>() < 0) ||
            (!jo[1].is_number_unsigned() && jo[1].get<int64_t>() < 0)) {
            throw Error(where + ": field 'data_offsets' has a negative offset: " + json_short(jo));
        }
        ti.begin = jo[0].get<uint64_t>();
        ti.end = jo[1].get<uint64_t>();
        if (ti.begin > ti.end) {
            throw Error(where + ": field 'data_offsets' " + json_short(jo) + " has begin > end");
        }
        if (ti.end > data_size) {
            throw Error(where + ": field 'data_offsets' end " + std::to_string(ti.end) +
                        " is beyond the data section size " + std::to_string(data_size));
        }
        const uint64_t want = mul_sat(numel, dtype_size(ti.dtype));
        if (want != ti.end - ti.begin) {
            throw Error(where + ": shape " + shape_str(ti.shape) + " x " + dtype_name(ti.dtype) + " needs " +
                        std::to_string(want) + " bytes but data_offsets " + json_short(jo) + " span " +
                        std::to_string(ti.end - ti.begin));
        }
        local.push_back(std::move(ti));
    }

    // Overlap check: sort by begin, compare each non-empty range with the
    // furthest-reaching range seen so far.
    std::vector<const TensorInfo*> order;
    for (const auto& t : local) order.push_back(&t);
    std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
        return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
    });
    const TensorInfo* reach = nullptr;
    for (const TensorInfo* t : order) {
        if (t->begin == t->end) continue;
        if (reach && t->begin < reach->end) {
            throw Error(path + ": tensors '" + reach->name + "' [" + std::to_string(reach->begin) + ", " +
                        std::to_string(reach->end) + ") and '" + t->name + "' [" + std::to_string(t->begin) +
                        ", " + std::to_string(t->end) + ") have overlapping data_offsets");
        }
        if (!reach || t->end > reach->end) reach = t;
    }

    for (auto& t : local) {
        auto found = tensors.find(t.name);
        if (found != tensors.end()) {
            throw Error(path + ": tensor '" + t.name + "' also appears in " + found->second.file);
        }
        std::string n = t.name;
        tensors.emplace(std::move(n), std::move(t));
    }
}

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

SafeTensors SafeTensors::open(const std::string& path) {
    SafeTensors st;
    st.path_ = path;
    if (!file_exists(path)) throw Error("no such file or directory: " + path);

    if (!ends_with(path, ".json")) {
        uint64_t start = 0;
        parse_single(path, st.tensors_, st.metadata_, &start);
        st.data_start_[path] = start;
        st.map_files();
        return st;
    }

    // Sharded checkpoint: {"metadata": {...}, "weight_map": {tensor: shard file}}.
    const json idx = detail::parse_json_checked(read_text_file(path), path);
    if (!idx.is_object()) throw Error(path + ": index must be a JSON object");
    if (!idx.contains("weight_map")) throw Error(path + ": missing field 'weight_map'");
    const json& wm = idx["weight_map"];
    if (!wm.is_object()) throw Error(path + ": field 'weight_map' must be an object");
    if (idx.contains("metadata") && idx["metadata"].is_object()) {
        for (auto m = idx["metadata"].begin(); m != idx["metadata"].end(); ++m) {
            const json& mv = m.value();
            st.metadata_[m.key()] = mv.is_string() ? mv.get<std::string>() : detail::json_brief(mv);
        }
    }
    const fs::path dir = fs::path(path).parent_path();
    std::map<std::string, std::string> want;  // tensor -> shard path
    std::set<std::string> shards;
    for (auto it = wm.begin(); it != wm.end(); ++it) {
        if (!it.value().is_string()) {
            throw Error(path + ": field 'weight_map." + it.key() + "' must be a file name string");
        }
        const std::string shard_name = it.value().get<std::string>();
        if (shard_name.empty() || fs::path(shard_name).is_absolute() ||
            shard_name.find("..") != std::string::npos) {
            throw Error(path + ": field 'weight_map." + it.key() + "' has invalid shard name '" + shard_name +
                        "'");
        }
        const std::string shard = (dir / shard_name).string();
        want[it.key()] = shard;
        shards.insert(shard);
    }
    if (shards.empty()) throw Error(path + ": field 'weight_map' is empty");
    for (const std::string& shard : shards) {
        if (!file_exists(shard)) throw Error(path + ": shard file not found: " + shard);
        std::map<std::string, std::string> shard_meta;  // shard metadata is not merged
        uint64_t start = 0;
        parse_single(shard, st.tensors_, shard_meta, &start);
        st.data_start_[shard] = start;
    }
    for (const auto& [name, shard] : want) {
        auto it = st.tensors_.find(name);
        if (it == st.tensors_.end()) {
            throw Error(path + ": tensor '" + name + "' is listed in 'weight_map' but not found in " + shard);
        }
        if (it->second.file != shard) {
            throw Error(path + ": tensor '" + name + "' is mapped to " + shard + " but stored in " +
                        it->second.file);
        }
    }
    for (const auto& [name, info] : st.tensors_) {
        if (!want.count(name)) {
            throw Error(path + ": tensor '" + name + "' in " + info.file + " is not listed in 'weight_map'");
        }
    }
    st.map_files();
    return st;
}

void SafeTensors::map_files() {
    for (const auto& [file, start] : data_start_) maps_[file] = detail::MappedFile::open(file);
}

bool SafeTensors::has(const std::string& name) const { return tensors_.count(name) != 0; }

const TensorInfo& SafeTensors::info(const std::string& name) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) throw Error(path_ + ": no tensor '" + name + "'");
    return it->second;
}

std::vector<std::string> SafeTensors::names() const {
    std::vector<std::string> out;
    out.reserve(tensors_.size());
    for (const auto& kv : tensors_) out.push_back(kv.first);
    return out;  // std::map keeps them sorted
}

template <class T>
Tensor<T> SafeTensors::read(const std::string& name, const std::vector<int64_t>& expected_shape) const {
    const TensorInfo& ti = info(name);
    if (!expected_shape.empty() && expected_shape != ti.shape) {
        throw Error(ti.file + ": tensor '" + name + "' has shape " + shape_str(ti.shape) + ", expected " +
                    shape_str(expected_shape));
    }
    if (std::is_floating_point<T>::value && !is_float_dtype(ti.dtype)) {
        throw Error(ti.file + ": tensor '" + name + "' has dtype " + dtype_name(ti.dtype) +
                    ", expected a floating-point dtype (F16, BF16, F32, F64)");
    }
    if (std::is_integral<T>::value && is_float_dtype(ti.dtype)) {
        throw Error(ti.file + ": tensor '" + name + "' has dtype " + dtype_name(ti.dtype) +
                    ", expected an integer dtype (I32, I64)");
    }
    Tensor<T> out;
    out.shape = ti.shape;
    const size_t n = Tensor<T>::numel(ti.shape);
    out.data.resize(n);
    const uint64_t nbytes = ti.end - ti.begin;
    if (nbytes == 0) return out;

    const detail::MappedFile& map = *maps_.at(ti.file);
    const uint64_t offset = data_start_.at(ti.file) + ti.begin;
    detail::widen_bytes(map.bytes(offset, nbytes, "tensor '" + name + "'"), ti.dtype, n, out.data.data());
    map.release(offset, nbytes);
    return out;
}

template Tensor<float> SafeTensors::read<float>(const std::string&, const std::vector<int64_t>&) const;
template Tensor<double> SafeTensors::read<double>(const std::string&, const std::vector<int64_t>&) const;
template Tensor<int32_t> SafeTensors::read<int32_t>(const std::string&, const std::vector<int64_t>&) const;
template Tensor<int64_t> SafeTensors::read<int64_t>(const std::string&, const std::vector<int64_t>&) const;

void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors, DType float_dtype,
                       const std::map<std::string, std::string>& metadata) {
    if (float_dtype != DType::F32 && float_dtype != DType::F64) {
        throw Error(path + ": write_safetensors stores floats as F32 or F64, not " +
                    std::string(dtype_name(float_dtype)));
    }
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata.empty()) {
        nlohmann::ordered_json meta = nlohmann::ordered_json::object();
        for (const auto& [k, v] : metadata) meta[k] = v;
        header["__metadata__"] = meta;
    }
    std::set<std::string> seen;
    uint64_t offset = 0;
    for (const NamedTensor& t : tensors) {
        if (t.name.empty() || t.name == "__metadata__") {
            throw Error(path + ": invalid tensor name '" + t.name + "'");
        }
        if (!seen.insert(t.name).second) throw Error(path + ": duplicate tensor name '" + t.name + "'");
        for (int64_t d : t.shape) {
            if (d < 0)
                throw Error(path + ": tensor '" + t.name + "' has negative dimension in " +
                            shape_str(t.shape));
        }
        const size_t n = Tensor<double>::numel(t.shape);
        if (n != t.values.size()) {
            throw Error(path + ": tensor '" + t.name + "' has " + std::to_string(t.values.size()) +
                        " values but shape " + shape_str(t.shape) + " needs " + std::to_string(n));
        }
        const DType dt = t.is_int ? DType::I64 : float_dtype;
        const uint64_t nbytes = static_cast<uint64_t>(n) * dtype_size(dt);
        nlohmann::ordered_json e;
        e["dtype"] = dtype_name(dt);
        e["shape"] = t.shape;
        e["data_offsets"] = {offset, offset + nbytes};
        header[t.name] = e;
        offset += nbytes;
    }
    std::string hs = header.dump();
    while ((8 + hs.size()) % 8 != 0) hs.push_back(' ');

    std::string bytes;
    bytes.reserve(8 + hs.size() + static_cast<size_t>(offset));
    uint64_t hlen = hs.size();
    for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((hlen >> (8 * i)) & 0xff));
    bytes += hs;
    for (const NamedTensor& t : tensors) {
        if (t.is_int) {
            for (size_t i = 0; i < t.values.size(); ++i) {
                const double v = t.values[i];
                if (!(v == std::floor(v)) || v < -9.2233720368547758e18 || v >= 9.2233720368547758e18) {
                    throw Error(path + ": integer tensor '" + t.name +
                                "' holds non-integer value at flat index " + std::to_string(i));
                }
                int64_t x = static_cast<int64_t>(v);
                bytes.append(reinterpret_cast<const char*>(&x), 8);
            }
        } else if (float_dtype == DType::F32) {
            for (double v : t.values) {
                float x = static_cast<float>(v);
                bytes.append(reinterpret_cast<const char*>(&x), 4);
            }
        } else {
            for (double v : t.values) bytes.append(reinterpret_cast<const char*>(&v), 8);
        }
    }
    write_file_atomic(path, bytes);
}

}  // namespace depass
