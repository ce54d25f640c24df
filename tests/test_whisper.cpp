// SPDX-License-Identifier: LGPL-2.1-or-later
// The whisper path against openai-whisper / MuseTalk reference outputs.
#include "tests/catch.h"

#include "lib/audio/log_mel.h"
#include "lib/audio/whisper_features.h"
#include "lib/nn/whisper_encoder.h"
#include "tests/golden.h"

using namespace talker;
using test::golden;
using test::max_abs_diff;

namespace {
const nn::StateDict &inputs() {
  static auto t = test::golden_tensors("whisper_tiny/inputs.safetensors");
  return t;
}
const nn::StateDict &expected() {
  static auto t = test::golden_tensors("whisper_tiny/expected.safetensors");
  return t;
}
torch::Tensor golden_mel() {
  auto audio = inputs().at("audio_16k");
  return audio::log_mel_spectrogram(audio, audio::mel_filters(80),
                                    audio::kWindowSamples - audio.size(0));
}
}  // namespace

TEST_CASE("mel filter bank matches whisper's mel_filters.npz") {
  auto ours = audio::mel_filters(80);
  const auto &ref = inputs().at("mel_filters_80");
  REQUIRE(ours.sizes() == ref.sizes());
  CHECK(max_abs_diff(ours, ref) < 1e-7);
}

TEST_CASE("log-mel matches whisper.audio.log_mel_spectrogram") {
  auto mel = golden_mel();
  const auto &ref = expected().at("log_mel");
  REQUIRE(mel.sizes() == ref.sizes());
  double d = max_abs_diff(mel, ref);
  INFO("max abs diff " << d);
  CHECK(d < 1e-4);
}

TEST_CASE("encoder hidden states match, both files and both layouts") {
  auto mel = golden_mel().unsqueeze(0);
  for (const char *file : {"whisper_tiny/tiny.pt", "whisper_tiny/pytorch_model.bin"}) {
    auto enc = nn::load_whisper_encoder(golden(file));
    CHECK(enc->config.n_head == 6);
    CHECK(enc->config.n_layer == 4);
    torch::InferenceMode guard;
    for (auto layout : {nn::WhisperLayout::OpenAI, nn::WhisperLayout::HF}) {
      auto states = enc->forward(mel, layout)[0].slice(0, 0, 200);
      const auto &ref = expected().at(layout == nn::WhisperLayout::HF ? "hidden_states_hf"
                                                                      : "hidden_states_openai");
      REQUIRE(states.sizes() == ref.sizes());
      double d = max_abs_diff(states, ref);
      INFO(file << (layout == nn::WhisperLayout::HF ? " hf" : " openai") << ": max abs diff " << d);
      CHECK(d < 1e-4);
    }
  }
}

TEST_CASE("per-frame chunks match MuseTalk's get_whisper_chunk") {
  auto featurizer = audio::WhisperFeaturizer(
      nn::load_whisper_encoder(golden("whisper_tiny/pytorch_model.bin")), nn::WhisperLayout::HF);
  auto audio16k = inputs().at("audio_16k").contiguous();
  auto rows = featurizer.encode(audio16k.data_ptr<float>(), audio16k.size(0), true);
  REQUIRE(rows.size(0) == 200);
  const auto &ref = expected().at("whisper_chunks");
  const auto &index = expected().at("whisper_chunks_frame_index");
  audio::FrameGrid grid;
  double worst = 0;
  for (int64_t i = 0; i < ref.size(0); ++i) {
    int64_t t = index[i].item<int64_t>();
    auto chunk = audio::frame_chunk(rows, 200, grid, t);
    REQUIRE(chunk.sizes() == ref[i].sizes());
    worst = std::max(worst, max_abs_diff(chunk, ref[i]));
  }
  INFO("max abs diff " << worst);
  CHECK(worst < 1e-4);
  // Given the reference's own hidden states the chunking is exact.
  auto ref_rows = expected().at("hidden_states_hf");
  for (int64_t i = 0; i < ref.size(0); ++i)
    CHECK(torch::equal(audio::frame_chunk(ref_rows, 200, grid, index[i].item<int64_t>()), ref[i]));
}

TEST_CASE("FeatureStream in utterance mode reproduces the offline chunks") {
  auto featurizer = std::make_shared<audio::WhisperFeaturizer>(
      nn::load_whisper_encoder(golden("whisper_tiny/tiny.pt")), nn::WhisperLayout::HF);
  audio::FeatureStream stream(featurizer, {});
  auto audio16k = inputs().at("audio_16k").contiguous();
  const float *p = audio16k.data_ptr<float>();
  std::vector<audio::FrameFeatures> frames;
  for (int64_t off = 0; off < audio16k.size(0); off += 320) {
    stream.push(p + off, 320, false);
    for (auto &f : stream.take_ready()) frames.push_back(std::move(f));
  }
  CHECK(frames.empty());  // the utterance is still open
  stream.finish();
  for (auto &f : stream.take_ready()) frames.push_back(std::move(f));
  REQUIRE(frames.size() == 100);
  CHECK(stream.encoder_runs() == 1);
  const auto &ref = expected().at("whisper_chunks");
  const auto &index = expected().at("whisper_chunks_frame_index");
  for (int64_t i = 0; i < ref.size(0); ++i) {
    int64_t t = index[i].item<int64_t>();
    CHECK(frames[t].index == t);
    REQUIRE_FALSE(frames[t].gap);
    CHECK(max_abs_diff(frames[t].chunk, ref[i]) < 1e-4);
  }
}

TEST_CASE("sliding windows that cover the whole utterance equal the offline features") {
  auto featurizer = std::make_shared<audio::WhisperFeaturizer>(
      nn::load_whisper_encoder(golden("whisper_tiny/tiny.pt")), nn::WhisperLayout::HF);
  auto speech = inputs().at("audio_16k").contiguous();
  audio::FeatureStream offline(featurizer, {});
  offline.push(speech.data_ptr<float>(), speech.size(0), false);
  offline.finish();
  auto ref = offline.take_ready();

  audio::FeatureStreamConfig cfg;
  cfg.mode = audio::FeatureStreamConfig::Mode::Sliding;
  cfg.context_samples = 29 * 16000;   // every window reaches back to sample 0
  cfg.lookahead_samples = 5 * 16000;  // and on to the end of the speech
  cfg.hop_frames = 7;                 // hops that do not divide the 100 frames
  audio::FeatureStream live(featurizer, cfg);
  for (int64_t off = 0; off < speech.size(0); off += 320)
    live.push(speech.data_ptr<float>() + off, 320, false);
  CHECK(live.take_ready().empty());  // the look-ahead reaches past the end
  live.finish();
  auto got = live.take_ready();
  REQUIRE(got.size() == ref.size());
  CHECK(live.encoder_runs() == 15);  // ceil(100 / 7)
  for (size_t t = 0; t < got.size(); ++t) {
    CHECK(got[t].index == int64_t(t));
    CHECK(test::max_abs_diff(got[t].chunk, ref[t].chunk) < 1e-5);
  }
}

TEST_CASE("sliding windows start at the speech run, not in the silence before it") {
  auto featurizer = std::make_shared<audio::WhisperFeaturizer>(
      nn::load_whisper_encoder(golden("whisper_tiny/tiny.pt")), nn::WhisperLayout::HF);
  auto speech = inputs().at("audio_16k").contiguous();
  audio::FeatureStreamConfig cfg;
  cfg.mode = audio::FeatureStreamConfig::Mode::Sliding;
  cfg.context_samples = 20 * 16000;
  cfg.lookahead_samples = 5 * 16000;  // sees the whole utterance: must equal offline exactly
  audio::FeatureStream live(featurizer, cfg);
  live.push(nullptr, 3 * 16000 + 640 * 3, true);  // 3.12 s of GAP: frames 0-77
  for (int64_t off = 0; off < speech.size(0); off += 320)
    live.push(speech.data_ptr<float>() + off, 320, false);
  live.finish();
  auto got = live.take_ready();
  REQUIRE(got.size() == 178);
  for (int t = 0; t < 78; ++t) CHECK(got[t].gap);
  const auto &ref = expected().at("whisper_chunks");
  const auto &index = expected().at("whisper_chunks_frame_index");
  for (int64_t i = 0; i < ref.size(0); ++i) {
    const auto &f = got[78 + index[i].item<int64_t>()];
    REQUIRE_FALSE(f.gap);
    CHECK(test::max_abs_diff(f.chunk, ref[i]) < 1e-4);
  }
}

TALKER_GOLDEN_MAIN
