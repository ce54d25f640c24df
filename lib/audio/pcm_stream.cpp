// SPDX-License-Identifier: LGPL-2.1-or-later
#include "lib/audio/pcm_stream.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "lib/common/error.h"

namespace talker::audio {
namespace {

uint32_t le32(const uint8_t *p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
uint16_t le16(const uint8_t *p) {
  return uint16_t(p[0] | p[1] << 8);
}

// WAV headers that streaming servers write before they know the length.
bool is_unknown_size(uint32_t size) {
  return size == 0 || size == 0xFFFFFFFFu;
}

constexpr size_t kMaxHeaderBytes = 1 << 20;

}  // namespace

PcmStreamDecoder PcmStreamDecoder::wav() {
  PcmStreamDecoder d;
  d.is_wav_ = true;
  return d;
}

PcmStreamDecoder PcmStreamDecoder::raw_s16le(int rate, int channels) {
  if (rate <= 0 || channels <= 0)
    throw Error("raw PCM: invalid format " + std::to_string(rate) + " Hz, " +
                std::to_string(channels) + " channels");
  PcmStreamDecoder d;
  d.rate_ = rate;
  d.channels_ = channels;
  d.header_done_ = true;
  d.start_samples();
  return d;
}

void PcmStreamDecoder::start_samples() {
  resampler_ = std::make_unique<Resampler>(rate_, kOutputRate);
}

bool PcmStreamDecoder::parse_wav_header() {
  const uint8_t *p = pending_.data();
  const size_t n = pending_.size();
  if (n < 12) return false;
  if (std::memcmp(p, "RIFF", 4) != 0 || std::memcmp(p + 8, "WAVE", 4) != 0)
    throw Error("not a WAV stream: it starts with bytes that are not RIFF/WAVE");
  size_t pos = 12;
  bool have_fmt = false;
  for (;;) {
    if (n < pos + 8) return false;
    const uint32_t size = le32(p + pos + 4);
    if (std::memcmp(p + pos, "data", 4) == 0) {
      if (!have_fmt) throw Error("WAV stream: data chunk before the fmt chunk");
      data_size_known_ = !is_unknown_size(size);
      data_left_ = data_size_known_ ? size : UINT64_MAX;
      pending_.erase(pending_.begin(), pending_.begin() + long(pos + 8));
      return true;
    }
    if (n < pos + 8 + size + (size & 1)) {
      if (n > kMaxHeaderBytes) throw Error("WAV stream: no data chunk in the first 1 MiB");
      return false;
    }
    if (std::memcmp(p + pos, "fmt ", 4) == 0) {
      if (size < 16) throw Error("WAV stream: fmt chunk of " + std::to_string(size) + " bytes");
      const uint8_t *f = p + pos + 8;
      uint16_t tag = le16(f);
      channels_ = le16(f + 2);
      rate_ = int(le32(f + 4));
      const int bits = le16(f + 14);
      if (tag == 0xFFFE && size >= 26) tag = le16(f + 24);  // WAVE_FORMAT_EXTENSIBLE sub-format
      if (tag == 1 && bits == 16)
        format_ = SampleFormat::kS16;
      else if (tag == 1 && bits == 8)
        format_ = SampleFormat::kU8;
      else if (tag == 1 && bits == 24)
        format_ = SampleFormat::kS24;
      else if (tag == 1 && bits == 32)
        format_ = SampleFormat::kS32;
      else if (tag == 3 && bits == 32)
        format_ = SampleFormat::kF32;
      else
        throw Error("WAV stream: unsupported sample format (tag " + std::to_string(tag) + ", " +
                    std::to_string(bits) + " bits)");
      bytes_per_sample_ = bits / 8;
      if (channels_ <= 0 || channels_ > 32 || rate_ < 1000 || rate_ > 384000)
        throw Error("WAV stream: implausible format, " + std::to_string(channels_) +
                    " channels at " + std::to_string(rate_) + " Hz");
      have_fmt = true;
    }
    pos += 8 + size + (size & 1);
  }
}

void PcmStreamDecoder::feed(const uint8_t *data, size_t n, std::vector<int16_t> &out) {
  if (!header_done_) {
    pending_.insert(pending_.end(), data, data + n);
    if (!parse_wav_header()) return;
    header_done_ = true;
    start_samples();
    std::vector<uint8_t> rest;
    rest.swap(pending_);
    decode_samples(rest.data(), rest.size(), out);
    return;
  }
  decode_samples(data, n, out);
}

void PcmStreamDecoder::decode_samples(const uint8_t *data, size_t n, std::vector<int16_t> &out) {
  if (data_left_ != UINT64_MAX) {
    n = size_t(std::min<uint64_t>(n, data_left_));  // chunks after the data (LIST…) are not audio
    data_left_ -= n;
  }
  const size_t frame_bytes = size_t(bytes_per_sample_ * channels_);
  pending_.insert(pending_.end(), data, data + n);
  const size_t frames = pending_.size() / frame_bytes;
  mono_.resize(frames);
  const uint8_t *p = pending_.data();
  for (size_t i = 0; i < frames; ++i) {
    float sum = 0;
    for (int c = 0; c < channels_; ++c, p += bytes_per_sample_) {
      switch (format_) {
        case SampleFormat::kS16:
          sum += float(int16_t(le16(p))) / 32768.f;
          break;
        case SampleFormat::kU8:
          sum += (float(p[0]) - 128.f) / 128.f;
          break;
        case SampleFormat::kS24:
          sum += float(int32_t(uint32_t(p[0]) << 8 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 24)) /
                 2147483648.f;
          break;
        case SampleFormat::kS32:
          sum += float(int32_t(le32(p))) / 2147483648.f;
          break;
        case SampleFormat::kF32: {
          float v;
          std::memcpy(&v, p, 4);
          sum += std::isfinite(v) ? v : 0.f;
          break;
        }
      }
    }
    mono_[i] = sum / float(channels_);
  }
  pending_.erase(pending_.begin(), pending_.begin() + long(frames * frame_bytes));
  resampled_.clear();
  resampler_->process(mono_.data(), mono_.size(), resampled_);
  append_s16(resampled_, out);
}

void PcmStreamDecoder::finish(std::vector<int16_t> &out) {
  if (!header_done_) {
    if (pending_.empty()) throw Error("empty audio stream");
    throw Error("WAV stream ended inside its header (" + std::to_string(pending_.size()) +
                " bytes)");
  }
  if (data_size_known_ && data_left_ > 0)
    throw Error("WAV stream ended " + std::to_string(data_left_) +
                " bytes before the end of its data chunk");
  resampled_.clear();
  resampler_->flush(resampled_);
  append_s16(resampled_, out);
}

}  // namespace talker::audio
