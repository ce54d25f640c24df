// SPDX-License-Identifier: LGPL-2.1-or-later
// talkertts' engine side with espeak-ng: time to first audio for a
// 200-character reply (chunked, as talkertts plays it, and unchunked), and
// the synthesis real-time factor. Prints a table; run with
//   meson test -C build --benchmark --suite bench -v tts
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "lib/audio/resampler.h"
#include "lib/text/sentence_chunker.h"
#include "lib/tts/speaker.h"

using Clock = std::chrono::steady_clock;
using namespace talker;

namespace {

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

const std::string kReply =
    "Thanks for asking. The river bends because water moves faster on the outside of a curve, "
    "wearing the bank away, while slower water on the inside drops sand and silt. Over years, "
    "the loop grows wider.";

}  // namespace

int main() {
  std::printf("text: %zu characters\n\n", text::utf8_length(kReply));
  const int runs = 7;

  // Whole reply as one engine call: the first samples arrive when espeak has
  // synthesized its first internal buffer.
  std::vector<double> engine_first, engine_total;
  double audio_s = 0;
  for (int i = 0; i < runs; ++i) {
    auto engine = tts::make_engine({});
    size_t samples = 0;
    double first = -1;
    const auto t0 = Clock::now();
    engine->synthesize(kReply, [&](const int16_t *, size_t n) {
      if (first < 0) first = ms_since(t0);
      samples += n;
      return true;
    });
    engine_total.push_back(ms_since(t0));
    engine_first.push_back(first);
    audio_s = double(samples) / tts::kSampleRate;
  }

  // As talkertts does it: chunked into sentences, synthesized ahead, the
  // first frame taken as soon as it exists (rendering mode).
  std::vector<double> speaker_first, speaker_total;
  size_t sentences = 0;
  for (int i = 0; i < runs; ++i) {
    tts::Speaker speaker(tts::SpeakerOptions{});
    speaker.say(kReply);
    const auto t0 = Clock::now();
    speaker.start(tts::make_engine({}));
    double first = -1;
    sentences = 0;
    while (auto frame = speaker.next_frame_wait()) {
      if (first < 0) first = ms_since(t0);
      sentences += frame->ended ? 1 : 0;
    }
    speaker_total.push_back(ms_since(t0));
    speaker_first.push_back(first);
  }

  // The resampler alone, 22050 → 16000.
  std::vector<float> tone(22050 * 60);
  for (size_t i = 0; i < tone.size(); ++i) tone[i] = float(std::sin(double(i) * 0.05));
  const auto tr = Clock::now();
  const auto out = audio::resample(tone, 22050, 16000);
  const double resample_ms = ms_since(tr);

  std::printf("espeak, %d runs, medians; speech is %.2f s long\n", runs, audio_s);
  std::printf("| path | first audio ms | all audio ms | real-time factor |\n|---|---|---|---|\n");
  std::printf("| engine, whole text in one call | %.1f | %.1f | %.4f |\n", median(engine_first),
              median(engine_total), median(engine_total) / 1000 / audio_s);
  std::printf("| Speaker, %zu sentences (talkertts) | %.1f | %.1f | %.4f |\n", sentences,
              median(speaker_first), median(speaker_total), median(speaker_total) / 1000 / audio_s);
  std::printf(
      "\nresampler 22050 -> 16000: 60 s of audio in %.1f ms (real-time factor %.5f, %zu samples)\n",
      resample_ms, resample_ms / 60000, out.size());
  return 0;
}
