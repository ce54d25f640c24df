// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "lib/nn/whisper_encoder.h"

namespace talker::audio {

constexpr int kSamplesPerRow = 320;  // one whisper encoder output row: 20 ms at 16 kHz
constexpr int kRowsPerChunk = 10;    // MuseTalk: 2 * (2 + 2 + 1) rows per video frame
constexpr int kPaddingLeft = 2, kPaddingRight = 2;  // MuseTalk's audio_padding_length_*

// Log-mel + whisper encoder: audio in, hidden-state rows at 50 Hz out.
class WhisperFeaturizer {
 public:
  WhisperFeaturizer(nn::WhisperEncoder encoder, nn::WhisperLayout layout);

  // Rows [floor(n/320), layers, width] (CPU float32) for `n` samples. With
  // pad_to_30s (whisper's own input) audio longer than 30 s is encoded in
  // 30 s segments and the rows concatenated, as MuseTalk does; without it the
  // encoder sees only these samples (at most 30 s).
  torch::Tensor encode(const float *samples, int64_t n, bool pad_to_30s) const;

  int64_t layers() const { return encoder_->config.n_layer + 1; }
  int64_t width() const { return encoder_->config.n_state; }
  nn::WhisperLayout layout() const { return layout_; }

 private:
  torch::Tensor encode_segment(const float *samples, int64_t n, bool pad_to_30s) const;
  nn::WhisperEncoder encoder_;
  nn::WhisperLayout layout_;
  torch::Tensor filters_;
  torch::Device device_;
};

// Video-frame geometry at `fps_num/fps_den`, following MuseTalk's
// get_whisper_chunk: frame t of a run of rows takes rows
// [floor(t*50/fps) - 2*ceil(50/fps), +10).
struct FrameGrid {
  int fps_num = 25, fps_den = 1;
  int64_t frame_start(int64_t t) const;    // first sample of frame t
  int64_t frame_of(int64_t sample) const;  // frame that holds this sample
  int64_t window_row0(int64_t t) const;    // first row of frame t's chunk (may be < 0)
};

// MuseTalk's chunk for frame `t` of `rows` [R, layers, width]: 10 rows, rows
// outside [0, valid_rows) are zero; flattened to [10*layers, width] with
// row = row_in_window*layers + layer.
torch::Tensor frame_chunk(const torch::Tensor &rows, int64_t valid_rows, const FrameGrid &grid,
                          int64_t t);

struct FeatureStreamConfig {
  enum class Mode {
    Utterance,  // encode each run of speech frames whole (≤30 s segments): MuseTalk's offline
                // features
    Sliding,    // encode the speech run so far (≤ context) + hop + look-ahead for every hop of
                // frames: bounded latency
  };
  Mode mode = Mode::Utterance;
  FrameGrid grid;
  int64_t context_samples =
      160000;  // sliding: at most this much of the speech run before the hop's first chunk row
  int64_t lookahead_samples = 3200;  // sliding: audio after the hop's last chunk row
  int hop_frames = 5;                // sliding: frames per encoder run
  bool pad_to_30s = true;            // encode windows padded to 30 s, as whisper expects
  // Sliding: when audio for several hops is waiting (the caller fell behind
  // the encoder), encode up to this many hops in one run. Runs then cover
  // what arrived while the last one ran, so a slow encoder widens its hop
  // instead of falling further behind. 1: one run per hop, always.
  int max_hops_per_run = 1;
};

struct FrameFeatures {
  int64_t index = 0;       // frame number since the stream's origin
  bool gap = false;        // all of the frame's audio was GAP: no features, no model run
  bool unencoded = false;  // speech skipped to keep up (skip_frames_before): no features
  torch::Tensor chunk;     // [10*layers, width] float32; undefined when gap or unencoded
};

// Turns a stream of 16 kHz mono samples (each flagged GAP or not) into one
// FrameFeatures per video frame. No GStreamer here: the element feeds it.
class FeatureStream {
 public:
  FeatureStream(std::shared_ptr<const WhisperFeaturizer> featurizer, FeatureStreamConfig config);

  // `samples` may be null for GAP audio (taken as silence).
  void push(const float *samples, int64_t n, bool gap);
  // While held, push() only stores audio; release() then processes all of
  // it at once (with max_hops_per_run, in wider runs).
  void hold();
  void release();
  // The audio after what was pushed is silence until the next non-GAP
  // sample (an interrupt): frames waiting for look-ahead or for the end of
  // their utterance are produced now.
  void assume_silence_ahead();
  // Sliding mode, live: frames before `t_end` whose audio has arrived are
  // produced now without an encoder run (unencoded, or GAP), because they
  // could no longer be encoded in time. Returns how many speech frames.
  int64_t skip_frames_before(int64_t t_end);
  int64_t next_frame() const { return next_frame_; }
  // No more audio: the last frames become ready (a partial last frame is
  // padded with silence).
  void finish();
  std::vector<FrameFeatures> take_ready();
  // Forget everything; the next sample starts frame 0 again.
  void reset();

  // How much audio past a frame's end must have arrived before that frame is
  // ready (sliding mode), in samples; utterance mode waits for the
  // utterance's end, up to 30 s.
  int64_t latency_samples() const { return latency_samples(config_); }
  static int64_t latency_samples(const FeatureStreamConfig &config);
  int64_t encoder_runs() const { return encoder_runs_; }
  const FeatureStreamConfig &config() const { return config_; }

 private:
  void process();
  void process_utterance();
  void process_sliding();
  bool frame_complete(int64_t t) const;
  bool frame_exists(int64_t t) const;
  bool frame_is_gap(int64_t t) const;
  bool row_is_silent(int64_t row) const;
  void emit_gap(int64_t t);
  void close_utterance();
  void encode_utterance_segment(int64_t n);
  void trim();

  std::shared_ptr<const WhisperFeaturizer> featurizer_;
  FeatureStreamConfig config_;
  // Audio and GAP flags from sample `base_` up to `received_`.
  std::deque<float> audio_;
  std::deque<uint8_t> gap_;
  int64_t base_ = 0;
  int64_t received_ = 0;
  bool finished_ = false;
  bool silence_ahead_ = false;
  bool held_ = false;
  // finish() or assume_silence_ahead(): no more speech is coming for now.
  bool closed() const { return finished_ || silence_ahead_; }
  int64_t next_frame_ = 0;
  std::vector<FrameFeatures> ready_;
  int64_t encoder_runs_ = 0;
  // Utterance mode: the run of speech frames being collected.
  int64_t utt_first_ = -1;   // first frame, -1 when none
  int64_t utt_end_ = -1;     // one past the last frame known to belong to it
  int64_t utt_encoded_ = 0;  // samples from its start already encoded (multiples of 30 s)
  std::vector<torch::Tensor> utt_rows_;
  // Sliding mode: first sample of the run of speech frames in progress, -1 in silence.
  int64_t run_start_ = -1;
};

}  // namespace talker::audio
