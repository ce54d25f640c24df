// SPDX-License-Identifier: LGPL-2.1-or-later
// talkerrtmpsink and talkerwhipsink against real servers on loopback: nginx
// with Debian's RTMP module (recording what it receives), and a WHIP endpoint
// whose media side is headless chromium (tests/whip/whip-endpoint.js). The
// source flashes white on the same PTS as an audio beep; after the trip
// through encoders and the wire, flash and beep must be within 40 ms.
#define TALKER_TEST_WITHOUT_TORCH
#include "tests/catch.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>

#include "lib/net/http_client.h"
#include "tests/browser_peer.h"
#include "tests/output_harness.h"

using namespace talker;
using namespace std::chrono_literals;
using gst::GstPtr;
using test::BusLog;

namespace {

constexpr double kSyncTolerance = 0.040;  // the bound, flash to beep

std::string temp_dir() {
  gchar *d = g_dir_make_tmp("talker-out-XXXXXX", nullptr);
  std::string s = d;
  g_free(d);
  return s;
}

std::string join_ms(const std::vector<double> &seconds, double scale = 1000) {
  std::string s;
  for (double v : seconds)
    s += (s.empty() ? "" : " ") + std::to_string(int(std::lround(v * scale)));
  return s;
}

GstElement *out_of(GstElement *pipeline) {
  return gst_bin_get_by_name(GST_BIN(pipeline), "out");
}

std::string stat_string(GstElement *out, const char *field) {
  GstStructure *s = nullptr;
  g_object_get(out, "stats", &s, nullptr);
  std::string v = s && gst_structure_get_string(s, field) ? gst_structure_get_string(s, field) : "";
  if (s) gst_structure_free(s);
  return v;
}

using test::WhipEndpoint;

GstPtr<GstElement> whip_pipeline(const std::string &location, const std::string &extra = "") {
  return test::marked_pipeline("talkerwhipsink location=\"" + location +
                               "\" retry-delay=300 max-retry-delay=2000 " + extra);
}

// Plays `p` and reads its bus until the WHIP output connected (20 s at most).
BusLog play_until_connected(GstElement *p, const char *name = "talker-whip") {
  gst_element_set_state(p, GST_STATE_PLAYING);
  BusLog log;
  log.read(p, name, 20000ms, [&] { return log.count("connected") >= 1; });
  if (log.count("connected") == 0)
    for (auto &m : log.messages) WARN("not connected: " << m);
  return log;
}

}  // namespace

TEST_CASE("Output elements: every property set through GObject reads back") {
  for (const char *factory : {"talkerrtmpsink", "talkerwhipsink"}) {
    GstPtr<GstElement> e(gst_element_factory_make(factory, nullptr));
    REQUIRE(e);
    guint n = 0, checked = 0;
    GParamSpec **specs = g_object_class_list_properties(G_OBJECT_GET_CLASS(e.get()), &n);
    for (guint i = 0; i < n; ++i) {
      GParamSpec *p = specs[i];
      // The element's own and the shared output bin's; not GstBin's.
      if (!(p->flags & G_PARAM_WRITABLE) || !g_type_is_a(p->owner_type, GST_TYPE_BIN) ||
          p->owner_type == GST_TYPE_BIN)
        continue;
      ++checked;
      GValue v = G_VALUE_INIT, back = G_VALUE_INIT;
      g_value_init(&back, p->value_type);
      g_object_get_property(G_OBJECT(e.get()), p->name, &back);
      INFO(factory << "." << p->name << " starts at its documented default");
      CHECK(g_param_value_defaults(p, &back));
      g_value_unset(&back);
      g_value_init(&v, p->value_type);
      if (G_IS_PARAM_SPEC_STRING(p))
        g_value_set_string(&v, "rtmp://example/x");
      else if (G_IS_PARAM_SPEC_UINT(p))
        g_value_set_uint(&v, G_PARAM_SPEC_UINT(p)->maximum - 1);
      else if (G_IS_PARAM_SPEC_INT(p))
        g_value_set_int(&v, 7);
      else if (G_IS_PARAM_SPEC_BOOLEAN(p))
        g_value_set_boolean(&v, !G_PARAM_SPEC_BOOLEAN(p)->default_value);
      g_object_set_property(G_OBJECT(e.get()), p->name, &v);
      g_value_init(&back, p->value_type);
      g_object_get_property(G_OBJECT(e.get()), p->name, &back);
      INFO(factory << "." << p->name);
      CHECK(g_param_values_cmp(p, &v, &back) == 0);
      g_value_unset(&v);
      g_value_unset(&back);
    }
    g_free(specs);
    CHECK(checked >= 8);
  }
}

TEST_CASE("RTMP: 10 s to nginx-rtmp, read back: both streams, durations, flash/beep in sync") {
  const std::string dir = temp_dir();
  const int port = test::free_port();
  test::NginxRtmp nginx(dir, port);
  auto p = test::marked_pipeline(
      "talkerrtmpsink location=rtmp://127.0.0.1:" + std::to_string(port) + "/live/stream-key-123");
  // The 10 s count from the connection: on a loaded machine the encoders'
  // start and the handshake took 2.8 s (CI), and nothing is recorded before.
  BusLog log = play_until_connected(p.get(), "talker-rtmp");
  REQUIRE(log.count("connected") == 1);
  log.read(p.get(), "talker-rtmp", 10500ms);
  gst_element_send_event(p.get(), gst_event_new_eos());
  GstPtr<GstBus> bus(gst_element_get_bus(p.get()));
  GstPtr<GstMessage> eos(gst_bus_timed_pop_filtered(
      bus.get(), 10 * GST_SECOND, GstMessageType(GST_MESSAGE_EOS | GST_MESSAGE_ERROR)));
  REQUIRE(eos);
  CHECK(GST_MESSAGE_TYPE(eos.get()) == GST_MESSAGE_EOS);
  gst_element_set_state(p.get(), GST_STATE_NULL);
  nginx.stop();

  CHECK(log.errors.empty());
  REQUIRE(log.count("connected") == 1);
  CHECK(log.count("reconnecting") == 0);
  for (auto &m : log.messages) CHECK(m.find("stream-key-123") == std::string::npos);
  const auto files = nginx.recordings();
  REQUIRE(files.size() == 1);
  const test::Marks m = test::marks_of_flv(files[0]);
  INFO("frames " << m.frames << ", video to " << m.video_end << " s, audio to " << m.audio_end
                 << " s");
  CHECK(m.video_end > 9.0);
  CHECK(m.audio_end > 9.0);
  CHECK(std::fabs(m.video_end - m.audio_end) < 0.2);
  CHECK(m.frames > 9 * 25);
  const auto offsets = test::mark_offsets(m.flashes, m.beeps);
  WARN("RTMP flash/beep offsets (ms, beep after flash): " << join_ms(offsets));
  CHECK(offsets.size() >= 4);
  for (double o : offsets) {
    INFO("flash/beep offset " << o * 1000 << " ms");
    CHECK(std::fabs(o) <= kSyncTolerance);
  }
}

TEST_CASE("RTMP: nginx stops for 3 s mid-stream; the push resumes by itself, no error") {
  const std::string dir = temp_dir();
  const int port = test::free_port();
  test::NginxRtmp nginx(dir, port);
  auto p = test::marked_pipeline("talkerrtmpsink retry-delay=300 location=rtmp://127.0.0.1:" +
                                 std::to_string(port) + "/live/resume");
  // Stopped once the push is up and has sent 3 s (a loaded machine took
  // more than 4 s to connect: nginx then went away mid-handshake).
  BusLog log = play_until_connected(p.get(), "talker-rtmp");
  REQUIRE(log.count("connected") == 1);
  log.read(p.get(), "talker-rtmp", 3000ms);
  nginx.stop();
  log.read(p.get(), "talker-rtmp", 3000ms);
  nginx.start();
  log.read(p.get(), "talker-rtmp", 8000ms, [&] { return log.count("connected") >= 2; });
  log.read(p.get(), "talker-rtmp", 5000ms);  // media after the reconnect
  GstPtr<GstElement> out(out_of(p.get()));
  CHECK(stat_string(out.get(), "state") == "connected");
  gst_element_set_state(p.get(), GST_STATE_NULL);
  nginx.stop();

  CHECK(log.errors.empty());
  CHECK(log.count("connected") == 2);
  CHECK(log.count("reconnecting") >= 1);
  const auto files = nginx.recordings();
  REQUIRE(files.size() == 2);
  // The second connection is a stream of its own: FLV header, sequence
  // headers, a key frame first, decodable from its start.
  const test::Marks m = test::marks_of_flv(files[1]);
  CHECK(m.frames > 3 * 25);
  CHECK(m.samples > 3 * 48000);
  const auto offsets = test::mark_offsets(m.flashes, m.beeps);
  WARN("RTMP after reconnect, flash/beep offsets (ms): " << join_ms(offsets));
  CHECK(!offsets.empty());
  for (double o : offsets) CHECK(std::fabs(o) <= kSyncTolerance);
}

TEST_CASE("WHIP: chromium decodes both tracks in sync; Bearer, relative Location, DELETE at stop") {
  WhipEndpoint endpoint;
  auto p = whip_pipeline(endpoint.url(), "auth-token=s3cret");
  BusLog log = play_until_connected(p.get());
  REQUIRE(log.count("connected") == 1);
  log.read(p.get(), "talker-whip", 9000ms);
  auto sessions = endpoint.get("sessions");
  GstPtr<GstElement> out(out_of(p.get()));
  GstStructure *stats = nullptr;
  g_object_get(out.get(), "stats", &stats, nullptr);
  gchar *stats_text = gst_structure_to_string(stats);
  INFO("stats: " << stats_text);
  guint64 bytes = 0;
  gst_structure_get_uint64(stats, "bytes-sent", &bytes);
  CHECK(bytes > 10000);  // black frames and silence compress to little
  CHECK(std::string(gst_structure_get_string(stats, "local-candidate")).size() > 0);
  g_free(stats_text);
  gst_structure_free(stats);
  gst_element_set_state(p.get(), GST_STATE_NULL);

  CHECK(log.errors.empty());
  REQUIRE(sessions.size() == 1);
  auto &s = sessions[0];
  INFO(s.dump());
  CHECK(s["framesDecoded"].get<int>() > 150);
  CHECK(s["audioChunks"].get<int>() > 500);
  CHECK(s["width"] == 320);
  CHECK(s["streams"].size() == 1);  // one MediaStream: the receiver syncs its tracks
  const auto offsets = test::mark_offsets(s["flashes"].get<std::vector<double>>(),
                                          s["beeps"].get<std::vector<double>>(), 1000);
  WARN("WHIP flash/beep offsets at the receiver (ms): " << join_ms(offsets, 1));
  REQUIRE(offsets.size() >= 3);
  // The receiver's times are when its JavaScript saw each frame and audio
  // chunk: audio as it is played out, after chromium's jitter buffer. On a
  // shared 2-core machine one late burst makes that buffer stretch audio by
  // 100 ms or more and shrink it back over seconds, while the A/V
  // synchroniser follows in steps (seen in CI: 30 134 86 34 -36 ms, beeps
  // 2151 then 1962 ms apart for flashes 2 s apart). Those are the receiver's
  // transients, not the sender's offset: a sender out of sync is out in every
  // reading, which the median catches. The sender's own offset is checked
  // reading by reading on the RTMP path above (same encoders, same clock).
  std::vector<double> sorted = offsets;
  std::sort(sorted.begin(), sorted.end());
  CHECK(std::fabs(sorted[sorted.size() / 2]) <= kSyncTolerance * 1000);
  const auto posts = endpoint.requests("POST");
  REQUIRE(posts.size() == 1);
  CHECK(posts[0]["authorization"] == "Bearer s3cret");
  CHECK(posts[0]["contentType"] == "application/sdp");
  // Location was "resource/1", relative to /whip/live: resolved to /whip/resource/1.
  const auto deletes = endpoint.requests("DELETE");
  REQUIRE(deletes.size() == 1);
  CHECK(deletes[0]["path"] == "/whip/resource/1");
  CHECK(deletes[0]["authorization"] == "Bearer s3cret");
}

TEST_CASE("WHIP: no token, no Authorization header; 307 followed with method and body") {
  WhipEndpoint endpoint;
  endpoint.mode({{"redirect", true}, {"location", "absolute"}});
  auto p = whip_pipeline(endpoint.url());
  BusLog log = play_until_connected(p.get());
  gst_element_set_state(p.get(), GST_STATE_NULL);
  CHECK(log.errors.empty());
  CHECK(log.count("connected") == 1);
  const auto posts = endpoint.requests("POST");
  REQUIRE(posts.size() == 2);
  CHECK(posts[0]["path"] == "/whip/live");
  CHECK(posts[1]["path"] == "/moved/whip/live");
  CHECK(posts[1]["contentType"] == "application/sdp");
  for (auto &r : posts) CHECK(r["authorization"].is_null());
  REQUIRE(endpoint.requests("DELETE").size() == 1);
  CHECK(endpoint.requests("DELETE")[0]["path"] == "/resource/1");
}

TEST_CASE("WHIP: a 403 is fatal, at once, with the status and the server's words") {
  WhipEndpoint endpoint;
  endpoint.mode({{"status", 403}, {"body", "stream key not allowed"}});
  auto p = whip_pipeline(endpoint.url());
  gst_element_set_state(p.get(), GST_STATE_PLAYING);
  BusLog log;
  log.read(p.get(), "talker-whip", 15000ms, [&] { return !log.errors.empty(); });
  gst_element_set_state(p.get(), GST_STATE_NULL);
  REQUIRE(log.errors.size() == 1);
  CHECK(log.errors[0].find("403") != std::string::npos);
  CHECK(log.errors[0].find("stream key not allowed") != std::string::npos);
  CHECK(log.count("failed") == 1);
  CHECK(log.count("reconnecting") == 0);
  CHECK(endpoint.requests("POST").size() == 1);
}

TEST_CASE("WHIP: 503 with Retry-After is retried no sooner than asked") {
  WhipEndpoint endpoint;
  endpoint.mode({{"status", 503}, {"retryAfter", 2}, {"times", 1}});
  auto p = whip_pipeline(endpoint.url());
  gst_element_set_state(p.get(), GST_STATE_PLAYING);
  BusLog log;
  log.read(p.get(), "talker-whip", 25000ms, [&] { return log.count("connected") >= 1; });
  gst_element_set_state(p.get(), GST_STATE_NULL);
  CHECK(log.errors.empty());
  CHECK(log.count("connected") == 1);
  const auto posts = endpoint.requests("POST");
  REQUIRE(posts.size() == 2);
  const double gap_ms = posts[1]["t"].get<double>() - posts[0]["t"].get<double>();
  CHECK(gap_ms >= 2000);  // retry-delay is 300 ms: only Retry-After explains this
  bool said = false;
  for (auto &m : log.messages)
    said |= m.find("reconnecting") != std::string::npos &&
            m.find("http-status=(uint)503") != std::string::npos;
  CHECK(said);
}

TEST_CASE("WHIP: endpoint down at start, up 3 s later: the element connects by itself") {
  const int port = test::free_port();
  auto p = whip_pipeline("http://127.0.0.1:" + std::to_string(port) + "/whip/live");
  gst_element_set_state(p.get(), GST_STATE_PLAYING);
  BusLog log;
  log.read(p.get(), "talker-whip", 3000ms);
  CHECK(log.count("reconnecting") >= 1);
  WhipEndpoint endpoint(port);
  log.read(p.get(), "talker-whip", 20000ms, [&] { return log.count("connected") >= 1; });
  gst_element_set_state(p.get(), GST_STATE_NULL);
  CHECK(log.errors.empty());
  CHECK(log.count("connected") == 1);
}

TEST_CASE("WHIP: the receiver vanishes mid-stream; a new session within 5 s") {
  WhipEndpoint endpoint;
  auto p = whip_pipeline(endpoint.url(), "rtcp-timeout=2000");
  BusLog log = play_until_connected(p.get());
  REQUIRE(log.count("connected") == 1);
  log.read(p.get(), "talker-whip", 3000ms);
  const auto vanished = std::chrono::steady_clock::now();
  endpoint.post("/control/vanish");
  log.read(p.get(), "talker-whip", 15000ms, [&] { return log.count("connected") >= 2; });
  const auto back = log.times.empty() ? vanished : log.times.back();
  log.read(p.get(), "talker-whip", 4000ms);
  auto sessions = endpoint.get("sessions");
  gst_element_set_state(p.get(), GST_STATE_NULL);
  CHECK(log.errors.empty());
  REQUIRE(log.count("connected") == 2);
  const double outage_s = std::chrono::duration<double>(back - vanished).count();
  INFO("from the receiver vanishing to the new session: " << outage_s << " s");
  CHECK(outage_s < 5.0);
  REQUIRE(sessions.size() == 2);
  CHECK(sessions[1]["framesDecoded"].get<int>() > 50);  // a key frame came at once
  // The lost session was DELETEd best-effort (the endpoint had forgotten it).
  CHECK(endpoint.requests("DELETE").size() >= 1);
}

TEST_CASE("WHIP: the receiver freezes (no RTCP, nothing closed); the session is renewed") {
  WhipEndpoint endpoint;
  auto p = whip_pipeline(endpoint.url(), "rtcp-timeout=1500");
  BusLog log = play_until_connected(p.get());
  REQUIRE(log.count("connected") == 1);
  log.read(p.get(), "talker-whip", 2000ms);
  endpoint.post("/control/freeze", {{"ms", 4000}});
  log.read(p.get(), "talker-whip", 20000ms, [&] { return log.count("connected") >= 2; });
  gst_element_set_state(p.get(), GST_STATE_NULL);
  CHECK(log.errors.empty());
  CHECK(log.count("connected") == 2);
  bool rtcp_loss = false;
  for (auto &m : log.messages)
    rtcp_loss |=
        m.find("reconnecting") != std::string::npos && m.find("no\\ RTCP") != std::string::npos;
  INFO(log.messages.size() << " messages");
  CHECK(rtcp_loss);
}

TEST_CASE("WHIP: Link ice-servers from an OPTIONS preflight are used by the first session") {
  // A STUN server's socket: any Binding Request on it proves the agent used it.
  const int udp = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(udp, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  getsockname(udp, reinterpret_cast<sockaddr *>(&a), &len);
  timeval tv{0, 200000};
  setsockopt(udp, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  WhipEndpoint endpoint;
  endpoint.mode({{"links", "<stun:127.0.0.1:" + std::to_string(ntohs(a.sin_port)) +
                               ">; rel=\"ice-server\""}});
  auto p = whip_pipeline(endpoint.url(), "ice-preflight=true");
  BusLog log = play_until_connected(p.get());
  gst_element_set_state(p.get(), GST_STATE_NULL);
  int binding_requests = 0;
  unsigned char packet[1500];
  for (ssize_t n; (n = recv(udp, packet, sizeof packet, 0)) > 0;)
    binding_requests += n >= 20 && packet[0] == 0x00 && packet[1] == 0x01;
  close(udp);
  CHECK(log.errors.empty());
  CHECK(log.count("connected") == 1);
  REQUIRE(endpoint.requests("OPTIONS").size() == 1);
  CHECK(endpoint.requests("OPTIONS")[0]["t"] <= endpoint.requests("POST")[0]["t"]);
  CHECK(binding_requests >= 1);
}

// Hidden ([.]): ten minutes. meson test --benchmark --suite soak -v whip-soak
TEST_CASE("WHIP soak: 10 minutes, the receiver restarts every minute", "[.soak]") {
  WhipEndpoint endpoint;
  auto p = whip_pipeline(endpoint.url(), "rtcp-timeout=2000");
  BusLog log = play_until_connected(p.get());
  REQUIRE(log.count("connected") == 1);
  std::vector<double> outages, rss;
  for (int minute = 1; minute <= 10; ++minute) {
    log.read(p.get(), "talker-whip", 57000ms);
    rss.push_back(test::rss_mib());
    const size_t connected_before = log.count("connected");
    const auto vanished = std::chrono::steady_clock::now();
    endpoint.post("/control/vanish");
    log.read(p.get(), "talker-whip", 20000ms,
             [&] { return log.count("connected") > connected_before; });
    outages.push_back(std::chrono::duration<double>(log.times.back() - vanished).count());
  }
  log.read(p.get(), "talker-whip", 3000ms);
  GstPtr<GstElement> out(out_of(p.get()));
  const std::string state = stat_string(out.get(), "state");
  gst_element_set_state(p.get(), GST_STATE_NULL);
  WARN("outages (ms): " << join_ms(outages) << "; RSS (MiB) by minute: " << join_ms(rss, 1));
  CHECK(log.errors.empty());
  CHECK(state == "connected");
  CHECK(log.count("connected") == 11);
  for (double o : outages) CHECK(o < 5.0);
  // Memory settles: the last five minutes grow less than 20 MiB in all.
  CHECK(rss.back() - rss[4] < 20);
}

int main(int argc, char *argv[]) {
  gst_init(&argc, &argv);
  return Catch::Session().run(argc, argv);
}
