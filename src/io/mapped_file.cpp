// mapped_file.cpp -- read-only file maps (POSIX mmap).
#include "mapped_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "depass/types.hpp"  // depass::Error

namespace depass::detail {

std::shared_ptr<const MappedFile> MappedFile::open(const std::string& path, uint64_t expected_size) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(path + ": cannot open file for reading (" + std::strerror(errno) + ")");
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int e = errno;
        ::close(fd);
        throw Error(path + ": cannot determine the file size (" + std::strerror(e) + ")");
    }
    std::shared_ptr<MappedFile> m(new MappedFile);
    m->path_ = path;
    m->size_ = static_cast<uint64_t>(st.st_size);
    if (expected_size != UINT64_MAX && m->size_ != expected_size) {
        ::close(fd);
        throw Error(path + ": the file is " + std::to_string(m->size_) + " bytes now but was " +
                    std::to_string(expected_size) + " bytes when its header was read (changed while open?)");
    }
    if (m->size_ > 0) {
        void* p = ::mmap(nullptr, static_cast<size_t>(m->size_), PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            const int e = errno;
            ::close(fd);
            throw Error(path + ": cannot map the file into memory (" + std::strerror(e) + ")");
        }
        m->base_ = static_cast<unsigned char*>(p);
    }
    ::close(fd);  // the map keeps the file open
    return m;
}

MappedFile::~MappedFile() {
    if (base_) ::munmap(base_, static_cast<size_t>(size_));
}

const unsigned char* MappedFile::bytes(uint64_t offset, uint64_t n, const std::string& what) const {
    if (offset > size_ || n > size_ - offset)
        throw Error(path_ + ": " + what + " at bytes [" + std::to_string(offset) + ", " +
                    std::to_string(offset) + " + " + std::to_string(n) + ") lies outside the " +
                    std::to_string(size_) + "-byte file");
    return base_ + offset;
}

void MappedFile::release(uint64_t offset, uint64_t n) const {
    if (!base_ || n == 0 || offset >= size_) return;
    const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    const uint64_t begin = offset / page * page;
    const uint64_t end = std::min<uint64_t>(size_, offset + std::min(n, size_ - offset));
    ::madvise(base_ + begin, static_cast<size_t>(end - begin), MADV_DONTNEED);
}

}  // namespace depass::detail
