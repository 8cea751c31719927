// attribution_files.hpp -- an Attribution as the files `depass attribute` writes.
//
// The command line and the language bindings both write their results through these
// functions, so a result saved from either is the same file, byte for byte:
//
//   --out (safetensors)  components [M,N,D] (not for adjoint or stacked runs), logit_attribution
//                        [M,N,K] (stacked layers: logit_attribution_by_layer [L,M,N,K]), targets [N,K] (int),
//                        target_logits [N,K], input_ids [N] (int), components_by_point
//                        [S,M,N,D] when the components were kept at every point; the
//                        run's facts as string metadata (attribution_metadata)
//                        with a QK split (qk.hpp): qk_logits [H',M,M,Nq,N], qk_key_share and
//                        qk_query_share [H',M,Nq,N] (the pairs summed over the other side),
//                        qk_top_pairs [H',Nq,N,5,2] (int: query-side, key-side component) and
//                        qk_top_values [H',Nq,N,5] (the five largest |pairs| of every logit),
//                        qk_heads [H'] and qk_queries [Nq] (int)
//   --out (json)         render_report_json of the report, components only on request
//   --out (npy)          a directory of <tensor>.npy files plus meta.json
//   --html               render_report_html of the report
#pragma once

#include <map>
#include <string>
#include <vector>

#include "depass/attribute.hpp"
#include "depass/io.hpp"
#include "depass/report.hpp"
#include "depass/tokenizer.hpp"

namespace depass {

// What the files record about the run besides the numbers.
struct AttributionRun {
    std::string model;                     // the model as the caller named it (its path)
    std::string dtype;                     // "f32" | "f64"
    int layer = 0;                         // the requested layer (recorded for module / head / neuron)
    std::vector<int> ids;                  // [N] the input token ids
    const Tokenizer* tokenizer = nullptr;  // for the display pieces (null: "#id")
    bool adjoint = false;  // computed by the reverse pass (adjoint.hpp): no components to write
    // > 1: the attribution stacks this many layers' components (module / head / neuron level,
    // every block), written as logit_attribution_by_layer [layers, M / layers, N, K].
    int layers = 1;
};

// The tensors of the safetensors / npy output, in file order.
template <class T>
std::vector<NamedTensor> attribution_tensors(const Attribution<T>& a, const Config& cfg,
                                             const AttributionRun& run);

// The safetensors metadata: format, model, dtype, level, cut, rule, temperature,
// ignore_special_token, component_names, points (JSON lists), completeness_max_rel.
template <class T>
std::map<std::string, std::string> attribution_metadata(const Attribution<T>& a, const AttributionRun& run);

// The report (report.hpp) of the HTML page and of the JSON and npy outputs.
template <class T>
AttributionReport attribution_report(const Attribution<T>& a, const Config& cfg, const AttributionRun& run);

enum class AttributionFormat { Safetensors, Json, Npy };
// "safetensors" | "json" | "npy"; throws depass::Error naming the value.
AttributionFormat parse_attribution_format(const std::string& s);

// Where to write. Either path may be empty (not written); both given must differ.
struct AttributionOutputs {
    std::string out;  // a file (safetensors, json) or a directory (npy)
    AttributionFormat format = AttributionFormat::Safetensors;
    bool json_components = false;  // json: also the components (large)
    std::string html;
};

// Writes the outputs so that they appear together or not at all (OutputBatch): a failure
// part way leaves no file behind. Throws depass::Error naming the file.
template <class T>
void write_attribution(const Attribution<T>& a, const Config& cfg, const AttributionRun& run,
                       const AttributionOutputs& where);

}  // namespace depass
