// SPDX-License-Identifier: LGPL-2.1-or-later
// whisperfeat in GstHarness: the golden chunks through the element, framing,
// timestamps, GAP, flush, latency, and errors on the bus.
#include "tests/catch.h"
#include "tests/bus_error.h"

#include <gst/check/gstharness.h>
#include <gst/gst.h>

#include <cmath>

#include "gst/common/gst_ptr.h"
#include "lib/audio/whisper_features.h"
#include "tests/golden.h"

using namespace talker;
using gst::GstPtr;
using test::golden;

namespace {

constexpr const char *kF32Caps =
    "audio/x-raw,format=F32LE,rate=16000,channels=1,layout=interleaved";
constexpr const char *kS16Caps =
    "audio/x-raw,format=S16LE,rate=16000,channels=1,layout=interleaved";
constexpr GstClockTime kBufferTime = 20 * GST_MSECOND;

const nn::StateDict &expected() {
  static auto t = test::golden_tensors("whisper_tiny/expected.safetensors");
  return t;
}
torch::Tensor golden_audio() {
  static auto a =
      test::golden_tensors("whisper_tiny/inputs.safetensors").at("audio_16k").contiguous();
  return a;
}

struct Harness {
  GstHarness *h;
  explicit Harness(const std::string &launch, const char *caps = kF32Caps) {
    h = gst_harness_new_parse(launch.c_str());
    gst_harness_set_src_caps_str(h, caps);
  }
  ~Harness() { gst_harness_teardown(h); }
  GstFlowReturn push_samples(const void *data, gsize bytes, GstClockTime pts, bool gap = false) {
    GstBuffer *buf = gst_buffer_new_memdup(data, bytes);
    GST_BUFFER_PTS(buf) = pts;
    GST_BUFFER_DURATION(buf) = kBufferTime;
    if (gap) GST_BUFFER_FLAG_SET(buf, GST_BUFFER_FLAG_GAP);
    return gst_harness_push(h, buf);
  }
  // Pushes `audio` in 20 ms F32 buffers starting at `pts`; returns the next pts.
  GstClockTime push_audio(const torch::Tensor &audio, GstClockTime pts) {
    const float *p = audio.data_ptr<float>();
    for (int64_t off = 0; off < audio.size(0); off += 320, pts += kBufferTime)
      REQUIRE(push_samples(p + off, 320 * sizeof(float), pts) == GST_FLOW_OK);
    return pts;
  }
  GstClockTime push_gap(int buffers, GstClockTime pts) {
    std::vector<float> silence(320, 0.0f);
    for (int i = 0; i < buffers; ++i, pts += kBufferTime)
      REQUIRE(push_samples(silence.data(), silence.size() * sizeof(float), pts, true) ==
              GST_FLOW_OK);
    return pts;
  }
  // The encoder runs on a thread of its own: these wait for it.
  // Everything pushed so far is processed (a serialized DRAIN query).
  void settle() {
    GstPtr<GstQuery> q(gst_query_new_drain());
    gst_pad_peer_query(h->srcpad, q.get());
  }
  guint received() {
    settle();
    return gst_harness_buffers_received(h);
  }
  // EOS in, and out after the last frame.
  void eos() {
    REQUIRE(gst_harness_push_event(h, gst_event_new_eos()));
    for (;;) {
      GstPtr<GstEvent> ev(gst_harness_pull_event(h));
      REQUIRE(ev);
      if (GST_EVENT_TYPE(ev.get()) == GST_EVENT_EOS) break;
    }
  }
  std::vector<GstPtr<GstBuffer>> pull_all() {
    settle();
    std::vector<GstPtr<GstBuffer>> out;
    while (GstBuffer *b = gst_harness_try_pull(h)) out.emplace_back(b);
    return out;
  }
};

torch::Tensor features_of(GstBuffer *buf) {
  GstMapInfo map;
  REQUIRE(gst_buffer_map(buf, &map, GST_MAP_READ));
  REQUIRE(map.size == 50 * 384 * sizeof(float));
  auto t = torch::from_blob(map.data, {50, 384}, torch::kFloat).clone();
  gst_buffer_unmap(buf, &map);
  return t;
}

std::string model_arg() {
  return "model=" + golden("whisper_tiny/tiny.pt");
}

// Checks the stored golden chunks against output frames first_frame + t.
void check_golden_chunks(const std::vector<GstPtr<GstBuffer>> &frames, size_t first_frame) {
  const auto &ref = expected().at("whisper_chunks");
  const auto &index = expected().at("whisper_chunks_frame_index");
  double worst = 0;
  for (int64_t i = 0; i < ref.size(0); ++i) {
    size_t t = first_frame + index[i].item<int64_t>();
    REQUIRE(t < frames.size());
    CHECK_FALSE(GST_BUFFER_FLAG_IS_SET(frames[t].get(), GST_BUFFER_FLAG_GAP));
    worst = std::max(worst, test::max_abs_diff(features_of(frames[t].get()), ref[i]));
  }
  INFO("max abs diff " << worst);
  CHECK(worst < 1e-4);
}

}  // namespace

TEST_CASE("utterance mode reproduces MuseTalk's chunks through the element") {
  Harness h("whisperfeat mode=utterance " + model_arg());
  h.push_audio(golden_audio(), 0);
  CHECK(h.received() == 0);  // waits for the end of the utterance
  h.eos();
  auto frames = h.pull_all();
  REQUIRE(frames.size() == 100);
  for (size_t t = 0; t < frames.size(); ++t) {
    CHECK(GST_BUFFER_PTS(frames[t].get()) == t * 40 * GST_MSECOND);
    CHECK(GST_BUFFER_DURATION(frames[t].get()) == 40 * GST_MSECOND);
  }
  check_golden_chunks(frames, 0);

  GstPtr<GstCaps> caps(gst_pad_get_current_caps(h.h->sinkpad));
  REQUIRE(caps);
  GstStructure *s = gst_caps_get_structure(caps.get(), 0);
  int layers = 0, width = 0, num = 0, den = 0;
  CHECK(gst_structure_has_name(s, "application/x-talker-features"));
  CHECK(gst_structure_get_int(s, "layers", &layers));
  CHECK(gst_structure_get_int(s, "width", &width));
  CHECK(gst_structure_get_fraction(s, "framerate", &num, &den));
  CHECK(layers == 5);
  CHECK(width == 384);
  CHECK((num == 25 && den == 1));
  CHECK(std::string(gst_structure_get_string(s, "layout")) == "hf");
}

TEST_CASE("S16LE input is scaled like whisper's float audio") {
  auto audio = golden_audio();
  auto s16 = (audio * 32768.0).round().clamp(-32768, 32767).to(torch::kShort).contiguous();
  Harness h("whisperfeat mode=utterance " + model_arg(), kS16Caps);
  const int16_t *p = s16.data_ptr<int16_t>();
  GstClockTime pts = 0;
  for (int64_t off = 0; off < s16.size(0); off += 320, pts += kBufferTime)
    REQUIRE(h.push_samples(p + off, 320 * sizeof(int16_t), pts) == GST_FLOW_OK);
  h.eos();
  auto frames = h.pull_all();
  REQUIRE(frames.size() == 100);

  // The library on the same quantised audio gives the same features.
  auto featurizer = std::make_shared<audio::WhisperFeaturizer>(
      nn::load_whisper_encoder(golden("whisper_tiny/tiny.pt")), nn::WhisperLayout::HF);
  auto as_float = (s16.to(torch::kFloat) / 32768.0).contiguous();
  auto rows = featurizer->encode(as_float.data_ptr<float>(), as_float.size(0), true);
  for (int64_t t : {0, 37, 99})
    CHECK(test::max_abs_diff(features_of(frames[t].get()), audio::frame_chunk(rows, 200, {}, t)) <
          1e-6);
}

TEST_CASE("GAP audio gives GAP frames, speech keeps the frame grid") {
  Harness h("whisperfeat mode=utterance " + model_arg());
  GstClockTime pts = h.push_gap(10, 0);  // 200 ms of silence: frames 0-4
  // Frames before the speech come out as soon as they are known to be silent.
  CHECK(h.received() == 5);
  pts = h.push_audio(golden_audio(), pts);
  CHECK(h.received() == 5);  // the utterance is open
  h.push_gap(10, pts);
  // Silence closes the utterance: everything is out before EOS.
  CHECK(h.received() == 110);
  h.eos();
  auto frames = h.pull_all();
  REQUIRE(frames.size() == 110);
  for (size_t t = 0; t < frames.size(); ++t) {
    bool gap = GST_BUFFER_FLAG_IS_SET(frames[t].get(), GST_BUFFER_FLAG_GAP);
    CHECK(gap == (t < 5 || t >= 105));
    CHECK(GST_BUFFER_PTS(frames[t].get()) == t * 40 * GST_MSECOND);
  }
  check_golden_chunks(frames, 5);
  CHECK(test::max_abs_diff(features_of(frames[0].get()), torch::zeros({50, 384})) == 0);
}

TEST_CASE("gap-threshold-db turns quiet, unflagged audio into GAP frames") {
  Harness h("whisperfeat mode=utterance gap-threshold-db=-60 " + model_arg());
  std::vector<float> quiet(320, 1e-5f);  // -100 dBFS, not flagged GAP
  GstClockTime pts = 0;
  for (int i = 0; i < 10; ++i, pts += kBufferTime)
    REQUIRE(h.push_samples(quiet.data(), quiet.size() * sizeof(float), pts) == GST_FLOW_OK);
  CHECK(h.received() == 5);
  pts = h.push_audio(golden_audio(), pts);
  for (int i = 0; i < 10; ++i, pts += kBufferTime)
    REQUIRE(h.push_samples(quiet.data(), quiet.size() * sizeof(float), pts) == GST_FLOW_OK);
  h.eos();
  auto frames = h.pull_all();
  REQUIRE(frames.size() == 110);
  for (size_t t : {0, 4, 105, 109})
    CHECK(GST_BUFFER_FLAG_IS_SET(frames[t].get(), GST_BUFFER_FLAG_GAP));
  std::string pattern;
  for (const auto &f : frames)
    pattern += GST_BUFFER_FLAG_IS_SET(f.get(), GST_BUFFER_FLAG_GAP) ? '.' : '#';
  INFO(pattern);
  // Speech in between, apart from the speaker's own near-silent stretches.
  size_t speech = std::count(pattern.begin() + 5, pattern.begin() + 105, '#');
  CHECK(speech > 80);
  for (size_t t : {20, 50, 90}) CHECK(pattern[t] == '#');
  CHECK(pattern.substr(74, 8) == "........");  // the pause between the two sentences
}

TEST_CASE("a timestamp jump drains and restarts the frame grid") {
  Harness h("whisperfeat mode=utterance " + model_arg());
  auto audio = golden_audio();
  h.push_audio(audio.slice(0, 0, 16000).contiguous(), 0);
  h.push_audio(audio.slice(0, 16000, 32000).contiguous(), 5 * GST_SECOND);
  h.eos();
  auto frames = h.pull_all();
  REQUIRE(frames.size() == 50);
  CHECK(GST_BUFFER_PTS(frames[24].get()) == 960 * GST_MSECOND);
  CHECK(GST_BUFFER_PTS(frames[25].get()) == 5 * GST_SECOND);
  CHECK(GST_BUFFER_FLAG_IS_SET(frames[25].get(), GST_BUFFER_FLAG_DISCONT));
  CHECK_FALSE(GST_BUFFER_FLAG_IS_SET(frames[24].get(), GST_BUFFER_FLAG_DISCONT));
  CHECK(GST_BUFFER_PTS(frames[49].get()) == 5 * GST_SECOND + 960 * GST_MSECOND);
}

TEST_CASE("flush drops queued audio") {
  Harness h("whisperfeat mode=utterance " + model_arg());
  auto audio = golden_audio();
  h.push_audio(audio.slice(0, 0, 32000).contiguous(), 0);
  REQUIRE(gst_harness_push_event(h.h, gst_event_new_flush_start()));
  REQUIRE(gst_harness_push_event(h.h, gst_event_new_flush_stop(TRUE)));
  GstSegment seg;
  gst_segment_init(&seg, GST_FORMAT_TIME);
  REQUIRE(gst_harness_push_event(h.h, gst_event_new_segment(&seg)));
  h.push_audio(audio, 10 * GST_SECOND);
  h.eos();
  auto frames = h.pull_all();
  REQUIRE(frames.size() == 100);
  CHECK(GST_BUFFER_PTS(frames[0].get()) == 10 * GST_SECOND);
  check_golden_chunks(frames, 0);
}

TEST_CASE("sliding mode: bounded latency, deviation from offline features") {
  // Defaults: hop 5, look-ahead 200 ms, context 10 s.
  // qos off: this harness feeds audio far faster than real time against a clock that does not
  // move, and this test is about features, not time.
  Harness h("whisperfeat mode=sliding encoder-latency-ms=100 qos=false " + model_arg());
  gst_harness_set_upstream_latency(h.h, 20 * GST_MSECOND);
  GstClockTime latency = gst_harness_query_latency(h.h);
  // 5 frames of 40 ms, the chunk's 4 rows after the last frame (80 ms), 200 ms look-ahead, and
  // the encoder's time.
  CHECK(latency == 20 * GST_MSECOND + 480 * GST_MSECOND + 100 * GST_MSECOND);

  auto audio = golden_audio();
  const float *p = audio.data_ptr<float>();
  size_t pulled = 0;
  std::vector<GstPtr<GstBuffer>> frames;
  for (int64_t off = 0; off < audio.size(0); off += 320) {
    GstClockTime pts = off / 16 * GST_MSECOND;
    REQUIRE(h.push_samples(p + off, 320 * sizeof(float), pts) == GST_FLOW_OK);
    for (auto &f : h.pull_all()) {
      // No frame comes out later than the latency promises.
      CHECK(GST_BUFFER_PTS(f.get()) + 480 * GST_MSECOND >= pts + kBufferTime);
      frames.push_back(std::move(f));
    }
    pulled = frames.size();
  }
  CHECK(pulled >= 85);  // all but the last ~480 ms are out before EOS
  h.eos();
  for (auto &f : h.pull_all()) frames.push_back(std::move(f));
  REQUIRE(frames.size() == 100);

  const auto &ref = expected().at("whisper_chunks");
  const auto &index = expected().at("whisper_chunks_frame_index");
  double worst = 0, worst_cos = 1;
  for (int64_t i = 0; i < ref.size(0); ++i) {
    auto ours = features_of(frames[index[i].item<int64_t>()].get()).flatten();
    auto theirs = ref[i].flatten();
    worst = std::max(worst, test::max_abs_diff(ours, theirs));
    worst_cos = std::min(worst_cos, torch::cosine_similarity(ours, theirs, 0).item<double>());
  }
  std::printf(
      "sliding (defaults: context 10 s, look-ahead 200 ms, hop 5, 30 s padding) vs offline: "
      "max abs %.4f, min cosine %.5f\n",
      worst, worst_cos);
  // Measured 0.94 / 0.9967 with these random weights (docs/whisperfeat.md has
  // the trade-off table): a regression in windowing shows up here.
  CHECK(worst < 1.5);
  CHECK(worst_cos > 0.99);
}

TEST_CASE("bad input gives errors on the bus, not crashes") {
  SECTION("wrong sample rate is refused at negotiation") {
    Harness h("whisperfeat " + model_arg(),
              "audio/x-raw,format=F32LE,rate=44100,channels=1,layout=interleaved");
    std::vector<float> samples(882, 0.1f);
    CHECK(h.push_samples(samples.data(), samples.size() * sizeof(float), 0) ==
          GST_FLOW_NOT_NEGOTIATED);
  }
  SECTION("a model that fails to load posts an error naming the file") {
    for (const std::string &model :
         {std::string("/nonexistent/tiny.pt"), golden("whisper_tiny/config.json"),
          golden("unet_small/unet.pth"), std::string("")}) {
      GstPtr<GstElement> pipeline(gst_pipeline_new(nullptr));
      GstElement *feat = gst_element_factory_make("whisperfeat", nullptr);
      REQUIRE(feat);
      g_object_set(feat, "model", model.c_str(), nullptr);
      gst_bin_add(GST_BIN(pipeline.get()), feat);
      CHECK(gst_element_set_state(pipeline.get(), GST_STATE_READY) == GST_STATE_CHANGE_FAILURE);
      std::string text = test::first_error(pipeline.get());
      INFO(text);
      REQUIRE_FALSE(text.empty());
      CHECK(text.find(model.empty() ? "model" : model) != std::string::npos);
      gst_element_set_state(pipeline.get(), GST_STATE_NULL);
    }
  }
}

TALKER_GOLDEN_GST_MAIN
