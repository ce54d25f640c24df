// SPDX-License-Identifier: LGPL-2.1-or-later
// talkerwhipsink against the real SRS (../shared/srs/srs, 7.0.18) on
// loopback, ports chosen here: what arrives is read back as SRS's HTTP-FLV
// (its rtc_to_rtmp bridge), the way a viewer or an RTMP relay gets it.
// SRS's own habits are the point (../shared/srs/README.md): its receiver
// reports name our SSRC as their sender, it answers an offer without SSRCs
// with fewer m-lines, a restarted SRS forgets the session silently.
#undef CHECK
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <gst/gst.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <string>

#include "lib/avatar/avatar_frames.h"
#include "lib/net/http_client.h"
#include "tests/browser_peer.h"
#include "tests/output_harness.h"

using namespace talker;
using namespace std::chrono_literals;
using gst::GstPtr;
using test::BusLog;
using Clock = std::chrono::steady_clock;

namespace {

constexpr double kSyncTolerance = 0.040;  // flash to beep, as for the other outputs

std::string temp_dir() {
  gchar *d = g_dir_make_tmp("talker-srs-XXXXXX", nullptr);
  std::string s = d;
  g_free(d);
  return s;
}

std::string join_ms(const std::vector<double> &seconds) {
  std::string s;
  for (double v : seconds) s += (s.empty() ? "" : " ") + std::to_string(int(std::lround(v * 1000)));
  return s;
}

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// SRS's view of a stream: /api/v1/streams/ (null when it has none by that name).
nlohmann::json srs_stream(const test::Srs &srs, const std::string &name) {
  net::HttpClient http(5);
  net::HttpRequest r;
  r.method = "GET";
  r.url = srs.api_url("/api/v1/streams/?count=100");
  try {
    const auto j = nlohmann::json::parse(http.exchange(r, 1 << 20).body);
    for (auto &s : j["streams"])
      if (s["name"] == name) return s;
  } catch (const std::exception &e) {
    WARN("SRS API: " << e.what());
  }
  return nullptr;
}

// True once SRS has the stream published and its video's codec (its HTTP-FLV
// writes a header for the tracks it has when a viewer joins; audio, a steady
// 50 packets a second, is there by then, while video waits for SRS's first
// sender report and the key frame after it). The API's "audio" entry is not
// waited for: this SRS sometimes leaves it null for a stream whose FLV has
// AAC all along.
bool srs_has_av(const test::Srs &srs, const std::string &name) {
  const auto s = srs_stream(srs, name);
  return !s.is_null() && s["publish"]["active"] == true && s.contains("video") &&
         s["video"].is_object();
}

template <typename Done>
bool wait_for(Done done, std::chrono::milliseconds timeout) {
  const auto end = Clock::now() + timeout;
  while (Clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(100ms);
  }
  return done();
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

size_t count_containing(const std::vector<std::string> &v, const std::string &what) {
  return size_t(std::count_if(v.begin(), v.end(),
                              [&](const std::string &s) { return s.find(what) != s.npos; }));
}

// Plays `p` and reads its bus until its WHIP output connected (`timeout` at most).
void play_until_connected(GstElement *p, BusLog *log, std::chrono::milliseconds timeout = 20000ms) {
  gst_element_set_state(p, GST_STATE_PLAYING);
  log->read(p, "talker-whip", timeout, [&] { return log->count("connected") >= 1; });
}

}  // namespace

TEST_CASE(
    "SRS: talkerwhipsink with defaults, 60 s of flash/beep: both tracks, one session, in sync") {
  const std::string dir = temp_dir();
  test::Srs srs(dir);
  // Defaults: rtcp-timeout 3000, the liveness that used to end every SRS
  // session after 3 s.
  auto p = test::marked_pipeline("talkerwhipsink location=\"" + srs.whip_url("flash") + "\"");
  test::NullOnExit stop_at_end{p.get()};
  BusLog log;
  play_until_connected(p.get(), &log);
  REQUIRE(log.count("connected") == 1);
  // A viewer that joins once SRS has both tracks (SRS's FLV header names the
  // tracks it has when the viewer joins).
  log.read(p.get(), "talker-whip", 10000ms, [&] { return srs_has_av(srs, "flash"); });
  INFO("SRS's stream: " << srs_stream(srs, "flash").dump());
  REQUIRE(srs_has_av(srs, "flash"));
  const std::string flv = dir + "/flash.flv";
  test::Child viewer = srs.record_flv("flash", flv);
  const auto recording = Clock::now();
  log.read(p.get(), "talker-whip", 60000ms);
  const double recorded = seconds_since(recording);
  GstPtr<GstElement> out(gst_bin_get_by_name(GST_BIN(p.get()), "out"));
  GstStructure *stats = nullptr;
  g_object_get(out.get(), "stats", &stats, nullptr);
  guint sessions = 0;
  gst_structure_get_uint(stats, "sessions", &sessions);
  gst_structure_free(stats);
  gst_element_set_state(p.get(), GST_STATE_NULL);
  viewer.stop();

  for (auto &m : log.messages) UNSCOPED_INFO(m);
  CHECK(log.errors.empty());
  CHECK(log.count("connected") == 1);
  CHECK(log.count("reconnecting") == 0);
  CHECK(sessions == 1);
  const test::Marks m = test::marks_of_flv(flv);
  INFO("recorded " << recorded << " s: " << m.frames << " frames, video to " << m.video_end
                   << " s, audio to " << m.audio_end << " s");
  // Both tracks all the way (less a second at either end for the viewer's join and stop).
  CHECK(m.video_end > recorded - 1.5);
  CHECK(m.audio_end > recorded - 1.5);
  CHECK(std::fabs(m.video_end - m.audio_end) < 0.5);
  const double fps = m.frames / m.video_end;
  CHECK(std::fabs(fps - 25) < 1.0);
  const auto offsets = test::mark_offsets(m.flashes, m.beeps);
  WARN("SRS HTTP-FLV: " << m.frames << " frames at " << fps << " fps over " << m.video_end
                        << " s; flash/beep offsets (ms): " << join_ms(offsets));
  CHECK(offsets.size() >= 25);
  // SRS turns the Opus into AAC at 44.1 kHz for FLV; an FLV reader cannot
  // trim the AAC encoder's first frame of priming (FLV has no field for it),
  // so the beep is read up to one AAC frame late.
  CHECK(std::fabs(median(offsets)) <= kSyncTolerance + 1024.0 / 44100);
}

// After SRS is back: a new session, and media that SRS turns into FLV with
// both tracks again (a viewer joining then gets video and audio).
void expect_back_with_av(test::Srs &srs, GstElement *p, BusLog &log, const std::string &name,
                         Clock::time_point back) {
  log.read(p, "talker-whip", 20000ms, [&] { return log.count("connected") >= 2; });
  REQUIRE(log.count("connected") >= 2);
  const double reconnected = seconds_since(back);
  log.read(p, "talker-whip", 10000ms, [&] { return srs_has_av(srs, name); });
  const double av = seconds_since(back);
  // A viewer that joins just as SRS swaps the thawed or new publisher in may
  // get nothing: a second viewer then (what a player's retry does).
  test::Marks m;
  for (int viewer_try = 0; viewer_try < 2 && m.frames == 0; ++viewer_try) {
    const std::string flv = srs.dir() + "/" + name + "-after" + std::to_string(viewer_try) + ".flv";
    test::Child viewer = srs.record_flv(name, flv);
    log.read(p, "talker-whip", 5000ms);
    viewer.stop();
    m = test::marks_of_flv(flv);
    if (m.frames == 0) WARN("viewer " << viewer_try << " got no frames");
  }
  for (auto &msg : log.messages) UNSCOPED_INFO(msg);
  WARN("SRS back: connected again after " << reconnected << " s, both tracks in SRS after " << av
                                          << " s");
  CHECK(reconnected < 5.0);
  CHECK(av < 5.0);
  INFO("after: " << m.frames << " frames, " << m.samples << " samples");
  CHECK(m.frames > 3 * 25);
  CHECK(m.samples > 3 * 48000);
  CHECK(log.errors.empty());
}

TEST_CASE("SRS: killed mid-push and restarted 4 s later; the push is back with both tracks") {
  const std::string dir = temp_dir();
  test::Srs srs(dir);
  auto p = test::marked_pipeline("talkerwhipsink location=\"" + srs.whip_url("restart") + "\"");
  test::NullOnExit stop_at_end{p.get()};
  BusLog log;
  play_until_connected(p.get(), &log);
  REQUIRE(log.count("connected") == 1);
  log.read(p.get(), "talker-whip", 4000ms);
  srs.kill();
  const auto killed = Clock::now();
  // Noticed within rtcp-timeout (3 s) and a reading of the bus.
  log.read(p.get(), "talker-whip", 4000ms, [&] { return log.count("reconnecting") >= 1; });
  const double noticed = seconds_since(killed);
  log.read(p.get(), "talker-whip",
           std::chrono::milliseconds(std::max(0, int(4000 - noticed * 1000))));
  srs.start();
  const auto back = Clock::now();
  WARN("SRS killed: the element noticed after " << noticed << " s");
  CHECK(log.count("reconnecting") >= 1);
  CHECK(noticed < 3.5);
  CHECK(count_containing(log.messages, "RTCP") >= 1);  // the reason, as GStreamer escapes it
  expect_back_with_av(srs, p.get(), log, "restart", back);
  gst_element_set_state(p.get(), GST_STATE_NULL);
}

TEST_CASE("SRS: frozen (SIGSTOP) for 6 s; the push is back with both tracks once it runs again") {
  const std::string dir = temp_dir();
  test::Srs srs(dir);
  auto p = test::marked_pipeline("talkerwhipsink location=\"" + srs.whip_url("frozen") + "\"");
  test::NullOnExit stop_at_end{p.get()};
  BusLog log;
  play_until_connected(p.get(), &log);
  REQUIRE(log.count("connected") == 1);
  log.read(p.get(), "talker-whip", 4000ms);
  srs.freeze();
  log.read(p.get(), "talker-whip", 6000ms);
  srs.thaw();
  const auto back = Clock::now();
  CHECK(log.count("reconnecting") >= 1);
  expect_back_with_av(srs, p.get(), log, "frozen", back);
  gst_element_set_state(p.get(), GST_STATE_NULL);
}

TEST_CASE(
    "SRS: media flows before the first RTCP names our SSRC, and the answer keeps both m-lines") {
  // A late video track (its first buffer 6 s after the audio's), as a talking
  // head's is: SRS's reports naming our video SSRC come first. rtpsession must
  // not take our own video for a remote source.
  const std::string dir = temp_dir();
  test::Srs srs(dir);
  auto p = test::marked_pipeline("talkerwhipsink location=\"" + srs.whip_url("late") + "\"");
  test::NullOnExit stop_at_end{p.get()};
  GstPtr<GstElement> vsrc(gst_bin_get_by_name(GST_BIN(p.get()), "vsrc"));
  GstPtr<GstPad> vpad(gst_element_get_static_pad(vsrc.get(), "src"));
  // Holds back video buffers (not caps) for the first 6 s of running time.
  gst_pad_add_probe(
      vpad.get(), GST_PAD_PROBE_TYPE_BUFFER,
      [](GstPad *, GstPadProbeInfo *info, gpointer) {
        return GST_BUFFER_PTS(GST_PAD_PROBE_INFO_BUFFER(info)) < 6 * GST_SECOND ? GST_PAD_PROBE_DROP
                                                                                : GST_PAD_PROBE_OK;
      },
      nullptr, nullptr);
  BusLog log;
  play_until_connected(p.get(), &log);
  REQUIRE(log.count("connected") == 1);
  log.read(p.get(), "talker-whip", 15000ms, [&] { return srs_has_av(srs, "late"); });
  CHECK(srs_has_av(srs, "late"));
  const std::string flv = dir + "/late.flv";
  test::Child viewer = srs.record_flv("late", flv);
  log.read(p.get(), "talker-whip", 5000ms);
  viewer.stop();
  gst_element_set_state(p.get(), GST_STATE_NULL);
  for (auto &m : log.messages) UNSCOPED_INFO(m);
  CHECK(log.errors.empty());
  CHECK(log.count("connected") == 1);
  const test::Marks m = test::marks_of_flv(flv);
  CHECK(m.frames > 3 * 25);
  CHECK(m.samples > 3 * 48000);
}

namespace {

std::string micro(const std::string &rel) {
  return std::string(TALKER_BUILD_ROOT) + "/tools/micro/" + rel;
}

// What a talking head's FLV shows: per video frame, the mean difference in
// the mouth half of the face box from the nearest of the avatar's own frames
// (0 for an idle frame but for H.264's loss, large for a generated mouth);
// per 20 ms of audio, its RMS.
struct HeadMedia {
  std::vector<double> mouth;  // per frame
  std::vector<double> rms;    // per 20 ms
};

HeadMedia head_media_of_flv(const std::string &path, const avatar::AvatarFrames &a) {
  const std::string desc =
      "filesrc location=\"" + path +
      "\" ! flvdemux name=d d.video ! queue ! h264parse ! avdec_h264 ! "
      "videoconvert ! video/x-raw,format=BGR ! appsink name=v sync=false "
      "d.audio ! queue ! aacparse ! avdec_aac ! audioconvert ! audioresample ! "
      "audio/x-raw,format=S16LE,channels=1,rate=16000 ! appsink name=a "
      "sync=false";
  GError *error = nullptr;
  GstPtr<GstElement> p(gst_parse_launch(desc.c_str(), &error));
  if (error) throw std::runtime_error(error->message);
  GstPtr<GstElement> v(gst_bin_get_by_name(GST_BIN(p.get()), "v"));
  GstPtr<GstElement> au(gst_bin_get_by_name(GST_BIN(p.get()), "a"));
  gst_element_set_state(p.get(), GST_STATE_PLAYING);
  HeadMedia out;
  const blend::Box face = a.faces[0];
  const cv::Rect mouth(face.x1, (face.y1 + face.y2) / 2, face.x2 - face.x1,
                       face.y2 - (face.y1 + face.y2) / 2);
  std::vector<int16_t> samples;
  bool v_done = false, a_done = false;
  while (!v_done || !a_done) {
    for (auto [sink, video] : {std::pair{v.get(), true}, std::pair{au.get(), false}}) {
      if (video ? v_done : a_done) continue;
      GstSample *sample = nullptr;
      g_signal_emit_by_name(sink, "try-pull-sample", GstClockTime(5 * GST_SECOND), &sample);
      if (!sample) {
        (video ? v_done : a_done) = true;
        continue;
      }
      GstBuffer *buf = gst_sample_get_buffer(sample);
      GstMapInfo map;
      gst_buffer_map(buf, &map, GST_MAP_READ);
      if (video && map.size == size_t(a.width * a.height * 3)) {
        cv::Mat frame(a.height, a.width, CV_8UC3, map.data);
        double best = 1e9;
        for (const cv::Mat &f : a.frames)
          best =
              std::min(best, cv::norm(frame(mouth), f(mouth), cv::NORM_L1) / (mouth.area() * 3.0));
        out.mouth.push_back(best);
      } else if (!video) {
        const auto *x = reinterpret_cast<const int16_t *>(map.data);
        samples.insert(samples.end(), x, x + map.size / 2);
      }
      gst_buffer_unmap(buf, &map);
      gst_sample_unref(sample);
    }
  }
  gst_element_set_state(p.get(), GST_STATE_NULL);
  for (size_t i = 0; i + 320 <= samples.size(); i += 320) {
    double sum = 0;
    for (size_t j = i; j < i + 320; ++j) sum += double(samples[j]) * samples[j];
    out.rms.push_back(std::sqrt(sum / 320));
  }
  return out;
}

}  // namespace

TEST_CASE(
    "SRS: a talking head (micro models) pushed with talkerwhipsink alone: moving mouth, speech") {
  const std::string dir = temp_dir();
  test::Srs srs(dir);
  const std::string q = "queue max-size-buffers=0 max-size-bytes=0 max-size-time=10000000000";
  const std::string desc =
      "talkertts name=tts ! tee name=t t. ! " + q + " ! out.audio t. ! " + q +
      " ! talkinghead name=head avatar=" + micro("avatar") +
      " whisper-model=" + micro("whisper.safetensors") + " unet=" + micro("unet.safetensors") +
      " unet-config=" + micro("musetalk.json") + " vae=" + micro("vae") + " ! " + q +
      " ! out.video talkerwhipsink name=out location=\"" + srs.whip_url("head") + "\"";
  GError *error = nullptr;
  GstPtr<GstElement> p(gst_parse_launch(desc.c_str(), &error));
  REQUIRE(!error);
  test::NullOnExit stop_at_end{p.get()};
  GstPtr<GstElement> tts(gst_bin_get_by_name(GST_BIN(p.get()), "tts"));
  GstPtr<GstElement> head(gst_bin_get_by_name(GST_BIN(p.get()), "head"));
  BusLog log;
  play_until_connected(p.get(), &log, 30000ms);
  REQUIRE(log.count("connected") == 1);
  // The sink answered the latency query: the pipeline has the head's latency.
  GstPtr<GstQuery> latency(gst_query_new_latency());
  REQUIRE(gst_element_query(p.get(), latency.get()));
  gboolean live = FALSE;
  GstClockTime min = 0, max = 0;
  gst_query_parse_latency(latency.get(), &live, &min, &max);
  INFO("pipeline latency " << min / 1e6 << " ms");
  CHECK(live);
  CHECK(min > 200 * GST_MSECOND);
  // Both tracks once the idle face has reached SRS (one latency in).
  log.read(p.get(), "talker-whip", std::chrono::milliseconds(min / GST_MSECOND + 15000),
           [&] { return srs_has_av(srs, "head"); });
  REQUIRE(srs_has_av(srs, "head"));
  const std::string flv = dir + "/head.flv";
  test::Child viewer = srs.record_flv("head", flv);
  log.read(p.get(), "talker-whip", 1000ms);
  guint64 id = 0;
  g_signal_emit_by_name(tts.get(), "say", "Hello everyone, I am talking to you through SRS now.",
                        &id);
  // The speech (about 3 s) and one latency for it to reach SRS, then idle.
  log.read(p.get(), "talker-whip", std::chrono::milliseconds(min / GST_MSECOND + 6000));
  viewer.stop();
  GstStructure *stats = nullptr;
  g_object_get(head.get(), "stats", &stats, nullptr);
  guint64 generated = 0, dropped = 0;
  gst_structure_get_uint64(stats, "frames-generated", &generated);
  gst_structure_get_uint64(stats, "frames-dropped", &dropped);
  gst_structure_free(stats);
  gst_element_set_state(p.get(), GST_STATE_NULL);
  for (auto &m : log.messages) UNSCOPED_INFO(m);
  CHECK(log.errors.empty());
  CHECK(log.count("connected") == 1);
  CHECK(generated > 25);
  CHECK(dropped == 0);  // no frame arrived after its render time

  const auto avatar = avatar::load_avatar_frames(micro("avatar"));
  const HeadMedia m = head_media_of_flv(flv, *avatar);
  size_t moving = 0, still = 0, loud = 0;
  for (double d : m.mouth) (d > 10 ? moving : still) += 1;
  for (double r : m.rms) loud += r > 1000;
  WARN("SRS talking head: " << m.mouth.size() << " frames (" << moving
                            << " with a generated mouth, " << still << " idle), " << loud
                            << " loud 20 ms blocks of " << m.rms.size() << "; latency " << min / 1e6
                            << " ms");
  CHECK(m.mouth.size() > 5 * 25);
  CHECK(moving > 25);  // a second of speech at least
  CHECK(still > 10);   // the idle face before it
  CHECK(loud > 50);    // a second of speech in the AAC
}

int main(int argc, char *argv[]) {
  gst_init(&argc, &argv);
  // Like the golden vectors: ../shared holds it (or TALKER_SRS names it).
  if (!test::Srs::available()) {
    std::fprintf(stderr, "skipped: no SRS at %s (set TALKER_SRS)\n", test::Srs::binary().c_str());
    return 77;
  }
  return Catch::Session().run(argc, argv);
}

namespace {

// Plays SRS's WebRTC stream `name` in chromium (WHEP) for `seconds` while
// `p` pushes; the viewer's report (decoded frames, flash and beep times).
nlohmann::json watch_over_whep(const test::Srs &srs, test::WhipEndpoint &browser, GstElement *p,
                               BusLog &log, const char *bus_name, const std::string &name,
                               std::chrono::milliseconds seconds) {
  const std::string id = browser.play_whep(srs.whep_url(name));
  REQUIRE(!id.empty());
  log.read(p, bus_name, seconds);
  auto viewer = browser.session(id);
  REQUIRE(!viewer.is_null());
  return viewer;
}

// The viewer's flash-to-beep offsets, in seconds.
std::vector<double> viewer_offsets(const nlohmann::json &viewer) {
  std::vector<double> seconds;
  for (double ms : test::mark_offsets(viewer["flashes"].get<std::vector<double>>(),
                                      viewer["beeps"].get<std::vector<double>>(), 1000))
    seconds.push_back(ms / 1000);
  return seconds;
}

}  // namespace

TEST_CASE("SRS: a WHEP viewer in chromium plays a WHIP push: flash and beep within 40 ms") {
  const std::string dir = temp_dir();
  test::Srs srs(dir);
  test::WhipEndpoint browser;
  auto p = test::marked_pipeline("talkerwhipsink location=\"" + srs.whip_url("whep") + "\"");
  test::NullOnExit stop_at_end{p.get()};
  BusLog log;
  play_until_connected(p.get(), &log);
  REQUIRE(log.count("connected") == 1);
  log.read(p.get(), "talker-whip", 10000ms, [&] { return srs_has_av(srs, "whep"); });
  REQUIRE(srs_has_av(srs, "whep"));
  const auto viewer = watch_over_whep(srs, browser, p.get(), log, "talker-whip", "whep", 15000ms);
  gst_element_set_state(p.get(), GST_STATE_NULL);
  INFO(viewer.dump());
  CHECK(log.errors.empty());
  CHECK(log.count("reconnecting") == 0);
  CHECK(viewer["state"] == "connected");
  CHECK(viewer["framesDecoded"].get<int>() > 150);
  CHECK(viewer["audioChunks"].get<int>() > 500);
  CHECK(viewer["width"] == 320);
  const std::vector<double> seconds = viewer_offsets(viewer);
  WARN("WHIP -> SRS -> WHEP (chromium): flash/beep offsets (ms): " << join_ms(seconds));
  REQUIRE(seconds.size() >= 5);
  // The median: one late burst on a shared machine stretches chromium's
  // audio jitter buffer for a second or two (see test_outputs' WHIP case).
  CHECK(std::fabs(median(seconds)) <= kSyncTolerance);
}

TEST_CASE("SRS: an RTMP push played over WebRTC (rtmp_to_rtc) in chromium: both tracks") {
  const std::string dir = temp_dir();
  test::Srs srs(dir);
  test::WhipEndpoint browser;
  auto p = test::marked_pipeline("talkerrtmpsink location=" + srs.rtmp_url("relay"));
  test::NullOnExit stop_at_end{p.get()};
  gst_element_set_state(p.get(), GST_STATE_PLAYING);
  BusLog log;
  log.read(p.get(), "talker-rtmp", 20000ms, [&] { return log.count("connected") >= 1; });
  REQUIRE(log.count("connected") == 1);
  log.read(p.get(), "talker-rtmp", 10000ms, [&] { return srs_has_av(srs, "relay"); });
  REQUIRE(srs_has_av(srs, "relay"));
  const auto viewer = watch_over_whep(srs, browser, p.get(), log, "talker-rtmp", "relay", 12000ms);
  gst_element_set_state(p.get(), GST_STATE_NULL);
  INFO(viewer.dump());
  CHECK(log.errors.empty());
  CHECK(viewer["framesDecoded"].get<int>() > 100);
  CHECK(viewer["audioChunks"].get<int>() > 300);
  CHECK(viewer["width"] == 320);
  const std::vector<double> seconds = viewer_offsets(viewer);
  // SRS turns the AAC into Opus for WebRTC; reported, not bounded (the issue
  // asks that both tracks play).
  WARN("RTMP -> SRS rtmp_to_rtc -> WHEP (chromium): flash/beep offsets (ms): " << join_ms(seconds));
  CHECK(!seconds.empty());
}

// Hidden ([.]): ten minutes. meson test -C build --benchmark --suite soak -v srs-soak
TEST_CASE("SRS soak: 10 minutes of WHIP push, one session, memory flat", "[.soak]") {
  const std::string dir = temp_dir();
  test::Srs srs(dir);
  auto p = test::marked_pipeline("talkerwhipsink location=\"" + srs.whip_url("soak") + "\"");
  test::NullOnExit stop_at_end{p.get()};
  BusLog log;
  play_until_connected(p.get(), &log);
  REQUIRE(log.count("connected") == 1);
  std::vector<double> rss, fds, threads;
  int minutes_with_av = 0;
  for (int minute = 1; minute <= 10; ++minute) {
    log.read(p.get(), "talker-whip", 60000ms);
    rss.push_back(test::rss_mib());
    fds.push_back(test::open_fds());
    threads.push_back(test::threads());
    if (srs_has_av(srs, "soak")) ++minutes_with_av;
    std::printf("minute %2d: RSS %.1f MiB, %d fds, %d threads\n", minute, rss.back(),
                int(fds.back()), int(threads.back()));
  }
  // The last minutes into FLV: both tracks still.
  const std::string flv = dir + "/soak.flv";
  test::Child viewer = srs.record_flv("soak", flv);
  log.read(p.get(), "talker-whip", 6000ms);
  viewer.stop();
  gst_element_set_state(p.get(), GST_STATE_NULL);
  const test::Marks m = test::marks_of_flv(flv);
  // Minutes 1-4 are the warm-up (encoder pools, jitter history); the slope
  // and growth over minutes 5-10.
  const std::vector<double> settled(rss.begin() + 4, rss.end());
  const double growth = (rss.back() - rss[4]) / rss[4];
  std::printf(
      "RSS slope after warm-up %.3f MiB/min, growth %.1f %% (minute 5 %.1f -> %.1f MiB); "
      "fds %d -> %d, threads %d -> %d; last 6 s of FLV: %d frames, %.1f s of audio\n",
      test::slope(settled), 100 * growth, rss[4], rss.back(), int(fds.front()), int(fds.back()),
      int(threads.front()), int(threads.back()), m.frames, m.samples / 48000.0);
  for (auto &msg : log.messages) UNSCOPED_INFO(msg);
  CHECK(log.errors.empty());
  CHECK(log.count("connected") == 1);
  CHECK(log.count("reconnecting") == 0);
  CHECK(minutes_with_av == 10);
  CHECK(m.frames > 3 * 25);
  CHECK(m.samples > 3 * 48000);
  CHECK(growth < 0.05);
  CHECK(fds.back() <= fds.front() + 2);
  CHECK(threads.back() <= threads.front() + 2);
}
