// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lib/common/mapped_file.h"

namespace talker::nn {

// Read-only view of a ZIP archive as torch.save writes it: every record stored
// uncompressed, so a record is a byte range of the mapped file.
class ZipArchive {
 public:
  struct Record {
    uint64_t offset = 0;  // of the data, in the file
    uint64_t size = 0;
    uint32_t crc32 = 0;
  };

  // Throws talker::Error naming the file when it is not a readable archive.
  explicit ZipArchive(std::shared_ptr<MappedFile> file);

  const std::string &path() const { return file_->path(); }
  const std::shared_ptr<MappedFile> &file() const { return file_; }
  std::vector<std::string> names() const;
  bool has(const std::string &name) const { return records_.count(name) > 0; }
  const Record &record(const std::string &name) const;
  const uint8_t *data(const Record &r) const { return file_->data() + r.offset; }
  // Checks the record against the CRC the writer stored; throws on mismatch.
  void verify(const std::string &name) const;

  // True when the bytes start like a ZIP local file header.
  static bool looks_like_zip(const uint8_t *data, size_t size);

 private:
  std::shared_ptr<MappedFile> file_;
  std::map<std::string, Record> records_;
};

}  // namespace talker::nn
