// depass compare -- check another engine's tensors against a depass dump, tensor by tensor.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <sstream>

#include "commands.hpp"
#include "depass/compare.hpp"
#include "depass/io.hpp"
#include "depass/tolerance.hpp"

namespace depass::cli {

namespace {

struct CompareCliOptions {
    std::string ref, cand;
    double rtol = tolerance::golden_f32_rel;
    double atol = 0;
    std::string only;
    std::string json;
};

std::string num(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

std::string describe_dump(const Dump& d) {
    std::ostringstream os;
    const size_t n = d.names().size();
    os << d.path() << " (" << n << (d.is_npy_dir() ? " .npy file" : " tensor") << (n == 1 ? "" : "s");
    const auto& meta = d.metadata();
    for (const char* key : {"format", "dtype"}) {
        auto it = meta.find(key);
        if (it != meta.end()) os << ", " << key << " " << it->second;
    }
    os << ")";
    return os.str();
}

void run_compare(const CompareCliOptions& o) {
    if (!(o.rtol >= 0) || !std::isfinite(o.rtol))
        throw UsageError("--rtol: " + num(o.rtol) + " (expected a finite number >= 0, e.g. 1e-4)");
    if (!(o.atol >= 0) || !std::isfinite(o.atol))
        throw UsageError("--atol: " + num(o.atol) + " (expected a finite number >= 0, e.g. 0)");
    CompareOptions opt;
    opt.rtol = o.rtol;
    opt.atol = o.atol;
    if (!o.only.empty()) {
        std::stringstream ss(o.only);
        std::string item;
        while (std::getline(ss, item, ',')) {
            const size_t a = item.find_first_not_of(" \t"), b = item.find_last_not_of(" \t");
            if (a == std::string::npos) throw UsageError("--only: empty name in '" + o.only + "'");
            opt.only.push_back(item.substr(a, b - a + 1));
        }
        if (opt.only.empty()) throw UsageError("--only: empty list (expected names, e.g. attn_probs,logits)");
    }

    const Dump ref = Dump::open(o.ref);
    for (const std::string& n : opt.only)
        if (!ref.has(n)) {
            std::string all;
            for (const std::string& m : ref.names()) all += (all.empty() ? "" : ",") + m;
            throw UsageError("--only: no tensor '" + n + "' in the reference " + o.ref + " (it holds " + all +
                             ")");
        }
    const Dump cand = Dump::open(o.cand);

    std::cout
        << "depass compare\n  reference  " << describe_dump(ref) << "\n  candidate  " << describe_dump(cand)
        << "\n  pass when |candidate - reference| <= atol + rtol * max|reference| over each tensor (rtol "
        << num(o.rtol) << ", atol " << num(o.atol) << "); integer tensors must match exactly\n\n";
    const CompareResult r = compare_dumps(ref, cand, opt);
    std::cout << compare_table(r) << "\n" << compare_verdict(r) << "\n";
    std::cout.flush();
    if (!o.json.empty()) write_file_atomic(o.json, compare_json(r));
    if (!r.pass()) {
        const CompareRow& f = *r.first();
        throw Error("compare: " + std::to_string(r.failed) + " of " + std::to_string(r.compared) +
                    " tensors differ; first failing tensor '" + f.name + "': " + f.message);
    }
}

}  // namespace

void register_compare(CLI::App& app) {
    auto o = std::make_shared<CompareCliOptions>();
    CLI::App* sub = app.add_subcommand(
        "compare",
        "Check another engine's tensors against a depass dump, tensor by tensor.\n"
        "REF is the output of `depass forward --dump` or `depass attribute --out`; CANDIDATE holds the "
        "other\n"
        "engine's tensors under the same names and shapes: a .safetensors file or a directory of NAME.npy "
        "files.\n"
        "Tensors are walked in forward order (layer by layer for the stacked [L, ...] tensors), and the "
        "first\n"
        "failing one is named: where the two engines first part ways. A tensor passes when every element "
        "has\n"
        "|cand - ref| <= atol + rtol * max|ref| (max over the reference tensor); integer tensors must match\n"
        "exactly; NaN/Inf, a shape mismatch or a missing tensor fails; tensors only in CANDIDATE are "
        "listed.\n"
        "Picking the tolerance: --rtol 1e-4 (default) when either side computes in float32 (a float32 "
        "forward\n"
        "drifts by ~1e-6 .. 1e-5 of a tensor's magnitude); --rtol 1e-10 when both sides compute everything "
        "in\n"
        "float64 (`depass forward --dtype f64` against an all-float64 engine). Half-precision engines need "
        "a\n"
        "looser --rtol (~1e-2); measure it on a known-good run first. --atol is rarely needed: the error is\n"
        "already measured relative to max|ref| of each tensor.\n"
        "Exit status: 0 all match, 1 a tensor fails (or a file cannot be read), 2 usage error.\n"
        "Example: depass compare trace.safetensors my_engine_dump/ --rtol 1e-4 --json report.json");
    sub->add_option("REF", o->ref, "Reference dump (.safetensors or directory of .npy)")->required();
    sub->add_option("CANDIDATE", o->cand, "Candidate dump (.safetensors or directory of .npy)")->required();
    sub->add_option("--rtol", o->rtol, "Relative tolerance, times max|ref| of each tensor")
        ->capture_default_str();
    sub->add_option("--atol", o->atol, "Absolute tolerance added to rtol * max|ref|")->capture_default_str();
    sub->add_option("--only", o->only,
                    "Compare only these tensors, comma-separated (e.g. attn_probs,logits)");
    sub->add_option("--json", o->json, "Also write the result as JSON to this file (written atomically)");
    sub->callback([o] { run_compare(*o); });
}

}  // namespace depass::cli
