// SPDX-License-Identifier: LGPL-2.1-or-later
// One browser's talking head: a live pipeline
//   talkertts ! tee ! queue ! talkinghead ! H.264/VP8 ! RTP ! clocksync ! webrtcbin
//             tee ! queue ! Opus ! RTP ! clocksync ! webrtcbin
// answering the browser's offer. Both branches leave webrtcbin at the same
// point of the timeline (running time + the talking head's latency), so the
// browser gets lips and sound together without having to resynchronise.
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gst/common/gst_ptr.h"
#include "gst/common/webrtc_peer.h"
#include "lib/tts/engine.h"
#include "tools/server/conversation.h"
#include "tools/server/offer.h"
#include "tools/server/options.h"
#include "tools/server/recorder.h"

namespace talker::server {

struct SessionInfo {
  std::uint64_t id = 0;
  std::string avatar;
  bool speaking = false, connected = false;
  std::int64_t created_unix_ms = 0;
  guint64 frames_generated = 0, frames_skipped = 0;
  unsigned viewers = 0;
  double latency_ms = 0;
  bool recording = false;
  std::string transport = "webrtc", push_state;  // push_state: the output's, for a push
};

// A subtitle event at playback time: state "start" or "end".
struct SentenceEvent {
  std::string state, text, reason;
  std::string spoken;  // what was said, when the subtitle (text) is written otherwise
  guint64 id = 0;
};

// Where a push session sends its stream (--transport whip|rtmp).
struct PushTarget {
  std::string transport;  // "whip" or "rtmp"
  std::string url;        // --push-url with {n} replaced
  std::string token;      // WHIP Bearer token, from --push-token-env
  unsigned slot = 0;      // the n in {n}
};

struct SessionError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Session {
 public:
  // `on_event` is called from a GStreamer thread when a sentence starts or
  // ends at the browser (its audio leaves the server).
  Session(std::uint64_t id, const Options &options, std::string avatar_name, std::string avatar_dir,
          std::function<void(const SentenceEvent &)> on_event);
  ~Session();
  Session(const Session &) = delete;
  Session &operator=(const Session &) = delete;

  // Starts the pipeline and answers `offer` (a complete, non-trickle offer):
  // the answer carries every candidate. Blocking; throws SessionError or
  // OfferError with a message for the client.
  std::string answer(const std::string &offer);
  // Instead of answering: starts the pipeline pushing to `target` through
  // talkerwhipsink or talkerrtmpsink (which reconnect by themselves).
  // Blocking; throws SessionError.
  void start_push(const PushTarget &target);
  bool push() const { return out_ != nullptr; }
  const PushTarget &push_target() const { return push_; }

  // `voice`: this utterance's TTS voice and speed (/human's tts); empty: the engine's.
  guint64 say(const std::string &text, const talker::tts::VoiceOptions &voice = {});
  // Why the session's TTS engine cannot speak with `voice`, or empty.
  std::string check_voice(const talker::tts::VoiceOptions &voice);
  // Before answer()/start_push(): the voice-cloning reference (a file the
  // server resolved from /offer's refaudio, and what it says).
  void set_reference(const std::string &ref_audio, const std::string &ref_text);

  // Action clips (the avatar's actions/<name>/): /offer's custom_config maps
  // LiveTalking's audiotype numbers to clip names.
  void set_clip_map(std::map<std::string, std::string> audiotype_to_clip);
  // The clip an audiotype (a mapped number or a clip name) names, or empty.
  std::string clip_for(const std::string &audiotype) const;
  // Plays clip `name` with its audio from the next free moment (after what
  // is being said); returns its seconds. Blocking the first time (the
  // audio is decoded); throws SessionError.
  double play_clip(const std::string &name);
  // /humanaudio: 16 kHz mono samples, spoken like a sentence.
  guint64 say_audio(std::vector<int16_t> samples);
  // /human type:chat: the LLM's reply is spoken as it streams in.
  void chat(const std::string &text, const talker::tts::VoiceOptions &voice = {});
  // Stops speech, and the LLM reply in flight.
  void interrupt();
  // /record: writes DIR/<id>.mp4 (H.264) or .webm (VP8) from the next key
  // frame; returns the path. Throws (already recording, cannot write).
  // Blocking: off the HTTP thread.
  std::string start_recording(const std::string &dir);
  void stop_recording();  // finishes the file; blocking
  bool recording() const;
  void touch();  // an API request for this session: it is not idle
  bool speaking() const;
  SessionInfo info();
  // Why the session must end ("" while it lives): peer gone, ICE failed,
  // pipeline error, idle.
  std::string check();
  // Stops reading the pipeline's bus (call on the main context, before stop()).
  void detach_bus();
  // Stops the pipeline (blocking; call off the HTTP thread).
  void stop();

  std::uint64_t id() const { return id_; }
  const std::string &avatar() const { return avatar_; }

 private:
  std::string source_description() const;
  void build(const OfferedCodecs *codecs);  // nullptr: a push to push_
  void play();
  void align_branches();
  void on_sentence_meta(GstBuffer *buffer, const GstSegment &segment);
  static GstPadProbeReturn audio_probe(GstPad *, GstPadProbeInfo *info, gpointer self);
  static gboolean on_bus(GstBus *, GstMessage *msg, gpointer self);
  std::int64_t now_ms() const;

  const std::uint64_t id_;
  const Options &options_;
  const std::string avatar_, avatar_dir_;
  const std::function<void(const SentenceEvent &)> on_event_;
  const std::int64_t created_unix_ms_, created_mono_ms_;

  gst::GstPtr<GstElement> pipeline_, webrtc_, tts_, head_, vsync_, async_, out_;
  PushTarget push_;
  std::string push_state_;  // the output's last state message (push sessions)
  GSource *bus_watch_ = nullptr;
  GstSegment audio_segment_;
  std::atomic<GstClockTime> playout_delay_{0};  // the video branch's latency: audio waits this
  struct Playback;  // sentence events at playback time; outlives the session for pending clock
                    // waits
  std::shared_ptr<Playback> playback_;
  std::atomic<std::int64_t> last_activity_ms_, connected_at_ms_{0};
  gst::PeerRtcpWatch peer_;
  std::mutex record_lock_;  // recorder_: /record and stop() come from different threads
  std::unique_ptr<Recorder> recorder_;
  std::atomic<bool> recording_{false};
  std::unique_ptr<Conversation> conversation_;  // with --llm-url
  talker::tts::VoiceOptions chat_voice_;        // the reply's voice (lock_)
  // A chat reply's text as written, by utterance, for the subtitles of its
  // first sentence (id 0 until it starts); lock_.
  std::map<guint64, std::pair<std::string, guint64>> written_;
  std::string ref_audio_, ref_text_;             // /offer's refaudio, reftext
  std::map<std::string, std::string> clip_map_;  // custom_config: audiotype → clip
  std::mutex clip_lock_;
  std::map<std::string, std::pair<std::vector<int16_t>, GstClockTime>> clip_audio_;  // decoded
  std::mutex lock_;                                                                  // error_
  std::string error_;
  bool stopped_ = false;
};

}  // namespace talker::server
