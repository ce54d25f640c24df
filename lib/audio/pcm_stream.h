// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lib/audio/resampler.h"

namespace talker::audio {

// Turns an audio byte stream as a TTS server sends it (a WAV file, possibly
// streamed with unknown sizes, or raw little-endian PCM) into 16 kHz mono
// S16 samples, chunk by chunk as the bytes arrive. Channels are averaged;
// any rate is resampled. Throws talker::Error on malformed input.
class PcmStreamDecoder {
 public:
  static constexpr int kOutputRate = 16000;

  // A WAV stream: the format comes from its header.
  static PcmStreamDecoder wav();
  // Raw S16LE interleaved PCM at `rate` with `channels`.
  static PcmStreamDecoder raw_s16le(int rate, int channels);

  // Decodes `n` more bytes, appending 16 kHz samples to `out`.
  void feed(const uint8_t *data, size_t n, std::vector<int16_t> &out);
  // The stream ended: emits what the resampler holds; throws if the stream
  // was cut inside the header or before the data the header announced.
  void finish(std::vector<int16_t> &out);

  // Known once the header is parsed (raw: at once).
  int source_rate() const { return rate_; }
  int source_channels() const { return channels_; }

 private:
  enum class SampleFormat { kS16, kU8, kS24, kS32, kF32 };
  PcmStreamDecoder() = default;
  bool parse_wav_header();  // false while more bytes are needed
  void start_samples();
  void decode_samples(const uint8_t *data, size_t n, std::vector<int16_t> &out);

  bool is_wav_ = false;
  bool header_done_ = false;
  std::vector<uint8_t> pending_;  // header bytes, or a partial sample frame
  SampleFormat format_ = SampleFormat::kS16;
  int rate_ = 0, channels_ = 0, bytes_per_sample_ = 2;
  uint64_t data_left_ = UINT64_MAX;  // bytes the WAV data chunk still holds; MAX = until the end
  bool data_size_known_ = false;
  std::unique_ptr<Resampler> resampler_;
  std::vector<float> mono_, resampled_;
};

}  // namespace talker::audio
