// SPDX-License-Identifier: LGPL-2.1-or-later
// whisperfeat's cost and the live-mode trade-off.
//  1. Cost: full-size whisper-tiny encoder (random weights), per second of
//     audio and as a ratio to real time, for each way of windowing.
//  2. Fidelity (needs ../shared/golden): sliding-window features against the
//     offline (whole-utterance) ones on the golden speech, per configuration.
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <sys/stat.h>

#include "lib/audio/log_mel.h"
#include "lib/audio/whisper_features.h"
#include "lib/nn/weights.h"
#include "lib/nn/whisper_encoder.h"

using namespace talker;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Median of `reps` runs of `fn`, in seconds.
template <typename Fn>
double time_it(int reps, Fn fn) {
  fn();  // warm-up
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    auto t0 = Clock::now();
    fn();
    t.push_back(seconds_since(t0));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

nn::WhisperEncoder random_tiny() {
  nn::WhisperEncoderConfig
      cfg;  // whisper-tiny: 80 mels, 1500 positions, 384 wide, 6 heads, 4 layers
  nn::WhisperEncoder enc(cfg);
  torch::NoGradGuard g;
  for (auto &p : enc->parameters()) p.normal_(0, 0.05);
  enc->positional_embedding.normal_(0, 0.1);
  enc->eval();
  return enc;
}

void cost() {
  std::printf("== cost: whisper-tiny encoder (random weights), %d threads ==\n",
              torch::get_num_threads());
  audio::WhisperFeaturizer f(random_tiny(), nn::WhisperLayout::HF);
  auto speech = torch::randn({audio::kWindowSamples}) * 0.1;
  const float *p = speech.data_ptr<float>();
  auto filters = audio::mel_filters(80);
  double mel = time_it(5, [&] {
    audio::log_mel_spectrogram(speech.slice(0, 0, 64000), filters, audio::kWindowSamples - 64000);
  });
  double full = time_it(3, [&] { f.encode(p, audio::kWindowSamples, true); });
  std::printf("log-mel of one 30 s window: %.1f ms\n", mel * 1e3);
  std::printf("one 30 s-padded encoder run: %.1f ms\n", full * 1e3);
  std::printf("%-58s %12s %14s\n", "windowing", "ms/s audio", "x real time");
  auto row = [](const char *what, double sec_per_sec) {
    std::printf("%-58s %12.1f %14.3f\n", what, sec_per_sec * 1e3, sec_per_sec);
  };
  row("utterance, 30 s of speech in one window", full / 30);
  row("utterance, 4 s utterances (one padded window each)", full / 4);
  // Sliding: one run per hop of 5 frames (200 ms).
  row("sliding, hop 200 ms, 30 s padding (default)", full / 0.2);
  for (int context_ms : {500, 1000, 2000}) {
    int64_t n = (context_ms + 200 + 80 + 200) * 16;
    double t = time_it(5, [&] { f.encode(p, n, false); });
    char label[96];
    std::snprintf(label, sizeof label, "sliding, hop 200 ms, no padding, context %d ms",
                  context_ms);
    row(label, t / 0.2);
  }
  for (int hop : {10, 25}) {
    char label[96];
    std::snprintf(label, sizeof label, "sliding, hop %d ms, 30 s padding", hop * 40);
    row(label, full / (hop * 0.04));
  }
}

void fidelity(const std::string &golden) {
  std::printf(
      "\n== fidelity: sliding vs offline features on the golden speech (random weights) ==\n");
  auto featurizer = std::make_shared<audio::WhisperFeaturizer>(
      nn::load_whisper_encoder(golden + "/whisper_tiny/tiny.pt"), nn::WhisperLayout::HF);
  auto speech = nn::load_safetensors(golden + "/whisper_tiny/inputs.safetensors")
                    .tensors.at("audio_16k")
                    .contiguous();
  const int64_t n = speech.size(0);
  // Offline reference for all 100 frames (the library reproduces the golden chunks).
  audio::FeatureStream offline(featurizer, {});
  offline.push(speech.data_ptr<float>(), n, false);
  offline.finish();
  auto ref = offline.take_ready();

  std::printf("%-9s %-9s %-5s %-8s %10s %10s %11s %10s\n", "context", "look-ahd", "hop", "padding",
              "max abs", "min cos", "mean cos", "latency");
  struct Cfg {
    int context_ms, lookahead_ms, hop;
    bool pad;
  };
  std::vector<Cfg> cfgs;
  for (int context : {200, 1000, 3000, 10000})
    for (int look : {0, 200, 1000}) cfgs.push_back({context, look, 5, true});
  for (int context : {1000, 3000, 10000}) cfgs.push_back({context, 200, 5, false});
  cfgs.push_back({10000, 200, 1, true});
  cfgs.push_back({10000, 200, 16, true});
  for (const auto &c : cfgs) {
    audio::FeatureStreamConfig cfg;
    cfg.mode = audio::FeatureStreamConfig::Mode::Sliding;
    cfg.context_samples = c.context_ms * 16;
    cfg.lookahead_samples = c.lookahead_ms * 16;
    cfg.hop_frames = c.hop;
    cfg.pad_to_30s = c.pad;
    audio::FeatureStream live(featurizer, cfg);
    for (int64_t off = 0; off < n; off += 320)
      live.push(speech.data_ptr<float>() + off, 320, false);
    live.finish();
    auto got = live.take_ready();
    double worst = 0, min_cos = 1, sum_cos = 0;
    for (size_t t = 0; t < ref.size() && t < got.size(); ++t) {
      auto a = got[t].chunk.flatten(), b = ref[t].chunk.flatten();
      worst = std::max(worst, (a - b).abs().max().item<double>());
      double cs = torch::cosine_similarity(a, b, 0).item<double>();
      min_cos = std::min(min_cos, cs);
      sum_cos += cs;
    }
    std::printf("%6d ms %6d ms %5d %-8s %10.4f %10.5f %11.5f %7ld ms\n", c.context_ms,
                c.lookahead_ms, c.hop, c.pad ? "30 s" : "none", worst, min_cos,
                sum_cos / ref.size(), long(live.latency_samples() / 16));
  }
}

}  // namespace

int main(int argc, char **argv) {
  torch::InferenceMode guard;
  if (argc < 2 || std::string(argv[1]) != "--fidelity-only") cost();
  std::string golden = std::string(TALKER_SOURCE_ROOT) + "/../shared/golden";
  if (const char *env = std::getenv("TALKER_GOLDEN_DIR")) golden = env;
  struct stat st {};
  if (stat((golden + "/index.json").c_str(), &st) == 0)
    fidelity(golden);
  else
    std::printf("\n(fidelity table skipped: no golden vectors at %s)\n", golden.c_str());
  return 0;
}
