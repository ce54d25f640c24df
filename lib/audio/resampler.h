// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace talker::audio {

// Streaming sample-rate converter for mono float audio: a polyphase
// windowed-sinc (Kaiser) filter at the rational ratio out_rate/in_rate.
// The cut-off sits at 92 % of the lower Nyquist frequency, so nothing above
// the output's Nyquist folds back (22050 → 16000: flat to ~6.8 kHz, > 80 dB
// down from 8 kHz). Output sample n is the input at time n/out_rate: no delay.
class Resampler {
 public:
  Resampler(int in_rate, int out_rate);

  int in_rate() const { return in_rate_; }
  int out_rate() const { return out_rate_; }

  // Appends the output for `n` more input samples to `out`.
  void process(const float *in, size_t n, std::vector<float> &out);
  // Ends the stream: the remaining output, up to ceil(inputs · out/in) samples in all.
  void flush(std::vector<float> &out);

 private:
  void produce(std::vector<float> &out, int64_t available_inputs);

  int in_rate_, out_rate_;
  int64_t up_ = 1, down_ = 1;   // out/in reduced: output n is at input time n·down/up
  int taps_half_ = 0;           // inputs used on each side of that time
  std::vector<float> phases_;   // up_ rows of 2·taps_half_ coefficients
  std::vector<float> history_;  // inputs from index history_start_ on
  int64_t history_start_ = 0;
  int64_t inputs_ = 0, outputs_ = 0;
  bool passthrough_ = false;
};

// Appends `in` (full scale ±1) to `out` as S16, rounded and clipped.
void append_s16(const std::vector<float> &in, std::vector<int16_t> &out);

// Whole-buffer conversion, for tests and one-shot use.
std::vector<float> resample(const std::vector<float> &in, int in_rate, int out_rate);

}  // namespace talker::audio
