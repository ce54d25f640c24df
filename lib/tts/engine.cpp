// SPDX-License-Identifier: LGPL-2.1-or-later
#include "lib/tts/engine.h"

#include "lib/common/error.h"

namespace talker::tts {

std::string Engine::check(const VoiceOptions &voice) const {
  if (voice.speed != 0 && (voice.speed < kMinSpeed || voice.speed > kMaxSpeed))
    return "speed " + std::to_string(voice.speed) + " is outside 0.5-2";
  return "";
}

std::unique_ptr<Engine> make_engine(const EngineSettings &settings) {
  if (settings.engine == "espeak") return make_espeak_engine(settings);
  if (settings.engine == "openai") return make_openai_engine(settings);
  if (settings.engine == "gpt-sovits") return make_gpt_sovits_engine(settings);
  if (settings.engine == "cosyvoice") return make_cosyvoice_engine(settings);
  throw Error("unknown TTS engine '" + settings.engine +
              "' (espeak, openai, gpt-sovits or cosyvoice)");
}

}  // namespace talker::tts
