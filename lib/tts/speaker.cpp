// SPDX-License-Identifier: LGPL-2.1-or-later
#include "lib/tts/speaker.h"

#include <algorithm>

#include "lib/common/error.h"

namespace talker::tts {

Speaker::Speaker(SpeakerOptions options, FailureHandler on_failure)
    : options_(options),
      on_failure_(std::move(on_failure)),
      stream_chunker_(options.min_chunk_chars) {}

Speaker::~Speaker() {
  stop();
}

void Speaker::start(std::unique_ptr<Engine> engine) {
  if (thread_.joinable()) stop();  // text queued while stopped stays queued
  {
    std::lock_guard<std::mutex> lock(mutex_);
    engine_ = std::move(engine);
    stopping_ = false;
    running_ = true;
    for (auto &held : held_) {
      if (held.audio)
        queue_audio(std::move(held.audio), held.text, held.utterance, held.clip);
      else
        queue_chunks(chunk_whole(held.text), held.utterance, held.voice);
    }
    held_.clear();
  }
  thread_ = std::thread([this] { synthesis_loop(); });
}

void Speaker::stop() {
  std::shared_ptr<Engine> engine;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    engine = engine_;
    stopping_ = true;
    running_ = false;
    ++generation_;
    held_.clear();
    text_queue_.clear();
    audio_.clear();
    cut_.reset();
    stream_chunker_.clear();
    stream_utterance_ = 0;
  }
  synth_cv_.notify_all();
  frame_cv_.notify_all();
  if (engine) engine->cancel();
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mutex_);
  engine_.reset();
}

void Speaker::queue_chunks(std::vector<std::string> chunks, uint64_t utterance,
                           const VoiceOptions &voice) {
  for (auto &text : chunks) {
    auto s = std::make_shared<Sentence>();
    s->id = next_sentence_++;
    s->utterance = utterance;
    s->text = std::move(text);
    s->voice = voice;
    text_queue_.push_back(std::move(s));
  }
}

void Speaker::queue_audio(std::shared_ptr<const std::vector<int16_t>> audio,
                          const std::string &label, uint64_t utterance, const std::string &clip) {
  auto s = std::make_shared<Sentence>();
  s->id = next_sentence_++;
  s->utterance = utterance;
  s->text = label;
  s->audio = std::move(audio);
  s->clip = clip;
  text_queue_.push_back(std::move(s));
}

void Speaker::set_min_chunk_chars(size_t n) {
  std::lock_guard<std::mutex> lock(mutex_);
  options_.min_chunk_chars = n;
  stream_chunker_.set_min_chars(n);
}

std::vector<std::string> Speaker::chunk_whole(const std::string &text) const {
  text::SentenceChunker chunker(options_.min_chunk_chars);
  auto chunks = chunker.push(text);
  for (auto &rest : chunker.flush()) chunks.push_back(std::move(rest));
  return chunks;
}

uint64_t Speaker::say(const std::string &text, const VoiceOptions &voice) {
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    id = next_utterance_++;
    if (running_)
      queue_chunks(chunk_whole(text), id, voice);
    else
      held_.push_back(Held{id, text, nullptr, voice, std::string()});
  }
  synth_cv_.notify_all();
  frame_cv_.notify_all();
  return id;
}

uint64_t Speaker::say_audio(std::vector<int16_t> samples, const std::string &label) {
  return say_given(std::move(samples), label, "");
}

uint64_t Speaker::say_clip(std::vector<int16_t> samples, const std::string &clip) {
  return say_given(std::move(samples), "", clip);
}

uint64_t Speaker::say_given(std::vector<int16_t> samples, const std::string &label,
                            const std::string &clip) {
  auto audio = std::make_shared<const std::vector<int16_t>>(std::move(samples));
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    id = next_utterance_++;
    if (running_)
      queue_audio(std::move(audio), label, id, clip);
    else
      held_.push_back(Held{id, label, std::move(audio), VoiceOptions(), clip});
  }
  synth_cv_.notify_all();
  frame_cv_.notify_all();
  return id;
}

uint64_t Speaker::append_text(std::string_view text, const VoiceOptions &voice) {
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stream_utterance_ == 0) {
      stream_utterance_ = next_utterance_++;
      stream_voice_ = voice;
    }
    id = stream_utterance_;
    queue_chunks(stream_chunker_.push(text), id, stream_voice_);
  }
  synth_cv_.notify_all();
  return id;
}

void Speaker::end_text() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stream_utterance_ != 0)
      queue_chunks(stream_chunker_.flush(), stream_utterance_, stream_voice_);
    stream_utterance_ = 0;
  }
  synth_cv_.notify_all();
  frame_cv_.notify_all();
}

void Speaker::interrupt() {
  std::shared_ptr<Engine> engine;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    engine = engine_;
    ++generation_;
    held_.clear();
    text_queue_.clear();
    stream_chunker_.clear();
    stream_utterance_ = 0;
    if (!audio_.empty() && audio_.front()->started) cut_ = audio_.front()->sentence;
    audio_.clear();
  }
  if (engine) engine->cancel();
  synth_cv_.notify_all();
  frame_cv_.notify_all();
}

std::string Speaker::check(const VoiceOptions &voice) const {
  std::shared_ptr<Engine> engine;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    engine = engine_;
  }
  return engine ? engine->check(voice) : "";
}

void Speaker::set_input_open(bool open) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    input_open_ = open;
  }
  frame_cv_.notify_all();
}

void Speaker::set_flushing(bool flushing) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    flushing_ = flushing;
  }
  frame_cv_.notify_all();
}

void Speaker::set_on_synthesized(SentenceHandler handler) {
  std::lock_guard<std::mutex> lock(mutex_);
  on_synthesized_ = std::move(handler);
}

bool Speaker::idle_locked() const {
  return held_.empty() && text_queue_.empty() && audio_.empty() && !synthesizing_ && !cut_;
}

bool Speaker::idle() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return idle_locked();
}

size_t Speaker::ahead_samples_locked() const {
  size_t n = 0;
  for (const auto &e : audio_) n += e->samples.size() - e->read;
  return n;
}

bool Speaker::fill_frame(Frame &frame, bool live) {
  bool produced = false;
  if (cut_) {
    frame.ended = std::move(cut_);
    frame.end_sample = 0;
    frame.end_reason = SentenceEnd::kInterrupted;
    produced = true;
  }
  while (!audio_.empty()) {
    AudioEntry &e = *audio_.front();
    const size_t avail = e.samples.size() - e.read;
    if (!e.started) {
      if (e.done && e.samples.empty()) {  // failed before any audio, or nothing to say
        audio_.pop_front();
        continue;
      }
      const bool ready = e.done || (live ? avail >= std::max(options_.start_samples, kFrameSamples)
                                         : avail >= kFrameSamples);
      if (!ready) break;
      e.started = true;
      frame.started = e.sentence;
    }
    const bool last = e.done && avail <= kFrameSamples;
    size_t n = std::min(avail, kFrameSamples);
    if (!last && n < kFrameSamples && !live) break;  // rendering waits for a whole frame
    std::copy_n(e.samples.begin() + long(e.read), n, frame.samples.begin());
    e.read += n;
    if (n > 0 || !last) frame.silent = false;  // a live underrun mid-sentence is not silence
    produced = true;
    if (last) {
      frame.ended = e.sentence;
      frame.end_sample = n;
      frame.end_reason = e.failed ? SentenceEnd::kFailed : SentenceEnd::kFinished;
      audio_.pop_front();
    }
    break;
  }
  if (produced) synth_cv_.notify_all();
  return produced;
}

Frame Speaker::next_frame_now() {
  Frame frame;
  std::lock_guard<std::mutex> lock(mutex_);
  fill_frame(frame, true);
  return frame;
}

std::optional<Frame> Speaker::next_frame_wait() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    if (flushing_) return std::nullopt;
    Frame frame;
    if (fill_frame(frame, false)) return frame;
    if (idle_locked() && !input_open_) return std::nullopt;
    frame_cv_.wait(lock);
  }
}

void Speaker::synthesis_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    synth_cv_.wait(lock, [&] {
      return stopping_ ||
             (!text_queue_.empty() && ahead_samples_locked() < options_.max_ahead_samples);
    });
    if (stopping_) return;
    auto sentence = text_queue_.front();
    text_queue_.pop_front();
    const uint64_t generation = generation_;
    auto entry = std::make_shared<AudioEntry>();
    entry->sentence = sentence;
    audio_.push_back(entry);
    synthesizing_ = true;
    std::shared_ptr<Engine> engine = engine_;
    lock.unlock();

    std::string failure;
    try {
      if (sentence->audio) {
        std::lock_guard<std::mutex> l(mutex_);
        if (generation == generation_ && !stopping_)
          entry->samples.assign(sentence->audio->begin(), sentence->audio->end());
        frame_cv_.notify_all();
      } else {
        engine->synthesize(sentence->text, sentence->voice, [&](const int16_t *samples, size_t n) {
          std::lock_guard<std::mutex> l(mutex_);
          if (generation != generation_ || stopping_) return false;
          entry->samples.insert(entry->samples.end(), samples, samples + n);
          frame_cv_.notify_all();
          return true;
        });
      }
    } catch (const std::exception &e) {
      failure = e.what();
    }

    // Report before the sentence counts as done, so that a render cannot
    // reach its end (EOS) before the warning or the callback.
    lock.lock();
    bool current = generation == generation_;
    SentenceHandler on_synthesized = on_synthesized_;
    lock.unlock();
    if (current && !failure.empty() && on_failure_) on_failure_(*sentence, failure);
    if (current && failure.empty() && on_synthesized) on_synthesized(*sentence);

    lock.lock();
    synthesizing_ = false;
    current = generation == generation_;
    if (current) {
      entry->done = true;
      if (!failure.empty()) {
        entry->failed = true;
        // Its unplayed audio is dropped: a sentence not started yet is skipped.
        entry->samples.resize(entry->started ? entry->read : 0);
      }
    }
    frame_cv_.notify_all();
  }
}

}  // namespace talker::tts
