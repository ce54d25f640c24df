// SPDX-License-Identifier: LGPL-2.1-or-later
// talkertts with its HTTP engines against servers started here on loopback
// that speak each API's wire format, serving speech made by the espeak-ng
// and ffmpeg command-line tools. (OpenAI's own service cannot be reached
// offline, so its API is served locally; GPT-SoVITS and CosyVoice servers
// need models and GPUs, so their APIs are served the same way.)
#include "tests/catch.h"

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <thread>

#include "tests/loopback_http.h"
#include "tests/talkertts_run.h"

using namespace talker;
using test::LoopbackHttpServer;
using test::ResponseWriter;
using test::SeenRequest;
using test::TalkerRun;

namespace {

const std::string kSentence = "Servers speak too, over plain old HTTP.";

// Sends `pcm` (interleaved S16LE) in chunks of `ms` milliseconds.
void stream_chunks(ResponseWriter &w, const std::string &prefix, const std::vector<int16_t> &pcm,
                   int rate, int channels, int ms = 100) {
  if (!prefix.empty()) w.chunk(prefix.data(), prefix.size());
  const size_t step = size_t(rate * channels * ms / 1000);
  for (size_t i = 0; i < pcm.size(); i += step)
    if (!w.chunk(pcm.data() + i, std::min(step, pcm.size() - i) * 2)) return;
  w.end_chunks();
}

std::vector<int16_t> speech(const std::string &text, int rate, int channels) {
  const std::string wav = test::espeak_cli_wav(text);
  auto s = test::ffmpeg_s16(wav, rate, channels);
  std::remove(wav.c_str());
  return s;
}

// The audio of sentence `id` as it left talkertts: from its first sample to its end.
std::vector<int16_t> sentence_audio(const std::vector<test::RecordedBuffer> &buffers, guint64 id) {
  std::vector<int16_t> out;
  bool inside = false;
  for (const auto &b : buffers) {
    for (const auto &m : b.marks)
      if (m.id == id && m.state == TALKER_SENTENCE_START) inside = true;
    if (!inside) continue;
    size_t n = b.samples.size();
    for (const auto &m : b.marks)
      if (m.id == id && m.state == TALKER_SENTENCE_END) {
        n = size_t(gst_util_uint64_scale(m.offset, 16000, GST_SECOND));
        inside = false;
      }
    out.insert(out.end(), b.samples.begin(), b.samples.begin() + long(n));
    if (!inside) break;
  }
  return out;
}

// Renders kSentence through the element and checks the speech that came out
// against espeak-ng's, resampled to 16 kHz by ffmpeg.
void check_rendered_speech(const std::string &element) {
  TalkerRun run("talkertts name=tts is-live=false min-chunk-chars=100 " + element + " text=\"" +
                kSentence + "\" ! fakesink sync=false");
  run.run_to_eos(30 * GST_SECOND);
  REQUIRE(run.errors.empty());
  INFO((run.warnings.empty() ? "" : run.warnings[0]));
  REQUIRE(run.warnings.empty());
  REQUIRE(run.eos);
  REQUIRE(run.messages.size() == 2);
  CHECK(run.messages[1].reason == "finished");
  const auto ours = sentence_audio(run.take_buffers(), run.messages[0].id);
  const auto reference = test::reference_speech_16k(kSentence);
  INFO("ours " << ours.size() << " samples, reference " << reference.size());
  CHECK(std::abs(double(ours.size()) - double(reference.size())) < 16000 * 0.03);
  CHECK(test::best_correlation(ours, reference, 16) > 0.97);
}

}  // namespace

TEST_CASE("openai engine: /v1/audio/speech with WAV streamed at 44.1 kHz stereo", "[http]") {
  LoopbackHttpServer server([](const SeenRequest &r, ResponseWriter &w) {
    const auto body = nlohmann::json::parse(r.body);
    w.start(200, "audio/wav");
    stream_chunks(w, test::wav_header_s16(44100, 2, 0xFFFFFFFF),
                  speech(body["input"].get<std::string>(), 44100, 2), 44100, 2);
  });
  check_rendered_speech("engine=openai server=" + server.url() +
                        "/v1 api-key=sk-test voice=nova model=tts-1-hd");
  const auto requests = server.requests();
  REQUIRE(requests.size() == 1);
  const auto &r = requests[0];
  CHECK(r.method == "POST");
  CHECK(r.path == "/v1/audio/speech");
  CHECK(r.headers.at("authorization") == "Bearer sk-test");
  CHECK(r.headers.at("content-type").rfind("application/json", 0) == 0);
  const auto body = nlohmann::json::parse(r.body);
  CHECK(body["input"] == kSentence);
  CHECK(body["voice"] == "nova");
  CHECK(body["model"] == "tts-1-hd");
  CHECK(body["response_format"] == "wav");
}

TEST_CASE("openai engine: raw pcm at 24 kHz", "[http]") {
  LoopbackHttpServer server([](const SeenRequest &r, ResponseWriter &w) {
    const auto body = nlohmann::json::parse(r.body);
    w.start(200, "audio/pcm");
    stream_chunks(w, "", speech(body["input"].get<std::string>(), 24000, 1), 24000, 1, 40);
  });
  check_rendered_speech("engine=openai response-format=pcm server=" + server.url());
  REQUIRE(server.requests().size() == 1);
  CHECK(nlohmann::json::parse(server.requests()[0].body)["response_format"] == "pcm");
  CHECK(server.requests()[0].headers.count("authorization") == 0);
}

TEST_CASE("gpt-sovits engine: api_v2 /tts, streamed WAV with an unknown length", "[http]") {
  LoopbackHttpServer server([](const SeenRequest &r, ResponseWriter &w) {
    const auto body = nlohmann::json::parse(r.body);
    w.start(200, "audio/wav");
    // As api_v2 streams: a header with zero sizes, then raw 32 kHz PCM pieces.
    stream_chunks(w, test::wav_header_s16(32000, 1, 0),
                  speech(body["text"].get<std::string>(), 32000, 1), 32000, 1, 250);
  });
  check_rendered_speech("engine=gpt-sovits server=" + server.url() +
                        " ref-audio=/models/ref.wav ref-text=\"Reference words.\" language=en");
  const auto r = server.requests().at(0);
  CHECK(r.path == "/tts");
  const auto body = nlohmann::json::parse(r.body);
  CHECK(body["text"] == kSentence);
  CHECK(body["text_lang"] == "en");
  CHECK(body["prompt_lang"] == "en");
  CHECK(body["ref_audio_path"] == "/models/ref.wav");
  CHECK(body["prompt_text"] == "Reference words.");
  CHECK(body["media_type"] == "wav");
  CHECK(body["streaming_mode"] == true);
}

TEST_CASE("cosyvoice engine: zero-shot upload and built-in speakers, raw PCM", "[http]") {
  const std::string ref = test::espeak_cli_wav("This is my voice.");
  LoopbackHttpServer server([](const SeenRequest &r, ResponseWriter &w) {
    // Find tts_text in the multipart form.
    const std::string key = "name=\"tts_text\"\r\n\r\n";
    const size_t at = r.body.find(key);
    if (at == std::string::npos) {
      w.start(422, "application/json", 2);
      w.write("{}");
      return;
    }
    const size_t from = at + key.size();
    const std::string text = r.body.substr(from, r.body.find("\r\n--", from) - from);
    w.start(200, "application/octet-stream");
    stream_chunks(w, "", speech(text, 22050, 1), 22050, 1);  // a CosyVoice 1 server: 22050 Hz
  });
  check_rendered_speech("engine=cosyvoice server-rate=22050 server=" + server.url() +
                        " ref-audio=" + ref + " ref-text=\"This is my voice.\"");
  check_rendered_speech("engine=cosyvoice server-rate=22050 voice=英文女 server=" + server.url());
  const auto requests = server.requests();
  REQUIRE(requests.size() == 2);
  const auto &clone = requests[0];
  CHECK(clone.path == "/inference_zero_shot");
  CHECK(clone.headers.at("content-type").rfind("multipart/form-data; boundary=", 0) == 0);
  CHECK_THAT(clone.body, Catch::Contains("name=\"prompt_text\"\r\n\r\nThis is my voice.\r\n"));
  CHECK_THAT(clone.body, Catch::Contains("name=\"prompt_wav\"; filename=\"prompt_wav\""));
  const auto ref_bytes = test::read_bytes(ref);
  CHECK(clone.body.find(std::string(ref_bytes.begin(), ref_bytes.end())) != std::string::npos);
  CHECK(requests[1].path == "/inference_sft");
  CHECK_THAT(requests[1].body, Catch::Contains("name=\"spk_id\"\r\n\r\n英文女\r\n"));
  std::remove(ref.c_str());
}

TEST_CASE("engine failures are warnings; the failed sentence is skipped, speech goes on",
          "[http]") {
  LoopbackHttpServer server([](const SeenRequest &r, ResponseWriter &w) {
    const std::string text = nlohmann::json::parse(r.body)["input"];
    if (text.find("error") != std::string::npos) {
      const std::string msg = R"({"error":{"message":"model overloaded"}})";
      w.start(500, "application/json", long(msg.size()));
      w.write(msg);
    } else if (text.find("breaks") != std::string::npos) {
      // The whole answer announced, half a second of it sent, then the
      // connection drops. (Raw PCM: nothing but HTTP can tell it is cut.)
      const auto pcm = speech(text, 24000, 1);
      w.start(200, "audio/pcm", long(pcm.size() * 2));
      w.write(pcm.data(), std::min<size_t>(pcm.size(), 12000) * 2);
    } else if (text.find("HTML") != std::string::npos) {
      const std::string page = "<html><body>Welcome to nginx!</body></html>";
      w.start(200, "text/html", long(page.size()));
      w.write(page);
    } else {
      w.start(200, "audio/pcm");
      stream_chunks(w, "", speech(text, 24000, 1), 24000, 1);
    }
  });
  TalkerRun run(
      "talkertts name=tts is-live=false engine=openai response-format=pcm server=" + server.url() +
      " text=\"The first sentence is fine. The second gets a server error. The third "
      "one breaks off in the middle of its audio. The fourth gets an HTML page. The "
      "fifth is fine again.\" ! fakesink sync=false");
  run.run_to_eos(30 * GST_SECOND);
  REQUIRE(run.errors.empty());
  REQUIRE(run.eos);
  for (const auto &w : run.warnings) UNSCOPED_INFO(w);
  REQUIRE(run.warnings.size() == 3);
  CHECK_THAT(
      run.warnings[0],
      Catch::Contains("openai engine failed on sentence 2 (\"The second gets a server error.\")") &&
          Catch::Contains("HTTP 500") && Catch::Contains("model overloaded"));
  CHECK_THAT(run.warnings[1], Catch::Contains("sentence 3") && Catch::Contains("broke off"));
  CHECK_THAT(run.warnings[2], Catch::Contains("sentence 4") &&
                                  Catch::Contains("answered text/html, not audio: <html>"));
  REQUIRE(run.warning_details.size() == 3);
  CHECK_THAT(run.warning_details[0],
             Catch::Contains("engine=(string)openai") && Catch::Contains("id=(guint64)2"));
  // Sentences 1 and 5 are spoken whole; 2 and 4 never start; 3 may have
  // started before the break, and then ends there as failed.
  std::map<guint64, std::string> ends;
  for (const auto &m : run.messages)
    if (m.state == "end") ends[m.id] = m.reason;
  CHECK(ends[1] == "finished");
  CHECK(ends[5] == "finished");
  CHECK(ends.count(2) == 0);
  CHECK(ends.count(4) == 0);
  if (ends.count(3)) CHECK(ends[3] == "failed");
  const auto buffers = run.take_buffers();
  for (size_t i = 1; i < buffers.size(); ++i)
    REQUIRE(buffers[i].pts == buffers[i - 1].pts + buffers[i - 1].duration);
  CHECK(test::rms(sentence_audio(buffers, 5).data(), sentence_audio(buffers, 5).size()) > 800);
}

TEST_CASE("live: an unreachable or silent server leaves a stream of silence", "[http][live]") {
  // A port that was just free: nothing listens there.
  std::string dead_url;
  {
    dead_url = LoopbackHttpServer([](const SeenRequest &, ResponseWriter &) {}).url();
  }
  std::atomic<bool> release{false};
  LoopbackHttpServer silent([&](const SeenRequest &, ResponseWriter &) {
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  });
  for (const auto &[url, cause] : std::vector<std::pair<std::string, std::string>>{
           {dead_url, "Could not connect"}, {silent.url(), "timed out"}}) {
    INFO(url);
    TalkerRun run("talkertts name=tts engine=openai timeout=1 server=" + url +
                  " ! fakesink sync=true");
    gst_element_set_state(run.pipeline(), GST_STATE_PLAYING);
    run.say("Is anybody there?");
    REQUIRE(run.pump_for(3 * GST_SECOND));
    gst_element_set_state(run.pipeline(), GST_STATE_NULL);
    run.drain();
    REQUIRE(run.warnings.size() == 1);
    CHECK_THAT(run.warnings[0], Catch::Contains("Is anybody there?") && Catch::Contains(cause));
    const auto buffers = run.take_buffers();
    CHECK(buffers.size() >= 140);
    for (size_t i = 0; i < buffers.size(); ++i) {
      REQUIRE(buffers[i].gap);
      if (i) REQUIRE(buffers[i].pts == buffers[i - 1].pts + buffers[i - 1].duration);
    }
  }
  release = true;
}

TEST_CASE("live: the first sentence plays before the last one is synthesized", "[http][live]") {
  // The server holds back the last sentence until the first has started playing.
  std::atomic<bool> first_started{false};
  std::atomic<gint64> last_answered{0};
  LoopbackHttpServer server([&](const SeenRequest &r, ResponseWriter &w) {
    const std::string text = nlohmann::json::parse(r.body)["text"];
    if (text.find("last") != std::string::npos) {
      const gint64 t0 = g_get_monotonic_time();
      while (!first_started && g_get_monotonic_time() - t0 < 10000000)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      last_answered = g_get_monotonic_time();
    }
    w.start(200, "audio/wav");
    stream_chunks(w, test::wav_header_s16(32000, 1, 0), speech(text, 32000, 1), 32000, 1);
  });
  TalkerRun run("talkertts name=tts engine=gpt-sovits ref-audio=/ref.wav server=" + server.url() +
                " ! fakesink sync=true");
  gst_element_set_state(run.pipeline(), GST_STATE_PLAYING);
  run.say("Here is the first sentence. Then a second one follows. The last one comes at the end.");
  gint64 first_started_at = 0;
  REQUIRE(run.pump_for(12 * GST_SECOND, [&] {
    if (!first_started && !run.messages.empty()) {
      first_started_at = g_get_monotonic_time();
      first_started = true;
    }
    return run.messages.size() == 6;
  }));
  gst_element_set_state(run.pipeline(), GST_STATE_NULL);
  run.drain();
  REQUIRE(first_started_at != 0);
  REQUIRE(last_answered != 0);
  CHECK(first_started_at < last_answered);
  REQUIRE(run.messages.size() == 6);
  CHECK(run.messages[4].text == "The last one comes at the end.");
  CHECK(run.warnings.empty());
}

int main(int argc, char *argv[]) {
  gst_init(&argc, &argv);
  return Catch::Session().run(argc, argv);
}
