// SPDX-License-Identifier: LGPL-2.1-or-later
// talkertts with espeak-ng in real pipelines: rendering, a 30 s live run with
// several say calls, interrupt, the text pad, sentence messages and metas
// against the audio, and settings errors.
#include "tests/catch.h"

#include <thread>

#include "tests/talkertts_run.h"

using namespace talker;
using test::RecordedBuffer;
using test::SentenceMessage;
using test::TalkerRun;

namespace {

constexpr GstClockTime kBuffer = 20 * GST_MSECOND;

// Buffers are 20 ms, timestamps and sample offsets run on without a gap.
void check_continuous(const std::vector<RecordedBuffer> &buffers) {
  REQUIRE(!buffers.empty());
  CHECK(buffers.front().discont);
  for (size_t i = 0; i < buffers.size(); ++i) {
    const auto &b = buffers[i];
    REQUIRE(b.samples.size() == 320);
    REQUIRE(b.duration == kBuffer);
    REQUIRE(b.offset_end == b.offset + 320);
    if (i == 0) continue;
    REQUIRE(b.pts == buffers[i - 1].pts + buffers[i - 1].duration);
    REQUIRE(b.offset == buffers[i - 1].offset_end);
    REQUIRE_FALSE(b.discont);
  }
}

struct Span {
  guint64 id;
  std::string text, end_reason;
  GstClockTime start = GST_CLOCK_TIME_NONE, end = GST_CLOCK_TIME_NONE;
};

// Sentence spans from the start/end messages, checked against each other.
std::vector<Span> spans_from_messages(const std::vector<SentenceMessage> &messages) {
  std::vector<Span> spans;
  for (const auto &m : messages) {
    if (m.state == "start") {
      spans.push_back({m.id, m.text, "", m.running_time});
    } else {
      REQUIRE(m.state == "end");
      REQUIRE(!spans.empty());
      REQUIRE(spans.back().id == m.id);  // sentences never overlap
      REQUIRE(spans.back().text == m.text);
      spans.back().end = m.running_time;
      spans.back().end_reason = m.reason;
    }
  }
  return spans;
}

// The metas mark the same instants as the messages; inside a sentence there
// is sound, outside it GAP buffers of zeros.
void check_audio_matches_spans(const std::vector<RecordedBuffer> &buffers,
                               const std::vector<Span> &spans) {
  size_t next = 0;
  bool inside = false;
  double sentence_energy = 0;
  size_t sentence_buffers = 0;
  for (const auto &b : buffers) {
    for (const auto &mark : b.marks) {
      REQUIRE(next <= spans.size());
      if (mark.state == TALKER_SENTENCE_START) {
        REQUIRE(next < spans.size());
        CHECK(mark.id == spans[next].id);
        CHECK(mark.text == spans[next].text);
        CHECK(b.pts + mark.offset == spans[next].start);
        inside = true;
        sentence_energy = 0;
        sentence_buffers = 0;
      } else {
        REQUIRE(inside);
        CHECK(mark.id == spans[next].id);
        CHECK(b.pts + mark.offset == spans[next].end);
        CHECK(talker_sentence_end_reason_name(mark.reason) == spans[next].end_reason);
        inside = false;
        if (spans[next].end_reason == "finished") {
          INFO("sentence " << spans[next].text);
          CHECK(sentence_energy / double(sentence_buffers) > 800);  // RMS of speech
        }
        ++next;
      }
    }
    const bool ended_here = !b.marks.empty() && b.marks.back().state == TALKER_SENTENCE_END;
    if (inside || (ended_here && b.marks.back().offset > 0)) {
      CHECK_FALSE(b.gap);
      sentence_energy += test::rms(b.samples.data(), b.samples.size());
      ++sentence_buffers;
    } else if (b.marks.empty()) {
      REQUIRE(b.gap);
      REQUIRE(test::rms(b.samples.data(), b.samples.size()) == 0);
    }
  }
  CHECK(next == spans.size());
}

}  // namespace

TEST_CASE("rendering speaks the text, marks sentences and ends with EOS", "[talkertts]") {
  TalkerRun run(
      "talkertts name=tts is-live=false text=\"Good morning to everyone here. Today we talk about "
      "rivers, and why they bend. Then we stop.\" ! fakesink sync=false");
  run.run_to_eos();
  REQUIRE(run.errors.empty());
  REQUIRE(run.eos);
  const auto buffers = run.take_buffers();
  check_continuous(buffers);
  CHECK(buffers.front().pts == 0);
  const auto spans = spans_from_messages(run.messages);
  // Cut at each mark once a chunk has 10 characters (min-chunk-chars).
  REQUIRE(spans.size() == 4);
  CHECK(spans[0].text == "Good morning to everyone here.");
  CHECK(spans[1].text == "Today we talk about rivers,");
  CHECK(spans[2].text == "and why they bend.");
  CHECK(spans[3].text == "Then we stop.");
  // Rendering: sentences back to back, nothing between them.
  CHECK(spans[0].start == 0);
  for (size_t i = 1; i < spans.size(); ++i) CHECK(spans[i].start - spans[i - 1].end < kBuffer);
  check_audio_matches_spans(buffers, spans);
  // Sentence lengths are the engine's: compare with espeak-ng's own speech.
  const auto reference = test::reference_speech_16k("Today we talk about rivers,");
  const double expected_s = double(reference.size()) / 16000;
  CHECK(double(spans[1].end - spans[1].start) / GST_SECOND == Approx(expected_s).margin(0.35));
}

TEST_CASE("say-audio: ready-made samples come out unchanged, as one sentence with its label",
          "[talkertts]") {
  TalkerRun run("talkertts name=tts is-live=false ! fakesink sync=false");
  std::vector<int16_t> upload(8000 + 77);
  for (size_t i = 0; i < upload.size(); ++i) upload[i] = int16_t((i * 37) % 20000 + 1);
  GBytes *bytes = g_bytes_new(upload.data(), upload.size() * sizeof(int16_t));
  guint64 id = 0;
  g_signal_emit_by_name(run.tts(), "say-audio", bytes, "clip.wav", &id);
  g_bytes_unref(bytes);
  CHECK(id == 1);
  run.say("And then words.");
  run.run_to_eos();
  REQUIRE(run.errors.empty());
  REQUIRE(run.eos);
  const auto buffers = run.take_buffers();
  check_continuous(buffers);
  const auto spans = spans_from_messages(run.messages);
  REQUIRE(spans.size() == 2);
  CHECK(spans[0].text == "clip.wav");
  CHECK(spans[0].start == 0);
  CHECK(spans[0].end == gst_util_uint64_scale_int(upload.size(), GST_SECOND, 16000));
  std::vector<int16_t> out;
  for (const auto &b : buffers) out.insert(out.end(), b.samples.begin(), b.samples.end());
  REQUIRE(out.size() >= upload.size());
  CHECK(std::equal(upload.begin(), upload.end(), out.begin()));
  CHECK(spans[1].text == "And then words.");
}

TEST_CASE("say-with-voice and check-voice: one utterance's voice and speed", "[talkertts]") {
  TalkerRun run("talkertts name=tts ! fakesink sync=true");
  gst_element_set_state(run.pipeline(), GST_STATE_PLAYING);
  REQUIRE(gst_element_get_state(run.pipeline(), nullptr, nullptr, 10 * GST_SECOND) ==
          GST_STATE_CHANGE_SUCCESS);
  auto check = [&](const char *description) {
    GstStructure *voice = gst_structure_from_string(description, nullptr);
    gchar *why = nullptr;
    g_signal_emit_by_name(run.tts(), "check-voice", voice, &why);
    gst_structure_free(voice);
    std::string out = why ? why : "";
    g_free(why);
    return out;
  };
  CHECK(check("voice, voice=(string)de, speed=(double)1.5") == "");
  CHECK_THAT(check("voice, voice=(string)qq-unknown"), Catch::Contains("unknown voice"));
  CHECK_THAT(check("voice, speed=(double)3.0"), Catch::Contains("outside 0.5-2"));

  const std::string text = "The quick brown fox jumps over the lazy dog.";
  auto say_with = [&](const char *description) {
    GstStructure *voice = gst_structure_from_string(description, nullptr);
    guint64 id = 0;
    g_signal_emit_by_name(run.tts(), "say-with-voice", text.c_str(), voice, &id);
    gst_structure_free(voice);
    return id;
  };
  const guint64 plain = run.say(text);
  const guint64 fast = say_with("voice, speed=(double)2.0");
  CHECK(fast == plain + 1);
  CHECK(say_with("voice, voice=(string)qq-unknown") == 0);  // refused: nothing queued
  REQUIRE(run.pump_for(20 * GST_SECOND, [&] {
    return spans_from_messages(run.messages).size() >= 2 &&
           spans_from_messages(run.messages)[1].end != GST_CLOCK_TIME_NONE;
  }));
  run.drain();
  REQUIRE(run.errors.empty());
  const auto spans = spans_from_messages(run.messages);
  REQUIRE(spans.size() == 2);
  const double plain_s = double(spans[0].end - spans[0].start) / GST_SECOND;
  const double fast_s = double(spans[1].end - spans[1].start) / GST_SECOND;
  INFO("plain " << plain_s << " s, speed 2 " << fast_s << " s");
  CHECK(fast_s < plain_s * 0.6);
  CHECK(fast_s > plain_s * 0.35);
  REQUIRE(run.warnings.size() == 1);
  CHECK_THAT(run.warnings[0], Catch::Contains("unknown voice 'qq-unknown'"));
}

TEST_CASE("live: 30 s of continuous audio at clock pace across several say calls",
          "[talkertts][live]") {
  TalkerRun run("talkertts name=tts ! fakesink sync=true");
  gst_element_set_state(run.pipeline(), GST_STATE_PLAYING);
  struct Cue {
    double at_s;
    const char *text;
  };
  const Cue cues[] = {{0.5, "Hello, and welcome to the live test."},
                      {6.0, "This is the second thing I say."},
                      {12.0, "A longer reply comes now. It has two sentences, both spoken."},
                      {12.5, "Queued behind it, this one waits its turn."},
                      {22.0, "And a last word before the end."}};
  const gint64 t0 = g_get_monotonic_time();
  std::vector<guint64> utterances;
  for (const auto &cue : cues) {
    const gint64 due = t0 + gint64(cue.at_s * 1e6);
    REQUIRE(run.pump_for(30 * GST_SECOND, [&] { return g_get_monotonic_time() >= due; }));
    utterances.push_back(run.say(cue.text));
  }
  REQUIRE(run.pump_for(GstClockTime(t0 + 30000000 - g_get_monotonic_time()) * 1000));
  const GstClockTime stopped_at = run.running_time();
  gst_element_set_state(run.pipeline(), GST_STATE_NULL);
  run.drain();
  REQUIRE(run.errors.empty());
  CHECK(run.warnings.empty());
  CHECK(utterances == std::vector<guint64>{1, 2, 3, 4, 5});

  const auto buffers = run.take_buffers();
  check_continuous(buffers);
  INFO(buffers.size() << " buffers");
  CHECK(buffers.size() >= 1480);
  // Clock pace: the stream is as long as the run, not ahead of it or behind.
  const GstClockTime produced = buffers.back().pts + kBuffer - buffers.front().pts;
  CHECK(double(produced) / GST_SECOND ==
        Approx(double(stopped_at - buffers.front().pts) / GST_SECOND).margin(0.1));
  // A buffer leaves when its last sample is due, never earlier, and on time.
  size_t late = 0;
  for (const auto &b : buffers) {
    REQUIRE(b.left_at >= b.pts + kBuffer);
    late += b.left_at > b.pts + kBuffer + 20 * GST_MSECOND;
  }
  CHECK(late <= buffers.size() / 100);

  const auto spans = spans_from_messages(run.messages);
  REQUIRE(spans.size() == 8);
  CHECK(spans[0].text == "Hello, and welcome to the live test.");  // "Hello," alone is too short
  CHECK(spans[3].text == "It has two sentences,");
  CHECK(spans[6].text == "this one waits its turn.");
  for (const auto &s : spans) CHECK(s.end_reason == "finished");
  check_audio_matches_spans(buffers, spans);
  // Each sentence starts within a buffer (plus synthesis time) of its say call.
  CHECK(double(spans[0].start) / GST_SECOND == Approx(0.5).margin(0.3));
  CHECK(double(spans[1].start) / GST_SECOND == Approx(6.0).margin(0.3));
  CHECK(double(spans[7].start) / GST_SECOND == Approx(22.0).margin(0.3));
  // The start running time is when the sentence's first buffer left (± 20 ms).
  for (const auto &b : buffers)
    for (const auto &mark : b.marks)
      if (mark.state == TALKER_SENTENCE_START) {
        const double lag_ms = (double(b.left_at) - double(b.pts + kBuffer)) / GST_MSECOND;
        CHECK(lag_ms < 20);
      }
}

TEST_CASE("live: interrupt brings silence within one buffer", "[talkertts][live]") {
  TalkerRun run("talkertts name=tts ! fakesink sync=true");
  gst_element_set_state(run.pipeline(), GST_STATE_PLAYING);
  run.say(
      "This first sentence is long enough to be cut in the middle of it. "
      "The second sentence must never be heard. Nor the third one.");
  REQUIRE(run.pump_for(5 * GST_SECOND, [&] { return !run.messages.empty(); }));
  REQUIRE(run.messages.size() == 1);
  REQUIRE(run.pump_for(GST_SECOND));
  const GstClockTime interrupted_at = run.running_time();
  g_signal_emit_by_name(run.tts(), "interrupt");
  REQUIRE(run.pump_for(1500 * GST_MSECOND));
  gst_element_set_state(run.pipeline(), GST_STATE_NULL);

  const auto buffers = run.take_buffers();
  check_continuous(buffers);
  size_t speech_before = 0, after = 0;
  for (const auto &b : buffers) {
    if (b.pts + kBuffer <= interrupted_at && b.pts + kBuffer + 200 * GST_MSECOND > interrupted_at)
      speech_before += !b.gap;
    if (b.pts >= interrupted_at) {  // filled after the call: silence
      ++after;
      CHECK(b.gap);
      CHECK(test::rms(b.samples.data(), b.samples.size()) == 0);
    }
  }
  CHECK(speech_before >= 9);  // it was speaking right up to the call
  CHECK(after >= 70);
  const auto spans = spans_from_messages(run.messages);
  REQUIRE(spans.size() == 1);
  CHECK(spans[0].end_reason == "interrupted");
  const double cut_ms = (double(spans[0].end) - double(interrupted_at)) / GST_MSECOND;
  CHECK(cut_ms > -20);
  CHECK(cut_ms <= 20);
  check_audio_matches_spans(buffers, spans);
}

TEST_CASE("text pad: streamed tokens become sentences, EOS ends the render", "[talkertts]") {
  TalkerRun run(
      "appsrc name=text caps=text/x-raw,format=utf8 format=time ! tts.text "
      "talkertts name=tts is-live=false min-chunk-chars=5 ! fakesink sync=false");
  gst::GstPtr<GstElement> src(gst_bin_get_by_name(GST_BIN(run.pipeline()), "text"));
  for (const char *token : {"Hel", "lo th", "ere, how a", "re you", " today? I am f", "ine"}) {
    GstBuffer *b = gst_buffer_new_memdup(token, strlen(token));
    GstFlowReturn ret = GST_FLOW_ERROR;
    g_signal_emit_by_name(src.get(), "push-buffer", b, &ret);
    gst_buffer_unref(b);
    REQUIRE(ret == GST_FLOW_OK);
  }
  GstFlowReturn eos_ret;
  g_signal_emit_by_name(src.get(), "end-of-stream", &eos_ret);
  run.run_to_eos();
  REQUIRE(run.errors.empty());
  REQUIRE(run.eos);
  const auto spans = spans_from_messages(run.messages);
  REQUIRE(spans.size() == 3);
  CHECK(spans[0].text == "Hello there,");
  CHECK(spans[1].text == "how are you today?");
  CHECK(spans[2].text == "I am fine");
  check_audio_matches_spans(run.take_buffers(), spans);
}

TEST_CASE("bad settings fail at start with a message that says why", "[talkertts]") {
  for (auto [description, expected] : std::vector<std::pair<std::string, std::string>>{
           {"talkertts name=tts voice=qq-unknown", "unknown voice 'qq-unknown'"},
           {"talkertts name=tts engine=gpt-sovits", "ref-audio is required"},
           {"talkertts name=tts engine=openai server=localhost:8000",
            "not an http:// or https:// URL"},
           {"talkertts name=tts engine=cosyvoice ref-audio=/nonexistent.wav",
            "cannot read ref-audio"},
       }) {
    INFO(description);
    TalkerRun run(description + " ! fakesink");
    CHECK(gst_element_set_state(run.pipeline(), GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE);
    run.pump(GST_SECOND);
    REQUIRE(run.errors.size() == 1);
    CHECK_THAT(run.errors[0], Catch::Contains(expected));
  }
}

int main(int argc, char *argv[]) {
  gst_init(&argc, &argv);
  return Catch::Session().run(argc, argv);
}
