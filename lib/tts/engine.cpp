// SPDX-License-Identifier: LGPL-2.1-or-later
#include "lib/tts/engine.h"

#include "lib/common/error.h"

namespace talker::tts {

std::unique_ptr<Engine> make_engine(const EngineSettings &settings) {
  if (settings.engine == "espeak") return make_espeak_engine(settings);
  if (settings.engine == "openai") return make_openai_engine(settings);
  if (settings.engine == "gpt-sovits") return make_gpt_sovits_engine(settings);
  if (settings.engine == "cosyvoice") return make_cosyvoice_engine(settings);
  throw Error("unknown TTS engine '" + settings.engine +
              "' (espeak, openai, gpt-sovits or cosyvoice)");
}

}  // namespace talker::tts
