// SPDX-License-Identifier: LGPL-2.1-or-later
// The embedded engine: libespeak-ng, 22050 Hz, resampled to 16 kHz.
#include <espeak-ng/speak_lib.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <vector>

#include "lib/audio/resampler.h"
#include "lib/common/error.h"
#include "lib/tts/engine.h"

namespace talker::tts {
namespace {

// libespeak-ng keeps one synthesizer per process (voice, parameters, the
// callback are global), so every engine instance takes this lock around its
// use, and synthesis by several elements runs one at a time.
struct EspeakProcessState {
  std::mutex lock;
  bool initialized = false;
  int sample_rate = 0;
  std::string voice;  // the voice currently selected
};

EspeakProcessState &espeak_state() {
  static EspeakProcessState state;
  return state;
}

// Per synthesize() call, reached through espeak's user_data.
struct SynthCall {
  audio::Resampler *resampler;
  const AudioSink *sink;
  std::atomic<bool> *cancelled;
  std::vector<float> in;
  std::vector<float> out;
  std::vector<int16_t> pcm;
  bool stopped = false;
};

void deliver(SynthCall &call) {
  call.pcm.clear();
  audio::append_s16(call.out, call.pcm);
  call.out.clear();
  if (!call.pcm.empty() && !(*call.sink)(call.pcm.data(), call.pcm.size())) call.stopped = true;
}

int on_espeak_samples(short *wav, int count, espeak_EVENT *events) {
  auto *call = events ? static_cast<SynthCall *>(events[0].user_data) : nullptr;
  if (!call) return 0;
  if (wav && count > 0) {
    call->in.resize(size_t(count));
    for (int i = 0; i < count; ++i) call->in[size_t(i)] = float(wav[i]) / 32768.f;
    call->resampler->process(call->in.data(), call->in.size(), call->out);
    deliver(*call);
  }
  return call->stopped || call->cancelled->load() ? 1 : 0;
}

// Selects `voice` by name (en, en-us, cmn…) or, failing that, the best
// voice for it as a language (zh → cmn). MBROLA voices need a separate
// install and are skipped.
bool select_voice(const std::string &voice) {
  if (espeak_SetVoiceByName(voice.c_str()) == EE_OK) return true;
  espeak_VOICE wanted{};
  wanted.languages = voice.c_str();
  const espeak_VOICE **matches = espeak_ListVoices(&wanted);
  for (; matches && *matches; ++matches) {
    const char *id = (*matches)->identifier;
    if (id && std::string(id).rfind("mb/", 0) == 0) continue;
    if (espeak_SetVoiceByName((*matches)->name) == EE_OK) return true;
  }
  return false;
}

class EspeakEngine : public Engine {
 public:
  explicit EspeakEngine(const EngineSettings &s)
      : voice_(s.voice.empty() ? "en" : s.voice), rate_(s.rate), pitch_(s.pitch) {
    if (rate_ < espeakRATE_MINIMUM || rate_ > espeakRATE_MAXIMUM)
      throw Error("espeak: rate " + std::to_string(rate_) + " is outside 80-450 words per minute");
    if (pitch_ < 0 || pitch_ > 100)
      throw Error("espeak: pitch " + std::to_string(pitch_) + " is outside 0-100");
    auto &st = espeak_state();
    std::lock_guard<std::mutex> lock(st.lock);
    if (!st.initialized) {
      st.sample_rate = espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 100, nullptr, 0);
      if (st.sample_rate <= 0)
        throw Error("espeak: libespeak-ng could not start (is espeak-ng-data installed?)");
      espeak_SetSynthCallback(on_espeak_samples);
      st.initialized = true;
    }
    if (!select_voice(voice_))
      throw Error("espeak: unknown voice '" + voice_ + "' (espeak-ng --voices lists them)");
    st.voice = voice_;
  }

  const char *name() const override { return "espeak"; }

  std::string check(const VoiceOptions &voice) const override {
    std::string why = Engine::check(voice);
    if (!why.empty() || voice.voice.empty()) return why;
    auto &st = espeak_state();
    std::lock_guard<std::mutex> lock(st.lock);
    // Selecting is the only test espeak has; the next call selects its own again.
    const bool known = select_voice(voice.voice);
    st.voice.clear();
    return known ? ""
                 : "espeak: unknown voice '" + voice.voice + "' (espeak-ng --voices lists them)";
  }

  void synthesize(const std::string &text, const VoiceOptions &options,
                  const AudioSink &sink) override {
    auto &st = espeak_state();
    std::lock_guard<std::mutex> lock(st.lock);
    cancelled_ = false;
    const std::string &voice = options.voice.empty() ? voice_ : options.voice;
    if (st.voice != voice) {
      if (!select_voice(voice)) throw Error("espeak: unknown voice '" + voice + "'");
      st.voice = voice;
    }
    const int rate = options.speed > 0
                         ? std::clamp(int(rate_ * options.speed + 0.5), int(espeakRATE_MINIMUM),
                                      int(espeakRATE_MAXIMUM))
                         : rate_;
    espeak_SetParameter(espeakRATE, rate, 0);
    espeak_SetParameter(espeakPITCH, pitch_, 0);
    audio::Resampler resampler(st.sample_rate, 16000);
    SynthCall call{&resampler, &sink, &cancelled_};
    const espeak_ERROR err = espeak_Synth(text.c_str(), text.size() + 1, 0, POS_CHARACTER, 0,
                                          espeakCHARS_UTF8, nullptr, &call);
    if (err != EE_OK && !call.stopped && !cancelled_)
      throw Error("espeak: synthesis failed (espeak error " + std::to_string(int(err)) + ")");
    if (call.stopped || cancelled_) return;
    resampler.flush(call.out);
    deliver(call);
  }

  void cancel() override { cancelled_ = true; }

 private:
  std::string voice_;
  int rate_, pitch_;
  std::atomic<bool> cancelled_{false};
};

}  // namespace

std::unique_ptr<Engine> make_espeak_engine(const EngineSettings &settings) {
  return std::make_unique<EspeakEngine>(settings);
}

}  // namespace talker::tts
