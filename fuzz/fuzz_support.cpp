#include "fuzz_support.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>

#include "depass/tokenizer.hpp"
#include "depass/types.hpp"

namespace fs = std::filesystem;

namespace depass_fuzz {

const char* const kSeparator = "\n--8<--\n";

const std::string& scratch_dir() {
    static const std::string dir = [] {
        const char* base = std::getenv("TMPDIR");
        std::string root = base && *base ? base : (fs::is_directory("/dev/shm") ? "/dev/shm" : "/tmp");
        std::string d = root + "/depass-fuzz-" + std::to_string(getpid());
        fs::create_directories(d);
        return d;
    }();
    static const bool cleanup = [] {
        std::atexit([] {
            std::error_code ec;
            fs::remove_all(dir, ec);
        });
        return true;
    }();
    (void)cleanup;
    return dir;
}

void clear_scratch() {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(scratch_dir(), ec)) fs::remove_all(e.path(), ec);
}

std::string write_file(const std::string& name, const std::string& bytes) {
    const std::string path = scratch_dir() + "/" + name;
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!f) {
        std::fprintf(stderr, "fuzz: cannot write %s\n", path.c_str());
        std::abort();
    }
    return path;
}

std::string write_input(const std::string& name, const uint8_t* data, size_t size) {
    return write_file(name, std::string(reinterpret_cast<const char*>(data), size));
}

std::vector<std::string> split(const uint8_t* data, size_t size, size_t want) {
    const std::string all(reinterpret_cast<const char*>(data), size);
    const std::string sep = kSeparator;
    std::vector<std::string> parts;
    size_t pos = 0;
    while (parts.size() + 1 < want) {
        const size_t at = all.find(sep, pos);
        if (at == std::string::npos) break;
        parts.push_back(all.substr(pos, at - pos));
        pos = at + sep.size();
    }
    parts.push_back(all.substr(pos));
    parts.resize(want);
    return parts;
}

void guarded(const char* reader, const std::function<void()>& body) {
    try {
        body();
    } catch (const depass::Error& e) {
        // the reader refused the input: the correct outcome
        static const bool verbose = std::getenv("DEPASS_FUZZ_VERBOSE") != nullptr;
        if (verbose) std::fprintf(stderr, "fuzz_%s: depass::Error: %s\n", reader, e.what());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fuzz_%s: exception other than depass::Error: %s\n", reader, e.what());
        std::abort();
    } catch (...) {
        std::fprintf(stderr, "fuzz_%s: unknown exception type\n", reader);
        std::abort();
    }
    clear_scratch();
}

void exercise_tokenizer(const depass::Tokenizer& tok) {
    static const std::string texts[] = {
        "",
        " ",
        "Once upon a time, there was a little girl named Lily.",
        "  two  spaces\tand\ttabs\r\nnew lines\n\n",
        "caf\xc3\xa9 na\xc3\xafve \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x99\x82 1234567 3.14",
        "<s></s><unk><|endoftext|><|begin_of_text|>[CLS]",
        "\xff\xfe\x80 bad \xc3 utf8 \xed\xa0\x80",
        std::string("a\0nul inside", 13),
    };
    for (const std::string& t : texts) {
        for (int flags = 0; flags < 2; ++flags) {
            const std::vector<int> ids = tok.encode(t, flags == 1, flags == 1);
            (void)tok.decode(ids);
            int prev = -1;
            for (int id : ids) {
                (void)tok.decode_piece(prev, id);
                prev = id;
            }
        }
    }
    const int v = tok.vocab_size();
    for (int id = 0; id < v && id < 4096; ++id) (void)tok.piece(id);
    (void)tok.kind();
}

}  // namespace depass_fuzz
