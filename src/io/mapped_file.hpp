// mapped_file.hpp -- a model file mapped read-only into memory.
//
// The tensor readers (safetensors, GGUF) take their bytes from the map and widen them
// straight into the compute type; nothing is copied into an intermediate buffer. After a
// tensor has been widened its pages are released (madvise MADV_DONTNEED): they leave the
// process's resident set and come back from the page cache, or the disk, if the tensor is
// read again. So reading a checkpoint never holds more than the tensor being widened on top
// of what the caller keeps, whatever the size of the file.
//
// The map is taken when the file is opened and its size checked then; a file truncated by
// another process while it is mapped cannot be detected (the kernel would signal SIGBUS).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace depass::detail {

class MappedFile {
public:
    // Maps PATH read-only. `expected_size` (when not UINT64_MAX) is the size the caller
    // measured while parsing the header: a different size means the file changed in between.
    static std::shared_ptr<const MappedFile> open(const std::string& path,
                                                  uint64_t expected_size = UINT64_MAX);
    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const std::string& path() const { return path_; }
    uint64_t size() const { return size_; }

    // The bytes [offset, offset + n). Throws depass::Error naming the file and `what` when
    // the range is not inside the file.
    const unsigned char* bytes(uint64_t offset, uint64_t n, const std::string& what) const;

    // Drops the pages of [offset, offset + n) from the resident set (a hint; never fails).
    void release(uint64_t offset, uint64_t n) const;

private:
    MappedFile() = default;
    std::string path_;
    uint64_t size_ = 0;
    unsigned char* base_ = nullptr;
};

}  // namespace depass::detail
