// SPDX-License-Identifier: LGPL-2.1-or-later
// The full live chain (talkertts ! tee ! talkinghead, sync=true sinks) for a
// while, with a `say` every few seconds and an `interrupt` every fourth time,
// then the figures a viewer would feel:
//   live_bench [--seconds 600] [--models micro|golden|DIR] [--batch N] [--device cpu|cuda]
//              [--dtype float32|float16]
// micro: build/tools/micro (near real time on a CPU); golden: ../shared/golden's small
// models (overload on a CPU); DIR: a models/ folder as models/download.sh lays it out.
#include <gst/gst.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>

#include "tests/golden.h"
#include "tests/live_chain.h"

using namespace talker;
using test::LiveChain;

namespace {

double rss_mib() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0;
}

double ms(GstClockTimeDiff t) {
  return t / 1e6;
}

struct Say {
  GstClockTime called = 0;
  bool interrupted = false;
  GstClockTime interrupt_called = GST_CLOCK_TIME_NONE;
};

}  // namespace

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  double seconds = 600;
  std::string models = "micro", device = "cpu", dtype = "float32";
  int batch = 4;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--seconds") seconds = std::stod(v);
    if (k == "--models") models = v;
    if (k == "--batch") batch = std::stoi(v);
    if (k == "--device") device = v;
    if (k == "--dtype") dtype = v;
  }
  const std::string micro = std::string(TALKER_BUILD_ROOT) + "/tools/micro/";
  std::string props, avatar = micro + "avatar";
  if (models == "micro") {
    props = "whisper-model=" + micro + "whisper.safetensors unet=" + micro +
            "unet.safetensors unet-config=" + micro + "musetalk.json vae=" + micro + "vae";
  } else if (models == "golden") {
    props = "whisper-model=" + test::golden("whisper_tiny/tiny.pt") +
            " unet=" + test::golden("unet_small/unet.pth") +
            " unet-config=" + test::golden("unet_small/config.json") +
            " vae=" + test::golden("vae_small");
  } else {
    props = "whisper-model=" + models + "/whisper/tiny.pt unet=" + models +
            "/musetalkV15/unet.pth vae=" + models + "/sd-vae";
    avatar = models + "/../avatars/demo";
  }
  props += " batch-size=" + std::to_string(batch) + " device=" + device + " dtype=" + dtype +
           " transition-ms=200";
  const double rss_start = rss_mib();
  LiveChain run(props, avatar);
  run.start();
  const GstClockTime latency = run.latency();
  const double rss_started = rss_mib();
  std::printf("models %s, batch %d, %s %s: latency %.0f ms, RSS at start %.0f MiB\n",
              models.c_str(), batch, device.c_str(), dtype.c_str(), ms(latency), rss_started);
  const char *lines[] = {"The quick brown fox jumps over the lazy dog.",
                         "Hello there, I am a talking head, and I never drift.",
                         "Every frame leaves in time for its sound, whatever the budget.",
                         "This one is cut off in the middle, as a viewer would do."};
  std::vector<Say> says;
  const gint64 t_end = g_get_monotonic_time() + gint64(seconds * 1e6);
  for (int i = 0; g_get_monotonic_time() < t_end; ++i) {
    Say s;
    s.called = run.running_time();
    run.say(lines[i % 4]);
    if (i % 4 == 3) {
      run.pump(1.5);
      s.interrupted = true;
      s.interrupt_called = run.interrupt();
      run.pump(4.5);
    } else {
      run.pump(6.0);
    }
    says.push_back(s);
  }
  run.pump(std::max(2.0, ms(latency) / 1000 + 1));
  const double rss_end = rss_mib();

  auto audio = run.audio();
  auto video = run.video();
  std::vector<double> to_audio, to_mouth, onset, to_silence, to_idle;
  for (size_t i = 0; i < says.size(); ++i) {
    const Say &s = says[i];
    const GstClockTime until = i + 1 < says.size() ? says[i + 1].called : GST_CLOCK_TIME_NONE;
    GstClockTime a = GST_CLOCK_TIME_NONE, v = GST_CLOCK_TIME_NONE;
    for (const auto &r : audio)
      if (r.pts >= s.called && r.pts < until && !r.gap) {
        a = r.pts;
        break;
      }
    for (const auto &r : video)
      if (r.pts >= s.called && r.pts < until && r.generated) {
        v = r.pts;
        break;
      }
    if (GST_CLOCK_TIME_IS_VALID(a)) to_audio.push_back(ms(a + latency - s.called));
    if (GST_CLOCK_TIME_IS_VALID(v)) to_mouth.push_back(ms(v + latency - s.called));
    if (GST_CLOCK_TIME_IS_VALID(a) && GST_CLOCK_TIME_IS_VALID(v))
      onset.push_back(ms(GST_CLOCK_DIFF(a, v)));
    if (s.interrupted) {
      for (const auto &r : audio)
        if (r.pts >= s.interrupt_called && r.gap) {
          to_silence.push_back(ms(r.pts + latency - s.interrupt_called));
          break;
        }
      for (const auto &r : video)
        if (r.pts >= s.interrupt_called && !r.speaking && r.face_diff == 0) {
          to_idle.push_back(ms(r.pts + latency - s.interrupt_called));
          break;
        }
    }
  }
  auto summary = [](const char *what, std::vector<double> v) {
    if (v.empty()) {
      std::printf("%-44s n/a\n", what);
      return;
    }
    std::sort(v.begin(), v.end());
    std::printf("%-44s median %8.1f ms  min %8.1f  max %8.1f  (n=%zu)\n", what, v[v.size() / 2],
                v.front(), v.back(), v.size());
  };
  summary("say -> first speech audio rendered", to_audio);
  summary("say -> first moving mouth rendered", to_mouth);
  summary("A/V onset offset at the sinks (video-audio)", onset);
  summary("interrupt -> silence rendered", to_silence);
  summary("interrupt -> idle face rendered", to_idle);
  auto lateness = [&](GstClockTime from, GstClockTime to) {
    GstClockTimeDiff worst = G_MININT64;
    for (const auto &r : video)
      if (r.pts >= from && r.pts < to) worst = std::max(worst, run.lateness(r));
    return worst == G_MININT64 ? 0.0 : ms(worst);
  };
  const GstClockTime last = video.empty() ? 0 : video.back().pts;
  std::printf("worst video lateness, first minute %.1f ms, last minute %.1f ms (negative: early)\n",
              lateness(0, 60 * GST_SECOND),
              lateness(last > 60 * GST_SECOND ? last - 60 * GST_SECOND : 0, last + 1));
  std::printf("latency at the end %.0f ms (start %.0f ms)\n", ms(run.current_latency()),
              ms(latency));
  auto stats = run.stats();
  gchar *text = gst_structure_to_string(stats.get());
  std::printf("%s\n", text);
  g_free(text);
  std::printf("RSS before the pipeline %.0f MiB, after start-up %.0f MiB, at the end %.0f MiB\n",
              rss_start, rss_started, rss_end);
  return 0;
}
