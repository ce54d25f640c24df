// SPDX-License-Identifier: LGPL-2.1-or-later
// Engines that are HTTP servers: OpenAI-compatible /v1/audio/speech, and the
// GPT-SoVITS and CosyVoice APIs LiveTalking users run locally. Answers are
// read as they stream in and converted to 16 kHz mono.
#include <nlohmann/json.hpp>

#include <fstream>
#include <iterator>

#include "lib/audio/pcm_stream.h"
#include "lib/common/error.h"
#include "lib/net/http_client.h"
#include "lib/tts/engine.h"

namespace talker::tts {
namespace {

using audio::PcmStreamDecoder;

std::string join_url(std::string server, const std::string &path) {
  while (!server.empty() && server.back() == '/') server.pop_back();
  return server + path;
}

class HttpEngine : public Engine {
 public:
  HttpEngine(const char *name, const EngineSettings &s, const std::string &default_server)
      : name_(name), settings_(s), client_(s.timeout_s) {
    if (settings_.server.empty()) settings_.server = default_server;
    net::check_http_url(settings_.server, std::string(name) + ": server");
    if (s.timeout_s == 0) throw Error(std::string(name) + ": timeout must be at least 1 s");
  }

  const char *name() const override { return name_; }

  void synthesize(const std::string &text, const VoiceOptions &voice,
                  const AudioSink &sink) override {
    PcmStreamDecoder decoder = make_decoder();
    std::vector<int16_t> pcm;
    bool stopped = false;
    net::HttpRequest request = make_request(text, voice);
    request.refuse_text = true;
    client_.send(request, [&](const uint8_t *data, size_t n) {
      pcm.clear();
      decoder.feed(data, n, pcm);
      if (!pcm.empty() && !sink(pcm.data(), pcm.size())) stopped = true;
      return !stopped;
    });
    if (stopped) return;
    pcm.clear();
    decoder.finish(pcm);
    if (!pcm.empty()) sink(pcm.data(), pcm.size());
  }

  void cancel() override { client_.cancel(); }

 protected:
  virtual net::HttpRequest make_request(const std::string &text,
                                        const VoiceOptions &voice) const = 0;
  virtual PcmStreamDecoder make_decoder() const = 0;

  const char *name_;
  EngineSettings settings_;
  net::HttpClient client_;
};

// POST {server}/v1/audio/speech, JSON in, audio out (OpenAI and the many
// servers that copy its API).
class OpenAiEngine : public HttpEngine {
 public:
  explicit OpenAiEngine(const EngineSettings &s)
      : HttpEngine("openai", s, "https://api.openai.com") {}

 protected:
  net::HttpRequest make_request(const std::string &text, const VoiceOptions &voice) const override {
    net::HttpRequest r;
    // Base URLs are often given as the SDKs take them, ending in /v1.
    std::string base = settings_.server;
    while (!base.empty() && base.back() == '/') base.pop_back();
    const bool has_v1 = base.size() >= 3 && base.compare(base.size() - 3, 3, "/v1") == 0;
    r.url = join_url(base, has_v1 ? "/audio/speech" : "/v1/audio/speech");
    if (!settings_.api_key.empty())
      r.headers.emplace_back("Authorization", "Bearer " + settings_.api_key);
    nlohmann::json body = {
        {"model", settings_.model.empty() ? "tts-1" : settings_.model},
        {"input", text},
        {"voice", !voice.voice.empty()      ? voice.voice
                  : settings_.voice.empty() ? "alloy"
                                            : settings_.voice},
        {"response_format", settings_.response_format == ResponseFormat::kPcm ? "pcm" : "wav"},
    };
    if (voice.speed > 0) body["speed"] = voice.speed;  // OpenAI: 0.25-4
    r.content_type = "application/json";
    r.body = body.dump();
    return r;
  }
  PcmStreamDecoder make_decoder() const override {
    // OpenAI's pcm is 24 kHz S16LE mono.
    if (settings_.response_format == ResponseFormat::kPcm)
      return PcmStreamDecoder::raw_s16le(settings_.server_rate ? settings_.server_rate : 24000, 1);
    return PcmStreamDecoder::wav();
  }
};

// GPT-SoVITS api_v2: POST {server}/tts. Streaming WAV: one header with unknown
// sizes, then PCM as it is generated. The reference audio is a path on the
// server's disk.
class GptSovitsEngine : public HttpEngine {
 public:
  explicit GptSovitsEngine(const EngineSettings &s)
      : HttpEngine("gpt-sovits", s, "http://127.0.0.1:9880") {
    if (settings_.ref_audio.empty())
      throw Error(
          "gpt-sovits: ref-audio is required (the reference WAV's path on the GPT-SoVITS server)");
  }

 protected:
  std::string check(const VoiceOptions &voice) const override {
    if (!voice.voice.empty())
      return "gpt-sovits: no named voices (its voice is the reference audio: refaudio)";
    return HttpEngine::check(voice);
  }

  net::HttpRequest make_request(const std::string &text, const VoiceOptions &voice) const override {
    const std::string lang = settings_.language.empty() ? "auto" : settings_.language;
    nlohmann::json body = {
        {"text", text},
        {"text_lang", lang},
        {"ref_audio_path", settings_.ref_audio},
        {"prompt_text", settings_.ref_text},
        {"prompt_lang", lang},
        {"media_type", "wav"},
        {"streaming_mode", true},
    };
    if (voice.speed > 0) body["speed_factor"] = voice.speed;
    net::HttpRequest r;
    r.url = join_url(settings_.server, "/tts");
    r.content_type = "application/json";
    r.body = body.dump();
    return r;
  }
  PcmStreamDecoder make_decoder() const override { return PcmStreamDecoder::wav(); }
};

// CosyVoice's FastAPI server: multipart form in, raw S16LE out at the model's
// rate (24000 for CosyVoice2, 22050 for CosyVoice 1: server-rate). With a
// reference audio, zero-shot cloning uploads it; otherwise a built-in speaker.
class CosyVoiceEngine : public HttpEngine {
 public:
  explicit CosyVoiceEngine(const EngineSettings &s)
      : HttpEngine("cosyvoice", s, "http://127.0.0.1:50000") {
    if (!settings_.ref_audio.empty()) {
      std::ifstream in(settings_.ref_audio, std::ios::binary);
      if (!in) throw Error("cosyvoice: cannot read ref-audio '" + settings_.ref_audio + "'");
      prompt_wav_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      if (prompt_wav_.empty())
        throw Error("cosyvoice: ref-audio '" + settings_.ref_audio + "' is empty");
    }
  }

 protected:
  std::string check(const VoiceOptions &voice) const override {
    // Its FastAPI server takes no speed; a speaker id only without a reference.
    if (voice.speed != 0) return "cosyvoice: its server has no speed setting";
    if (!voice.voice.empty() && !prompt_wav_.empty())
      return "cosyvoice: the reference audio is the voice here (refaudio), not a speaker id";
    return HttpEngine::check(voice);
  }

  net::HttpRequest make_request(const std::string &text, const VoiceOptions &voice) const override {
    net::HttpRequest r;
    r.form_fields.emplace_back("tts_text", text);
    if (prompt_wav_.empty()) {
      r.url = join_url(settings_.server, "/inference_sft");
      const std::string &speaker = voice.voice.empty() ? settings_.voice : voice.voice;
      r.form_fields.emplace_back("spk_id", speaker.empty() ? "中文女" : speaker);
    } else {
      r.url = join_url(settings_.server, "/inference_zero_shot");
      r.form_fields.emplace_back("prompt_text", settings_.ref_text);
      r.form_files.push_back({"prompt_wav", "prompt_wav", "application/octet-stream", prompt_wav_});
    }
    return r;
  }
  PcmStreamDecoder make_decoder() const override {
    return PcmStreamDecoder::raw_s16le(settings_.server_rate ? settings_.server_rate : 24000, 1);
  }

 private:
  std::vector<uint8_t> prompt_wav_;
};

}  // namespace

std::unique_ptr<Engine> make_openai_engine(const EngineSettings &s) {
  return std::make_unique<OpenAiEngine>(s);
}
std::unique_ptr<Engine> make_gpt_sovits_engine(const EngineSettings &s) {
  return std::make_unique<GptSovitsEngine>(s);
}
std::unique_ptr<Engine> make_cosyvoice_engine(const EngineSettings &s) {
  return std::make_unique<CosyVoiceEngine>(s);
}

}  // namespace talker::tts
