// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <torch/torch.h>

namespace talker::audio {

constexpr int kSampleRate = 16000;
constexpr int kFftSize = 400;
constexpr int kHopLength = 160;
constexpr int64_t kWindowSamples = 30 * kSampleRate;  // whisper's fixed 30 s input

// librosa.filters.mel(sr, n_fft, n_mels) (Slaney scale and area norm), float32
// [n_mels, n_fft/2+1]: the bank whisper ships as mel_filters.npz.
torch::Tensor mel_filters(int n_mels, int sample_rate = kSampleRate, int n_fft = kFftSize);

// whisper.audio.log_mel_spectrogram: `audio` [N] float32 at 16 kHz, zero-padded
// at the end by `padding` samples; returns [n_mels, (N+padding)/160].
torch::Tensor log_mel_spectrogram(const torch::Tensor &audio, const torch::Tensor &filters,
                                  int64_t padding);

}  // namespace talker::audio
