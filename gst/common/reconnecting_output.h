// SPDX-License-Identifier: LGPL-2.1-or-later
// The part of talkerrtmpsink and talkerwhipsink that is not the protocol:
// request pads that encode what arrives (built when its caps are known), a
// stage (muxer + network sink, or webrtcbin) replaced on every reconnect
// behind a StageGate, and the worker thread that runs sessions with back-off,
// posts state messages and stops for good with a bus error.
#pragma once

#include <gst/gst.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gst/common/stream_out.h"
#include "lib/net/backoff.h"

namespace talker::gst {

struct RetrySettings {
  guint first_delay_ms = 1000;
  guint max_delay_ms = 30000;
  gint max_retries = -1;  // -1: for ever
};

class ReconnectingOutput {
 public:
  ReconnectingOutput(GstBin *bin, WireFormat wire, const char *message_name);
  virtual ~ReconnectingOutput();
  ReconnectingOutput(const ReconnectingOutput &) = delete;
  ReconnectingOutput &operator=(const ReconnectingOutput &) = delete;

  // Settings are read when a session starts.
  EncoderSettings encoder;
  RetrySettings retry;
  // The RTP payloaders' SSRCs (video, audio); 0: their own random ones. Set
  // before caps arrive, they stay the same over every reconnect.
  guint rtp_ssrcs[2] = {0, 0};

  // GstElement::request_new_pad / release_pad for "video" and "audio".
  GstPad *request_pad(GstPadTemplate *templ, MediaKind kind);
  void release_pad(GstPad *pad);
  // From the bin's change_state: READY→PAUSED starts the worker, PAUSED→READY
  // stops it and removes the stage.
  void start();
  void stop();
  // From the bin's handle_message: errors from the stage end the session and
  // are not passed on (true).
  bool swallow_message(GstMessage *message);
  // The `stats` property's common part: state, attempt, sessions, drops.
  GstStructure *common_stats() const;

 protected:
  struct SessionEnd {
    bool fatal = false;        // no retry: a bus error
    guint retry_after_ms = 0;  // the server's Retry-After
    std::string reason;        // for the messages
    guint http_status = 0;     // when an HTTP answer ended it
    std::string body_start;    // the first bytes of that answer
  };
  struct Track {
    MediaKind kind;
    bool eos = false;
    GstPad *pad = nullptr;         // the bin's request pad (ghost)
    GstElement *tail = nullptr;    // null until caps arrived
    GstCaps *wire_caps = nullptr;  // the tail's caps once negotiated
  };

  // On the worker thread: run one session until it ends (stopping() or
  // failed() says why, or it returns an end of its own).
  virtual SessionEnd run_session(unsigned attempt) = 0;
  // What the stage's ghost pad for `track` targets (a request pad of the
  // stage's muxer or webrtcbin; a ref). Called by install_stage().
  virtual GstPad *stage_target(GstElement *stage, const Track &track, unsigned index) = 0;
  // Redacts the configured location for logs and messages.
  virtual std::string public_location() const = 0;
  // From stop(), any thread: unblock whatever run_session is waiting on
  // outside wait_until (an HTTP request).
  virtual void interrupt() {}
  // Whether the stage's own sink posts EOS once it has flushed (rtmp2sink
  // does; webrtcbin never does, so the bin posts it for it).
  virtual bool stage_posts_eos() const { return false; }

  // Helpers for run_session.
  void install_stage(GstElement *stage);  // adds, links every track, syncs state
  void remove_stage();
  GstElement *stage() const { return stage_; }
  // Waits until `done` (polled every 50 ms and on every wake), the session
  // failed, the element is stopping, or `timeout` passed. True only for done.
  bool wait_until(const std::function<bool()> &done, std::chrono::milliseconds timeout);
  void session_failed(const std::string &reason);  // any thread
  bool failed() const;
  bool stopping() const;
  std::string failure_reason() const;
  void connected(GstStructure *details);  // opens the gate, posts "connected"
  void post_state(const char *state, GstStructure *fields = nullptr);
  std::vector<Track> tracks_snapshot() const;
  GstBin *bin_;
  StageGate gate_;

 private:
  void worker();
  void on_caps(Track *track, GstCaps *caps);
  void on_eos(Track *track);
  void finish_stream();
  bool tracks_ready_locked() const;
  static GstPadProbeReturn caps_probe(GstPad *pad, GstPadProbeInfo *info, gpointer data);

  WireFormat wire_;
  std::string message_name_;
  mutable std::mutex lock_;
  std::condition_variable wake_;
  std::vector<std::unique_ptr<Track>> tracks_;
  GstElement *stage_ = nullptr;
  std::thread worker_;
  bool stopping_ = false;
  bool failed_ = false;
  bool eos_ = false;        // every track has had EOS: no more sessions
  bool stage_eos_ = false;  // the stage's sink posted EOS
  std::string failure_reason_;
  std::string state_ = "idle";
  unsigned attempt_ = 0;
  guint sessions_ = 0;
};

}  // namespace talker::gst
