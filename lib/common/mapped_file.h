// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace talker {

// A whole file mapped copy-on-write: weights are read in place, and a stray
// in-place write on a tensor that views it cannot touch the file.
class MappedFile {
 public:
  static std::shared_ptr<MappedFile> open(const std::string &path);
  ~MappedFile();
  MappedFile(const MappedFile &) = delete;
  MappedFile &operator=(const MappedFile &) = delete;

  const uint8_t *data() const { return data_; }
  uint8_t *mutable_data() { return data_; }
  size_t size() const { return size_; }
  const std::string &path() const { return path_; }

 private:
  MappedFile(std::string path, uint8_t *data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  std::string path_;
  uint8_t *data_;
  size_t size_;
};

}  // namespace talker
