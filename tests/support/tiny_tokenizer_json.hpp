// tiny_tokenizer_json.hpp -- a small byte-level BPE tokenizer.json for the tests.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace depass_test {

// The vocabulary holds every byte's character of the GPT-2 byte alphabet (id = byte; the bytes
// that are not printable map to U+0100...), then `extra` (ids 256...); `merges` as given.
inline nlohmann::json tiny_tokenizer_json(const std::vector<std::string>& extra,
                                          const nlohmann::json& merges) {
    nlohmann::json vocab = nlohmann::json::object();
    int id = 0, next = 0x100;
    for (int b = 0; b < 256; ++b) {
        const bool printable =
            (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        const int cp = printable ? b : next++;
        std::string s;
        if (cp < 0x80)
            s = std::string(1, char(cp));
        else
            s = {char(0xC0 | (cp >> 6)), char(0x80 | (cp & 0x3F))};
        vocab[s] = id++;
    }
    for (const std::string& e : extra) vocab[e] = id++;
    nlohmann::json j;
    j["version"] = "1.0";
    j["added_tokens"] = nlohmann::json::array();
    j["normalizer"] = nullptr;
    j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
    j["post_processor"] = nullptr;
    j["decoder"] = {{"type", "ByteLevel"}};
    j["model"] = {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}};
    return j;
}

}  // namespace depass_test
