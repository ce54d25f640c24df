// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace talker::tts {

// Where an engine delivers speech: 16 kHz mono S16 samples, as they are
// synthesized. Returning false asks the engine to stop early.
using AudioSink = std::function<bool(const int16_t *samples, size_t count)>;

// Changes to the engine's voice for one utterance (talker-server's per-request
// `tts`). Empty and 0 keep the engine's settings.
struct VoiceOptions {
  std::string voice;  // the engine's voice name (espeak: a voice or language; openai: alloy…)
  double speed = 0;   // pace as a factor of the engine's own: 0.5 half as fast, 2 twice
  bool empty() const { return voice.empty() && speed == 0; }
};

// The speeds every engine that has one accepts.
constexpr double kMinSpeed = 0.5, kMaxSpeed = 2.0;

// A text-to-speech engine. synthesize() is called from one thread at a time;
// cancel() may be called from any thread.
class Engine {
 public:
  virtual ~Engine() = default;
  // The engine's name as the `engine` property spells it.
  virtual const char *name() const = 0;
  // Speaks `text` into `sink`, returning when done or cancelled. Throws
  // talker::Error with the cause (HTTP status, connection, format) on failure.
  virtual void synthesize(const std::string &text, const VoiceOptions &voice,
                          const AudioSink &sink) = 0;
  void synthesize(const std::string &text, const AudioSink &sink) {
    synthesize(text, VoiceOptions{}, sink);
  }
  // Why the engine cannot speak with `voice` (an unknown voice, no speed
  // setting), or empty when it can. Any thread.
  virtual std::string check(const VoiceOptions &voice) const;
  // Makes a synthesize() running on another thread return soon.
  virtual void cancel() = 0;
};

enum class ResponseFormat { kWav, kPcm };

// Everything an engine is configured with; each engine reads the fields it
// knows. Empty strings and 0 mean "the engine's default".
struct EngineSettings {
  std::string engine = "espeak";  // espeak | openai | gpt-sovits | cosyvoice
  std::string voice;
  int rate = 175;  // espeak: words per minute
  int pitch = 50;  // espeak: 0-100
  std::string server;
  std::string model;
  std::string api_key;
  ResponseFormat response_format = ResponseFormat::kWav;
  std::string ref_audio;  // file path: voice cloning prompt
  std::string ref_text;   // what ref_audio says
  std::string language;
  int server_rate = 0;      // sample rate of raw PCM answers
  unsigned timeout_s = 30;  // HTTP: connect and read timeout
};

// Builds the engine `settings.engine` names. Throws talker::Error for an
// unknown engine or settings it cannot work with (unknown voice, missing
// reference audio, bad URL).
std::unique_ptr<Engine> make_engine(const EngineSettings &settings);

std::unique_ptr<Engine> make_espeak_engine(const EngineSettings &settings);
std::unique_ptr<Engine> make_openai_engine(const EngineSettings &settings);
std::unique_ptr<Engine> make_gpt_sovits_engine(const EngineSettings &settings);
std::unique_ptr<Engine> make_cosyvoice_engine(const EngineSettings &settings);

}  // namespace talker::tts
