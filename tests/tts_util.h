// SPDX-License-Identifier: LGPL-2.1-or-later
// Helpers for the TTS tests: reference speech from the espeak-ng and ffmpeg
// command-line tools (independent of our engine and resampler), and the
// measures the tests compare audio with.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace talker::test {

inline std::string temp_path(const std::string &name) {
  return std::string(TALKER_BUILD_ROOT) + "/tests/" + std::to_string(getpid()) + "-" + name;
}

inline std::string shell_quote(const std::string &s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

inline std::vector<uint8_t> read_bytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void run_or_throw(const std::string &cmd) {
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("command failed: " + cmd);
}

// espeak-ng's own WAV (22050 Hz mono) for `text`.
inline std::string espeak_cli_wav(const std::string &text, const std::string &voice = "en") {
  static int n = 0;
  const std::string path = temp_path("espeak" + std::to_string(n++) + ".wav");
  run_or_throw("espeak-ng -v " + shell_quote(voice) + " -w " + path + " " + shell_quote(text));
  return path;
}

// `wav` converted by ffmpeg to raw S16LE at `rate` with `channels`.
inline std::vector<int16_t> ffmpeg_s16(const std::string &wav, int rate, int channels) {
  const std::string out =
      wav + "." + std::to_string(rate) + "x" + std::to_string(channels) + ".raw";
  run_or_throw("ffmpeg -loglevel error -y -i " + wav + " -ar " + std::to_string(rate) + " -ac " +
               std::to_string(channels) + " -f s16le " + out);
  const auto bytes = read_bytes(out);
  std::vector<int16_t> s(bytes.size() / 2);
  std::copy(bytes.begin(), bytes.begin() + long(s.size() * 2),
            reinterpret_cast<uint8_t *>(s.data()));
  std::remove(out.c_str());
  return s;
}

// espeak-ng's speech for `text` as 16 kHz mono, resampled by ffmpeg.
inline std::vector<int16_t> reference_speech_16k(const std::string &text) {
  const std::string wav = espeak_cli_wav(text);
  auto s = ffmpeg_s16(wav, 16000, 1);
  std::remove(wav.c_str());
  return s;
}

inline double rms(const int16_t *s, size_t n) {
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += double(s[i]) * s[i];
  return n ? std::sqrt(sum / double(n)) : 0;
}

// Largest normalised cross-correlation of `a` and `b` over lags within ±max_lag.
inline double best_correlation(const std::vector<int16_t> &a, const std::vector<int16_t> &b,
                               int max_lag = 80) {
  double best = -1;
  for (int lag = -max_lag; lag <= max_lag; ++lag) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      const long j = long(i) + lag;
      if (j < 0 || size_t(j) >= b.size()) continue;
      ab += double(a[i]) * b[size_t(j)];
      aa += double(a[i]) * a[i];
      bb += double(b[size_t(j)]) * b[size_t(j)];
    }
    if (aa > 0 && bb > 0) best = std::max(best, ab / std::sqrt(aa * bb));
  }
  return best;
}

}  // namespace talker::test

namespace talker::test {

// The 44-byte header of a 16-bit PCM WAV; data_size 0 or 0xFFFFFFFF as
// streaming servers write when they do not know the length yet.
inline std::string wav_header_s16(int rate, int channels, uint32_t data_size) {
  std::string h;
  auto put32 = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) h += char((v >> (8 * i)) & 0xFF);
  };
  auto put16 = [&](uint16_t v) {
    h += char(v & 0xFF);
    h += char(v >> 8);
  };
  h += "RIFF";
  put32(data_size >= 0xFFFFFFF0u ? data_size : 36 + data_size);
  h += "WAVEfmt ";
  put32(16);
  put16(1);
  put16(uint16_t(channels));
  put32(uint32_t(rate));
  put32(uint32_t(rate * channels * 2));
  put16(uint16_t(channels * 2));
  put16(16);
  h += "data";
  put32(data_size);
  return h;
}

}  // namespace talker::test
