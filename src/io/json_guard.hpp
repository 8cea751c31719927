// json_guard.hpp -- the one way depass parses JSON that comes from a file.
//
// nlohmann::json parses and destroys nested values recursively, so a file of a
// million '[' overflows the stack (and costs ~80 bytes of heap per level before
// that). parse_json_checked() first measures the nesting depth with a linear
// scan over the text (skipping string contents and their escapes) and refuses
// anything deeper than kMaxJsonDepth; only then does it call the parser.
// json_brief() describes a value for an error message without dumping it whole.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>

namespace depass::detail {

// Deep enough for every real config.json / safetensors header (they nest 3-5 levels).
constexpr int kMaxJsonDepth = 64;

// Throws depass::Error "<where>: JSON nests deeper than 64 levels (at byte B)" when the
// text does; unbalanced or malformed text is left for the parser to report.
void check_json_depth(const std::string& text, const std::string& where, int max_depth = kMaxJsonDepth);

// check_json_depth, then nlohmann::json::parse; a parse error becomes
// depass::Error "<where>: <what>: <parser message>" (what = e.g. "malformed JSON").
nlohmann::json parse_json_checked(const std::string& text, const std::string& where,
                                  const std::string& what = "malformed JSON");

// A short description of a value for messages: scalars as JSON text (strings cut
// to 60 characters), a small flat array or object of scalars as text ("[0,16]",
// cut to 160 characters), anything else by its type and size ("an array of 3
// elements", "an object with 2 keys"). Never recursive, never unbounded.
std::string json_brief(const nlohmann::json& j);

// The JSON type name of a value: "null", "boolean", "number", "string", "array", "object".
const char* json_type(const nlohmann::json& j);

// At most n characters of raw text, with "..." when cut (for quoting file contents).
std::string text_prefix(const std::string& s, size_t n = 80);

}  // namespace depass::detail
