// compare.hpp -- checking another engine's tensors against depass's, tensor by tensor.
//
// An engine author dumps their engine's tensors under the names of `depass forward --dump`
// (dump.hpp) or `depass attribute --out`, and compares the two dumps here. A dump is a
// .safetensors file or a directory of .npy files (tensor name = file stem); every value is
// read as double (integer tensors too).
//
// Policy (tolerance.hpp): a tensor passes when, at every element,
//     |cand - ref| <= atol + rtol * max|ref|
// with max|ref| taken over the whole reference tensor. Integer reference tensors
// (input_ids, targets) must match exactly. A NaN or Inf anywhere, a shape mismatch or a
// tensor missing from the candidate is a failure; a tensor only in the candidate is a note.
//
// Forward order. Tensors are walked in the order the network computes them, and for the
// stacked tensors whose leading axis is the layer (attn_probs, attn_out, post_attn_residual,
// mlp_act, layer_outputs, hidden_states; components_by_point by residual point) layer by
// layer: block l's attention probabilities, attention output, post-attention residual,
// MLP activation, block output, then block l+1, then the final norm and the logits. The
// first failure is the earliest failing (tensor, layer) in that order, i.e. where the two
// engines first part ways. Names the walk does not know come after, in the reference's file
// order (safetensors: by data offset; .npy directory: alphabetical).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "depass/io.hpp"
#include "depass/tolerance.hpp"
#include "depass/types.hpp"

namespace depass {

// One tensor of a dump, as double.
struct DumpTensor {
    std::string name;
    std::vector<int64_t> shape;
    std::vector<double> values;  // row-major
    bool is_int = false;         // stored as an integer type
    std::string dtype;           // as stored: "F32", "F64", "I64", ...; .npy: "<f4", "<f8", "<i8", ...
};

// A dump opened for comparison. Values are read one tensor at a time, on demand.
class Dump {
public:
    // PATH: a .safetensors file (or a sharded .safetensors.index.json), or a directory of
    // .npy files. Throws depass::Error naming PATH when it is neither or holds no tensor.
    static Dump open(const std::string& path);
    // Tensors held in memory (another engine's, handed over by a program), in the given
    // order; `label` stands for the path in messages. Throws depass::Error when there is
    // no tensor, a name repeats, or a tensor's values do not fill its shape.
    static Dump from_tensors(const std::string& label, std::vector<DumpTensor> tensors);

    const std::string& path() const { return path_; }
    bool is_npy_dir() const { return npy_dir_; }
    // File order: safetensors by data offset (per shard); .npy directory alphabetical.
    const std::vector<std::string>& names() const { return names_; }
    bool has(const std::string& name) const;
    // Reads one tensor (non-finite values are kept: the comparison reports them).
    DumpTensor read(const std::string& name) const;
    // The safetensors "__metadata__" (empty for a .npy directory).
    const std::map<std::string, std::string>& metadata() const;

private:
    std::string path_;
    bool npy_dir_ = false;
    std::vector<std::string> names_;
    std::map<std::string, std::string> npy_files_;  // .npy directory: name -> file
    std::shared_ptr<const SafeTensors> st_;
    std::shared_ptr<const std::map<std::string, DumpTensor>> memory_;  // from_tensors
};

struct CompareOptions {
    double rtol = tolerance::golden_f32_rel;  // relative to max|ref| of the tensor
    double atol = 0;                          // absolute
    std::vector<std::string> only;            // compare only these names (empty = all)
};

enum class CompareStatus {
    Ok,             // within tolerance
    Mismatch,       // some |cand - ref| exceeds atol + rtol * max|ref|
    ShapeMismatch,  // shapes differ: nothing else compared
    NonFinite,      // NaN or Inf in the candidate (or the reference)
    Missing,        // in the reference, not in the candidate
    Extra,          // in the candidate only: a note, not a failure
};
const char* status_name(CompareStatus s);  // "OK", "FAIL", "SHAPE", "NAN/INF", "MISSING", "extra"

struct CompareRow {
    std::string name;
    CompareStatus status = CompareStatus::Ok;
    std::vector<int64_t> ref_shape, cand_shape;
    std::string ref_dtype, cand_dtype;
    bool exact = false;                // integer reference: must match exactly
    double max_abs = 0;                // max |cand - ref| over finite pairs
    double max_rel = 0;                // max_abs / max|ref| (inf when max|ref| = 0 < max_abs)
    double scale = 0;                  // max|ref| over finite reference values
    double tolerance = 0;              // the allowed |cand - ref|: atol + rtol * scale (0 when exact)
    std::vector<int64_t> worst_index;  // multi-index of max_abs (empty when nothing was compared)
    size_t nonfinite = 0;              // non-finite values (candidate, else reference)
    bool nonfinite_in_ref = false;
    std::vector<int64_t> first_nonfinite;  // multi-index of the first one
    // Stacked tensors: the first failing slice of the leading axis (-1: none, or not stacked),
    // with max_rel and worst index within that slice.
    int first_bad_slice = -1;
    double first_bad_max_rel = 0;
    std::vector<int64_t> first_bad_index;
    std::string message;  // one line explaining a failure or note (empty when OK)

    bool failed() const { return status != CompareStatus::Ok && status != CompareStatus::Extra; }
};

struct CompareResult {
    std::string ref_path, cand_path;
    CompareOptions options;
    std::vector<CompareRow> rows;  // forward order; extras last
    int compared = 0;              // rows that are not extras
    int failed = 0;
    int first_failure = -1;  // index into rows of the earliest failure in forward order
    std::vector<std::string> notes;

    bool pass() const { return failed == 0; }
    const CompareRow* first() const { return first_failure >= 0 ? &rows[size_t(first_failure)] : nullptr; }
};

// Compares two tensors (names taken from `ref`). Throws depass::Error on bad options.
CompareRow compare_tensors(const DumpTensor& ref, const DumpTensor& cand, const CompareOptions& opt);

// Compares every reference tensor (or opt.only) with the candidate's tensor of the same name.
// Throws depass::Error on bad options or a name in opt.only that the reference lacks.
CompareResult compare_dumps(const Dump& ref, const Dump& cand, const CompareOptions& opt);
CompareResult compare_dumps(const std::string& ref_path, const std::string& cand_path,
                            const CompareOptions& opt);

// Report pieces (the library never prints):
//   the table: tensor, shape, max_abs, max_rel, worst index, verdict (+ a line per failure)
std::string compare_table(const CompareResult& r);
//   "PASS: 12 tensors match (...)" or "FAIL: first failing tensor is 'attn_probs' (max_rel ... at [...])"
std::string compare_verdict(const CompareResult& r);
//   the whole result as JSON (NaN / Inf written as null)
std::string compare_json(const CompareResult& r);

// Flat row-major index -> multi-index of `shape`.
std::vector<int64_t> unravel_index(size_t flat, const std::vector<int64_t>& shape);

}  // namespace depass
