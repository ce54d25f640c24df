// SPDX-License-Identifier: LGPL-2.1-or-later
#include "tools/server/options.h"

#include <glib.h>

#include <fstream>
#include <functional>
#include <map>
#include <sstream>

namespace talker::server {
namespace {

std::string trim(const std::string &s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

double to_double(const std::string &key, const std::string &v, double lo, double hi) {
  try {
    std::size_t used = 0;
    const double d = std::stod(v, &used);
    if (used != v.size() || d < lo || d > hi) throw std::invalid_argument(v);
    return d;
  } catch (const std::exception &) {
    throw UsageError("--" + key + ": '" + v + "' is not a number in [" + std::to_string(lo) + ", " +
                     std::to_string(hi) + "]");
  }
}

unsigned to_unsigned(const std::string &key, const std::string &v, unsigned lo, unsigned hi) {
  const double d = to_double(key, v, lo, hi);
  if (d != static_cast<unsigned>(d))
    throw UsageError("--" + key + ": '" + v + "' is not an integer");
  return static_cast<unsigned>(d);
}

using Setter = std::function<void(Options &, const std::string &, const std::string &)>;

Setter str(std::string Options::*field) {
  return [field](Options &o, const std::string &, const std::string &v) { o.*field = v; };
}
Setter list(std::vector<std::string> Options::*field) {
  return
      [field](Options &o, const std::string &, const std::string &v) { (o.*field).push_back(v); };
}
Setter uint(unsigned Options::*field, unsigned lo, unsigned hi) {
  return [=](Options &o, const std::string &k, const std::string &v) {
    o.*field = to_unsigned(k, v, lo, hi);
  };
}
Setter num(double Options::*field, double lo, double hi) {
  return [=](Options &o, const std::string &k, const std::string &v) {
    o.*field = to_double(k, v, lo, hi);
  };
}
Setter integer(int Options::*field, int lo, int hi) {
  return [=](Options &o, const std::string &k, const std::string &v) {
    o.*field = static_cast<int>(to_unsigned(k, v, lo, hi));
  };
}

const std::map<std::string, Setter> &setters() {
  static const std::map<std::string, Setter> table = {
      {"listen", str(&Options::listen)},
      {"token", str(&Options::token)},
      {"tls-cert", str(&Options::tls_cert)},
      {"tls-key", str(&Options::tls_key)},
      {"cors-origin", list(&Options::cors_origins)},
      {"max-body",
       [](Options &o, const std::string &k, const std::string &v) {
         o.max_body = to_unsigned(k, v, 1024, 64u * 1024 * 1024);
       }},
      {"max-upload",
       [](Options &o, const std::string &k, const std::string &v) {
         o.max_upload = to_unsigned(k, v, 1024, 1024u * 1024 * 1024);
       }},
      {"max-audio-seconds", num(&Options::max_audio_s, 1, 3600)},
      {"header-timeout", num(&Options::header_timeout_s, 1, 3600)},
      {"body-timeout", num(&Options::body_timeout_s, 1, 3600)},
      {"max-sessions", uint(&Options::max_sessions, 1, 1024)},
      {"idle-timeout", num(&Options::idle_timeout_s, 1, 7 * 24 * 3600.0)},
      {"peer-timeout", num(&Options::peer_timeout_s, 1, 3600)},
      {"connect-timeout", num(&Options::connect_timeout_s, 1, 3600)},
      {"record-dir", str(&Options::record_dir)},
      {"avatar-jobs", uint(&Options::avatar_jobs, 0, 16)},
      {"avatar-builder", str(&Options::avatar_builder)},
      {"avatar-sources", str(&Options::avatar_sources)},
      {"max-avatar-upload",
       [](Options &o, const std::string &k, const std::string &v) {
         o.max_avatar_upload = to_unsigned(k, v, 1024, 4095u * 1024 * 1024);
       }},
      {"avatar-max-frames", uint(&Options::avatar_max_frames, 1, 100000)},
      {"avatars", str(&Options::avatars)},
      {"default-avatar", str(&Options::default_avatar)},
      {"whisper-model", str(&Options::whisper_model)},
      {"unet", str(&Options::unet)},
      {"unet-config", str(&Options::unet_config)},
      {"vae", str(&Options::vae)},
      {"device", str(&Options::device)},
      {"dtype", str(&Options::dtype)},
      {"decoder",
       [](Options &o, const std::string &k, const std::string &v) {
         if (v != "sd-vae" && v != "taesd")
           throw UsageError("--" + k + ": '" + v + "' is not sd-vae or taesd");
         o.decoder = v;
       }},
      {"batch-size", uint(&Options::batch_size, 1, 64)},
      {"encoder-latency-ms", integer(&Options::encoder_latency_ms, 0, 60000)},
      {"inference-latency-ms", integer(&Options::inference_latency_ms, 0, 60000)},
      {"shared-batch-size", integer(&Options::shared_batch_size, 0, 256)},
      {"transition-ms", uint(&Options::transition_ms, 0, 5000)},
      {"tts-engine", str(&Options::tts_engine)},
      {"tts-voice", str(&Options::tts_voice)},
      {"tts-server", str(&Options::tts_server)},
      {"tts-model", str(&Options::tts_model)},
      {"tts-ref-audio", str(&Options::tts_ref_audio)},
      {"tts-ref-text", str(&Options::tts_ref_text)},
      {"tts-api-key-env", str(&Options::tts_api_key_env)},
      {"voices", str(&Options::voices)},
      {"llm-url", str(&Options::llm_url)},
      {"llm-model", str(&Options::llm_model)},
      {"llm-key-env", str(&Options::llm_key_env)},
      {"system-prompt", str(&Options::system_prompt)},
      {"llm-max-turns", uint(&Options::llm_max_turns, 1, 1000)},
      {"llm-timeout", uint(&Options::llm_timeout_s, 1, 3600)},
      {"transport",
       [](Options &o, const std::string &k, const std::string &v) {
         if (v != "webrtc" && v != "whip" && v != "rtmp")
           throw UsageError("--" + k + ": '" + v + "' is not webrtc, whip or rtmp");
         o.transport = v;
       }},
      {"push-url", str(&Options::push_url)},
      {"push-token-env", str(&Options::push_token_env)},
      {"stun", str(&Options::stun)},
      {"turn", list(&Options::turn)},
      {"ice-ports",
       [](Options &o, const std::string &, const std::string &v) {
         std::tie(o.ice_port_min, o.ice_port_max) = parse_port_range(v);
       }},
      {"public-ip", str(&Options::public_ip)},
      {"video-bitrate", uint(&Options::video_bitrate_kbps, 100, 50000)},
      {"audio-bitrate", uint(&Options::audio_bitrate, 6000, 510000)},
  };
  return table;
}

}  // namespace

std::pair<unsigned, unsigned> parse_port_range(const std::string &text) {
  const auto dash = text.find('-');
  if (dash == std::string::npos) throw UsageError("--ice-ports: '" + text + "' is not MIN-MAX");
  const unsigned lo = to_unsigned("ice-ports", trim(text.substr(0, dash)), 1024, 65535);
  const unsigned hi = to_unsigned("ice-ports", trim(text.substr(dash + 1)), 1024, 65535);
  if (hi < lo) throw UsageError("--ice-ports: '" + text + "': MAX is below MIN");
  return {lo, hi};
}

bool apply_option(Options &o, const std::string &key, const std::string &value) {
  const auto it = setters().find(key);
  if (it == setters().end()) return false;
  it->second(o, key, value);
  return true;
}

void read_config(Options &o, const std::string &path) {
  std::ifstream in(path);
  if (!in) throw UsageError("--config: cannot read " + path);
  std::string line;
  for (unsigned n = 1; std::getline(in, line); ++n) {
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    const auto eq = line.find('=');
    if (eq == std::string::npos)
      throw UsageError(path + ":" + std::to_string(n) + ": expected key = value");
    const std::string key = trim(line.substr(0, eq));
    try {
      if (!apply_option(o, key, trim(line.substr(eq + 1))))
        throw UsageError("unknown key '" + key + "'");
    } catch (const UsageError &e) {
      throw UsageError(path + ":" + std::to_string(n) + ": " + e.what());
    }
  }
}

Options parse_options(int argc, char **argv) {
  Options o;
  std::vector<std::pair<std::string, std::string>> given;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") throw UsageError("");
    if (arg.rfind("--", 0) != 0) throw UsageError("unexpected argument '" + arg + "'");
    arg = arg.substr(2);
    std::string value;
    const auto eq = arg.find('=');
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else {
      if (i + 1 >= argc) throw UsageError("--" + arg + " needs a value");
      value = argv[++i];
    }
    given.emplace_back(arg, value);
  }
  // The config file first, so that the command line overrides it.
  for (const auto &[k, v] : given)
    if (k == "config") read_config(o, v);
  for (const auto &[k, v] : given) {
    if (k == "config") continue;
    if (!apply_option(o, k, v)) throw UsageError("unknown option --" + k);
  }
  if ((o.tls_cert.empty()) != (o.tls_key.empty()))
    throw UsageError("--tls-cert and --tls-key go together");
  if (o.avatars.empty()) throw UsageError("--avatars DIR is required");
  if (o.transport == "webrtc" && !o.push_url.empty())
    throw UsageError("--push-url needs --transport whip or rtmp");
  if (o.transport != "webrtc") {
    if (o.push_url.empty()) throw UsageError("--transport " + o.transport + " needs --push-url");
    const bool http = o.push_url.rfind("http://", 0) == 0 || o.push_url.rfind("https://", 0) == 0;
    const bool rtmp = o.push_url.rfind("rtmp://", 0) == 0 || o.push_url.rfind("rtmps://", 0) == 0;
    if (o.transport == "whip" && !http)
      throw UsageError("--push-url: a WHIP endpoint is an http:// or https:// URL");
    if (o.transport == "rtmp" && !rtmp)
      throw UsageError("--push-url: an RTMP server is an rtmp:// or rtmps:// URL");
  }
  if (!o.record_dir.empty() && !g_file_test(o.record_dir.c_str(), G_FILE_TEST_IS_DIR))
    throw UsageError("--record-dir: " + o.record_dir + " is not a folder");
  if (!o.voices.empty() && !g_file_test(o.voices.c_str(), G_FILE_TEST_IS_DIR))
    throw UsageError("--voices: " + o.voices + " is not a folder");
  if (!o.avatar_sources.empty() && !g_file_test(o.avatar_sources.c_str(), G_FILE_TEST_IS_DIR))
    throw UsageError("--avatar-sources: " + o.avatar_sources + " is not a folder");
  return o;
}

std::string usage() {
  return R"(talker-server: the interactive talking head over WebRTC, LiveTalking's API.

Usage: talker-server --avatars DIR --whisper-model F --unet F --vae DIR [options]

HTTP
  --listen HOST:PORT        address to serve on (0.0.0.0:8010)
  --token T                 Bearer token every API route requires (none)
  --tls-cert F --tls-key F  serve HTTPS (PEM files)
  --cors-origin ORIGIN      allow this origin cross-site (repeatable; none: CORS off)
  --max-body BYTES          largest request body (262144), uploads aside
  --max-upload BYTES        largest /humanaudio upload (16777216)
  --max-audio-seconds S     longest /humanaudio audio (120)
  --header-timeout S        a request's headers must arrive within S s, or the connection closes (10)
  --body-timeout S          a request body that pauses for S s closes its connection (30)
Sessions
  --max-sessions N          concurrent sessions (4); more offers get {code:-1}
  --idle-timeout S          end a session with no request and no speech for S s (600)
  --peer-timeout S          end a session S s after the browser stops sending RTCP (5)
  --connect-timeout S       end a session whose ICE/DTLS is not up within S s (30)
  --record-dir DIR          /record writes DIR/<sessionid>.mp4 (.webm for VP8); none: off
Avatar jobs (POST /api/avatar/task builds an avatar into --avatars with talker-avatar)
  --avatar-jobs N (1)       builds at once, the rest wait; 0: off
  --avatar-sources DIR      videos/photos a task may name instead of uploading one
  --max-avatar-upload BYTES (268435456)  --avatar-max-frames N (750)
  --avatar-builder PATH     talker-avatar (default: the one beside talker-server)
Avatars and models (talkinghead's properties of the same names)
  --avatars DIR             folder of avatar folders; clients name an avatar, never a path
  --default-avatar NAME     avatar when the offer names none (default)
  --whisper-model F  --unet F  --unet-config F  --vae DIR
  --device cpu|cuda  --dtype D  --batch-size N  --decoder sd-vae|taesd (--vae names its weights)
  --encoder-latency-ms MS  --inference-latency-ms MS  --transition-ms MS (200)
  --shared-batch-size N     most frames in one model run merged from all sessions (16; 0: none)
Voice (talkertts's properties)
  --tts-engine espeak|openai|gpt-sovits|cosyvoice (espeak)  --tts-voice V  --tts-server URL
  --tts-model M  --tts-ref-audio F  --tts-ref-text T  --tts-api-key-env VAR
  --voices DIR              reference recordings /offer's refaudio may name (gpt-sovits, cosyvoice)
Conversation (/human type:chat)
  --llm-url URL             OpenAI-compatible base URL (http://127.0.0.1:11434/v1); none: chat is off
  --llm-model M  --llm-key-env VAR (the API key's environment variable)  --system-prompt TEXT
  --llm-max-turns N (8)  --llm-timeout S (60)
Push (POST /push starts a session streamed to a server, POST /end_session ends it)
  --transport webrtc|whip|rtmp  what /push does: WHIP (SRS…) or RTMP (nginx-rtmp, Bilibili, Douyin); webrtc: no push
  --push-url URL            the WHIP endpoint or RTMP URL; {n} becomes the push's number (0, 1, …),
                            without it one push at a time. Stream keys are redacted in logs
  --push-token-env VAR      WHIP: the Bearer token is read from environment variable VAR
WebRTC
  --stun stun://HOST:PORT   STUN server (one: webrtcbin takes one; none by default)
  --turn turn://USER:PASS@HOST:PORT  TURN server (repeatable)
  --ice-ports MIN-MAX       UDP ports for ICE (open these in the firewall)
  --public-ip IP            also offer each host candidate at this address (1:1 NAT)
  --video-bitrate KBPS (1500)  --audio-bitrate BPS (48000)
  --config FILE             the same keys as `key = value` lines
)";
}

}  // namespace talker::server
