// files.cpp -- small file helpers: whole-file reads, existence checks and
// atomic writes (temporary file in the same directory + rename).
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "depass/io.hpp"

namespace fs = std::filesystem;

namespace depass {

std::string read_text_file(const std::string& path) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) throw Error(path + ": is a directory, expected a file");
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        if (!fs::exists(path, ec)) throw Error("no such file or directory: " + path);
        throw Error(path + ": cannot open file for reading (" + std::strerror(errno) + ")");
    }
    std::ostringstream os;
    os << in.rdbuf();
    if (in.bad()) throw Error(path + ": read error");
    return os.str();
}

bool is_directory(const std::string& path) {
    std::error_code ec;
    return fs::is_directory(path, ec);
}

bool file_exists(const std::string& path) {
    std::error_code ec;
    return fs::exists(path, ec);
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
    if (path.empty()) throw Error("write_file_atomic: empty output path");
    if (is_directory(path)) throw Error(path + ": is a directory, cannot write a file there");

    // The temporary lives next to the target so that rename() stays on one
    // file system and is atomic.
    std::string tmpl = path + ".tmp-XXXXXX";
    int fd = ::mkstemp(tmpl.data());
    if (fd < 0) {
        throw Error(path + ": cannot create temporary file " + tmpl + " (" + std::strerror(errno) + ")");
    }
    const std::string tmp = tmpl;
    auto fail = [&](const std::string& what) {
        int saved = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        throw Error(path + ": " + what + " (" + std::strerror(saved) + ")");
    };

    const char* p = bytes.data();
    size_t left = bytes.size();
    while (left > 0) {
        ssize_t n = ::write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("write failed");
        }
        p += n;
        left -= static_cast<size_t>(n);
    }
    // mkstemp creates the file with mode 0600; give it the usual permissions
    // (0666 filtered by the umask) like an ordinary newly created file.
    mode_t mask = ::umask(0);
    ::umask(mask);
    ::fchmod(fd, static_cast<mode_t>(0666) & ~mask);
    if (::close(fd) != 0) {
        int saved = errno;
        ::unlink(tmp.c_str());
        throw Error(path + ": closing the temporary file failed (" + std::strerror(saved) + ")");
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        int saved = errno;
        ::unlink(tmp.c_str());
        throw Error(path + ": cannot rename " + tmp + " into place (" + std::strerror(saved) + ")");
    }
}

}  // namespace depass
