// report_json.cpp -- an attribution report as JSON, as a directory of .npy files,
// and the all-or-nothing writing of several outputs (OutputBatch).
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "depass/report.hpp"
#include "io/json_guard.hpp"

namespace fs = std::filesystem;

namespace depass {

// ---- the report's sizes --------------------------------------------------------------------

void AttributionReport::check() const {
    auto need = [](const char* field, size_t have, size_t want) {
        if (have != want)
            throw Error(std::string("attribution report: ") + field + " has " + std::to_string(have) +
                        " entries, expected " + std::to_string(want));
    };
    if (N <= 0 || M <= 0 || K <= 0)
        throw Error("attribution report: sizes N=" + std::to_string(N) + " M=" + std::to_string(M) +
                    " K=" + std::to_string(K) + " must all be positive");
    need("component_names", component_names.size(), size_t(M));
    if (!sites.empty()) need("sites", sites.size(), size_t(M));
    need("input_ids", input_ids.size(), size_t(N));
    need("token_pieces", token_pieces.size(), size_t(N));
    need("targets", targets.size(), size_t(N) * K);
    need("target_pieces", target_pieces.size(), size_t(N) * K);
    need("target_logits", target_logits.size(), size_t(N) * K);
    need("logit_attribution", logit_attribution.size(), size_t(M) * N * K);
    if (position < -1 || position >= N)
        throw Error("attribution report: position " + std::to_string(position) + " is outside [0, " +
                    std::to_string(N) + ")");
    for (const ComponentSite& s : sites)
        if (s.index >= 0 && level == "head" && (heads_per_layer <= 0 || s.index >= heads_per_layer))
            throw Error("attribution report: head " + std::to_string(s.index) + " is outside [0, " +
                        std::to_string(heads_per_layer) + ") (heads_per_layer)");
    if (!qk.present()) return;
    const size_t Hs = qk.heads.size(), Nq = qk.queries.size();
    if (Hs == 0 || Nq == 0 || qk.top <= 0)
        throw Error("attribution report: qk has " + std::to_string(Hs) + " heads, " + std::to_string(Nq) +
                    " query positions and " + std::to_string(qk.top) +
                    " pairs per logit; all must be positive");
    for (int i : qk.queries)
        if (i < 0 || i >= N)
            throw Error("attribution report: qk query position " + std::to_string(i) + " is outside [0, " +
                        std::to_string(N) + ")");
    need("qk.key_share", qk.key_share.size(), Hs * M * Nq * N);
    need("qk.logits", qk.logits.size(), Hs * Nq * N);
    need("qk.probs", qk.probs.size(), Hs * Nq * N);
    need("qk.top_values", qk.top_values.size(), Hs * Nq * N * qk.top);
    need("qk.top_pairs", qk.top_pairs.size(), Hs * Nq * N * qk.top * 2);
    for (int c : qk.top_pairs)
        if (c < 0 || c >= M)
            throw Error("attribution report: qk.top_pairs names component " + std::to_string(c) +
                        ", outside [0, " + std::to_string(M) + ")");
}

// ---- JSON ------------------------------------------------------------------------------------

namespace {

using OJson = nlohmann::ordered_json;

OJson meta_object(const AttributionReport& r) {
    r.check();
    OJson j;
    j["format"] = "depass-attribution";
    j["model"] = r.model;
    j["dtype"] = r.dtype;
    j["level"] = r.level;
    j["cut"] = r.cut;
    j["rule"] = r.rule;
    OJson meta = OJson::object();
    for (const auto& [k, v] : r.metadata) meta[k] = v;
    j["metadata"] = meta;
    j["completeness"] = {{"max_abs", r.completeness_max_abs},
                         {"max_rel", r.completeness_max_rel},
                         {"worst_point", r.completeness_worst_point}};
    j["N"] = r.N;
    j["M"] = r.M;
    j["K"] = r.K;
    j["component_names"] = r.component_names;
    if (!r.sites.empty()) {
        OJson s = OJson::array();
        for (const ComponentSite& c : r.sites) s.push_back({c.layer, c.index});
        j["component_sites"] = s;  // [layer, head or neuron], -1 = not a single one
        if (r.level == "head") j["heads_per_layer"] = r.heads_per_layer;
    }
    j["token_pieces"] = r.token_pieces;
    OJson tp = OJson::array();
    for (int n = 0; n < r.N; ++n) {
        OJson row = OJson::array();
        for (int k = 0; k < r.K; ++k) row.push_back(r.target_pieces[size_t(n) * r.K + k]);
        tp.push_back(row);
    }
    j["target_pieces"] = tp;
    return j;
}

// A flat row-major array as nested JSON arrays of the given shape.
template <class Get>
OJson nested(const std::vector<int64_t>& shape, size_t dim, size_t& at, const Get& get) {
    OJson a = OJson::array();
    if (dim == shape.size()) return get(at++);
    for (int64_t i = 0; i < shape[dim]; ++i) a.push_back(nested(shape, dim + 1, at, get));
    return a;
}

OJson nested_doubles(const std::vector<int64_t>& shape, const std::vector<double>& v) {
    size_t at = 0;
    if (shape.empty()) return OJson(v.at(0));
    return nested(shape, 0, at, [&](size_t i) { return OJson(v[i]); });
}

OJson nested_ints(const std::vector<int64_t>& shape, const std::vector<int>& v) {
    size_t at = 0;
    return nested(shape, 0, at, [&](size_t i) { return OJson(v[i]); });
}

std::string dump(const OJson& j, int indent) {
    return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace

std::string report_meta_json(const AttributionReport& r) { return dump(meta_object(r), 2); }

std::string render_report_json(const AttributionReport& r, const std::vector<NamedTensor>& extra) {
    OJson j = meta_object(r);
    const int64_t N = r.N, M = r.M, K = r.K;
    j["input_ids"] = r.input_ids;
    j["targets"] = nested_ints({N, K}, r.targets);
    j["target_logits"] = nested_doubles({N, K}, r.target_logits);
    j["logit_attribution"] = nested_doubles({M, N, K}, r.logit_attribution);
    for (const NamedTensor& t : extra) {
        if (j.contains(t.name))
            throw Error("report JSON: extra tensor '" + t.name + "' would replace a field");
        if (Tensor<double>::numel(t.shape) != t.values.size())
            throw Error("report JSON: tensor '" + t.name + "' has " + std::to_string(t.values.size()) +
                        " values for shape " + shape_str(t.shape));
        if (t.is_int) {
            std::vector<int> iv(t.values.begin(), t.values.end());
            j[t.name] = t.shape.empty() ? OJson(iv.at(0)) : nested_ints(t.shape, iv);
        } else {
            j[t.name] = nested_doubles(t.shape, t.values);
        }
    }
    return dump(j, -1);
}

// ---- .npy directory --------------------------------------------------------------------------

void write_npy_directory(const std::string& dir, const std::vector<NamedTensor>& tensors, DType float_dtype,
                         const std::string& meta_json) {
    if (!is_directory(dir)) throw Error(dir + ": not a directory (npy output)");
    if (float_dtype != DType::F32 && float_dtype != DType::F64)
        throw Error(dir + ": npy output stores floats as F32 or F64, not " + dtype_name(float_dtype));
    for (const NamedTensor& t : tensors) {
        if (t.name.empty() || t.name.find('/') != std::string::npos || t.name[0] == '.')
            throw Error(dir + ": tensor name '" + t.name + "' cannot be a file name");
        const std::string path = dir + "/" + t.name + ".npy";
        if (t.is_int) {
            Tensor<int64_t> x;
            x.shape = t.shape;
            x.data.assign(t.values.begin(), t.values.end());
            write_npy(path, x);
        } else if (float_dtype == DType::F32) {
            Tensor<float> x;
            x.shape = t.shape;
            x.data.assign(t.values.begin(), t.values.end());
            write_npy(path, x);
        } else {
            Tensor<double> x;
            x.shape = t.shape;
            x.data = t.values;
            write_npy(path, x);
        }
    }
    write_file_atomic(dir + "/meta.json", meta_json);
}

namespace {

// Why DIR may not be replaced by an npy output ("" = it may).
std::string npy_directory_refusal(const std::string& path) {
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(path, ec))) return "";
    if (fs::is_symlink(fs::symlink_status(path, ec))) return "is a symbolic link";
    if (!fs::is_directory(path, ec)) return "exists and is not a directory";
    bool has_meta = false;
    for (const auto& e : fs::directory_iterator(path, ec)) {
        const std::string name = e.path().filename().string();
        const bool npy = name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0;
        if (name == "meta.json")
            has_meta = true;
        else if (!npy || !e.is_regular_file(ec))
            return "holds '" + name + "', which is not part of an npy output";
    }
    if (ec) return std::string("cannot be listed (") + ec.message() + ")";
    if (fs::is_empty(path, ec)) return "";
    if (!has_meta) return "holds .npy files but no meta.json";
    try {
        auto j = detail::parse_json_checked(read_text_file(path + "/meta.json"), path + "/meta.json");
        if (j.value("format", "") != "depass-attribution")
            return "has a meta.json that is not a depass attribution";
    } catch (const std::exception&) {
        return "has a meta.json that is not a depass attribution";
    }
    return "";
}

}  // namespace

void check_npy_directory_target(const std::string& path) {
    if (path.empty()) throw Error("npy output: empty directory path");
    const std::string why = npy_directory_refusal(path);
    if (!why.empty())
        throw Error(path + ": " + why +
                    "; the npy output replaces only a directory written by an earlier run");
}

// ---- OutputBatch -----------------------------------------------------------------------------

OutputBatch::~OutputBatch() {
    if (committed_) return;
    for (const Staged& s : staged_) {
        std::error_code ec;
        if (s.is_dir)
            fs::remove_all(s.temp, ec);
        else
            fs::remove(s.temp, ec);
    }
}

namespace {

void usual_permissions(const std::string& path, mode_t mode) {
    mode_t mask = ::umask(0);
    ::umask(mask);
    ::chmod(path.c_str(), mode & ~mask);
}

}  // namespace

std::string OutputBatch::stage_file(const std::string& target) {
    if (target.empty()) throw Error("output: empty file path");
    if (is_directory(target)) throw Error(target + ": is a directory, cannot write a file there");
    for (const Staged& s : staged_)
        if (s.target == target) throw Error(target + ": the same path is given for two outputs");
    std::string tmpl = target + ".tmp-XXXXXX";
    const int fd = ::mkstemp(tmpl.data());
    if (fd < 0)
        throw Error(target + ": cannot create temporary file " + tmpl + " (" + std::strerror(errno) + ")");
    ::close(fd);
    staged_.push_back({target, tmpl, false});
    return tmpl;
}

std::string OutputBatch::stage_dir(const std::string& target) {
    check_npy_directory_target(target);
    for (const Staged& s : staged_)
        if (s.target == target) throw Error(target + ": the same path is given for two outputs");
    std::string tmpl = target + ".tmp-XXXXXX";
    if (!::mkdtemp(tmpl.data()))
        throw Error(target + ": cannot create temporary directory " + tmpl + " (" + std::strerror(errno) +
                    ")");
    usual_permissions(tmpl, 0777);
    staged_.push_back({target, tmpl, true});
    return tmpl;
}

void OutputBatch::commit() {
    if (committed_) throw Error("output: batch committed twice");
    for (const Staged& s : staged_) {
        if (!s.is_dir) {
            if (std::rename(s.temp.c_str(), s.target.c_str()) != 0)
                throw Error(s.target + ": cannot rename " + s.temp + " into place (" + std::strerror(errno) +
                            ")");
            continue;
        }
        // A directory: an earlier output at the target is moved aside, the new one
        // renamed in, and the old one removed.
        check_npy_directory_target(s.target);
        std::error_code ec;
        std::string aside;
        if (fs::exists(s.target, ec) && !fs::is_empty(s.target, ec)) {
            aside = s.target + ".old-XXXXXX";
            if (!::mkdtemp(aside.data()) || std::rename(s.target.c_str(), aside.c_str()) != 0)
                throw Error(s.target + ": cannot move the earlier output aside (" + std::strerror(errno) +
                            ")");
        }
        if (std::rename(s.temp.c_str(), s.target.c_str()) != 0) {
            const int saved = errno;
            if (!aside.empty()) std::rename(aside.c_str(), s.target.c_str());
            throw Error(s.target + ": cannot rename " + s.temp + " into place (" + std::strerror(saved) +
                        ")");
        }
        if (!aside.empty()) fs::remove_all(aside, ec);
    }
    committed_ = true;
}

}  // namespace depass
