// module.cpp -- the Python module `depass` (its compiled part, depass._depass).
//
// A thin layer over the library entry points: load_model / read_config (io.hpp),
// find_tokenizer (tokenizer.hpp), forward (forward.hpp), attribute (attribute.hpp), the
// output files (attribution_files.hpp) and compare (compare.hpp). Nothing of the method is
// written here; this file only converts between numpy arrays and the library's types,
// releases the GIL while the library computes, and turns library errors into Python
// exceptions:
//   bad arguments, ids, levels, indices         -> ValueError
//   a file that is missing                      -> FileNotFoundError (an OSError)
//   a file that cannot be read, or is malformed -> OSError
//   completeness violated                       -> depass.CompletenessError (a RuntimeError)
//   a run that would not fit in the free memory -> MemoryError (before any work)
//   Ctrl-C during a run                         -> KeyboardInterrupt (checked after every block)
//
// Arrays. Results are handed out as read-only numpy views of the library's own buffers
// where the layout is already numpy's (logit_attribution, target_logits): no copy. The
// components are stored sparsely (component m from its first position on, components.hpp),
// so `components` and `components_by_point` are made dense [M, N, D] once, on first access.
// The trace is handed over as copies in the model's dtype (the --dump tensors).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <variant>

#include "depass/attribute.hpp"
#include "depass/attribution_files.hpp"
#include "depass/compare.hpp"
#include "depass/dump.hpp"
#include "depass/forward.hpp"
#include "depass/io.hpp"
#include "depass/model_info.hpp"
#include "depass/resources.hpp"
#include "depass/tokenizer.hpp"

namespace py = pybind11;
using namespace depass;

namespace {

// ---- errors ---------------------------------------------------------------------------

// A file could not be opened or read: becomes OSError (FileNotFoundError when it is absent).
struct FileProblem : std::runtime_error {
    FileProblem(const std::string& what, bool missing) : std::runtime_error(what), missing(missing) {}
    bool missing;
};
// Ctrl-C was seen between two blocks: the Python error (KeyboardInterrupt) is already set.
struct Interrupted {};

// Runs a file-reading call: the library's errors become FileProblem, naming the file.
template <class F>
auto reading(const std::string& path, F&& f) -> decltype(f()) {
    try {
        return f();
    } catch (const CompletenessError&) {
        throw;
    } catch (const ResourceError&) {
        throw;
    } catch (const Error& e) {
        throw FileProblem(e.what(), !std::filesystem::exists(path));
    }
}

// Called with the GIL released, between two blocks of a pass: looks for Ctrl-C at most every
// 20 ms (taking the GIL costs microseconds, which a short call should not pay at every block).
class InterruptCheck {
public:
    void operator()() {
        const auto now = std::chrono::steady_clock::now();
        if (now - last_ < std::chrono::milliseconds(20)) return;
        last_ = now;
        py::gil_scoped_acquire gil;
        if (PyErr_CheckSignals() != 0) throw Interrupted{};
    }

private:
    std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

// Runs f with the GIL released; a Ctrl-C seen inside becomes the Python exception.
template <class F>
auto without_gil(F&& f) -> decltype(f()) {
    try {
        py::gil_scoped_release release;
        return f();
    } catch (const Interrupted&) {
        throw py::error_already_set();
    }
}

std::string path_of(const py::object& p) { return py::str(py::module_::import("os").attr("fspath")(p)); }

// ---- arrays ---------------------------------------------------------------------------

// A read-only numpy view of `data` that keeps `owner` alive.
template <class T, class Owner>
py::array view(const std::shared_ptr<Owner>& owner, const T* data, std::vector<py::ssize_t> shape) {
    auto* keep = new std::shared_ptr<Owner>(owner);
    py::capsule base(keep, [](void* p) { delete static_cast<std::shared_ptr<Owner>*>(p); });
    py::array a(py::dtype::of<T>(), std::move(shape), data, base);
    py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
    return a;
}

// A new numpy array that owns `values` (moved in).
template <class T>
py::array owning(std::vector<T> values, std::vector<py::ssize_t> shape) {
    auto* keep = new std::vector<T>(std::move(values));
    py::capsule base(keep, [](void* p) { delete static_cast<std::vector<T>*>(p); });
    return py::array(py::dtype::of<T>(), std::move(shape), keep->data(), base);
}

std::vector<int64_t> shape_of(const py::array& a) {
    std::vector<int64_t> s;
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s.push_back(int64_t(a.shape(i)));
    return s;
}

// Any array-like of floats (float16/32/64, C or Fortran order) as row-major double, converted once.
Tensor<double> to_tensor(const py::handle& obj, const std::string& what) {
    py::array any = py::array::ensure(obj);
    if (!any) throw Error(what + ": expected a numpy array (or something numpy can convert)");
    const char kind = any.dtype().kind();
    if (kind != 'f' && kind != 'i' && kind != 'u')
        throw Error(what + ": expected a float array, got dtype " + std::string(py::str(any.dtype())));
    auto a = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(any);
    Tensor<double> t;
    t.shape = shape_of(a);
    t.data.assign(a.data(), a.data() + a.size());
    for (double v : t.data)
        if (!std::isfinite(v)) throw Error(what + ": holds a non-finite value");
    return t;
}

// Token ids from a list / tuple / 1-D integer array.
std::vector<int> to_ids(const py::handle& obj, const std::string& what) {
    if (PyList_Check(obj.ptr())) {  // the common case, without a numpy array in between
        const py::ssize_t n = PyList_GET_SIZE(obj.ptr());
        std::vector<int> ids(static_cast<size_t>(n));
        bool plain = true;
        for (py::ssize_t i = 0; i < n && plain; ++i) {
            PyObject* item = PyList_GET_ITEM(obj.ptr(), i);
            if (!PyLong_CheckExact(item)) {
                plain = false;
                break;
            }
            int overflow = 0;
            const long long v = PyLong_AsLongLongAndOverflow(item, &overflow);
            if (overflow || v < INT32_MIN || v > INT32_MAX)
                throw Error(what + ": id " + std::string(py::str(item)) + " at position " + std::to_string(i) +
                            " is not a 32-bit integer");
            ids[size_t(i)] = int(v);
        }
        if (plain) return ids;
    }
    py::array a = py::array::ensure(obj);
    if (!a) throw Error(what + ": expected a sequence of token ids");
    if (a.size() > 0 && a.dtype().kind() != 'i' && a.dtype().kind() != 'u')
        throw Error(what + ": token ids must be integers, got dtype " + std::string(py::str(a.dtype())));
    if (a.ndim() != 1) throw Error(what + ": expected a 1-D sequence of ids, got " + std::to_string(a.ndim()) +
                                   " dimensions");
    auto b = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(a);
    std::vector<int> ids;
    for (py::ssize_t i = 0; i < b.size(); ++i) {
        const int64_t v = b.data()[i];
        if (v < INT32_MIN || v > INT32_MAX)
            throw Error(what + ": id " + std::to_string(v) + " at position " + std::to_string(i) +
                        " is not a 32-bit integer");
        ids.push_back(int(v));
    }
    return ids;
}

// ---- the model --------------------------------------------------------------------------

struct PyTokenizer {
    std::shared_ptr<const Tokenizer> tok;
    std::string path;
};

struct PyModel {
    std::string path;
    bool f64 = false;
    std::shared_ptr<const Model<float>> m32;
    std::shared_ptr<const Model<double>> m64;
    std::shared_ptr<const ModelFileInfo> info;  // the file's headers, read once (memory checks)
    std::optional<PyTokenizer> tokenizer;  // found (or given) on first use
    bool no_tokenizer = false;             // the search found none (not repeated on every call)
    std::string tokenizer_path;            // given to load_model

    const Config& cfg() const { return f64 ? m64->cfg : m32->cfg; }
    const PyTokenizer& tok() {
        if (!tokenizer) {
            auto t = reading(tokenizer_path.empty() ? path : tokenizer_path, [&] {
                return find_tokenizer(path, tokenizer_path, cfg().V, true,
                                      "pass tokenizer=PATH to load_model");
            });
            tokenizer = PyTokenizer{std::shared_ptr<const Tokenizer>(std::move(t)), tokenizer_path};
        }
        return *tokenizer;
    }
};

bool parse_dtype(const py::object& d) {
    std::string s;
    if (py::isinstance<py::str>(d)) {
        s = py::str(d);
    } else {
        s = py::str(py::dtype::from_args(d));  // numpy.float32, "float64", numpy.dtype(...)
    }
    if (s == "float32" || s == "f32") return false;
    if (s == "float64" || s == "f64") return true;
    throw Error("dtype: '" + s + "' (expected \"float32\" (fast) or \"float64\" (ground truth))");
}

py::dict config_dict(const Config& c) {
    py::dict d;
    d["model_type"] = c.model_type;
    d["n_layers"] = c.L;
    d["d_model"] = c.D;
    d["n_heads"] = c.H;
    d["n_kv_heads"] = c.Hkv;
    d["head_dim"] = c.Dh;
    d["d_ff"] = c.I;
    d["vocab_size"] = c.V;
    d["max_positions"] = c.max_positions;
    d["norm"] = c.norm == NormKind::RMSNorm ? "rmsnorm" : "layernorm";
    d["norm_eps"] = c.norm_eps;
    d["mlp"] = c.mlp == MlpKind::SwiGLU ? "swiglu" : "gelu";
    d["activation"] = c.act == Activation::SiLU ? "silu" : "gelu_tanh";
    d["rope"] = c.rope == RopeStyle::None ? "none" : c.rope == RopeStyle::Interleaved ? "interleaved" : "half";
    d["rope_theta"] = c.rope_theta;
    d["learned_positions"] = c.learned_positions;
    d["tied_embeddings"] = c.tied_embeddings;
    d["qkv_bias"] = c.qkv_bias;
    d["bos_id"] = c.bos_id;
    d["eos_id"] = c.eos_id;
    return d;
}

// ---- attribution ------------------------------------------------------------------------

struct PyAttribution {
    std::variant<Attribution<float>, Attribution<double>> a;
    Config cfg;
    AttributionRun run;  // run.tokenizer points into `tok`
    std::shared_ptr<const Tokenizer> tok;
    std::optional<py::array> components, components_by_point;  // dense, made on first access
};

template <class F>
auto visit(const PyAttribution& r, F&& f) {
    return std::visit(std::forward<F>(f), r.a);
}

template <class T>
std::vector<T> dense(const Components<T>& c) {
    std::vector<T> out;
    out.reserve(size_t(c.M) * c.N * c.D);
    for (int m = 0; m < c.M; ++m) {
        const Mat<T> x = c.component(m);
        out.insert(out.end(), x.data(), x.data() + x.size());
    }
    return out;
}

AttributionRequest make_request(const PyModel& model, const std::string& level, int layer,
                                const std::string& module, const py::object& heads, const py::object& neurons,
                                const py::object& neuron_groups, const py::object& basis,
                                const py::object& components, const std::string& rule, double temperature,
                                const py::object& ignore_special_token, const py::object& targets,
                                bool all_layers, const py::object& qk, const py::object& qk_heads,
                                const py::object& query_positions, int N) {
    AttributionRequest rq;
    LevelRequest& req = rq.start;
    req.level = parse_level(level);
    req.layer = layer;
    auto only_for = [&](const py::object& given, const char* name, Level lv) {
        if (!given.is_none() && req.level != lv)
            throw Error(std::string(name) + " applies to level=\"" + level_name(lv) + "\" only (got level=\"" +
                        level + "\")");
    };
    only_for(heads, "heads", Level::Head);
    only_for(neurons, "neurons", Level::Neuron);
    only_for(neuron_groups, "neuron_groups", Level::Neuron);
    only_for(basis, "basis", Level::Subspace);
    only_for(components, "components", Level::Custom);
    if (module != "attn" && module != "mlp") throw Error("module: '" + module + "' (expected \"attn\" or \"mlp\")");
    if (module == "mlp" && req.level != Level::Module)
        throw Error("module applies to level=\"module\" only (got level=\"" + level + "\")");
    req.module_mlp = module == "mlp";
    if (!heads.is_none()) req.heads = to_ids(heads, "heads");
    if (!neurons.is_none()) req.neurons = to_ids(neurons, "neurons");
    if (!neurons.is_none() && !neuron_groups.is_none())
        throw Error("give either neurons or neuron_groups, not both");
    if (!neuron_groups.is_none()) {
        req.neuron_groups = neuron_groups.cast<int>();
        if (req.neuron_groups <= 0)
            throw Error("neuron_groups: " + std::to_string(req.neuron_groups) + " (expected > 0)");
    }
    const int D = model.cfg().D;
    if (req.level == Level::Subspace) {
        if (basis.is_none()) throw Error("level=\"subspace\" needs basis= (one [D, k] basis or [D, D] projector, or a list)");
        std::vector<py::object> items;
        if (py::isinstance<py::list>(basis) || py::isinstance<py::tuple>(basis))
            for (py::handle h : basis) items.push_back(py::reinterpret_borrow<py::object>(h));
        else
            items.push_back(basis);
        for (size_t i = 0; i < items.size(); ++i) {
            const bool is_path = py::isinstance<py::str>(items[i]) || py::hasattr(items[i], "__fspath__");
            const std::string name = is_path ? path_of(items[i]) : "basis[" + std::to_string(i) + "]";
            Tensor<double> t = is_path ? reading(name, [&] { return read_npy<double>(name, true, true); })
                                       : to_tensor(items[i], name);
            req.projectors.push_back(projector_from(t, D, name));
            req.projector_names.push_back(name);
        }
    }
    if (req.level == Level::Custom) {
        if (components.is_none()) throw Error("level=\"custom\" needs components= ([K, N, D], summing to the state)");
        const bool is_path = py::isinstance<py::str>(components) || py::hasattr(components, "__fspath__");
        req.custom_source = is_path ? path_of(components) : "components";
        req.custom = is_path ? reading(req.custom_source,
                                       [&] { return read_npy<double>(req.custom_source, true, true); })
                             : to_tensor(components, "components");
        req.custom_rel_tol = model.f64 ? 1e-9 : 1e-5;
    }
    rq.rule = parse_mlp_rule(rule);
    if (!(temperature > 0)) throw Error("temperature must be > 0 (got " + std::to_string(temperature) + ")");
    rq.temperature = temperature;
    if (!ignore_special_token.is_none()) rq.ignore_special_token = ignore_special_token.cast<bool>();
    if (!targets.is_none()) {
        py::array t = py::array::ensure(targets);
        if (!t || (t.size() > 0 && t.dtype().kind() != 'i' && t.dtype().kind() != 'u'))
            throw Error("targets: expected token ids (a list, or [N, K] ids per position)");
        if (t.ndim() == 0) {
            rq.targets = {to_ids(py::make_tuple(targets), "targets")};
        } else if (t.ndim() == 1) {
            rq.targets = {to_ids(t, "targets")};
        } else if (t.ndim() == 2) {
            for (py::ssize_t n = 0; n < t.shape(0); ++n)
                rq.targets.push_back(to_ids(t[py::int_(n)], "targets[" + std::to_string(n) + "]"));
        } else {
            throw Error("targets: expected 1 or 2 dimensions, got " + std::to_string(t.ndim()));
        }
    }
    rq.keep_points = all_layers;
    if (qk.is_none() && (!qk_heads.is_none() || !query_positions.is_none()))
        throw Error(std::string(qk_heads.is_none() ? "query_positions" : "qk_heads") +
                    " applies to qk=LAYER, which is not given");
    if (!qk.is_none()) {
        QkRequest q;
        q.layer = qk.cast<int>();
        if (!qk_heads.is_none()) q.heads = to_ids(qk_heads, "qk_heads");
        if (!query_positions.is_none()) q.queries = to_ids(query_positions, "query_positions");
        rq.qk = q;
        const FreeMemory fm = free_memory();  // the split is refused beyond half the free memory
        rq.qk_max_bytes = fm.free / 2;
    }
    (void)N;
    return rq;
}

// The ways out of a memory refusal, as Python spells them.
ResourceHints python_hints() {
    ResourceHints h;
    h.streamed = "load_model(..., weights=\"streamed\")";
    h.f32 = "dtype=\"float32\"";
    h.later_layer = "a later layer=";
    h.inspect = "see `depass inspect --model MODEL`";
    return h;
}

// The level's name in the memory estimate (estimate.hpp).
std::string estimate_run(const AttributionRequest& rq) {
    if (rq.start.level == Level::Neuron && rq.start.neuron_groups > 0) return "neuron groups";
    if (rq.start.level == Level::Custom) return "forward";
    return level_name(rq.start.level);
}

template <class T>
Attribution<T> run_attribute(const Model<T>& model, const std::vector<int>& ids, const AttributionRequest& rq) {
    InterruptCheck check;
    const Trace<T> trace = forward(model, ids, [&](int) { check(); });
    return attribute(model, trace, rq,
                     ComponentObserver<T>([&](const CutPoint&, const Components<T>&) { check(); }));
}

std::vector<int> ids_or_text(PyModel& model, const py::object& x) {
    std::vector<int> ids;
    if (py::isinstance<py::str>(x)) {
        const std::string text = x.cast<std::string>();
        if (text.empty()) throw Error("the prompt is empty");
        ids = model.tok().tok->encode(text, true, false);
    } else {
        ids = to_ids(x, "ids");
    }
    check_ids(model.cfg(), ids);
    return ids;
}

py::object attribute_py(PyModel& model, const py::object& x, const std::string& level, int layer,
                        const std::string& module, const py::object& heads, const py::object& neurons,
                        const py::object& neuron_groups, const py::object& basis, const py::object& components,
                        const std::string& rule, double temperature, const py::object& ignore_special_token,
                        const py::object& targets, bool all_layers, const py::object& qk,
                        const py::object& qk_heads, const py::object& query_positions) {
    const std::vector<int> ids = ids_or_text(model, x);
    const AttributionRequest rq = make_request(model, level, layer, module, heads, neurons, neuron_groups, basis,
                                               components, rule, temperature, ignore_special_token, targets,
                                               all_layers, qk, qk_heads, query_positions, int(ids.size()));
    EstimateOptions need;
    if (rq.start.neuron_groups > 0) need.neuron_groups = rq.start.neuron_groups;
    need.subspaces = std::max<int>(1, int(rq.start.projectors.size()));
    const bool streamed = model.f64 ? bool(model.m64->streamed) : bool(model.m32->streamed);
    require_memory(*model.info, model.cfg(), int(ids.size()), model.f64 ? 8 : 4, estimate_run(rq),
                   streamed ? WeightMode::Streamed : WeightMode::Resident, need, /*weights_loaded=*/true,
                   python_hints());
    auto r = std::make_shared<PyAttribution>();
    if (model.f64) {
        auto m = model.m64;
        r->a = without_gil([&] { return run_attribute(*m, ids, rq); });
    } else {
        auto m = model.m32;
        r->a = without_gil([&] { return run_attribute(*m, ids, rq); });
    }
    r->cfg = model.cfg();
    // The tokenizer, when there is one, gives the display pieces of the report.
    if (model.tokenizer || py::isinstance<py::str>(x)) {
        r->tok = model.tok().tok;
    } else if (!model.no_tokenizer) {
        try {
            r->tok = model.tok().tok;
        } catch (const FileProblem&) {
            model.no_tokenizer = true;  // the report shows "#id" pieces, as the command line does
        }
    }
    r->run = AttributionRun{model.path, model.f64 ? "f64" : "f32", layer, ids, r->tok.get()};
    return py::cast(r);
}

// ---- compare ----------------------------------------------------------------------------

Dump open_dump(const py::object& x, const std::string& role) {
    if (py::isinstance<py::dict>(x)) {
        std::vector<DumpTensor> ts;
        for (auto kv : py::reinterpret_borrow<py::dict>(x)) {
            DumpTensor t;
            t.name = py::str(kv.first);
            py::array a = py::array::ensure(kv.second);
            if (!a) throw Error(role + ": tensor '" + t.name + "' is not an array");
            const char kind = a.dtype().kind();
            if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b')
                throw Error(role + ": tensor '" + t.name + "' has dtype " + std::string(py::str(a.dtype())) +
                            " (expected numbers)");
            t.is_int = kind != 'f';
            t.dtype = py::str(a.dtype().attr("str"));
            auto d = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(a);
            t.shape = shape_of(d);
            t.values.assign(d.data(), d.data() + d.size());
            ts.push_back(std::move(t));
        }
        return Dump::from_tensors(role, std::move(ts));
    }
    const std::string path = path_of(x);
    return reading(path, [&] { return Dump::open(path); });
}

py::dict row_dict(const CompareRow& r) {
    py::dict d;
    d["name"] = r.name;
    d["status"] = status_name(r.status);
    d["passed"] = !r.failed();
    d["ref_shape"] = r.ref_shape;
    d["cand_shape"] = r.cand_shape;
    d["ref_dtype"] = r.ref_dtype;
    d["cand_dtype"] = r.cand_dtype;
    d["exact"] = r.exact;
    d["max_abs"] = r.max_abs;
    d["max_rel"] = r.max_rel;
    d["scale"] = r.scale;
    d["tolerance"] = r.tolerance;
    d["worst_index"] = r.worst_index;
    d["nonfinite"] = r.nonfinite;
    d["first_bad_slice"] = r.first_bad_slice < 0 ? py::object(py::none()) : py::object(py::int_(r.first_bad_slice));
    d["message"] = r.message;
    return d;
}

// ---- helpers of the tests and the benchmark -------------------------------------------------

// Seconds for `reps` calls of the library's attribute() (recorded pass included) with no
// Python in between: what the per-call overhead of the module is measured against.
double library_seconds(PyModel& model, const py::object& x, int reps, const std::string& level, int layer,
                       const std::string& rule) {
    const std::vector<int> ids = ids_or_text(model, x);
    AttributionRequest rq;
    rq.start.level = parse_level(level);
    rq.start.layer = layer;
    rq.rule = parse_mlp_rule(rule);
    return without_gil([&] {
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < reps; ++i) {
            if (model.f64)
                (void)attribute(*model.m64, ids, rq);
            else
                (void)attribute(*model.m32, ids, rq);
        }
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    });
}

}  // namespace

PYBIND11_MODULE(_depass, m) {
    m.doc() = "The compiled part of depass; import depass instead.";

    // Exceptions: depass.CompletenessError is a RuntimeError; the others are built-in types.
    static py::exception<CompletenessError> completeness_error(m, "CompletenessError", PyExc_RuntimeError);
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const CompletenessError& e) {
            completeness_error(e.what());
        } catch (const ResourceError& e) {
            PyErr_SetString(PyExc_MemoryError, e.what());
        } catch (const FileProblem& e) {
            PyErr_SetString(e.missing ? PyExc_FileNotFoundError : PyExc_OSError, e.what());
        } catch (const Error& e) {
            PyErr_SetString(PyExc_ValueError, e.what());
        }
    });

    // ---- tokenizer
    py::class_<PyTokenizer>(m, "Tokenizer", "A tokenizer (Hugging Face tokenizer.json, SentencePiece, llama2.c, GGUF).")
        .def(
            "tokenize",
            [](const PyTokenizer& t, const std::string& text, bool bos, bool eos) {
                return t.tok->encode(text, bos, eos);
            },
            py::arg("text"), py::arg("bos") = true, py::arg("eos") = false,
            "Token ids of `text` (BOS in front / EOS at the end when asked and the vocabulary has them).")
        .def(
            "decode", [](const PyTokenizer& t, const py::object& ids) { return t.tok->decode(to_ids(ids, "ids")); },
            py::arg("ids"), "The text of a sequence of ids (special tokens skipped).")
        .def(
            "piece",
            [](const PyTokenizer& t, int id) {
                if (id < 0 || id >= t.tok->vocab_size())
                    throw Error("piece: id " + std::to_string(id) + " is outside the vocabulary [0, " +
                                std::to_string(t.tok->vocab_size()) + ")");
                return py::bytes(t.tok->piece(id));
            },
            py::arg("id"), "The raw piece of an id as the vocabulary stores it (bytes).")
        .def(
            "show", [](const PyTokenizer& t, int id) { return show_piece(t.tok.get(), id); }, py::arg("id"),
            "The piece of an id as the reports show it (spaces visible, newlines escaped).")
        .def_property_readonly("vocab_size", [](const PyTokenizer& t) { return t.tok->vocab_size(); })
        .def_property_readonly("kind", [](const PyTokenizer& t) { return t.tok->kind(); },
                               "\"llama2.c\", \"sentencepiece\", \"hf-bpe\", \"gguf-spm\", ...")
        .def("__len__", [](const PyTokenizer& t) { return t.tok->vocab_size(); })
        .def("__repr__", [](const PyTokenizer& t) {
            return "<depass.Tokenizer " + t.tok->kind() + ", " + std::to_string(t.tok->vocab_size()) + " pieces>";
        });

    m.def(
        "load_tokenizer",
        [](const py::object& p) {
            const std::string path = path_of(p);
            auto t = reading(path, [&] { return open_tokenizer(path); });
            return PyTokenizer{std::shared_ptr<const Tokenizer>(std::move(t)), path};
        },
        py::arg("path"));

    // ---- model
    py::class_<PyModel, std::shared_ptr<PyModel>>(m, "Model", "A loaded model (see depass.load_model).")
        .def_property_readonly("config", [](const PyModel& md) { return config_dict(md.cfg()); },
                               "The model's shape and options as a dict.")
        .def_property_readonly("dtype", [](const PyModel& md) { return md.f64 ? "float64" : "float32"; })
        .def_property_readonly("path", [](const PyModel& md) { return md.path; })
        .def_property_readonly(
            "streamed", [](const PyModel& md) { return md.f64 ? bool(md.m64->streamed) : bool(md.m32->streamed); },
            "True when the blocks' weights stay in the file and are widened one block at a time.")
        .def_property_readonly(
            "tokenizer", [](PyModel& md) { return md.tok(); },
            "The model's tokenizer (found next to the model, or the one given to load_model).")
        .def(
            "tokenize", [](PyModel& md, const std::string& text, bool bos) { return md.tok().tok->encode(text, bos, false); },
            py::arg("text"), py::arg("bos") = true, "model.tokenizer.tokenize(text, bos).")
        .def(
            "decode", [](PyModel& md, const py::object& ids) { return md.tok().tok->decode(to_ids(ids, "ids")); },
            py::arg("ids"), "model.tokenizer.decode(ids).")
        .def("__repr__", [](const PyModel& md) {
            return "<depass.Model " + md.path + ": " + describe(md.cfg()) + ", " + (md.f64 ? "float64" : "float32") +
                   ">";
        });

    m.def(
        "load_model",
        [](const py::object& p, const py::object& dtype, const std::string& weights, const py::object& tokenizer) {
            auto md = std::make_shared<PyModel>();
            md->path = path_of(p);
            md->f64 = parse_dtype(dtype);
            if (!tokenizer.is_none()) md->tokenizer_path = path_of(tokenizer);
            const std::string path = md->path;
            const Config header = reading(path, [&] { return read_config(path); });
            if (weights != "auto" && weights != "resident" && weights != "streamed")
                throw Error("weights: '" + weights + "' (expected \"auto\", \"resident\" or \"streamed\")");
            const int bytes = md->f64 ? 8 : 4;
            const WeightMode mode = reading(path, [&] { return choose_weight_mode(weights, path, header, bytes); });
            md->info = reading(path, [&] { return std::make_shared<const ModelFileInfo>(describe_model_file(path)); });
            // The model and a one-token pass must fit before any weight is read.
            require_memory(*md->info, header, 1, bytes, "forward", mode, {}, false, python_hints());
            without_gil([&] {
                if (md->f64)
                    md->m64 = std::make_shared<const Model<double>>(
                        reading(path, [&] { return load_model<double>(path, mode); }));
                else
                    md->m32 = std::make_shared<const Model<float>>(
                        reading(path, [&] { return load_model<float>(path, mode); }));
                return 0;
            });
            return md;
        },
        py::arg("path"), py::arg("dtype") = "float32", py::arg("weights") = "auto", py::arg("tokenizer") = py::none());

    m.def(
        "read_config", [](const py::object& p) {
            const std::string path = path_of(p);
            return config_dict(reading(path, [&] { return read_config(path); }));
        },
        py::arg("path"));

    // ---- forward
    m.def(
        "_forward",
        [](PyModel& md, const py::object& x) {
            const std::vector<int> ids = ids_or_text(md, x);
            const bool streamed = md.f64 ? bool(md.m64->streamed) : bool(md.m32->streamed);
            require_memory(*md.info, md.cfg(), int(ids.size()), md.f64 ? 8 : 4, "forward",
                           streamed ? WeightMode::Streamed : WeightMode::Resident, {}, true, python_hints());
            py::dict out;
            auto put = [&](const auto& model) {
                using T = std::decay_t<decltype(model->w.normf_g(0))>;
                std::vector<NamedTensor> ts = without_gil([&] {
                    InterruptCheck check;
                    const Trace<T> t = forward(*model, ids, [&](int) { check(); });
                    return trace_tensors(model->cfg, t);
                });
                for (NamedTensor& t : ts) {
                    std::vector<py::ssize_t> shape(t.shape.begin(), t.shape.end());
                    if (t.is_int)
                        out[py::str(t.name)] = owning(std::vector<int64_t>(t.values.begin(), t.values.end()), shape);
                    else
                        out[py::str(t.name)] = owning(std::vector<T>(t.values.begin(), t.values.end()), shape);
                }
            };
            if (md.f64)
                put(md.m64);
            else
                put(md.m32);
            return out;
        },
        py::arg("model"), py::arg("ids"));

    // ---- attribution
    py::class_<ComponentInfo>(m, "ComponentInfo", "What one component is: its kind, block and index.")
        .def_property_readonly("kind", [](const ComponentInfo& c) { return kind_name(c.kind); })
        .def_readonly("layer", &ComponentInfo::layer, "The residual point h[layer] or the block (-1: none).")
        .def_readonly("index", &ComponentInfo::index,
                      "Token position, head, neuron, first neuron of a group, subspace or custom index (-1: none).")
        .def_readonly("index_end", &ComponentInfo::index_end, "Neuron groups: one past the last neuron.")
        .def_readonly("label", &ComponentInfo::label)
        .def("__repr__", [](const ComponentInfo& c) {
            return "<ComponentInfo " + std::string(kind_name(c.kind)) + " layer=" + std::to_string(c.layer) +
                   " index=" + std::to_string(c.index) + " '" + c.label + "'>";
        });

    using A = PyAttribution;
    py::class_<A, std::shared_ptr<A>>(m, "Attribution", "The result of depass.attribute.")
        .def_property_readonly(
            "logit_attribution",
            [](const std::shared_ptr<A>& r) {
                return visit(*r, [&](const auto& a) {
                    return view(r, a.logit_attribution.data.data(), {a.M(), a.N(), a.K()});
                });
            },
            "[M, N, K] share of component m in the logit of target k at position n (a view, no copy).")
        .def_property_readonly(
            "components",
            [](const std::shared_ptr<A>& r) {
                if (!r->components)
                    r->components = visit(*r, [&](const auto& a) {
                        const auto& c = a.components;
                        return owning(dense(c), {c.M, c.N, c.D});
                    });
                return *r->components;
            },
            "[M, N, D] the components at the final residual h[L] (the rest last); made dense on first access.")
        .def_property_readonly(
            "components_by_point",
            [](const std::shared_ptr<A>& r) -> py::object {
                if (!r->components_by_point) {
                    py::object made = visit(*r, [&](const auto& a) -> py::object {
                        if (a.points.empty()) return py::none();
                        using T = std::decay_t<decltype(a.logit_attribution.data[0])>;
                        std::vector<T> all;
                        for (const auto& c : a.at_points) {
                            std::vector<T> d = dense(c);
                            all.insert(all.end(), d.begin(), d.end());
                        }
                        return owning(std::move(all), {py::ssize_t(a.points.size()), a.M(), a.N(),
                                                       py::ssize_t(a.components.D)});
                    });
                    if (made.is_none()) return py::none();
                    r->components_by_point = made;
                }
                return *r->components_by_point;
            },
            "[S, M, N, D] the components at every residual point (all_layers=True only, else None).")
        .def_property_readonly(
            "points",
            [](const A& r) {
                return visit(r, [](const auto& a) {
                    std::vector<std::string> p;
                    for (const CutPoint& c : a.points) p.push_back(c.str());
                    return p;
                });
            },
            "The residual points of components_by_point (all_layers=True), in order.")
        .def_property_readonly(
            "targets",
            [](const A& r) {
                return visit(r, [](const auto& a) {
                    std::vector<int64_t> v;
                    for (const auto& row : a.targets) v.insert(v.end(), row.begin(), row.end());
                    return owning(std::move(v), {a.N(), a.K()});
                });
            },
            "[N, K] the target token ids at every position.")
        .def_property_readonly(
            "target_logits",
            [](const std::shared_ptr<A>& r) {
                return visit(*r, [&](const auto& a) { return view(r, a.target_logits.data(), {a.N(), a.K()}); });
            },
            "[N, K] the model's logits at the targets (float64; a view, no copy).")
        .def_property_readonly(
            "qk_logits",
            [](const std::shared_ptr<A>& r) -> py::object {
                return visit(*r, [&](const auto& a) -> py::object {
                    if (!a.qk) return py::none();
                    const auto& q = *a.qk;
                    return view(r, q.logits.data.data(),
                                {py::ssize_t(q.heads.size()), q.M, q.M, py::ssize_t(q.queries.size()), q.N});
                });
            },
            "[H', M, M, Nq, N] with qk=LAYER: the attention logits split over (query-side, key-side) component "
            "pairs (a view, no copy); else None.")
        .def_property_readonly(
            "qk_heads",
            [](const A& r) -> py::object {
                return visit(r, [](const auto& a) -> py::object {
                    return a.qk ? py::cast(a.qk->heads) : py::object(py::none());
                });
            })
        .def_property_readonly(
            "qk_queries",
            [](const A& r) -> py::object {
                return visit(r, [](const auto& a) -> py::object {
                    return a.qk ? py::cast(a.qk->queries) : py::object(py::none());
                });
            })
        .def_property_readonly(
            "qk_check",
            [](const A& r) -> py::object {
                return visit(r, [](const auto& a) -> py::object {
                    if (!a.qk) return py::none();
                    return py::make_tuple(a.qk_check.logits_max_rel, a.qk_check.probs_max_abs);
                });
            },
            "(logits_max_rel, probs_max_abs): how well the summed pairs give the logits and the recorded "
            "attention.")
        .def_property_readonly("input_ids", [](const A& r) { return r.run.ids; })
        .def_property_readonly("component_names",
                               [](const A& r) { return visit(r, [](const auto& a) { return a.components.names; }); })
        .def_property_readonly("component_info",
                               [](const A& r) { return visit(r, [](const auto& a) { return a.info; }); },
                               "One ComponentInfo per component (kind, layer, index), the rest last.")
        .def_property_readonly("level", [](const A& r) { return visit(r, [](const auto& a) { return std::string(level_name(a.level)); }); })
        .def_property_readonly("cut", [](const A& r) { return visit(r, [](const auto& a) { return a.cut.str(); }); },
                               "The residual point where the decomposition starts, e.g. \"h[0]\".")
        .def_property_readonly("rule", [](const A& r) { return visit(r, [](const auto& a) { return std::string(rule_name(a.options.rule)); }); })
        .def_property_readonly("temperature", [](const A& r) { return visit(r, [](const auto& a) { return a.options.temperature; }); })
        .def_property_readonly("ignore_special_token", [](const A& r) { return visit(r, [](const auto& a) { return a.options.ignore_special_token; }); })
        .def_property_readonly("dtype", [](const A& r) { return r.run.dtype == "f64" ? "float64" : "float32"; })
        .def_property_readonly("completeness_max_rel", [](const A& r) { return visit(r, [](const auto& a) { return a.completeness_max_rel; }); },
                               "Largest |sum of components - true state| / max|state| over every residual point.")
        .def_property_readonly("completeness_max_abs", [](const A& r) { return visit(r, [](const auto& a) { return a.completeness_max_abs; }); })
        .def_property_readonly("completeness_worst_point", [](const A& r) { return visit(r, [](const auto& a) { return a.completeness_worst_point; }); })
        .def_property_readonly(
            "completeness",
            [](const A& r) {
                return visit(r, [](const auto& a) {
                    py::list l;
                    for (const CompletenessPoint& p : a.completeness)
                        l.append(py::make_tuple(p.point.str(), p.max_abs, p.max_rel));
                    return l;
                });
            },
            "(point, max_abs, max_rel) at every residual point from the cut on.")
        .def_property_readonly("M", [](const A& r) { return visit(r, [](const auto& a) { return a.M(); }); })
        .def_property_readonly("N", [](const A& r) { return visit(r, [](const auto& a) { return a.N(); }); })
        .def_property_readonly("K", [](const A& r) { return visit(r, [](const auto& a) { return a.K(); }); })
        .def(
            "save",
            [](const A& r, const py::object& p, const std::string& format, bool json_components) {
                AttributionOutputs where;
                where.out = path_of(p);
                where.format = parse_attribution_format(format);
                where.json_components = json_components;
                if (json_components && where.format != AttributionFormat::Json)
                    throw Error("json_components applies to format=\"json\" only (got format=\"" + format + "\")");
                const std::string out = where.out;
                visit(r, [&](const auto& a) {
                    reading(out, [&] {
                        py::gil_scoped_release release;
                        write_attribution(a, r.cfg, r.run, where);
                        return 0;
                    });
                });
            },
            py::arg("path"), py::arg("format") = "safetensors", py::arg("json_components") = false)
        .def(
            "to_html",
            [](const A& r, const py::object& p) {
                AttributionOutputs where;
                where.html = path_of(p);
                const std::string out = where.html;
                visit(r, [&](const auto& a) {
                    reading(out, [&] {
                        py::gil_scoped_release release;
                        write_attribution(a, r.cfg, r.run, where);
                        return 0;
                    });
                });
            },
            py::arg("path"))
        .def("__repr__", [](const A& r) {
            return visit(r, [&](const auto& a) {
                return "<depass.Attribution " + std::string(level_name(a.level)) + " level from " + a.cut.str() +
                       ", rule " + rule_name(a.options.rule) + ": M=" + std::to_string(a.M()) +
                       " components, N=" + std::to_string(a.N()) + " positions, K=" + std::to_string(a.K()) +
                       " targets, " + r.run.dtype + ">";
            });
        });

    m.def("attribute", &attribute_py, py::arg("model"), py::arg("ids_or_text"), py::arg("level") = "token",
          py::arg("layer") = 0, py::arg("module") = "attn", py::arg("heads") = py::none(),
          py::arg("neurons") = py::none(), py::arg("neuron_groups") = py::none(), py::arg("basis") = py::none(),
          py::arg("components") = py::none(), py::arg("rule") = "softmax", py::arg("temperature") = 0.1,
          py::arg("ignore_special_token") = py::none(), py::arg("targets") = py::none(),
          py::arg("all_layers") = false, py::arg("qk") = py::none(), py::arg("qk_heads") = py::none(),
          py::arg("query_positions") = py::none());

    // ---- compare
    m.def(
        "_compare",
        [](const py::object& ref, const py::object& cand, double rtol, double atol, const py::object& only) {
            CompareOptions opt;
            opt.rtol = rtol;
            opt.atol = atol;
            if (!(rtol >= 0) || !(atol >= 0)) throw Error("compare: rtol and atol must be >= 0");
            if (!only.is_none()) opt.only = only.cast<std::vector<std::string>>();
            const Dump r = open_dump(ref, "reference");
            const Dump c = open_dump(cand, "candidate");
            const CompareResult res = without_gil([&] { return compare_dumps(r, c, opt); });
            py::list rows;
            for (const CompareRow& row : res.rows) rows.append(row_dict(row));
            py::dict d;
            d["passed"] = res.pass();
            d["verdict"] = compare_verdict(res);
            d["table"] = compare_table(res);
            d["json"] = compare_json(res);
            d["rows"] = rows;
            d["compared"] = res.compared;
            d["failed"] = res.failed;
            d["first_failure"] = res.first() ? py::object(py::str(res.first()->name)) : py::object(py::none());
            d["notes"] = res.notes;
            return d;
        },
        py::arg("reference"), py::arg("candidate"), py::arg("rtol"), py::arg("atol"), py::arg("only"));

    m.def("_library_seconds", &library_seconds, py::arg("model"), py::arg("ids_or_text"), py::arg("reps"),
          py::arg("level") = "token", py::arg("layer") = 0, py::arg("rule") = "softmax");
}
