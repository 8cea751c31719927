// tokenizers.cpp -- open_tokenizer: picks the vocabulary format of a file.
//
//   *.model          SentencePiece model (protobuf)
//   *.gguf           the vocabulary embedded in a GGUF file (also any file starting "GGUF")
//   *.bin            llama2.c tokenizer export
//   *.json           a Hugging Face tokenizer.json; a vocab.json with merges.txt beside it
//                    is GPT-2's vocab.json + merges.txt pair
//   anything else    llama2.c .bin if it parses as one, else a SentencePiece model
#include <filesystem>
#include <fstream>

#include "depass/tokenizer.hpp"
#include "depass/tokenizer_hf.hpp"

namespace depass {

namespace {

bool has_extension(const std::string& path, const std::string& ext) {
    return path.size() >= ext.size() && path.compare(path.size() - ext.size(), ext.size(), ext) == 0;
}

// The GGUF magic: the four bytes "GGUF" at offset 0.
bool starts_with_gguf_magic(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    char magic[4] = {};
    return in.read(magic, 4) && std::string(magic, 4) == "GGUF";
}

}  // namespace

std::string Tokenizer::decode(const std::vector<int>& ids) const {
    std::string out;
    int prev = -1;
    for (int id : ids) {
        out += decode_piece(prev, id);
        prev = id;
    }
    return out;
}

std::unique_ptr<Tokenizer> open_tokenizer(const std::string& path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (path.empty()) throw Error("open_tokenizer: empty tokenizer path");
    if (!fs::exists(path, ec)) throw Error("tokenizer file '" + path + "': no such file");
    if (fs::is_directory(path, ec)) {
        throw Error("tokenizer file '" + path +
                    "': is a directory (expected tokenizer.json, tokenizer.model, a llama2.c tokenizer .bin "
                    "or a .gguf "
                    "file)");
    }

    if (has_extension(path, ".model")) return load_sentencepiece_tokenizer(path);
    if (has_extension(path, ".json")) return load_hf_tokenizer(path);

    if (has_extension(path, ".gguf") || starts_with_gguf_magic(path)) {
        return load_gguf_tokenizer(path);
    }

    if (has_extension(path, ".bin")) {
        return std::make_unique<Llama2cTokenizer>(Llama2cTokenizer::load(path));
    }

    // Unknown extension: the llama2.c format is strict (the file must end exactly after
    // its last piece), so try it first, then SentencePiece.
    std::string as_bin, as_spm;
    try {
        return std::make_unique<Llama2cTokenizer>(Llama2cTokenizer::load(path));
    } catch (const Error& e) {
        as_bin = e.what();
    }
    try {
        return load_sentencepiece_tokenizer(path);
    } catch (const Error& e) {
        as_spm = e.what();
    }
    throw Error("tokenizer file '" + path +
                "': neither a llama2.c tokenizer .bin nor a SentencePiece model (as .bin: " + as_bin +
                "; as .model: " + as_spm + ")");
}

}  // namespace depass
