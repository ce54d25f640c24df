// SPDX-License-Identifier: LGPL-2.1-or-later
// talker-server's settings: command-line options and a config file with the
// same keys (`key = value` lines, `#` comments). The command line wins.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace talker::server {

struct Options {
  // HTTP
  std::string listen = "0.0.0.0:8010";  // LiveTalking's port
  std::string token;                    // Bearer token for the API; empty: none
  std::string tls_cert, tls_key;
  std::vector<std::string> cors_origins;      // exact origins allowed; none: CORS off
  std::size_t max_body = 256 * 1024;          // bytes, any request but uploads
  std::size_t max_upload = 16 * 1024 * 1024;  // bytes, /humanaudio
  double max_audio_s = 120;                   // seconds of uploaded audio
  double header_timeout_s = 10;               // a request's headers must arrive within this
  double body_timeout_s = 30;                 // longest pause within a request body
  // Sessions
  unsigned max_sessions = 4;
  double idle_timeout_s = 600;    // no API request and nothing said for this long
  double peer_timeout_s = 5;      // no RTCP from the browser for this long after connecting
  double connect_timeout_s = 30;  // ICE + DTLS must be up within this
  std::string record_dir;         // /record writes here; empty: recording is off
  unsigned avatar_jobs = 1;       // avatar builds at once; 0: /api/avatar/task is off
  std::string avatar_builder;     // talker-avatar; empty: the one beside talker-server
  std::string avatar_sources;     // a folder of videos/photos tasks may name; empty: uploads only
  std::size_t max_avatar_upload = 256 * 1024 * 1024;  // bytes, /api/avatar/task
  unsigned avatar_max_frames = 750;                   // frames an avatar job reads at most
  // Avatars and models
  std::string avatars;  // folder of avatar folders
  std::string default_avatar = "default";
  std::string whisper_model, unet, unet_config, vae;
  std::string device = "cpu";
  std::string dtype;              // musetalklipsync's dtype; empty: its default
  std::string decoder;            // musetalklipsync's decoder (sd-vae, taesd); empty: its default
  unsigned batch_size = 0;        // 0: the element's default
  int encoder_latency_ms = -1;    // -1: the element's default
  int inference_latency_ms = -1;  // -1: the element's default
  int shared_batch_size = -1;     // -1: the element's default (sessions share model runs)
  unsigned transition_ms = 200;
  // Voice
  std::string tts_engine = "espeak", tts_voice, tts_server, tts_model, tts_ref_audio, tts_ref_text;
  std::string tts_api_key_env;  // name of the environment variable holding the TTS API key
  std::string voices;  // reference recordings /offer's refaudio names; empty: refaudio refused
  // Conversation (/human type:chat): an OpenAI-compatible server
  std::string llm_url, llm_model, llm_key_env, system_prompt;
  unsigned llm_max_turns = 8;
  unsigned llm_timeout_s = 60;
  // Push (/push): a session streamed to a server instead of answering a browser
  std::string transport = "webrtc";  // webrtc (no push), whip or rtmp
  std::string push_url;              // {n} is replaced by the push's slot number
  std::string push_token_env;        // the WHIP Bearer token's environment variable
  // WebRTC
  std::string stun;               // stun://host:port (webrtcbin takes one)
  std::vector<std::string> turn;  // turn(s)://user:pass@host:port
  unsigned ice_port_min = 0, ice_port_max = 0;
  std::string public_ip;
  unsigned video_bitrate_kbps = 1500, audio_bitrate = 48000;
};

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Parses argv (and --config FILE, read first). Throws UsageError naming the
// option or the file and line.
Options parse_options(int argc, char **argv);
// Applies one key (the long option without dashes) to `o`; false if unknown.
bool apply_option(Options &o, const std::string &key, const std::string &value);
// Reads a config file into `o`.
void read_config(Options &o, const std::string &path);
std::string usage();

// "a-b" → {a, b}; throws UsageError.
std::pair<unsigned, unsigned> parse_port_range(const std::string &text);

}  // namespace talker::server
