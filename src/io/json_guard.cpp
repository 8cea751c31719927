// json_guard.cpp -- depth-checked JSON parsing and short value descriptions (see json_guard.hpp).
#include "json_guard.hpp"

#include "depass/io.hpp"

namespace depass::detail {

void check_json_depth(const std::string& text, const std::string& where, int max_depth) {
    int depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            if (c == '\\')
                ++i;  // the escaped character cannot end the string
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth) {
                throw Error(where + ": JSON nests deeper than " + std::to_string(max_depth) +
                            " levels (at byte " + std::to_string(i) + "); refusing to parse it");
            }
        } else if (c == ']' || c == '}') {
            if (depth > 0) --depth;  // an unbalanced close is the parser's error to report
        }
    }
}

nlohmann::json parse_json_checked(const std::string& text, const std::string& where,
                                  const std::string& what) {
    check_json_depth(text, where);
    try {
        return nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        throw Error(where + ": " + what + ": " + e.what());
    }
}

const char* json_type(const nlohmann::json& j) {
    if (j.is_null()) return "null";
    if (j.is_boolean()) return "boolean";
    if (j.is_number()) return "number";
    if (j.is_string()) return "string";
    if (j.is_array()) return "array";
    if (j.is_object()) return "object";
    return "binary";
}

std::string text_prefix(const std::string& s, size_t n) {
    if (s.size() <= n) return s;
    return s.substr(0, n > 3 ? n - 3 : 0) + "...";
}

std::string json_brief(const nlohmann::json& j) {
    if (j.is_string()) return nlohmann::json(text_prefix(j.get_ref<const std::string&>(), 60)).dump();
    if (j.is_primitive()) return j.dump();  // null, boolean, number
    // A small flat array or object (such as [0, 16] or a rope_scaling dict) is shown as
    // text: one level, at most 16 scalar members, cut to 160 characters.
    bool flat = (j.is_array() || j.is_object()) && j.size() <= 16;
    if (flat)
        for (const auto& e : j)
            if (!e.is_primitive()) {
                flat = false;
                break;
            }
    if (flat) return text_prefix(j.dump(), 160);
    if (j.is_array())
        return "an array of " + std::to_string(j.size()) + (j.size() == 1 ? " element" : " elements");
    if (j.is_object())
        return "an object with " + std::to_string(j.size()) + (j.size() == 1 ? " key" : " keys");
    return std::string("a ") + json_type(j) + " value";
}

}  // namespace depass::detail
