// compare.cpp -- loading dumps (.safetensors or a directory of .npy) and comparing them
// tensor by tensor in forward order (see compare.hpp for the policy).
#include "depass/compare.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <tuple>

namespace fs = std::filesystem;

namespace depass {

// ---- loading ---------------------------------------------------------------

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The 'descr' of a .npy header ("<f4", "<i8", ...), or "" when it cannot be found. Only
// used to label the dtype; read_npy validates the file itself.
std::string npy_descr(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::string head(4096, '\0');
    in.read(head.data(), std::streamsize(head.size()));
    head.resize(size_t(in.gcount()));
    const size_t key = head.find("descr");
    if (key == std::string::npos) return "";
    const size_t colon = head.find(':', key);
    if (colon == std::string::npos) return "";
    const size_t open = head.find_first_of("'\"", colon);
    if (open == std::string::npos) return "";
    const size_t close = head.find(head[open], open + 1);
    if (close == std::string::npos) return "";
    return head.substr(open + 1, close - open - 1);
}

}  // namespace

Dump Dump::open(const std::string& path) {
    Dump d;
    d.path_ = path;
    if (is_directory(path)) {
        d.npy_dir_ = true;
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(path, ec)) {
            if (!e.is_regular_file() || e.path().extension() != ".npy") continue;
            const std::string name = e.path().stem().string();
            d.npy_files_[name] = e.path().string();
        }
        if (ec) throw Error(path + ": cannot list the directory (" + ec.message() + ")");
        if (d.npy_files_.empty())
            throw Error(path +
                        ": the directory holds no .npy files (expected one NAME.npy per tensor, e.g. "
                        "attn_probs.npy)");
        for (const auto& kv : d.npy_files_) d.names_.push_back(kv.first);  // alphabetical
        return d;
    }
    if (!file_exists(path)) throw Error("no such file or directory: " + path);
    if (ends_with(path, ".npy"))
        throw Error(path +
                    ": a single .npy file; give the directory that holds the .npy files (one per "
                    "tensor, named after the tensor)");
    d.st_ = std::make_shared<const SafeTensors>(SafeTensors::open(path));
    std::vector<const TensorInfo*> infos;
    for (const std::string& n : d.st_->names()) infos.push_back(&d.st_->info(n));
    std::sort(infos.begin(), infos.end(), [](const TensorInfo* a, const TensorInfo* b) {
        return std::tie(a->file, a->begin, a->name) < std::tie(b->file, b->begin, b->name);
    });
    for (const TensorInfo* t : infos) d.names_.push_back(t->name);
    if (d.names_.empty()) throw Error(path + ": the file holds no tensors");
    return d;
}

Dump Dump::from_tensors(const std::string& label, std::vector<DumpTensor> tensors) {
    Dump d;
    d.path_ = label;
    if (tensors.empty()) throw Error(label + ": holds no tensors");
    auto memory = std::make_shared<std::map<std::string, DumpTensor>>();
    for (DumpTensor& t : tensors) {
        if (memory->count(t.name)) throw Error(label + ": tensor '" + t.name + "' is given twice");
        if (Tensor<double>::numel(t.shape) != t.values.size())
            throw Error(label + ": tensor '" + t.name + "' has " + std::to_string(t.values.size()) +
                        " values for its shape " + shape_str(t.shape));
        d.names_.push_back(t.name);
        const std::string name = t.name;
        (*memory)[name] = std::move(t);
    }
    d.memory_ = std::move(memory);
    return d;
}

bool Dump::has(const std::string& name) const {
    if (memory_) return memory_->count(name) != 0;
    return npy_dir_ ? npy_files_.count(name) != 0 : st_->has(name);
}

DumpTensor Dump::read(const std::string& name) const {
    if (memory_) {
        auto it = memory_->find(name);
        if (it == memory_->end()) throw Error(path_ + ": no tensor '" + name + "'");
        return it->second;
    }
    DumpTensor t;
    t.name = name;
    if (npy_dir_) {
        auto it = npy_files_.find(name);
        if (it == npy_files_.end()) throw Error(path_ + ": no file " + name + ".npy");
        Tensor<double> x = read_npy<double>(it->second, /*require_finite=*/false);
        t.shape = std::move(x.shape);
        t.values = std::move(x.data);
        t.dtype = npy_descr(it->second);
        t.is_int = t.dtype.size() >= 2 && (t.dtype[1] == 'i' || t.dtype[1] == 'u');
        return t;
    }
    const TensorInfo& info = st_->info(name);
    t.dtype = dtype_name(info.dtype);
    if (info.dtype == DType::I32 || info.dtype == DType::I64) {
        Tensor<int64_t> x = st_->read<int64_t>(name);
        t.shape = std::move(x.shape);
        t.values.assign(x.data.begin(), x.data.end());
        t.is_int = true;
    } else {
        Tensor<double> x = st_->read<double>(name);
        t.shape = std::move(x.shape);
        t.values = std::move(x.data);
    }
    return t;
}

const std::map<std::string, std::string>& Dump::metadata() const {
    static const std::map<std::string, std::string> none;
    return st_ ? st_->metadata() : none;
}

// ---- forward order -----------------------------------------------------------

namespace {

// Position of (tensor, slice of the leading axis) in the computation:
// (group, stage, order within the stage).
using Key = std::array<int64_t, 3>;
constexpr int64_t kFinal = int64_t(1) << 40;  // after every block

// Tensors whose leading axis is the layer (or, for components_by_point, the residual point).
bool stacked(const std::string& name) {
    static const std::set<std::string> names = {"hidden_states",      "layer_outputs",      "attn_probs",
                                                "attn_out",           "post_attn_residual", "mlp_act",
                                                "components_by_point"};
    return names.count(name) != 0;
}

// `slice` is the index along the leading axis for stacked tensors (n_slices its length),
// `file_order` the position of the name in the reference file (for names not listed here).
Key stage_key(const std::string& name, int64_t slice, int64_t n_slices, int64_t file_order) {
    // group 0: the tokens
    if (name == "input_ids") return {0, 0, 0};
    // group 1: the recorded forward pass. Block l: probabilities, attention output,
    // post-attention residual, MLP activation, block output.
    if (name == "embeddings") return {1, -1, 0};
    if (name == "attn_probs") return {1, slice, 0};
    if (name == "attn_out") return {1, slice, 1};
    if (name == "post_attn_residual") return {1, slice, 2};
    if (name == "mlp_act") return {1, slice, 3};
    if (name == "layer_outputs") return {1, slice, 4};
    if (name == "hidden_states") {
        // index 0 = embeddings, index k < L = output of block k-1, index L = final norm output
        if (slice == 0) return {1, -1, 1};
        if (slice < n_slices - 1) return {1, slice - 1, 5};
        return {1, kFinal, 4};
    }
    if (name == "final_residual_prenorm") return {1, kFinal, 0};
    if (name == "final_norm_mean") return {1, kFinal, 1};
    if (name == "final_norm_inv_rms") return {1, kFinal, 2};
    if (name == "final_norm_out") return {1, kFinal, 3};
    if (name == "logits") return {1, kFinal, 5};
    // group 2: the decomposition (`depass attribute --out`)
    if (name == "targets") return {2, 0, 0};
    if (name == "target_logits") return {2, 0, 1};
    if (name == "components_by_point") return {2, 1, slice};
    if (name == "components") return {2, 2, 0};
    if (name == "logit_attribution") return {2, 3, 0};
    // group 3: anything else, in the reference's file order
    return {3, file_order, 0};
}

// What a slice of a stacked tensor is, for messages.
std::string slice_label(const std::string& name, int64_t slice, int64_t n_slices) {
    if (name == "hidden_states") {
        const std::string what = slice == 0              ? "the embeddings"
                                 : slice == n_slices - 1 ? "the final norm output"
                                                         : "the output of block " + std::to_string(slice - 1);
        return "hidden_states[" + std::to_string(slice) + "] (" + what + ")";
    }
    if (name == "components_by_point") return "residual point " + std::to_string(slice);
    return "layer " + std::to_string(slice);
}

// ---- formatting ---------------------------------------------------------------

// v as the printf conversion `spec` ("%.2e", ...) writes it.
std::string printf_number(const char* spec, double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, spec, v);
    return buf;
}

std::string sci(double v) { return printf_number("%.2e", v); }
std::string num(double v) { return printf_number("%.9g", v); }
std::string opt_num(double v) { return printf_number("%g", v); }

std::string pad(const std::string& s, size_t w) {
    return s.size() >= w ? s + " " : s + std::string(w - s.size(), ' ');
}

std::string value_str(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "Inf" : "-Inf";
    return num(v);
}

void check_options(const CompareOptions& opt) {
    if (!(opt.rtol >= 0) || !std::isfinite(opt.rtol))
        throw Error("compare: rtol must be a finite number >= 0, got " + opt_num(opt.rtol));
    if (!(opt.atol >= 0) || !std::isfinite(opt.atol))
        throw Error("compare: atol must be a finite number >= 0, got " + opt_num(opt.atol));
}

// Names the likely cause of a shape mismatch.
std::string shape_hint(const std::vector<int64_t>& ref, const std::vector<int64_t>& cand) {
    if (cand.size() == ref.size() + 1 && cand[0] == 1 && std::equal(ref.begin(), ref.end(), cand.begin() + 1))
        return "; the candidate has an extra leading axis of size 1 (a batch axis?): the reference names "
               "have no batch axis, drop it";
    std::vector<int64_t> a = ref, b = cand;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    if (a == b) return "; the same dimensions in another order: check the axis order";
    if (Tensor<double>::numel(ref) == Tensor<double>::numel(cand))
        return "; the same number of values in another shape: check the axis order and the reshapes";
    return "";
}

bool narrow_float(const std::string& dtype) {
    return dtype == "F32" || dtype == "F16" || dtype == "BF16" || dtype == "<f4" || dtype == "<f2";
}

}  // namespace

// ---- comparing -----------------------------------------------------------------

std::vector<int64_t> unravel_index(size_t flat, const std::vector<int64_t>& shape) {
    std::vector<int64_t> idx(shape.size(), 0);
    for (size_t k = shape.size(); k-- > 0;) {
        const int64_t d = shape[k];
        if (d <= 0) break;
        idx[k] = int64_t(flat % size_t(d));
        flat /= size_t(d);
    }
    return idx;
}

const char* status_name(CompareStatus s) {
    switch (s) {
        case CompareStatus::Ok:
            return "OK";
        case CompareStatus::Mismatch:
            return "FAIL";
        case CompareStatus::ShapeMismatch:
            return "FAIL (shape)";
        case CompareStatus::NonFinite:
            return "FAIL (NaN/Inf)";
        case CompareStatus::Missing:
            return "FAIL (missing)";
        case CompareStatus::Extra:
            return "extra";
    }
    return "?";
}

CompareRow compare_tensors(const DumpTensor& ref, const DumpTensor& cand, const CompareOptions& opt) {
    check_options(opt);
    CompareRow row;
    row.name = ref.name;
    row.ref_shape = ref.shape;
    row.cand_shape = cand.shape;
    row.ref_dtype = ref.dtype;
    row.cand_dtype = cand.dtype;
    row.exact = ref.is_int;
    if (ref.shape != cand.shape) {
        row.status = CompareStatus::ShapeMismatch;
        row.message = "shape " + shape_str(cand.shape) + " in the candidate, " + shape_str(ref.shape) +
                      " in the reference" + shape_hint(ref.shape, cand.shape);
        return row;
    }
    if (ref.values.size() != Tensor<double>::numel(ref.shape) || cand.values.size() != ref.values.size())
        throw Error("compare: tensor '" + ref.name + "' holds " + std::to_string(cand.values.size()) + " / " +
                    std::to_string(ref.values.size()) + " values for shape " + shape_str(ref.shape));
    const size_t n = ref.values.size();
    const double* a = cand.values.data();
    const double* b = ref.values.data();

    // Scale: the reference tensor's magnitude (finite values).
    for (size_t i = 0; i < n; ++i)
        if (std::isfinite(b[i])) row.scale = std::max(row.scale, std::abs(b[i]));
    row.tolerance = row.exact ? 0.0 : opt.atol + opt.rtol * row.scale;
    auto rel = [&](double e) {
        return row.scale > 0 ? e / row.scale : (e > 0 ? std::numeric_limits<double>::infinity() : 0.0);
    };

    // Per slice of the leading axis (one slice for tensors that are not stacked): the
    // largest |cand - ref| and where it is.
    const bool is_stacked = stacked(ref.name) && !ref.shape.empty() && ref.shape[0] > 0;
    const size_t S = is_stacked ? size_t(ref.shape[0]) : 1;
    const size_t per = S ? n / S : 0;
    std::vector<double> smax(S, -1.0);
    std::vector<size_t> sworst(S, 0);
    size_t cand_bad = 0, ref_bad = 0, first_cand_bad = 0, first_ref_bad = 0;
    for (size_t s = 0; s < S; ++s) {
        for (size_t i = s * per; i < (s + 1) * per; ++i) {
            if (!std::isfinite(b[i])) {
                if (ref_bad++ == 0) first_ref_bad = i;
                continue;
            }
            if (!std::isfinite(a[i])) {
                if (cand_bad++ == 0) first_cand_bad = i;
                continue;
            }
            const double e = std::abs(a[i] - b[i]);
            if (e > smax[s]) {
                smax[s] = e;
                sworst[s] = i;
            }
        }
    }
    size_t worst = 0;
    bool any = false;
    for (size_t s = 0; s < S; ++s) {
        if (smax[s] < 0) continue;
        if (!any || smax[s] > row.max_abs) {
            row.max_abs = smax[s];
            worst = sworst[s];
            any = true;
        }
    }
    row.max_rel = rel(row.max_abs);
    if (any) row.worst_index = unravel_index(worst, ref.shape);

    if (cand_bad > 0 || ref_bad > 0) {
        const bool in_ref = cand_bad == 0;
        const size_t first = in_ref ? first_ref_bad : first_cand_bad;
        row.status = CompareStatus::NonFinite;
        row.nonfinite = in_ref ? ref_bad : cand_bad;
        row.nonfinite_in_ref = in_ref;
        row.first_nonfinite = unravel_index(first, ref.shape);
        if (is_stacked) row.first_bad_slice = int(first / per);
        row.first_bad_index = row.first_nonfinite;
        row.first_bad_max_rel = std::numeric_limits<double>::infinity();
        row.message = std::string(in_ref ? "the reference" : "the candidate") + " holds " +
                      std::to_string(row.nonfinite) + " non-finite value" + (row.nonfinite > 1 ? "s" : "") +
                      ", the first " + value_str(in_ref ? b[first] : a[first]) + " at " +
                      shape_str(row.first_nonfinite);
        if (is_stacked) row.message += " (" + slice_label(ref.name, int64_t(first / per), int64_t(S)) + ")";
        return row;
    }
    for (size_t s = 0; s < S; ++s) {
        if (!(smax[s] > row.tolerance)) continue;
        row.status = CompareStatus::Mismatch;
        const size_t i = sworst[s];
        row.first_bad_index = unravel_index(i, ref.shape);
        row.first_bad_max_rel = rel(smax[s]);
        std::ostringstream os;
        if (is_stacked) {
            row.first_bad_slice = int(s);
            os << "first at " << slice_label(ref.name, int64_t(s), int64_t(S)) << ": ";
        }
        os << "candidate " << value_str(a[i]) << " vs reference " << value_str(b[i]) << " at "
           << shape_str(row.first_bad_index) << ", |diff| " << sci(smax[s]);
        if (row.exact)
            os << " (integer tensor: must match exactly)";
        else
            os << " > tolerance " << sci(row.tolerance) << " (atol " << opt_num(opt.atol) << " + rtol "
               << opt_num(opt.rtol) << " x max|ref| " << sci(row.scale) << ")";
        row.message = os.str();
        break;
    }
    return row;
}

CompareResult compare_dumps(const Dump& ref, const Dump& cand, const CompareOptions& opt) {
    check_options(opt);
    CompareResult r;
    r.ref_path = ref.path();
    r.cand_path = cand.path();
    r.options = opt;

    std::vector<std::string> names;
    if (opt.only.empty()) {
        names = ref.names();
    } else {
        for (const std::string& n : opt.only) {
            if (!ref.has(n)) {
                std::string all;
                for (const std::string& m : ref.names()) all += (all.empty() ? "" : ", ") + m;
                throw Error("compare: no tensor '" + n + "' in the reference " + ref.path() + " (it holds " +
                            all + ")");
            }
            if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
        }
    }

    struct Entry {
        CompareRow row;
        Key order, fail;
    };
    std::vector<Entry> entries;
    int found = 0;
    for (const std::string& name : names) {
        const int64_t file_order =
            int64_t(std::find(ref.names().begin(), ref.names().end(), name) - ref.names().begin());
        DumpTensor rt = ref.read(name);
        const int64_t S = stacked(name) && !rt.shape.empty() ? rt.shape[0] : 1;
        Entry e;
        if (!cand.has(name)) {
            e.row.name = name;
            e.row.status = CompareStatus::Missing;
            e.row.ref_shape = rt.shape;
            e.row.ref_dtype = rt.dtype;
            e.row.exact = rt.is_int;
            e.row.message = "missing in the candidate (expected " + name + " " + shape_str(rt.shape) + ")";
        } else {
            ++found;
            DumpTensor ct = cand.read(name);
            e.row = compare_tensors(rt, ct, opt);
        }
        e.order = stage_key(name, 0, S, file_order);
        e.fail = stage_key(name, std::max(0, e.row.first_bad_slice), S, file_order);
        entries.push_back(std::move(e));
    }
    std::stable_sort(entries.begin(), entries.end(),
                     [](const Entry& x, const Entry& y) { return x.order < y.order; });

    const Entry* first = nullptr;
    std::string narrow;  // the first failing tensor stored in float32 or narrower, for the note below
    for (size_t i = 0; i < entries.size(); ++i) {
        const Entry& e = entries[i];
        r.rows.push_back(e.row);
        if (narrow.empty() && !e.row.exact && e.row.status == CompareStatus::Mismatch) {
            if (narrow_float(e.row.cand_dtype))
                narrow = "'" + e.row.name + "' is " + e.row.cand_dtype + " in the candidate";
            else if (narrow_float(e.row.ref_dtype))
                narrow = "'" + e.row.name + "' is " + e.row.ref_dtype + " in the reference";
        }
        ++r.compared;
        if (!e.row.failed()) continue;
        ++r.failed;
        if (!first || e.fail < first->fail) {
            first = &e;
            r.first_failure = int(i);
        }
    }
    if (opt.only.empty()) {
        for (const std::string& name : cand.names()) {
            if (ref.has(name)) continue;
            CompareRow row;
            row.name = name;
            row.status = CompareStatus::Extra;
            row.message = "only in the candidate: not compared";
            r.rows.push_back(std::move(row));
        }
    }

    if (found == 0)
        r.notes.push_back(
            "the candidate holds none of the reference's tensor names: name each tensor as in "
            "the reference (see docs/engine-authors.md)");
    // Float32 rounding alone is 2^-24 ~ 6e-8 of a value, and a float32 forward pass drifts
    // to ~1e-6 of the magnitude: a relative tolerance below ~8 float32 epsilons is out of reach.
    if (!narrow.empty() && opt.rtol < 8 * double(std::numeric_limits<float>::epsilon()))
        r.notes.push_back(narrow +
                          ": float32 values are rounded to ~6e-8 of their magnitude and a float32 "
                          "forward drifts to ~1e-6, out of reach of --rtol " +
                          opt_num(opt.rtol) +
                          "; use --rtol 1e-4 for float engines (1e-10 is for two float64 dumps)");
    return r;
}

CompareResult compare_dumps(const std::string& ref_path, const std::string& cand_path,
                            const CompareOptions& opt) {
    check_options(opt);
    return compare_dumps(Dump::open(ref_path), Dump::open(cand_path), opt);
}

// ---- reports -----------------------------------------------------------------

std::string compare_table(const CompareResult& r) {
    size_t name_w = 8;
    for (const CompareRow& row : r.rows) name_w = std::max(name_w, row.name.size() + 2);
    constexpr size_t kShapeW = 18, kNumW = 11, kIndexW = 18;
    std::ostringstream os;
    os << pad("tensor", name_w) << pad("shape", kShapeW) << pad("max_abs", kNumW) << pad("max_rel", kNumW)
       << pad("worst index", kIndexW) << "verdict\n";
    for (const CompareRow& row : r.rows) {
        const bool values = row.status == CompareStatus::Ok || row.status == CompareStatus::Mismatch ||
                            row.status == CompareStatus::NonFinite;
        const std::vector<int64_t>& shape =
            row.status == CompareStatus::Extra ? row.cand_shape : row.ref_shape;
        const bool has_shape = row.status != CompareStatus::Extra || !shape.empty();
        std::string index = "-";
        if (values && !row.worst_index.empty() && row.max_abs > 0) index = shape_str(row.worst_index);
        os << pad(row.name, name_w) << pad(has_shape ? shape_str(shape) : "-", kShapeW)
           << pad(values && !row.worst_index.empty() ? sci(row.max_abs) : "-", kNumW)
           << pad(values && !row.worst_index.empty() ? sci(row.max_rel) : "-", kNumW) << pad(index, kIndexW)
           << status_name(row.status) << (row.exact && row.status == CompareStatus::Ok ? " (exact)" : "")
           << "\n";
        if (row.failed() || row.status == CompareStatus::Extra) os << "    " << row.message << "\n";
    }
    for (const std::string& note : r.notes) os << "note: " << note << "\n";
    return os.str();
}

std::string compare_verdict(const CompareResult& r) {
    std::ostringstream os;
    if (r.pass()) {
        os << "PASS: " << r.compared << (r.compared == 1 ? " tensor matches" : " tensors match") << " (rtol "
           << opt_num(r.options.rtol) << ", atol " << opt_num(r.options.atol) << ")";
        return os.str();
    }
    const CompareRow& f = *r.first();
    os << "FAIL: first failing tensor is '" << f.name << "' (";
    switch (f.status) {
        case CompareStatus::Mismatch:
            os << "max_rel " << sci(f.first_bad_max_rel) << " at " << shape_str(f.first_bad_index);
            break;
        case CompareStatus::NonFinite:
            os << (f.nonfinite_in_ref ? "non-finite value in the reference at " : "NaN/Inf at ")
               << shape_str(f.first_nonfinite);
            break;
        case CompareStatus::ShapeMismatch:
            os << "shape " << shape_str(f.cand_shape) << " in the candidate, " << shape_str(f.ref_shape)
               << " in the reference";
            break;
        case CompareStatus::Missing:
            os << "missing in the candidate";
            break;
        default:
            break;
    }
    os << "); " << r.failed << " of " << r.compared << (r.compared == 1 ? " tensor fails" : " tensors fail");
    return os.str();
}

std::string compare_json(const CompareResult& r) {
    using json = nlohmann::ordered_json;
    json j;
    j["reference"] = r.ref_path;
    j["candidate"] = r.cand_path;
    j["rtol"] = r.options.rtol;
    j["atol"] = r.options.atol;
    j["only"] = r.options.only;
    j["pass"] = r.pass();
    j["compared"] = r.compared;
    j["failed"] = r.failed;
    j["first_failure"] = r.first() ? json(r.first()->name) : json(nullptr);
    j["verdict"] = compare_verdict(r);
    json rows = json::array();
    for (const CompareRow& row : r.rows) {
        static const char* kStatus[] = {"ok", "mismatch", "shape_mismatch", "nonfinite", "missing", "extra"};
        json x;
        x["name"] = row.name;
        x["status"] = kStatus[int(row.status)];
        x["failed"] = row.failed();
        x["ref_shape"] = row.ref_shape;
        x["cand_shape"] = row.cand_shape;
        x["ref_dtype"] = row.ref_dtype;
        x["cand_dtype"] = row.cand_dtype;
        x["exact"] = row.exact;
        x["max_abs"] = row.max_abs;
        x["max_rel"] = row.max_rel;
        x["max_ref"] = row.scale;
        x["tolerance"] = row.tolerance;
        x["worst_index"] = row.worst_index;
        x["nonfinite"] = row.nonfinite;
        x["first_nonfinite"] = row.first_nonfinite;
        x["first_bad_slice"] = row.first_bad_slice >= 0 ? json(row.first_bad_slice) : json(nullptr);
        x["first_bad_index"] = row.first_bad_index;
        x["message"] = row.message;
        rows.push_back(std::move(x));
    }
    j["tensors"] = std::move(rows);
    j["notes"] = r.notes;
    return j.dump(2) + "\n";
}

}  // namespace depass
