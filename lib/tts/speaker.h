// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "lib/text/sentence_chunker.h"
#include "lib/tts/engine.h"

namespace talker::tts {

constexpr int kSampleRate = 16000;
constexpr size_t kFrameSamples = 320;  // 20 ms

// One chunk of text, synthesized and played as a unit.
struct Sentence {
  uint64_t id = 0;         // 1, 2, … per Speaker
  uint64_t utterance = 0;  // the say() call or text stream it came from
  std::string text;
  // say_audio(): the sentence's speech, given rather than synthesized.
  std::shared_ptr<const std::vector<int16_t>> audio;
  VoiceOptions voice;  // this utterance's changes to the engine's voice
  std::string clip;    // say_clip(): the action clip this audio belongs to
};

enum class SentenceEnd { kFinished, kInterrupted, kFailed };

// 20 ms of output. A sentence starts at the first sample of the frame that
// names it in `started`, and ends `end_sample` samples into the frame that
// names it in `ended` (the rest of that frame is silence).
struct Frame {
  std::array<int16_t, kFrameSamples> samples{};
  bool silent = true;  // no sentence was playing: all zeros
  std::shared_ptr<const Sentence> started;
  std::shared_ptr<const Sentence> ended;
  size_t end_sample = 0;
  SentenceEnd end_reason = SentenceEnd::kFinished;
};

struct SpeakerOptions {
  size_t min_chunk_chars = 10;
  // Live playback starts a sentence once it is fully synthesized or this much
  // of it is buffered, so a streaming engine slower than real time stutters less.
  size_t start_samples = kSampleRate * 3 / 10;
  // Synthesis pauses while this much audio waits to be played.
  size_t max_ahead_samples = size_t(kSampleRate) * 120;
};

// Text in, 20 ms frames of speech out. Text is chunked into sentences; a
// synthesis thread runs the engine on them in order, ahead of playback; the
// consumer takes frames either at its own pace with silence when nothing is
// ready (live) or blocking until speech is ready (rendering). Thread-safe.
class Speaker {
 public:
  // Reports a sentence the engine failed on (it is skipped); called on the
  // synthesis thread.
  using FailureHandler = std::function<void(const Sentence &, const std::string &cause)>;
  using SentenceHandler = std::function<void(const Sentence &)>;

  explicit Speaker(SpeakerOptions options, FailureHandler on_failure = {});
  ~Speaker();
  Speaker(const Speaker &) = delete;
  Speaker &operator=(const Speaker &) = delete;

  // Starts synthesizing with `engine` (text queued before is spoken then).
  void start(std::unique_ptr<Engine> engine);
  // Stops the synthesis thread and drops all queued text and audio.
  void stop();

  // A whole utterance: chunked, the last piece included, spoken with
  // `voice` (empty: the engine's). Returns its id.
  uint64_t say(const std::string &text, const VoiceOptions &voice = {});
  // Speech given as 16 kHz mono samples (an uploaded recording): played as
  // one sentence labelled `label`, in order with the text around it, and
  // interrupted like speech. Returns its utterance id.
  uint64_t say_audio(std::vector<int16_t> samples, const std::string &label);
  // An action clip's audio (silence for as long as its frames when it has
  // none): like say_audio, its sentence named `clip` so that the element can
  // mark where the clip starts.
  uint64_t say_clip(std::vector<int16_t> samples, const std::string &clip);
  // Streamed text (LLM tokens): chunks are queued as they complete; the rest
  // waits for more text or end_text(). The stream's first call sets its
  // voice. Returns the stream's utterance id.
  uint64_t append_text(std::string_view text, const VoiceOptions &voice = {});
  // Why the engine cannot speak with `voice`, or empty (also before start()).
  std::string check(const VoiceOptions &voice) const;
  void end_text();
  // Drops queued text and unplayed audio at once; the sentence being played
  // ends in the next frame (SentenceEnd::kInterrupted).
  void interrupt();

  // Live: the next frame now, silence if no speech is ready. Never blocks.
  Frame next_frame_now();
  // Rendering: blocks until a frame of speech is ready; nullopt once nothing
  // is queued and the input is closed, or while flushing.
  std::optional<Frame> next_frame_wait();
  // Whether more streamed text may come (rendering waits for it while open).
  void set_input_open(bool open);
  // While set, next_frame_wait() returns nullopt at once.
  void set_flushing(bool flushing);

  // Applies to text given from now on.
  void set_min_chunk_chars(size_t n);

  // Nothing queued, synthesizing or waiting to play.
  bool idle() const;
  // Called on the synthesis thread after each sentence is fully synthesized.
  void set_on_synthesized(SentenceHandler handler);

 private:
  struct AudioEntry {
    std::shared_ptr<const Sentence> sentence;
    std::vector<int16_t> samples;
    size_t read = 0;
    bool done = false, failed = false, started = false;
  };

  // say_audio() and say_clip(): speech given as samples.
  uint64_t say_given(std::vector<int16_t> samples, const std::string &label,
                     const std::string &clip);
  void queue_chunks(std::vector<std::string> chunks, uint64_t utterance, const VoiceOptions &voice);
  void queue_audio(std::shared_ptr<const std::vector<int16_t>> audio, const std::string &label,
                   uint64_t utterance, const std::string &clip = "");
  std::vector<std::string> chunk_whole(const std::string &text) const;
  bool fill_frame(Frame &frame, bool live);  // false: nothing to play yet (rendering waits)
  bool idle_locked() const;
  size_t ahead_samples_locked() const;
  void synthesis_loop();

  SpeakerOptions options_;
  const FailureHandler on_failure_;
  SentenceHandler on_synthesized_;

  mutable std::mutex mutex_;
  std::condition_variable synth_cv_, frame_cv_;
  // Utterances said before start(), chunked then: settings given after the
  // text (min_chunk_chars) still apply to it.
  struct Held {
    uint64_t utterance;
    std::string text;
    std::shared_ptr<const std::vector<int16_t>> audio;
    VoiceOptions voice;
    std::string clip;
  };
  std::vector<Held> held_;
  bool running_ = false;
  std::deque<std::shared_ptr<const Sentence>> text_queue_;
  std::deque<std::shared_ptr<AudioEntry>> audio_;
  std::shared_ptr<const Sentence> cut_;  // interrupted while playing: ends in the next frame
  text::SentenceChunker stream_chunker_;
  uint64_t stream_utterance_ = 0;
  VoiceOptions stream_voice_;
  uint64_t next_sentence_ = 1, next_utterance_ = 1;
  uint64_t generation_ = 0;  // bumped by interrupt/stop: older synthesis results are dropped
  bool synthesizing_ = false, stopping_ = false, input_open_ = false, flushing_ = false;

  std::shared_ptr<Engine> engine_;  // set and reset under mutex_; used by the thread
  std::thread thread_;
};

}  // namespace talker::tts
