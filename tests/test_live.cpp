// SPDX-License-Identifier: LGPL-2.1-or-later
// The live chain as a user runs it: live talkertts, tee, queues,
// talkinghead (whisperfeat ! musetalklipsync ! faceblend), sync=true sinks.
// Micro models (random weights, real architectures, tiny channels) run near
// real time here; the golden small models overload this CPU on purpose.
// Also: every property of every element, set and read back through GObject.
#include "tests/catch.h"

#include <gst/gst.h>

#include <opencv2/imgcodecs.hpp>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "gst/common/gst_ptr.h"
#include "tests/golden.h"
#include "tests/live_chain.h"

using namespace talker;
using gst::GstPtr;
using test::LiveChain;
using test::SinkRecord;

namespace {

constexpr GstClockTime kFrame = 40 * GST_MSECOND;

std::string micro(const std::string &rel) {
  return std::string(TALKER_BUILD_ROOT) + "/tools/micro/" + rel;
}

std::string micro_models() {
  return "whisper-model=" + micro("whisper.safetensors") + " unet=" + micro("unet.safetensors") +
         " unet-config=" + micro("musetalk.json") + " vae=" + micro("vae");
}

std::string golden_models() {
  return "whisper-model=" + test::golden("whisper_tiny/tiny.pt") +
         " unet=" + test::golden("unet_small/unet.pth") +
         " unet-config=" + test::golden("unet_small/config.json") +
         " vae=" + test::golden("vae_small");
}

const std::string kUnlimited = "max-size-buffers=0 max-size-bytes=0 max-size-time=0";
const std::string kTenSeconds = "max-size-buffers=0 max-size-bytes=0 max-size-time=10000000000";

// The running-time span of the speech so far: first sentence start to last end.
std::pair<GstClockTime, GstClockTime> speech_span(LiveChain &run) {
  GstClockTime start = GST_CLOCK_TIME_NONE, end = GST_CLOCK_TIME_NONE;
  for (const auto &s : run.sentences()) {
    if (s.state == "start" && !GST_CLOCK_TIME_IS_VALID(start)) start = s.running_time;
    if (s.state == "end") end = s.running_time;
  }
  return {start, end};
}

// A value other than the default, valid for the spec.
bool other_value(GParamSpec *p, GValue *v) {
  g_value_init(v, G_PARAM_SPEC_VALUE_TYPE(p));
  if (G_IS_PARAM_SPEC_BOOLEAN(p)) {
    g_value_set_boolean(v, !G_PARAM_SPEC_BOOLEAN(p)->default_value);
  } else if (G_IS_PARAM_SPEC_UINT(p)) {
    auto *u = G_PARAM_SPEC_UINT(p);
    g_value_set_uint(v, u->default_value < u->maximum ? u->default_value + 1 : u->minimum);
  } else if (G_IS_PARAM_SPEC_INT(p)) {
    auto *i = G_PARAM_SPEC_INT(p);
    g_value_set_int(v, i->default_value < i->maximum ? i->default_value + 1 : i->minimum);
  } else if (G_IS_PARAM_SPEC_DOUBLE(p)) {
    auto *d = G_PARAM_SPEC_DOUBLE(p);
    g_value_set_double(v, (d->minimum + d->maximum) / 2 == d->default_value
                              ? d->maximum
                              : (d->minimum + d->maximum) / 2);
  } else if (G_IS_PARAM_SPEC_ENUM(p)) {
    auto *e = G_PARAM_SPEC_ENUM(p);
    for (guint k = 0; k < e->enum_class->n_values; ++k)
      if (e->enum_class->values[k].value != e->default_value) {
        g_value_set_enum(v, e->enum_class->values[k].value);
        break;
      }
  } else if (G_IS_PARAM_SPEC_STRING(p)) {
    // Device names are checked when set; anything else is taken as given.
    g_value_set_string(v, std::string(p->name) == "device" ? "cuda:1" : "/some/value");
  } else if (GST_IS_PARAM_SPEC_FRACTION(p)) {
    gst_value_set_fraction(v, 30, 1);
  } else {
    return false;
  }
  return true;
}

}  // namespace

TEST_CASE("every property of every element reads back what was set") {
  for (const char *name :
       {"talkertts", "whisperfeat", "musetalklipsync", "faceblend", "talkinghead"}) {
    GstPtr<GstElement> e(gst_element_factory_make(name, nullptr));
    REQUIRE(e);
    guint n = 0;
    GParamSpec **specs = g_object_class_list_properties(G_OBJECT_GET_CLASS(e.get()), &n);
    int checked = 0;
    for (guint i = 0; i < n; ++i) {
      GParamSpec *p = specs[i];
      // GstObject's and the base classes' own properties are theirs to test.
      if (p->owner_type != G_OBJECT_TYPE(e.get())) continue;
      if (!(p->flags & G_PARAM_WRITABLE) || (p->flags & G_PARAM_CONSTRUCT_ONLY)) continue;
      // Text given to talkertts is spoken, not stored for reading back.
      if (std::string(name) == "talkertts" && std::string(p->name) == "text") continue;
      GValue want = G_VALUE_INIT, got = G_VALUE_INIT;
      INFO(name << "::" << p->name);
      REQUIRE(other_value(p, &want));
      g_object_set_property(G_OBJECT(e.get()), p->name, &want);
      g_value_init(&got, G_PARAM_SPEC_VALUE_TYPE(p));
      g_object_get_property(G_OBJECT(e.get()), p->name, &got);
      CHECK(g_param_values_cmp(p, &want, &got) == 0);
      // And the property beside it kept its default: no property writes another's field.
      for (guint j = 0; j < n; ++j) {
        GParamSpec *q = specs[j];
        if (q == p || q->owner_type != G_OBJECT_TYPE(e.get()) || !(q->flags & G_PARAM_READABLE) ||
            G_IS_PARAM_SPEC_BOXED(q) || g_str_equal(q->name, "text"))
          continue;
        if (std::string(name) == "talkinghead" &&
            (g_str_equal(q->name, "device") || g_str_equal(q->name, "avatar")))
          continue;
        GValue other = G_VALUE_INIT;
        g_value_init(&other, G_PARAM_SPEC_VALUE_TYPE(q));
        g_object_get_property(G_OBJECT(e.get()), q->name, &other);
        INFO("then " << q->name);
        CHECK(g_param_value_defaults(q, &other));
        g_value_unset(&other);
      }
      g_param_value_set_default(p, &want);
      g_object_set_property(G_OBJECT(e.get()), p->name, &want);
      g_value_unset(&want);
      g_value_unset(&got);
      ++checked;
    }
    g_free(specs);
    CHECK(checked > 0);
  }
}

TEST_CASE("lips move during speech for every whisperfeat mode and padding") {
  struct Case {
    const char *mode;
    bool padding;
  };
  for (Case c : {Case{"sliding", true}, Case{"sliding", false}, Case{"utterance", true},
                 Case{"utterance", false}}) {
    INFO("mode=" << c.mode << " whisper-padding=" << c.padding);
    // Utterance mode holds up to 30 s: its queues must be able to hold that.
    // A generous encoder budget: this test is about lips, not about how much
    // this CPU can do (the overload test is); padded runs cost 0.2-0.4 s here.
    LiveChain run(micro_models() + " encoder-latency-ms=1200 mode=" + c.mode +
                      " whisper-padding=" + (c.padding ? "true" : "false"),
                  micro("avatar"), std::string(c.mode) == "utterance" ? kUnlimited : kTenSeconds);
    run.start();
    const guint64 id = run.say("Hello there, how are you today? I am fine.");
    REQUIRE(run.wait_sentence("end", id + 2, 20));
    run.pump(2.0);  // the last frames of speech through the chain
    auto [start, end] = speech_span(run);
    GstPtr<GstStructure> stats = run.stats();
    INFO(gst::GCharPtr(gst_structure_to_string(stats.get())).get());
    REQUIRE(GST_CLOCK_TIME_IS_VALID(end));
    // Speech frames show a generated face: this frame's, or (when the CPU is
    // too busy to make a frame's deadline) the last one, held.
    size_t speech_frames = 0, showing = 0, generated = 0;
    for (const auto &r : run.head_output()) {
      if (r.pts < start || r.pts + kFrame > end) continue;
      ++speech_frames;
      if (r.speaking && r.face_diff > 1.0) ++showing;
      if (r.speaking && r.generated && r.face_diff > 1.0) ++generated;
    }
    INFO(showing << " of " << speech_frames << " speech frames show a face, " << generated
                 << " generated for them");
    CHECK(speech_frames > 40);
    CHECK(showing >= speech_frames * 9 / 10);
    CHECK(generated >= speech_frames / 2);
    // Before the speech the avatar is itself.
    for (const auto &r : run.head_output())
      if (r.pts + kFrame < start) CHECK(r.face_diff == 0.0);
  }
}

TEST_CASE("interrupt: silence within one buffer, the idle face within one batch and transition") {
  const GstClockTime transition = 200 * GST_MSECOND, batch = 4 * kFrame;
  LiveChain run(micro_models() + " batch-size=4 transition-ms=200", micro("avatar"));
  run.start();
  const guint64 id =
      run.say("This sentence is long enough to be cut off in the middle of what it says.");
  REQUIRE(run.wait_sentence("start", id, 10));
  run.pump(1.5);
  run.interrupt();
  REQUIRE(run.wait_sentence("end", id, 5));
  GstClockTime cut = GST_CLOCK_TIME_NONE;
  for (const auto &s : run.sentences())
    if (s.state == "end") {
      CHECK(s.reason == "interrupted");
      cut = s.running_time;
    }
  // What was in flight reaches the sinks, and 1.6 s of what follows the cut
  // (the checks below want more than 1 s of silence and of the idle face).
  run.pump_until_rendered(cut, 1600 * GST_MSECOND);
  const GstClockTime latency = run.latency();
  INFO("cut at " << cut / 1e6 << " ms, latency " << latency / 1e6 << " ms");

  // Audio: speech up to the cut, nothing but silence from the next buffer on.
  size_t loud_before = 0, after = 0;
  for (const auto &r : run.audio()) {
    if (r.pts + 20 * GST_MSECOND <= cut && r.rms > 300) ++loud_before;
    if (r.pts >= cut + 20 * GST_MSECOND) {
      ++after;
      CHECK(r.gap);
      CHECK(r.rms == 0.0);
    }
  }
  CHECK(loud_before > 20);
  CHECK(after > 50);
  // Video: generated faces before the cut, the avatar's own frames once one
  // batch and the transition have passed.
  size_t speaking_before = 0, idle_after = 0;
  for (const auto &r : run.video()) {
    if (r.pts + kFrame <= cut && r.generated) ++speaking_before;
    if (r.pts >= cut + batch + transition + kFrame) {
      ++idle_after;
      CHECK_FALSE(r.speaking);
      CHECK(r.face_diff == 0.0);
    }
  }
  CHECK(speaking_before > 10);
  CHECK(idle_after > 20);
}

// The micro avatar with action clips: a folder of links to its files plus
// actions/<name>/frames/ of plain frames (`value` grey, `white` at index
// `flash`), removed when it goes.
class ClipAvatar {
 public:
  ClipAvatar() {
    char tmpl[] = "/tmp/talker-clip-avatar-XXXXXX";
    dir_ = mkdtemp(tmpl);
    for (const char *f : {"avatar.json", "boxes.json", "frames", "masks", "latents.safetensors"})
      REQUIRE(symlink((micro("avatar/") + f).c_str(), (dir_ + "/" + f).c_str()) == 0);
  }
  ~ClipAvatar() { std::filesystem::remove_all(dir_); }
  void add_clip(const std::string &name, int frames, int value, int flash = -1) {
    const auto avatar = avatar::load_avatar_frames(micro("avatar"));
    const std::string folder = dir_ + "/actions/" + name + "/frames";
    std::filesystem::create_directories(folder);
    for (int i = 0; i < frames; ++i) {
      cv::Mat frame(avatar->height, avatar->width, CV_8UC3,
                    cv::Scalar::all(i == flash ? 255 : value));
      char file[32];
      std::snprintf(file, sizeof file, "/%06d.png", i);
      REQUIRE(cv::imwrite(folder + file, frame));
    }
  }
  const std::string &path() const { return dir_; }

 private:
  std::string dir_;
};

TEST_CASE("action clip: its frames and its audio reach the sinks together, then idle") {
  ClipAvatar avatar;
  avatar.add_clip("wave", 25, 30, 12);  // 1 s, a white frame at 480 ms
  LiveChain run(micro_models() + " batch-size=4 transition-ms=200", avatar.path());
  run.start();
  run.pump(1.0);
  // 1 s of audio: silence, and a 1 kHz beep from 480 ms for 80 ms (the white frame's time).
  std::vector<int16_t> audio(16000, 0);
  for (int i = 7680; i < 7680 + 1280; ++i) audio[i] = int16_t(12000 * std::sin(i * 2 * M_PI / 16));
  const guint64 id = run.say_clip(audio, "wave", GST_SECOND);
  REQUIRE(id > 0);
  REQUIRE(run.wait_sentence("end", id, 10));
  run.pump(3.0);  // the video latency and the fade back
  GstClockTime start = GST_CLOCK_TIME_NONE;
  for (const auto &e : run.sentences())
    if (e.state == "start" && e.id == id) start = e.running_time;
  REQUIRE(GST_CLOCK_TIME_IS_VALID(start));

  const auto video = run.video();
  const auto audio_out = run.audio();
  const SinkRecord *flash = nullptr, *beep = nullptr;
  for (const auto &r : video)
    if (!flash && r.mean > 200) flash = &r;
  for (const auto &r : audio_out)
    if (!beep && r.rms > 3000) beep = &r;
  REQUIRE(flash);
  REQUIRE(beep);
  const double offset_ms = GST_CLOCK_DIFF(beep->arrived, flash->arrived) / 1e6;
  INFO("clip from " << start / 1e6 << " ms; white frame PTS " << flash->pts / 1e6 << " ms, beep "
                    << beep->pts / 1e6 << " ms; at the sinks the frame came " << offset_ms
                    << " ms after the beep; latency " << run.latency() / 1e6 << " ms");
  std::printf(
      "action clip: white frame %.0f ms after the clip's start, beep %.0f ms; "
      "at the sinks %+.1f ms apart\n",
      (flash->pts - start) / 1e6, (beep->pts - start) / 1e6, offset_ms);
  // The clip's frame 12 covers [start + 480 ms, + 520 ms): the first video
  // frame there is within one frame of the beep's first buffer, and both
  // sinks render on the same clock.
  CHECK(flash->pts >= beep->pts);
  CHECK(flash->pts < beep->pts + kFrame);
  CHECK(std::fabs(offset_ms) <= 45);
  // Every frame of the clip's second is the clip (grey or the flash), none before it.
  size_t clip_frames = 0;
  for (const auto &r : video) {
    if (r.pts + kFrame <= start) CHECK(r.mean != Approx(30).margin(2));
    if (r.pts >= start && r.pts + kFrame <= start + GST_SECOND) {
      ++clip_frames;
      CHECK((r.mean == Approx(30).margin(1) || r.mean > 250));
    }
    // Then the avatar, itself again after the cross-fade.
    if (r.pts >= start + GST_SECOND + 200 * GST_MSECOND + kFrame) {
      CHECK(r.face_diff == 0.0);
      CHECK(r.mean != Approx(30).margin(2));
    }
  }
  CHECK(clip_frames >= 24);
}

TEST_CASE("action clip: an idle clip loops while silent, speech over the avatar, then idle again") {
  ClipAvatar avatar;
  avatar.add_clip("idle", 10, 200);
  LiveChain run(micro_models() + " batch-size=4 transition-ms=200 encoder-latency-ms=1200",
                avatar.path());
  run.start();
  run.pump(1.0);
  const guint64 id = run.say("Hello there, how are you today?");
  REQUIRE(run.wait_sentence("end", id + 1, 15));
  run.pump(4.5);  // the latency, the fade back, and a second of idle clip
  auto sentences = run.sentences();
  GstClockTime speech_start = GST_CLOCK_TIME_NONE, speech_end = 0;
  for (const auto &e : sentences) {
    if (e.state == "start" && !GST_CLOCK_TIME_IS_VALID(speech_start)) speech_start = e.running_time;
    if (e.state == "end") speech_end = std::max(speech_end, e.running_time);
  }
  size_t idle_before = 0, avatar_during = 0, idle_after = 0, during = 0;
  for (const auto &r : run.video()) {
    if (r.pts + kFrame <= speech_start && r.mean == Approx(200).margin(1)) ++idle_before;
    if (r.pts >= speech_start + 400 * GST_MSECOND && r.pts + 400 * GST_MSECOND <= speech_end) {
      ++during;
      if (r.mean < 190) ++avatar_during;  // the speaking avatar, not the grey loop
    }
    if (r.pts >= speech_end + 600 * GST_MSECOND && r.mean == Approx(200).margin(1)) ++idle_after;
  }
  INFO(idle_before << " idle-clip frames before, " << avatar_during << "/" << during
                   << " avatar frames while speaking, " << idle_after << " idle-clip after");
  CHECK(idle_before > 20);
  CHECK(during > 10);
  CHECK(avatar_during == during);
  CHECK(idle_after > 20);
}

TEST_CASE("overload: 60 s live with the golden small models, no frame late, skips reported") {
  // About 0.4 s per generated frame on this CPU: ten times too slow for 25 fps.
  LiveChain run(golden_models() + " batch-size=2", micro("avatar"));
  run.start();
  const GstClockTime latency = run.latency();
  const char *lines[] = {"The quick brown fox jumps over the lazy dog.",
                         "Hello there, I am a talking head running on a small computer.",
                         "Every frame leaves in time for its sound, whatever the budget."};
  for (int i = 0; i < 8; ++i) {
    run.say(lines[i % 3]);
    run.pump(7.5);
  }
  CHECK(run.current_latency() == latency);  // constant over the run
  const GstClockTime ran = run.running_time();

  auto video = run.video();
  // Every frame up to what the sink has rendered by now: the run less one
  // latency (whatever this machine's load made it), less a second of
  // start-up slack (the pipeline reaching PLAYING, the first frame's
  // preroll).
  const double expected = (double(ran) - double(latency)) / kFrame;
  INFO("ran " << ran / 1e9 << " s, latency " << latency / 1e6 << " ms: " << expected
              << " frames rendered by now");
  REQUIRE(expected > 1000);  // the latency still left most of the run
  REQUIRE(double(video.size()) > expected - 25);
  GstClockTimeDiff worst = G_MININT64;
  size_t late = 0, generated = 0, held = 0, speaking = 0;
  for (const auto &r : video) {
    worst = std::max(worst, run.lateness(r));
    if (run.lateness(r) > GstClockTimeDiff(kFrame)) ++late;
    speaking += r.speaking;
    generated += r.generated;
    held += r.speaking && !r.generated && r.face_diff > 0;
  }
  GstClockTimeDiff worst_audio = G_MININT64;
  for (const auto &r : run.audio()) worst_audio = std::max(worst_audio, run.lateness(r));
  auto stats = run.stats();
  guint64 st_generated = 0, st_skipped = 0;
  gst_structure_get_uint64(stats.get(), "frames-generated", &st_generated);
  gst_structure_get_uint64(stats.get(), "frames-skipped", &st_skipped);
  std::printf(
      "overload: latency %.0f ms; %zu video frames, %zu speaking, %zu generated, %zu held; worst "
      "video lateness %.1f ms, audio %.1f ms; %" G_GUINT64_FORMAT " QoS messages; stats %s\n",
      latency / 1e6, video.size(), speaking, generated, held, worst / 1e6, worst_audio / 1e6,
      run.qos_messages(), gst_structure_to_string(stats.get()));
  CHECK(late == 0);
  // Audio keeps time too (two 20 ms buffers of slack on a CPU this loaded).
  CHECK(worst_audio <= GstClockTimeDiff(40 * GST_MSECOND));
  CHECK(speaking > 400);
  CHECK(generated > 0);
  CHECK(generated < speaking);  // this CPU cannot generate them all
  CHECK(st_skipped > 0);
  CHECK(run.qos_messages() > 0);
  // The counters agree with what reached the sink; frames of the last latency may still be in
  // the queue in front of it.
  CHECK(st_generated >= generated);
  CHECK(st_generated <= generated + latency / kFrame + 2);
}

TALKER_GOLDEN_GST_MAIN
