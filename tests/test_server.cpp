// SPDX-License-Identifier: LGPL-2.1-or-later
// talker-server's parts without a network: which codecs and payload types
// an offer gets, the public-IP candidates, options and the config file.
#include "tests/catch.h"

#include <gst/gst.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "tools/server/offer.h"
#include "tools/server/options.h"

using namespace talker::server;

namespace {

std::string read(const std::string &path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Chromium 156's offer for two recvonly transceivers (video, audio).
std::string chromium_offer() {
  return read(std::string(TALKER_SOURCE_ROOT) + "/tests/server/chromium-offer.sdp");
}

// Removes every payload type of `codec` from the offer, as a browser
// without it would send.
std::string without(std::string sdp, const std::string &codec) {
  std::smatch m;
  std::regex map("a=rtpmap:(\\d+) " + codec + "/");
  std::vector<std::string> pts;
  for (auto it = std::sregex_iterator(sdp.begin(), sdp.end(), map); it != std::sregex_iterator();
       ++it)
    pts.push_back((*it)[1]);
  for (const auto &pt : pts) {
    sdp = std::regex_replace(
        sdp, std::regex("a=(rtpmap|fmtp|rtcp-fb):" + pt + " [^\\r\\n]*\\r?\\n"), "");
    sdp =
        std::regex_replace(sdp, std::regex("(m=video [^\\r\\n]*?) " + pt + "(?=[ \\r\\n])"), "$1");
  }
  return sdp;
}

}  // namespace

TEST_CASE("offers: H.264 constrained baseline with packetization-mode 1 first, VP8 else, Opus") {
  gst_init(nullptr, nullptr);
  const std::string offer = chromium_offer();
  REQUIRE(offer.rfind("v=0", 0) == 0);
  const OfferedCodecs c = choose_codecs(offer);
  CHECK(c.video == VideoCodec::kH264);
  CHECK(c.video_pt == 108);  // 42e01f, mode 1 (102 is plain baseline 42001f)
  CHECK(c.video_profile == "42e01f");
  CHECK(c.audio_pt == 111);
  CHECK(c.video_first);

  // Only plain baseline offered: still H.264 (our stream is valid baseline).
  std::string baseline =
      std::regex_replace(offer, std::regex("profile-level-id=42e01f"), "profile-level-id=4d0032");
  const OfferedCodecs b = choose_codecs(baseline);
  CHECK(b.video_pt == 102);
  CHECK(b.video_profile == "42001f");

  // No H.264 (a browser without it): VP8, with the browser's payload type.
  const OfferedCodecs v = choose_codecs(without(offer, "H264"));
  CHECK(v.video == VideoCodec::kVP8);
  CHECK(v.video_pt == 96);

  // Packetization mode 0 only: not H.264.
  std::string mode0 =
      std::regex_replace(offer, std::regex("packetization-mode=1"), "packetization-mode=0");
  CHECK(choose_codecs(mode0).video == VideoCodec::kVP8);

  CHECK_THROWS_WITH(choose_codecs(without(without(offer, "H264"), "VP8")),
                    Catch::Matchers::StartsWith("sdp: the offer receives no video"));

  // Payload types outside RTP's 7 bits are not payload types (fuzz_offer_sdp
  // found an Opus rtpmap at 1111 handed on as the audio's pt).
  std::string wide = std::regex_replace(offer, std::regex("a=rtpmap:111 "), "a=rtpmap:1111 ");
  CHECK_THROWS_WITH(choose_codecs(wide),
                    Catch::Matchers::StartsWith("sdp: the offer receives no Opus"));
  std::string negative = std::regex_replace(offer, std::regex("a=rtpmap:111 "), "a=rtpmap:-17 ");
  CHECK_THROWS_WITH(choose_codecs(negative),
                    Catch::Matchers::StartsWith("sdp: the offer receives no Opus"));
  CHECK_THROWS_WITH(choose_codecs(without(offer, "opus")), "sdp: the offer receives no Opus audio");
  CHECK_THROWS_WITH(choose_codecs("hello"), "sdp: not an SDP offer");
  // A browser that only sends (sendonly) receives nothing.
  CHECK_THROWS_AS(choose_codecs(std::regex_replace(offer, std::regex("a=recvonly"), "a=sendonly")),
                  OfferError);
}

TEST_CASE("--public-ip repeats each UDP host candidate at the public address") {
  const std::string sdp =
      "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
      "a=candidate:1 1 UDP 2015363327 192.168.1.5 50000 typ host\r\n"
      "a=candidate:2 1 TCP 1015021823 192.168.1.5 9 typ host tcptype active\r\n"
      "a=candidate:3 1 UDP 1679819263 203.0.113.9 50001 typ srflx raddr 192.168.1.5 rport "
      "50001\r\n";
  const std::string out = add_public_candidates(sdp, "198.51.100.7");
  CHECK(out.find("a=candidate:p1 1 UDP 2015363327 198.51.100.7 50000 typ host\r\n") !=
        std::string::npos);
  CHECK(out.find("a=candidate:1 1 UDP 2015363327 192.168.1.5 50000 typ host\r\n") !=
        std::string::npos);
  CHECK(out.find("p2") == std::string::npos);  // TCP: not repeated
  CHECK(out.find("p3") == std::string::npos);  // not a host candidate
}

TEST_CASE("options: command line, config file with the same keys, errors that name the key") {
  const std::string path = std::string(g_get_tmp_dir()) + "/talker-server-test.conf";
  {
    std::ofstream f(path);
    f << "# a comment\n"
         "avatars = /srv/avatars\n"
         "max-sessions = 8\n"
         "ice-ports = 40000-40100\n"
         "stun = stun://stun.example:3478\n"
         "cors-origin = https://a.example\n"
         "cors-origin = https://b.example\n"
         "token = from-file\n";
  }
  const char *argv[] = {"talker-server", "--config", path.c_str(),
                        "--token",       "from-cli", "--public-ip=198.51.100.7"};
  const Options o = parse_options(6, const_cast<char **>(argv));
  CHECK(o.avatars == "/srv/avatars");
  CHECK(o.max_sessions == 8);
  CHECK(o.ice_port_min == 40000);
  CHECK(o.ice_port_max == 40100);
  CHECK(o.stun == "stun://stun.example:3478");
  CHECK(o.cors_origins.size() == 2);
  CHECK(o.token == "from-cli");  // the command line wins
  CHECK(o.public_ip == "198.51.100.7");
  CHECK(o.listen == "0.0.0.0:8010");

  auto error_of = [](std::vector<const char *> args) {
    args.insert(args.begin(), "talker-server");
    try {
      parse_options(int(args.size()), const_cast<char **>(args.data()));
    } catch (const UsageError &e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(error_of({"--max-sessions", "0", "--avatars", "x"}).find("--max-sessions") == 0);
  CHECK(error_of({"--ice-ports", "5000", "--avatars", "x"}) ==
        "--ice-ports: '5000' is not MIN-MAX");
  CHECK(error_of({"--ice-ports", "50000-40000", "--avatars", "x"}).find("below MIN") !=
        std::string::npos);
  CHECK(error_of({"--nope", "1", "--avatars", "x"}) == "unknown option --nope");
  CHECK(error_of({"--tls-cert", "c.pem", "--avatars", "x"}) ==
        "--tls-cert and --tls-key go together");
  CHECK(error_of({"--max-sessions", "3"}) == "--avatars DIR is required");
  CHECK(error_of({"--token"}) == "--token needs a value");
  // Push, voices, avatar jobs.
  CHECK(error_of({"--transport", "srt", "--avatars", "x"}) ==
        "--transport: 'srt' is not webrtc, whip or rtmp");
  CHECK(error_of({"--transport", "rtmp", "--avatars", "x"}) == "--transport rtmp needs --push-url");
  CHECK(error_of({"--push-url", "rtmp://h/live/s", "--avatars", "x"}) ==
        "--push-url needs --transport whip or rtmp");
  CHECK(error_of({"--transport", "whip", "--push-url", "rtmp://h/live/s", "--avatars", "x"}) ==
        "--push-url: a WHIP endpoint is an http:// or https:// URL");
  CHECK(error_of({"--transport", "rtmp", "--push-url", "http://h/whip", "--avatars", "x"}) ==
        "--push-url: an RTMP server is an rtmp:// or rtmps:// URL");
  CHECK(error_of({"--transport", "rtmp", "--push-url", "rtmp://h/live/s{n}", "--avatars", "x"})
            .empty());
  CHECK(error_of({"--voices", "/nonexistent-voices", "--avatars", "x"}) ==
        "--voices: /nonexistent-voices is not a folder");
  CHECK(error_of({"--avatar-sources", "/nonexistent", "--avatars", "x"}) ==
        "--avatar-sources: /nonexistent is not a folder");
  CHECK(error_of({"--avatar-jobs", "17", "--avatars", "x"}).find("--avatar-jobs") == 0);
  CHECK(error_of({"--avatar-jobs", "0", "--avatars", "x"}).empty());
  CHECK(error_of({"--decoder", "vqgan", "--avatars", "x"}) ==
        "--decoder: 'vqgan' is not sd-vae or taesd");
  CHECK(error_of({"--decoder", "taesd", "--avatars", "x"}).empty());
  {
    std::ofstream f(path);
    f << "avatars = x\nbogus = 1\n";
  }
  CHECK(error_of({"--config", path.c_str()}) == path + ":2: unknown key 'bogus'");
  {
    std::ofstream f(path);
    f << "avatars = x\nidle-timeout = soon\n";
  }
  CHECK(error_of({"--config", path.c_str()}).find(path + ":2: --idle-timeout: 'soon'") == 0);
  std::remove(path.c_str());
}

int main(int argc, char *argv[]) {
  gst_init(nullptr, nullptr);
  return Catch::Session().run(argc, argv);
}
