// SPDX-License-Identifier: LGPL-2.1-or-later
// Shared by the libFuzzer harnesses: input as a file (the loaders read paths).
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace talker::fuzz {

// An anonymous in-memory file holding the input; closed when it goes.
class MemFile {
 public:
  MemFile(const uint8_t *data, size_t size) : fd_(memfd_create("fuzz-input", 0)) {
    if (fd_ < 0) std::abort();
    for (size_t done = 0; done < size;) {
      const ssize_t n = write(fd_, data + done, size - done);
      if (n <= 0) std::abort();
      done += size_t(n);
    }
  }
  ~MemFile() { close(fd_); }
  MemFile(const MemFile &) = delete;
  MemFile &operator=(const MemFile &) = delete;
  std::string path() const { return "/proc/self/fd/" + std::to_string(fd_); }

 private:
  int fd_;
};

// A property every input must keep; a broken one is a finding, like a crash.
inline void require(bool holds) {
  if (!holds) __builtin_trap();
}

}  // namespace talker::fuzz
