// SPDX-License-Identifier: LGPL-2.1-or-later
#include "lib/nn/zip_archive.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "lib/common/error.h"

namespace talker::nn {
namespace {

constexpr uint32_t kLocalHeaderSig = 0x04034b50;
constexpr uint32_t kCentralHeaderSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kZip64EndSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;

// Little-endian reads that never run past the mapped file.
class Cursor {
 public:
  Cursor(const MappedFile &f, uint64_t pos) : f_(f), pos_(pos) {}
  void need(uint64_t n) const {
    if (pos_ > f_.size() || n > f_.size() - pos_)
      throw Error(f_.path() +
                  ": truncated or corrupt ZIP archive (structure runs past end of file)");
  }
  uint64_t le(int bytes) {
    need(bytes);
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= uint64_t(f_.data()[pos_ + i]) << (8 * i);
    pos_ += bytes;
    return v;
  }
  uint16_t u16() { return static_cast<uint16_t>(le(2)); }
  uint32_t u32() { return static_cast<uint32_t>(le(4)); }
  uint64_t u64() { return le(8); }
  std::string str(size_t n) {
    need(n);
    std::string s(reinterpret_cast<const char *>(f_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  void skip(uint64_t n) {
    need(n);
    pos_ += n;
  }
  uint64_t pos() const { return pos_; }

 private:
  const MappedFile &f_;
  uint64_t pos_;
};

}  // namespace

bool ZipArchive::looks_like_zip(const uint8_t *data, size_t size) {
  return size >= 4 && data[0] == 'P' && data[1] == 'K' && data[2] == 3 && data[3] == 4;
}

ZipArchive::ZipArchive(std::shared_ptr<MappedFile> file) : file_(std::move(file)) {
  const MappedFile &f = *file_;
  const std::string &path = f.path();
  if (!looks_like_zip(f.data(), f.size()))
    throw Error(path + ": not a ZIP archive (PyTorch checkpoints saved since PyTorch 1.6 are)");
  // The end record sits in the last 22 + 65535 bytes (its comment is at most 64 KiB).
  if (f.size() < 22) throw Error(path + ": truncated ZIP archive (no end of central directory)");
  uint64_t end_pos = UINT64_MAX;
  uint64_t lowest = f.size() > 22 + 65535 ? f.size() - 22 - 65535 : 0;
  for (uint64_t p = f.size() - 22 + 1; p-- > lowest;) {
    if (Cursor(f, p).u32() == kEndSig) {
      end_pos = p;
      break;
    }
  }
  if (end_pos == UINT64_MAX)
    throw Error(path + ": truncated or corrupt ZIP archive (no end of central directory record)");

  Cursor end(f, end_pos + 4);
  end.skip(6);
  uint64_t count = end.u16();
  uint64_t cd_size = end.u32();
  uint64_t cd_offset = end.u32();
  if (end_pos >= 20 && Cursor(f, end_pos - 20).u32() == kZip64LocatorSig) {
    Cursor loc(f, end_pos - 12);  // past signature and disk number
    uint64_t z64_pos = loc.u64();
    Cursor z64(f, z64_pos);
    if (z64.u32() != kZip64EndSig) throw Error(path + ": corrupt ZIP64 end of central directory");
    z64.skip(8 + 2 + 2 + 4 + 4 + 8);
    count = z64.u64();
    cd_size = z64.u64();
    cd_offset = z64.u64();
  }
  if (cd_offset > f.size() || cd_size > f.size() - cd_offset)
    throw Error(path + ": truncated or corrupt ZIP archive (central directory outside the file)");

  Cursor cd(f, cd_offset);
  for (uint64_t i = 0; i < count; ++i) {
    if (cd.u32() != kCentralHeaderSig)
      throw Error(path + ": corrupt ZIP central directory (entry " + std::to_string(i) + ")");
    cd.skip(4);
    uint16_t flags = cd.u16();
    uint16_t method = cd.u16();
    cd.skip(4);
    uint32_t crc = cd.u32();
    uint64_t csize = cd.u32();
    uint64_t usize = cd.u32();
    uint16_t name_len = cd.u16();
    uint16_t extra_len = cd.u16();
    uint16_t comment_len = cd.u16();
    cd.skip(8);
    uint64_t local_offset = cd.u32();
    std::string name = cd.str(name_len);
    uint64_t extra_end = cd.pos() + extra_len;
    while (cd.pos() + 4 <= extra_end) {
      uint16_t id = cd.u16();
      uint16_t len = cd.u16();
      uint64_t field_end = cd.pos() + len;
      if (id == 0x0001) {
        if (usize == 0xFFFFFFFF && cd.pos() + 8 <= field_end) usize = cd.u64();
        if (csize == 0xFFFFFFFF && cd.pos() + 8 <= field_end) csize = cd.u64();
        if (local_offset == 0xFFFFFFFF && cd.pos() + 8 <= field_end) local_offset = cd.u64();
      }
      cd.skip(field_end - cd.pos());
    }
    cd.skip(extra_end - cd.pos());
    cd.skip(comment_len);
    if (method != 0 || csize != usize)
      throw Error(path + ": record " + name +
                  " is compressed; PyTorch checkpoints store records uncompressed");
    if (flags & 1) throw Error(path + ": record " + name + " is encrypted");

    Cursor local(f, local_offset);
    if (local.u32() != kLocalHeaderSig)
      throw Error(path + ": corrupt ZIP local header for record " + name);
    local.skip(22);
    uint16_t lname = local.u16();
    uint16_t lextra = local.u16();
    local.skip(uint64_t(lname) + lextra);
    Record r{local.pos(), usize, crc};
    if (r.offset > f.size() || r.size > f.size() - r.offset)
      throw Error(path + ": truncated file: record " + name + " runs past the end");
    records_[name] = r;
  }
}

std::vector<std::string> ZipArchive::names() const {
  std::vector<std::string> out;
  for (const auto &kv : records_) out.push_back(kv.first);
  return out;
}

const ZipArchive::Record &ZipArchive::record(const std::string &name) const {
  auto it = records_.find(name);
  if (it == records_.end()) throw Error(path() + ": missing record " + name);
  return it->second;
}

void ZipArchive::verify(const std::string &name) const {
  const Record &r = record(name);
  uLong crc = crc32(0L, Z_NULL, 0);
  const uint8_t *p = data(r);
  uint64_t left = r.size;
  while (left > 0) {  // zlib takes 32-bit lengths
    uInt n = static_cast<uInt>(std::min<uint64_t>(left, 1u << 30));
    crc = crc32(crc, p, n);
    p += n;
    left -= n;
  }
  if (static_cast<uint32_t>(crc) != r.crc32)
    throw Error(path() + ": record " + name + " is corrupt (CRC-32 mismatch)");
}

}  // namespace talker::nn
