// SPDX-License-Identifier: LGPL-2.1-or-later
#include "lib/audio/log_mel.h"

#include <cmath>
#include <vector>

namespace talker::audio {
namespace {

// Slaney's auditory-toolbox mel scale, as librosa (htk=False) computes it.
constexpr double kFsp = 200.0 / 3;
constexpr double kMinLogHz = 1000.0;
constexpr double kMinLogMel = kMinLogHz / kFsp;
const double kLogStep = std::log(6.4) / 27.0;

double hz_to_mel(double hz) {
  return hz >= kMinLogHz ? kMinLogMel + std::log(hz / kMinLogHz) / kLogStep : hz / kFsp;
}
double mel_to_hz(double mel) {
  return mel >= kMinLogMel ? kMinLogHz * std::exp(kLogStep * (mel - kMinLogMel)) : kFsp * mel;
}

}  // namespace

torch::Tensor mel_filters(int n_mels, int sample_rate, int n_fft) {
  const int n_bins = n_fft / 2 + 1;
  std::vector<double> fft_freqs(n_bins);
  const double bin_hz = 1.0 / (n_fft * (1.0 / sample_rate));  // numpy.fft.rfftfreq
  for (int k = 0; k < n_bins; ++k) fft_freqs[k] = k * bin_hz;
  // numpy.linspace over mel, then back to Hz.
  const double lo = hz_to_mel(0.0), hi = hz_to_mel(sample_rate / 2.0);
  const int n_points = n_mels + 2;
  const double step = (hi - lo) / (n_points - 1);
  std::vector<double> mel_hz(n_points);
  for (int i = 0; i < n_points; ++i) mel_hz[i] = mel_to_hz(i == n_points - 1 ? hi : lo + i * step);

  auto out = torch::zeros({n_mels, n_bins}, torch::kFloat);
  auto w = out.accessor<float, 2>();
  for (int m = 0; m < n_mels; ++m) {
    const double lower_width = mel_hz[m + 1] - mel_hz[m];
    const double upper_width = mel_hz[m + 2] - mel_hz[m + 1];
    const double enorm = 2.0 / (mel_hz[m + 2] - mel_hz[m]);
    for (int k = 0; k < n_bins; ++k) {
      const double lower = -(mel_hz[m] - fft_freqs[k]) / lower_width;
      const double upper = (mel_hz[m + 2] - fft_freqs[k]) / upper_width;
      // librosa stores into float32 first, then scales in place.
      const float tri = static_cast<float>(std::max(0.0, std::min(lower, upper)));
      w[m][k] = static_cast<float>(static_cast<double>(tri) * enorm);
    }
  }
  return out;
}

torch::Tensor log_mel_spectrogram(const torch::Tensor &audio, const torch::Tensor &filters,
                                  int64_t padding) {
  torch::NoGradGuard no_grad;
  auto x = audio.to(torch::kFloat).flatten();
  if (padding > 0) x = torch::constant_pad_nd(x, {0, padding});
  auto window =
      torch::hann_window(kFftSize, torch::TensorOptions().dtype(torch::kFloat).device(x.device()));
  auto spec = torch::stft(x, kFftSize, kHopLength, kFftSize, window, /*center=*/true, "reflect",
                          /*normalized=*/false, /*onesided=*/true, /*return_complex=*/true);
  auto power = spec.slice(-1, 0, spec.size(-1) - 1).abs().pow(2);
  auto mel = torch::matmul(filters.to(x.device()), power);
  auto log_spec = torch::clamp_min(mel, 1e-10).log10();
  log_spec = torch::maximum(log_spec, log_spec.max() - 8.0);
  return (log_spec + 4.0) / 4.0;
}

}  // namespace talker::audio
