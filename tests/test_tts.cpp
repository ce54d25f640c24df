// SPDX-License-Identifier: LGPL-2.1-or-later
// lib/tts and its helpers without GStreamer: the resampler against analytic
// signals, the WAV/PCM stream decoder, the sentence chunker, the espeak
// engine against the espeak-ng command line, and the Speaker's scheduling.
#include "tests/catch.h"
#include "tests/tts_util.h"

#include <glib.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <mutex>

#include "lib/audio/pcm_stream.h"
#include "lib/audio/resampler.h"
#include "lib/common/error.h"
#include "lib/text/sentence_chunker.h"
#include "lib/text/speakable.h"
#include "lib/tts/speaker.h"

using namespace talker;

namespace {

std::vector<float> sine(double freq, int rate, size_t n, double amplitude = 0.5) {
  std::vector<float> s(n);
  for (size_t i = 0; i < n; ++i)
    s[i] = float(amplitude * std::sin(2 * M_PI * freq * double(i) / rate));
  return s;
}

double rms(const std::vector<float> &s, size_t from, size_t to) {
  double sum = 0;
  for (size_t i = from; i < to; ++i) sum += double(s[i]) * s[i];
  return std::sqrt(sum / double(to - from));
}

void put16(std::vector<uint8_t> &b, uint16_t v) {
  b.push_back(uint8_t(v));
  b.push_back(uint8_t(v >> 8));
}
void put32(std::vector<uint8_t> &b, uint32_t v) {
  put16(b, uint16_t(v));
  put16(b, uint16_t(v >> 16));
}
void put_tag(std::vector<uint8_t> &b, const char *tag) {
  b.insert(b.end(), tag, tag + 4);
}

// A WAV header as a streaming server writes it: sizes given or unknown.
std::vector<uint8_t> wav_header(int rate, int channels, int bits, int tag, uint32_t data_size,
                                bool with_list_chunk) {
  std::vector<uint8_t> b;
  put_tag(b, "RIFF");
  put32(b, data_size == 0xFFFFFFFF ? 0xFFFFFFFF : 36 + data_size);
  put_tag(b, "WAVE");
  if (with_list_chunk) {
    put_tag(b, "LIST");
    put32(b, 5);
    b.insert(b.end(), {'I', 'N', 'F', 'O', 'x', 0});  // odd size: padded
  }
  put_tag(b, "fmt ");
  put32(b, 16);
  put16(b, uint16_t(tag));
  put16(b, uint16_t(channels));
  put32(b, uint32_t(rate));
  put32(b, uint32_t(rate * channels * bits / 8));
  put16(b, uint16_t(channels * bits / 8));
  put16(b, uint16_t(bits));
  put_tag(b, "data");
  put32(b, data_size);
  return b;
}

std::vector<int16_t> decode_all(audio::PcmStreamDecoder d, const std::vector<uint8_t> &bytes,
                                size_t piece) {
  std::vector<int16_t> out;
  for (size_t i = 0; i < bytes.size(); i += piece)
    d.feed(bytes.data() + i, std::min(piece, bytes.size() - i), out);
  d.finish(out);
  return out;
}

}  // namespace

TEST_CASE("resampler keeps in-band tones and removes what would alias", "[resampler]") {
  for (int in_rate : {22050, 24000, 32000, 44100, 48000, 8000}) {
    INFO("from " << in_rate << " Hz");
    const size_t n = size_t(in_rate);  // 1 s
    const auto out = audio::resample(sine(1000, in_rate, n), in_rate, 16000);
    REQUIRE(out.size() == size_t((int64_t(n) * 16000 + in_rate - 1) / in_rate));
    // Same tone, same phase, away from the edges.
    const auto expected = sine(1000, 16000, out.size());
    double max_err = 0;
    for (size_t i = 200; i < out.size() - 200; ++i)
      max_err = std::max(max_err, double(std::abs(out[i] - expected[i])));
    CHECK(max_err < 2e-3);
    if (in_rate > 16000) {
      // 9 kHz cannot exist at 16 kHz: it must be gone, not folded to 7 kHz.
      const auto alias = audio::resample(sine(9000, in_rate, n), in_rate, 16000);
      CHECK(20 * std::log10(rms(alias, 200, alias.size() - 200) / (0.5 / std::sqrt(2))) < -60);
      // 6 kHz is in band and passes within 0.1 dB.
      const auto high = audio::resample(sine(6000, in_rate, n), in_rate, 16000);
      CHECK(std::abs(20 * std::log10(rms(high, 200, high.size() - 200) / (0.5 / std::sqrt(2)))) <
            0.1);
    }
  }
}

TEST_CASE("resampler gives the same output fed in pieces", "[resampler]") {
  const auto in = sine(440, 22050, 22050);
  const auto whole = audio::resample(in, 22050, 16000);
  audio::Resampler r(22050, 16000);
  std::vector<float> pieces;
  for (size_t i = 0, step = 1; i < in.size(); i += step, step = step * 3 % 997 + 1)
    r.process(in.data() + i, std::min(step, in.size() - i), pieces);
  r.flush(pieces);
  REQUIRE(pieces.size() == whole.size());
  for (size_t i = 0; i < whole.size(); ++i) REQUIRE(pieces[i] == Approx(whole[i]).margin(1e-6));
  CHECK(audio::resample(in, 16000, 16000) == in);
  CHECK_THROWS_AS(audio::Resampler(0, 16000), Error);
}

TEST_CASE("PCM stream decoder reads streamed WAV and raw PCM", "[pcm]") {
  // 0.5 s stereo 44.1 kHz: left 1 kHz, right silent, so the mono mix is half of left.
  const int rate = 44100;
  const auto left = sine(1000, rate, rate / 2, 0.8);
  std::vector<uint8_t> pcm;
  for (float v : left) {
    put16(pcm, uint16_t(int16_t(std::lround(v * 32767))));
    put16(pcm, 0);
  }
  std::vector<float> mono(left.size());
  for (size_t i = 0; i < left.size(); ++i)
    mono[i] = float(std::lround(left[i] * 32767)) / 32768.f / 2;
  const auto expected_f = audio::resample(mono, rate, 16000);

  for (uint32_t size : {uint32_t(pcm.size()), 0u, 0xFFFFFFFFu}) {
    INFO("data size field " << size);
    auto bytes = wav_header(rate, 2, 16, 1, size, true);
    bytes.insert(bytes.end(), pcm.begin(), pcm.end());
    if (size == pcm.size()) bytes.insert(bytes.end(), {'L', 'I', 'S', 'T', 0, 0, 0, 0});  // trailer
    for (size_t piece : {size_t(1), size_t(7), size_t(4096), bytes.size()}) {
      const auto out = decode_all(audio::PcmStreamDecoder::wav(), bytes, piece);
      REQUIRE(out.size() == expected_f.size());
      for (size_t i = 0; i < out.size(); ++i)
        REQUIRE(std::abs(out[i] - expected_f[i] * 32768.f) <= 1.5f);
    }
  }
  // Float WAV, mono 16 kHz: passes as is.
  std::vector<uint8_t> fbytes = wav_header(16000, 1, 32, 3, 0xFFFFFFFF, false);
  const auto tone = sine(500, 16000, 1600);
  for (float v : tone) {
    uint32_t u;
    std::memcpy(&u, &v, 4);
    put32(fbytes, u);
  }
  const auto fout = decode_all(audio::PcmStreamDecoder::wav(), fbytes, 100);
  REQUIRE(fout.size() == tone.size());
  CHECK(std::abs(fout[400] - tone[400] * 32768) <= 1);
  // Raw S16LE at 24 kHz.
  std::vector<uint8_t> raw;
  for (float v : sine(1000, 24000, 2400)) put16(raw, uint16_t(int16_t(std::lround(v * 32767))));
  const auto rout = decode_all(audio::PcmStreamDecoder::raw_s16le(24000, 1), raw, 333);
  CHECK(rout.size() == 1600);
}

TEST_CASE("PCM stream decoder rejects what is not audio", "[pcm]") {
  const std::string html = "<html>Bad gateway</html>";
  std::vector<uint8_t> text(html.begin(), html.end());
  CHECK_THROWS_WITH(decode_all(audio::PcmStreamDecoder::wav(), text, 5),
                    Catch::Contains("not a WAV stream"));
  auto header = wav_header(16000, 1, 16, 1, 1000, false);
  CHECK_THROWS_WITH(decode_all(audio::PcmStreamDecoder::wav(),
                               std::vector<uint8_t>(header.begin(), header.begin() + 30), 8),
                    Catch::Contains("inside its header"));
  header.resize(header.size() + 100);
  CHECK_THROWS_WITH(decode_all(audio::PcmStreamDecoder::wav(), header, 64),
                    Catch::Contains("900 bytes before the end"));
  CHECK_THROWS_WITH(
      decode_all(audio::PcmStreamDecoder::wav(), wav_header(16000, 1, 4, 2, 0, false), 64),
      Catch::Contains("unsupported sample format"));
  CHECK_THROWS_WITH(decode_all(audio::PcmStreamDecoder::wav(), {}, 1), Catch::Contains("empty"));
}

TEST_CASE("sentence chunker cuts like the seed system", "[chunker]") {
  text::SentenceChunker c(10);
  // Short pieces join the next one until the chunk reaches min_chars.
  auto chunks = c.push("Hi, there. This is a longer sentence! And more; ");
  chunks.push_back("|");
  for (auto &rest : c.flush()) chunks.push_back(rest);
  CHECK(chunks ==
        std::vector<std::string>{"Hi, there.", "This is a longer sentence!", "|", "And more;"});
  // Wide marks, no spaces needed.
  CHECK(text::SentenceChunker(4).push("你好，今天天气很好。我们出去玩吧！好") ==
        std::vector<std::string>{"你好，今天天气很好。", "我们出去玩吧！"});
  // ASCII marks inside numbers and names do not cut; a line break always does.
  text::SentenceChunker d(5);
  CHECK(d.push("Pi is 3.14159, roughly. See example.com now\nok") ==
        std::vector<std::string>{"Pi is 3.14159,", "roughly.", "See example.com now"});
  CHECK(d.flush() == std::vector<std::string>{"ok"});
  // Closing quotes stay with their sentence; mark-only text is dropped.
  text::SentenceChunker e(3);
  CHECK(e.push("\"Stop!\" she said. ... ") == std::vector<std::string>{"\"Stop!\"", "she said."});
  CHECK(e.flush().empty());
}

TEST_CASE("sentence chunker gives the same chunks for streamed text", "[chunker]") {
  const std::string text =
      "Streaming works token by token. 中文也可以，对吧？Numbers like 2.5 stay whole! End";
  text::SentenceChunker whole(10);
  auto expected = whole.push(text);
  for (auto &r : whole.flush()) expected.push_back(r);
  for (size_t step : {1, 2, 3, 5}) {  // steps of 1-2 bytes split UTF-8 sequences
    text::SentenceChunker c(10);
    std::vector<std::string> got;
    for (size_t i = 0; i < text.size(); i += step)
      for (auto &chunk : c.push(text.substr(i, step))) got.push_back(chunk);
    for (auto &r : c.flush()) got.push_back(r);
    CHECK(got == expected);
  }
  CHECK(expected.size() == 3);
  CHECK(text::make_valid_utf8("a\xff b\xe4\xbd") == "a\xEF\xBF\xBD b\xEF\xBF\xBD\xEF\xBF\xBD");
  // Ill-formed though they look like sequences (fuzz_sentences): a UTF-16
  // surrogate, overlong 3- and 4-byte forms, past U+10FFFF. JSON encoders
  // (nlohmann's dump) throw on each.
  for (const char *bad : {"\xed\xb0\x94", "\xe0\x80\xaf", "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80",
                          "\xf5\x80\x80\x80"}) {
    const std::string fixed = text::make_valid_utf8(bad);
    INFO(fixed);
    CHECK(g_utf8_validate(fixed.data(), gssize(fixed.size()), nullptr));
    CHECK(fixed.rfind("\xEF\xBF\xBD", 0) == 0);
  }
  // Well-formed edges stay: U+D7FF, U+E000, U+10FFFF, U+0800.
  for (const char *good : {"\xed\x9f\xbf", "\xee\x80\x80", "\xf4\x8f\xbf\xbf", "\xe0\xa0\x80"})
    CHECK(text::make_valid_utf8(good) == good);
}

TEST_CASE("speakable: Markdown and emoji never reach the TTS", "[speakable]") {
  using talker::text::speakable;
  CHECK(speakable("**Hello** there, *dear* __friend__!") == "Hello there, dear friend!");
  CHECK(speakable("## A heading") == "A heading");
  CHECK(speakable("- first item") == "first item");
  CHECK(speakable("* second item") == "second item");
  CHECK(speakable("12. twelfth item") == "twelfth item");
  CHECK(speakable("> quoted words") == "quoted words");
  CHECK(speakable("```python") == "");
  CHECK(speakable("Run `make` now.") == "Run make now.");
  CHECK(speakable("See [the docs](https://example.com/x_y) and ![a cat](cat.png).") ==
        "See the docs and a cat.");
  CHECK(speakable("snake_case and _emphasis_ and ~~gone~~") == "snake_case and emphasis and gone");
  CHECK(speakable("Great job! \xF0\x9F\x8E\x89\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD") ==
        "Great job!");  // party, thumbs up, skin tone
  CHECK(speakable("I \xE2\x9D\xA4\xEF\xB8\x8F it \xE2\xAD\x90") == "I it");  // heart + VS16, star
  CHECK(speakable(
            "\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C**\xE4\xB8\x96\xE7\x95\x8C**\xF0\x9F\x98\x80") ==
        "\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95\x8C");  // 你好，**世界**😀
  CHECK(speakable("  3.14 and 10:30 stay  ") == "3.14 and 10:30 stay");
  CHECK(speakable("line one\n- line two") == "line one line two");
}

TEST_CASE("espeak engine speaks what the espeak-ng command line speaks", "[espeak]") {
  const std::string text = "The quick brown fox jumps over the lazy dog.";
  auto engine = tts::make_engine({});
  std::vector<int16_t> ours;
  engine->synthesize(text, [&](const int16_t *s, size_t n) {
    ours.insert(ours.end(), s, s + n);
    return true;
  });
  const auto reference = test::reference_speech_16k(text);
  // The command line adds a pause at the end: compare where the speech is.
  const auto speech_end = [](const std::vector<int16_t> &s) {
    size_t end = s.size();
    while (end > 0 && std::abs(s[end - 1]) < 300) --end;
    return end;
  };
  INFO("speech ends at sample " << speech_end(ours) << ", espeak-ng + ffmpeg "
                                << speech_end(reference));
  CHECK(std::abs(double(speech_end(ours)) - double(speech_end(reference))) < 16000 * 0.005);
  CHECK(test::best_correlation(ours, reference, 8) > 0.99);
  CHECK(test::rms(ours.data(), ours.size()) > 1000);

  tts::EngineSettings zh;
  zh.voice = "zh";
  std::vector<int16_t> chinese;
  tts::make_engine(zh)->synthesize("你好", [&](const int16_t *s, size_t n) {
    chinese.insert(chinese.end(), s, s + n);
    return true;
  });
  CHECK(chinese.size() > 16000 / 4);

  tts::EngineSettings bad;
  bad.voice = "qq-unknown";
  CHECK_THROWS_WITH(tts::make_engine(bad), Catch::Contains("unknown voice 'qq-unknown'"));
  bad = {};
  bad.rate = 10;
  CHECK_THROWS_WITH(tts::make_engine(bad), Catch::Contains("rate 10"));
  bad = {};
  bad.engine = "festival";
  CHECK_THROWS_WITH(tts::make_engine(bad), Catch::Contains("unknown TTS engine 'festival'"));
  bad = {};
  bad.engine = "gpt-sovits";
  CHECK_THROWS_WITH(tts::make_engine(bad), Catch::Contains("ref-audio is required"));
  bad.ref_audio = "/srv/ref.wav";
  bad.server = "ftp://example.com";
  CHECK_THROWS_WITH(tts::make_engine(bad), Catch::Contains("not an http:// or https:// URL"));
}

TEST_CASE("espeak engine: per-utterance voice and speed", "[espeak]") {
  auto engine = tts::make_engine({});
  const auto speak = [&](const tts::VoiceOptions &voice) {
    std::vector<int16_t> out;
    engine->synthesize("The quick brown fox jumps over the lazy dog.", voice,
                       [&](const int16_t *s, size_t n) {
                         out.insert(out.end(), s, s + n);
                         return true;
                       });
    return out;
  };
  const auto plain = speak({});
  tts::VoiceOptions fast;
  fast.speed = 2;
  tts::VoiceOptions german;
  german.voice = "de";
  const auto twice = speak(fast);
  const auto deutsch = speak(german);
  INFO("samples: plain " << plain.size() << ", speed 2 " << twice.size() << ", voice de "
                         << deutsch.size());
  // 175 → 350 words a minute: espeak's pauses do not scale exactly, so about half.
  CHECK(twice.size() < plain.size() * 0.6);
  CHECK(twice.size() > plain.size() * 0.35);
  // Another voice reads the same letters with its own rules: longer here.
  CHECK(deutsch.size() > plain.size() * 1.07);
  // The engine's own voice and pace again afterwards: the override was for one
  // utterance. (espeak's output varies a little from call to call, so the
  // length is what is compared: German took 11 % longer here, speed 2 half.)
  const auto same_length = [&](const std::vector<int16_t> &again) {
    return std::abs(double(again.size()) - double(plain.size())) < plain.size() * 0.05;
  };
  CHECK(same_length(speak({})));

  CHECK(engine->check({}).empty());
  CHECK(engine->check(german).empty());
  tts::VoiceOptions unknown;
  unknown.voice = "qq-unknown";
  CHECK_THAT(engine->check(unknown), Catch::Contains("unknown voice 'qq-unknown'"));
  tts::VoiceOptions too_fast;
  too_fast.speed = 3;
  CHECK_THAT(engine->check(too_fast), Catch::Contains("outside 0.5-2"));
  // A check leaves the next synthesis with its own voice.
  CHECK(same_length(speak({})));
}

// espeak, except that the last sentence waits until the test has played
// audio (or 10 s): a Speaker that waited for all synthesis before playing
// would then stall, whatever the thread scheduling.
class GatedEspeak : public tts::Engine {
 public:
  std::atomic<bool> open{false};
  std::atomic<bool> gate_timed_out{false};
  const char *name() const override { return "gated espeak"; }
  void synthesize(const std::string &text, const tts::VoiceOptions &voice,
                  const tts::AudioSink &sink) override {
    if (text.find("number 12") != std::string::npos) {
      const auto t0 = std::chrono::steady_clock::now();
      while (!open) {
        if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(10)) {
          gate_timed_out = true;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    espeak_->synthesize(text, voice, sink);
  }
  void cancel() override { espeak_->cancel(); }

 private:
  std::unique_ptr<tts::Engine> espeak_ = tts::make_engine({});
};

TEST_CASE("speaker plays the first sentence before the last is synthesized", "[speaker]") {
  tts::Speaker speaker(tts::SpeakerOptions{});
  std::mutex lock;
  std::vector<uint64_t> synthesized;
  speaker.set_on_synthesized([&](const tts::Sentence &s) {
    std::lock_guard<std::mutex> l(lock);
    synthesized.push_back(s.id);
  });
  std::string text;
  for (int i = 1; i <= 12; ++i)
    text += "This is sentence number " + std::to_string(i) + " of a long reply. ";
  speaker.say(text);
  auto engine = std::make_unique<GatedEspeak>();
  GatedEspeak &gated = *engine;
  speaker.start(std::move(engine));
  std::vector<uint64_t> started, ended;
  size_t synthesized_at_first_frame = 0;
  size_t frames = 0;
  while (auto frame = speaker.next_frame_wait()) {
    if (frames++ == 0) {
      std::lock_guard<std::mutex> l(lock);
      synthesized_at_first_frame = synthesized.size();
      gated.open = true;
    }
    if (frame->started) started.push_back(frame->started->id);
    if (frame->ended) ended.push_back(frame->ended->id);
  }
  CHECK_FALSE(gated.gate_timed_out);
  CHECK(synthesized_at_first_frame < 12);
  REQUIRE(started.size() == 12);
  CHECK(ended == started);
  std::lock_guard<std::mutex> l(lock);
  REQUIRE(synthesized.size() == 12);
  CHECK(synthesized.back() == 12);
  CHECK(speaker.idle());
}

TEST_CASE("speaker interrupt drops queued text and cuts the playing sentence", "[speaker]") {
  tts::Speaker speaker(tts::SpeakerOptions{});
  speaker.start(tts::make_engine({}));
  speaker.say("First sentence is reasonably long. Second one never plays. Nor the third.");
  // Live pulls: wait for speech to start.
  tts::Frame frame;
  for (int i = 0; i < 500 && !frame.started; ++i) {
    frame = speaker.next_frame_now();
    if (!frame.started) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  REQUIRE(frame.started);
  CHECK(frame.started->id == 1);
  for (int i = 0; i < 10; ++i) CHECK_FALSE(speaker.next_frame_now().silent);
  speaker.interrupt();
  frame = speaker.next_frame_now();
  CHECK(frame.silent);
  REQUIRE(frame.ended);
  CHECK(frame.ended->id == 1);
  CHECK(frame.end_reason == tts::SentenceEnd::kInterrupted);
  for (int i = 0; i < 50; ++i) {
    frame = speaker.next_frame_now();
    CHECK(frame.silent);
    CHECK_FALSE(frame.started);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  // Speech after an interrupt works as before.
  speaker.say("Back again.");
  bool again = false;
  for (int i = 0; i < 500 && !again; ++i) {
    frame = speaker.next_frame_now();
    again = frame.started && frame.started->text == "Back again.";
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  CHECK(again);
}

TEST_CASE("speaker plays given audio sample for sample, in order with text, and cuts it",
          "[speaker]") {
  tts::Speaker speaker(tts::SpeakerOptions{});
  // A ramp that is not a whole number of frames: the last frame is partial.
  std::vector<int16_t> upload(16000 + 123);
  for (size_t i = 0; i < upload.size(); ++i) upload[i] = int16_t(1 + i % 30000);
  speaker.say("Before.");
  const uint64_t id = speaker.say_audio(upload, "upload.wav");
  speaker.say("After.");
  CHECK(speaker.say_audio({}, "empty") > id);  // nothing to play, skipped
  speaker.start(tts::make_engine({}));
  std::vector<std::string> order;
  std::vector<int16_t> played;
  bool in_upload = false;
  while (auto frame = speaker.next_frame_wait()) {
    if (frame->started) {
      order.push_back(frame->started->text);
      in_upload = frame->started->utterance == id;
    }
    if (in_upload) {
      const size_t n = frame->ended ? frame->end_sample : tts::kFrameSamples;
      played.insert(played.end(), frame->samples.begin(), frame->samples.begin() + long(n));
    }
    if (frame->ended && frame->ended->utterance == id) in_upload = false;
    if (order.size() == 3 && speaker.idle()) break;
  }
  CHECK(order == std::vector<std::string>{"Before.", "upload.wav", "After."});
  CHECK(played == upload);

  // Interrupted mid-way like speech.
  speaker.say_audio(upload, "again");
  tts::Frame frame;
  for (int i = 0; i < 500 && !frame.started; ++i) {
    frame = speaker.next_frame_now();
    if (!frame.started) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  REQUIRE(frame.started);
  CHECK(frame.samples[0] == upload[0]);
  speaker.interrupt();
  frame = speaker.next_frame_now();
  CHECK(frame.silent);
  REQUIRE(frame.ended);
  CHECK(frame.end_reason == tts::SentenceEnd::kInterrupted);
}

int main(int argc, char *argv[]) {
  return Catch::Session().run(argc, argv);
}
