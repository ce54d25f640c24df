// SPDX-License-Identifier: LGPL-2.1-or-later
#include "lib/audio/resampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "lib/common/error.h"

namespace talker::audio {
namespace {

constexpr double kRolloff = 0.92;      // cut-off as a fraction of the lower Nyquist
constexpr double kZeroCrossings = 32;  // sinc lobes on each side of the centre
constexpr double kKaiserBeta = 8.6;    // ~ 90 dB stop-band
constexpr int64_t kMaxPhases = 4096;

// Zeroth-order modified Bessel function, for the Kaiser window.
double bessel_i0(double x) {
  double sum = 1, term = 1;
  for (int k = 1; k < 50; ++k) {
    term *= (x / (2 * k)) * (x / (2 * k));
    sum += term;
    if (term < 1e-12 * sum) break;
  }
  return sum;
}

}  // namespace

Resampler::Resampler(int in_rate, int out_rate) : in_rate_(in_rate), out_rate_(out_rate) {
  if (in_rate <= 0 || out_rate <= 0)
    throw Error("resampler: invalid rates " + std::to_string(in_rate) + " → " +
                std::to_string(out_rate));
  const int64_t g = std::gcd<int64_t>(in_rate, out_rate);
  up_ = out_rate / g;
  down_ = in_rate / g;
  passthrough_ = up_ == 1 && down_ == 1;
  if (passthrough_) return;
  if (up_ > kMaxPhases)
    throw Error("resampler: " + std::to_string(in_rate) + " → " + std::to_string(out_rate) +
                " Hz needs " + std::to_string(up_) + " filter phases (at most " +
                std::to_string(kMaxPhases) + ")");
  // Cut-off in cycles per input sample (1 = input Nyquist).
  const double cutoff = kRolloff * std::min(1.0, double(up_) / double(down_));
  const double half_width = kZeroCrossings / cutoff;  // in input samples
  taps_half_ = int(std::ceil(half_width));
  const int taps = 2 * taps_half_;
  phases_.assign(size_t(up_ * taps), 0.f);
  const double window_norm = bessel_i0(kKaiserBeta);
  for (int64_t p = 0; p < up_; ++p) {
    const double frac = double(p) / double(up_);  // output time minus the input index at its left
    float *row = &phases_[size_t(p * taps)];
    double sum = 0;
    for (int k = 0; k < taps; ++k) {
      // Tap k weighs input (left index - taps_half_ + 1 + k).
      const double dt = frac - double(k - taps_half_ + 1);
      double v = 0;
      if (std::abs(dt) < half_width) {
        const double x = cutoff * dt;
        const double sinc = x == 0 ? 1.0 : std::sin(M_PI * x) / (M_PI * x);
        const double r = dt / half_width;
        v = sinc * bessel_i0(kKaiserBeta * std::sqrt(1 - r * r)) / window_norm;
      }
      row[k] = float(v);
      sum += v;
    }
    for (int k = 0; k < taps; ++k) row[k] = float(row[k] / sum);  // unity gain at DC
  }
  // Inputs before the stream are silence.
  history_.assign(size_t(taps_half_), 0.f);
  history_start_ = -taps_half_;
}

void Resampler::produce(std::vector<float> &out, int64_t available_inputs) {
  const int taps = 2 * taps_half_;
  for (;;) {
    const int64_t pos = outputs_ * down_;
    const int64_t left = pos / up_;  // input index at or before the output time
    const int64_t phase = pos % up_;
    if (left + taps_half_ >= available_inputs) break;  // needs input up to left + taps_half_
    const float *row = &phases_[size_t(phase * taps)];
    const float *x = &history_[size_t(left - taps_half_ + 1 - history_start_)];
    float acc = 0;
    for (int k = 0; k < taps; ++k) acc += row[k] * x[k];
    out.push_back(acc);
    ++outputs_;
  }
  // Drop inputs no later output needs.
  const int64_t next_left = outputs_ * down_ / up_;
  const int64_t keep_from = next_left - taps_half_ + 1;
  if (keep_from - history_start_ > 4096) {
    history_.erase(history_.begin(), history_.begin() + (keep_from - history_start_));
    history_start_ = keep_from;
  }
}

void Resampler::process(const float *in, size_t n, std::vector<float> &out) {
  if (passthrough_) {
    out.insert(out.end(), in, in + n);
    return;
  }
  history_.insert(history_.end(), in, in + n);
  inputs_ += int64_t(n);
  produce(out, inputs_);
}

void Resampler::flush(std::vector<float> &out) {
  if (passthrough_) return;
  const int64_t total = (inputs_ * up_ + down_ - 1) / down_;
  history_.insert(history_.end(), size_t(taps_half_ + 1), 0.f);  // silence after the stream
  produce(out, inputs_ + taps_half_ + 1);
  if (outputs_ > total) out.resize(out.size() - size_t(outputs_ - total));
  outputs_ = total;
  history_.resize(history_.size() - size_t(taps_half_ + 1));
}

void append_s16(const std::vector<float> &in, std::vector<int16_t> &out) {
  out.reserve(out.size() + in.size());
  for (float v : in)
    out.push_back(int16_t(std::lround(std::clamp(v * 32768.f, -32768.f, 32767.f))));
}

std::vector<float> resample(const std::vector<float> &in, int in_rate, int out_rate) {
  Resampler r(in_rate, out_rate);
  std::vector<float> out;
  r.process(in.data(), in.size(), out);
  r.flush(out);
  return out;
}

}  // namespace talker::audio
