// SPDX-License-Identifier: LGPL-2.1-or-later
#include "lib/audio/whisper_features.h"

#include <algorithm>

#include "lib/audio/log_mel.h"
#include "lib/common/error.h"

namespace talker::audio {

WhisperFeaturizer::WhisperFeaturizer(nn::WhisperEncoder encoder, nn::WhisperLayout layout)
    : encoder_(std::move(encoder)),
      layout_(layout),
      filters_(mel_filters(static_cast<int>(encoder_->config.n_mels))),
      device_(encoder_->conv1->weight.device()) {}

torch::Tensor WhisperFeaturizer::encode_segment(const float *samples, int64_t n,
                                                bool pad_to_30s) const {
  torch::InferenceMode guard;
  // Short unpadded windows still need a few STFT frames for the reflect padding.
  const int64_t min_len = 4 * kFftSize;
  int64_t padding = pad_to_30s ? kWindowSamples - n : std::max<int64_t>(0, min_len - n);
  auto audio = torch::from_blob(const_cast<float *>(samples), {n}, torch::kFloat);
  auto mel = log_mel_spectrogram(audio, filters_, padding);
  auto states = encoder_.ptr()->forward(mel.unsqueeze(0).to(device_), layout_);
  return states[0].slice(0, 0, n / kSamplesPerRow).to(torch::kCPU, torch::kFloat).contiguous();
}

torch::Tensor WhisperFeaturizer::encode(const float *samples, int64_t n, bool pad_to_30s) const {
  if (n <= 0) return torch::zeros({0, layers(), width()});
  if (!pad_to_30s) {
    if (n > kWindowSamples) throw Error("whisper: cannot encode more than 30 s without padding");
    return encode_segment(samples, n, false);
  }
  std::vector<torch::Tensor> parts;
  for (int64_t off = 0; off < n; off += kWindowSamples)
    parts.push_back(encode_segment(samples + off, std::min(kWindowSamples, n - off), true));
  return parts.size() == 1 ? parts[0] : torch::cat(parts, 0);
}

int64_t FrameGrid::frame_start(int64_t t) const {
  return t * kSampleRate * fps_den / fps_num;
}

int64_t FrameGrid::frame_of(int64_t sample) const {
  int64_t t = sample * fps_num / (int64_t(kSampleRate) * fps_den);
  while (frame_start(t + 1) <= sample) ++t;
  while (t > 0 && frame_start(t) > sample) --t;
  return t;
}

int64_t FrameGrid::window_row0(int64_t t) const {
  const int64_t rows_per_second = kSampleRate / kSamplesPerRow;  // 50
  const int64_t ceil_rows_per_frame = (rows_per_second * fps_den + fps_num - 1) / fps_num;
  return t * rows_per_second * fps_den / fps_num - kPaddingLeft * ceil_rows_per_frame;
}

torch::Tensor frame_chunk(const torch::Tensor &rows, int64_t valid_rows, const FrameGrid &grid,
                          int64_t t) {
  const int64_t r0 = grid.window_row0(t);
  auto out = torch::zeros({kRowsPerChunk, rows.size(1), rows.size(2)}, rows.options());
  const int64_t lo = std::max<int64_t>(r0, 0);
  const int64_t hi = std::min({r0 + kRowsPerChunk, valid_rows, rows.size(0)});
  if (hi > lo) out.slice(0, lo - r0, hi - r0).copy_(rows.slice(0, lo, hi));
  return out.reshape({kRowsPerChunk * rows.size(1), rows.size(2)});
}

FeatureStream::FeatureStream(std::shared_ptr<const WhisperFeaturizer> featurizer,
                             FeatureStreamConfig config)
    : featurizer_(std::move(featurizer)), config_(config) {
  if (config_.hop_frames < 1) config_.hop_frames = 1;
}

void FeatureStream::push(const float *samples, int64_t n, bool gap) {
  if (finished_ || n <= 0) return;
  if (gap || !samples) {
    audio_.insert(audio_.end(), n, 0.0f);
  } else {
    audio_.insert(audio_.end(), samples, samples + n);
  }
  gap_.insert(gap_.end(), n, gap ? 1 : 0);
  received_ += n;
  if (!gap && samples) silence_ahead_ = false;
  if (!held_) process();
}

void FeatureStream::hold() {
  held_ = true;
}

void FeatureStream::release() {
  held_ = false;
  process();
}

void FeatureStream::assume_silence_ahead() {
  silence_ahead_ = true;
  if (!held_) process();
}

int64_t FeatureStream::skip_frames_before(int64_t t_end) {
  if (config_.mode != FeatureStreamConfig::Mode::Sliding) return 0;
  int64_t skipped = 0;
  for (; next_frame_ < t_end && frame_complete(next_frame_); ++next_frame_) {
    const int64_t t = next_frame_;
    FrameFeatures f;
    f.index = t;
    f.gap = frame_is_gap(t);
    // Keep following the speech run, so the next window still starts where
    // the utterance did.
    if (f.gap) {
      run_start_ = -1;
    } else {
      if (run_start_ < 0) run_start_ = config_.grid.frame_start(t);
      f.unencoded = true;
      ++skipped;
    }
    ready_.push_back(std::move(f));
  }
  trim();
  return skipped;
}

void FeatureStream::finish() {
  finished_ = true;
  held_ = false;
  process();
}

std::vector<FrameFeatures> FeatureStream::take_ready() {
  std::vector<FrameFeatures> out;
  out.swap(ready_);
  return out;
}

void FeatureStream::reset() {
  audio_.clear();
  gap_.clear();
  base_ = received_ = 0;
  finished_ = silence_ahead_ = held_ = false;
  next_frame_ = 0;
  ready_.clear();
  utt_first_ = utt_end_ = -1;
  utt_encoded_ = 0;
  utt_rows_.clear();
  run_start_ = -1;
}

int64_t FeatureStream::latency_samples(const FeatureStreamConfig &config) {
  if (config.mode == FeatureStreamConfig::Mode::Utterance) return kWindowSamples;
  const auto &g = config.grid;
  return (g.window_row0(std::max(config.hop_frames, 1) - 1) + kRowsPerChunk) * kSamplesPerRow +
         config.lookahead_samples;
}

bool FeatureStream::frame_exists(int64_t t) const {
  return config_.grid.frame_start(t) < received_;
}

bool FeatureStream::frame_complete(int64_t t) const {
  return config_.grid.frame_start(t + 1) <= received_ || (closed() && frame_exists(t));
}

bool FeatureStream::frame_is_gap(int64_t t) const {
  const int64_t lo = std::max(config_.grid.frame_start(t), base_);
  const int64_t hi = std::min(config_.grid.frame_start(t + 1), received_);
  for (int64_t s = lo; s < hi; ++s)
    if (!gap_[s - base_]) return false;
  return true;
}

bool FeatureStream::row_is_silent(int64_t row) const {
  if (row < 0) return true;
  // MuseTalk keeps floor(N/320) rows of N samples: a partial last row is padding.
  if (closed() && (row + 1) * kSamplesPerRow > received_) return true;
  const auto &g = config_.grid;
  return frame_is_gap(g.frame_of(row * kSamplesPerRow)) &&
         frame_is_gap(g.frame_of((row + 1) * kSamplesPerRow - 1));
}

void FeatureStream::emit_gap(int64_t t) {
  FrameFeatures f;
  f.index = t;
  f.gap = true;
  ready_.push_back(std::move(f));
}

void FeatureStream::process() {
  if (config_.mode == FeatureStreamConfig::Mode::Utterance)
    process_utterance();
  else
    process_sliding();
  trim();
}

void FeatureStream::encode_utterance_segment(int64_t n) {
  const int64_t start = config_.grid.frame_start(utt_first_) + utt_encoded_;
  std::vector<float> samples(n, 0.0f);
  for (int64_t i = 0; i < n; ++i)
    if (start + i < received_) samples[i] = audio_[start + i - base_];
  utt_rows_.push_back(featurizer_->encode(samples.data(), n, config_.pad_to_30s));
  ++encoder_runs_;
  utt_encoded_ += n;
}

void FeatureStream::close_utterance() {
  const auto &g = config_.grid;
  const int64_t start = g.frame_start(utt_first_);
  const int64_t end =
      closed() ? std::min(g.frame_start(utt_end_), received_) : g.frame_start(utt_end_);
  const int64_t n = end - start;
  if (n > utt_encoded_) encode_utterance_segment(n - utt_encoded_);
  auto rows = utt_rows_.size() == 1 ? utt_rows_[0] : torch::cat(utt_rows_, 0);
  const int64_t valid = n / kSamplesPerRow;
  for (int64_t t = next_frame_; t < utt_end_; ++t) {
    FrameFeatures f;
    f.index = t;
    f.chunk = frame_chunk(rows, valid, g, t - utt_first_);
    ready_.push_back(std::move(f));
  }
  next_frame_ = utt_end_;
  utt_first_ = utt_end_ = -1;
  utt_encoded_ = 0;
  utt_rows_.clear();
}

void FeatureStream::process_utterance() {
  const auto &g = config_.grid;
  for (;;) {
    if (utt_first_ < 0) {
      const int64_t t = next_frame_;
      if (!frame_complete(t)) return;
      if (frame_is_gap(t)) {
        emit_gap(t);
        ++next_frame_;
        continue;
      }
      utt_first_ = t;
      utt_end_ = t + 1;
      utt_encoded_ = 0;
    }
    const int64_t f = utt_end_;
    if (frame_complete(f) && !frame_is_gap(f)) {
      ++utt_end_;
      // A long utterance is encoded 30 s at a time as MuseTalk does; its frames
      // are still emitted at its end, when every chunk's rows are known.
      while (g.frame_start(utt_end_) - g.frame_start(utt_first_) - utt_encoded_ >= kWindowSamples)
        encode_utterance_segment(kWindowSamples);
      continue;
    }
    if (frame_complete(f) || (closed() && !frame_exists(f))) {
      close_utterance();
      continue;
    }
    return;
  }
}

void FeatureStream::process_sliding() {
  const auto &g = config_.grid;
  for (;;) {
    const int64_t t0 = next_frame_;
    auto need_for = [&](int64_t t_end) {
      return (g.window_row0(t_end - 1) + kRowsPerChunk) * kSamplesPerRow +
             config_.lookahead_samples;
    };
    int64_t t1 = t0 + config_.hop_frames;
    if (closed()) {
      if (!frame_exists(t0)) return;
      t1 = std::min(t1, g.frame_of(received_ - 1) + 1);
    } else {
      if (received_ < need_for(t1)) return;
      // Catching up: take in the further hops whose audio is already here,
      // as long as the window stays within whisper's 30 s.
      for (int hops = 1; hops < config_.max_hops_per_run; ++hops) {
        const int64_t wider = t1 + config_.hop_frames;
        if (received_ < need_for(wider) ||
            need_for(wider) - g.window_row0(t0) * kSamplesPerRow > kWindowSamples / 2)
          break;
        t1 = wider;
      }
    }
    const int64_t need = need_for(t1);

    // Follow the runs of speech frames: the window starts where the hop's
    // first speech run started, so the encoder sees an utterance from the
    // same position as offline (whole-utterance) encoding does.
    int64_t run_start = -1;
    for (int64_t t = t0; t < t1; ++t) {
      if (frame_is_gap(t)) {
        run_start_ = -1;
        continue;
      }
      if (run_start_ < 0) run_start_ = g.frame_start(t);
      if (run_start < 0) run_start = run_start_;
    }
    if (run_start < 0) {
      for (int64_t t = t0; t < t1; ++t) emit_gap(t);
      next_frame_ = t1;
      continue;
    }
    // The window: the speech run (at most context-ms before the hop's chunk
    // rows) + the hop's chunk rows + look-ahead, on the 20 ms row grid.
    const int64_t end = std::min(need, received_);
    int64_t start =
        std::max<int64_t>(0, g.window_row0(t0) * kSamplesPerRow - config_.context_samples);
    start = std::max({start, run_start, end - kWindowSamples});
    start = std::max(start, base_);
    start = (start + kSamplesPerRow - 1) / kSamplesPerRow * kSamplesPerRow;
    std::vector<float> samples(audio_.begin() + (start - base_), audio_.begin() + (end - base_));
    auto rows = featurizer_->encode(samples.data(), end - start, config_.pad_to_30s);
    ++encoder_runs_;
    const int64_t row0 = start / kSamplesPerRow;
    for (int64_t t = t0; t < t1; ++t) {
      if (frame_is_gap(t)) {
        emit_gap(t);
        continue;
      }
      auto chunk = torch::zeros({kRowsPerChunk, rows.size(1), rows.size(2)});
      const int64_t r0 = g.window_row0(t);
      for (int64_t i = 0; i < kRowsPerChunk; ++i) {
        const int64_t r = r0 + i;
        if (r - row0 >= 0 && r - row0 < rows.size(0) && !row_is_silent(r))
          chunk[i].copy_(rows[r - row0]);
      }
      FrameFeatures f;
      f.index = t;
      f.chunk = chunk.reshape({kRowsPerChunk * rows.size(1), rows.size(2)});
      ready_.push_back(std::move(f));
    }
    next_frame_ = t1;
  }
}

void FeatureStream::trim() {
  // Keep what the next windows can still reach: context plus the chunk rows
  // before the next frame, and an open utterance's unencoded audio.
  int64_t keep = config_.grid.frame_start(next_frame_) - config_.context_samples -
                 (kPaddingLeft * 4 + kRowsPerChunk) * kSamplesPerRow;
  if (utt_first_ >= 0) keep = std::min(keep, config_.grid.frame_start(utt_first_) + utt_encoded_);
  keep = std::min(keep, received_);
  if (keep > base_) {
    audio_.erase(audio_.begin(), audio_.begin() + (keep - base_));
    gap_.erase(gap_.begin(), gap_.begin() + (keep - base_));
    base_ = keep;
  }
}

}  // namespace talker::audio
