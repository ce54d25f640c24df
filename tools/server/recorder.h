// SPDX-License-Identifier: LGPL-2.1-or-later
// /record: what the viewer gets, the RTP streams taken by a tee each where
// they leave for webrtcbin (both at the same point of the timeline),
// depayloaded and muxed into a file without re-encoding.
// H.264 goes into a fragmented MP4 (a fragment a second: readable up to the
// last whole second if the process dies), VP8 into WebM (clusters as they
// come: the same).
#pragma once

#include <gst/gst.h>

#include <condition_variable>
#include <mutex>
#include <string>

#include "gst/common/gst_ptr.h"

namespace talker::server {

class Recorder {
 public:
  // `video_tee` carries RTP H.264 or VP8, `audio_tee` RTP Opus.
  Recorder(GstElement *pipeline, GstElement *video_tee, GstElement *audio_tee, bool h264);
  ~Recorder();
  Recorder(const Recorder &) = delete;
  Recorder &operator=(const Recorder &) = delete;

  // The file extension for this session's codec: "mp4" or "webm".
  const char *extension() const { return h264_ ? "mp4" : "webm"; }
  // Starts writing `path` (replaced if it exists) from the next key frame,
  // which it asks the encoder for. Throws std::runtime_error.
  void start(const std::string &path);
  // Ends the file (the muxer finishes it) and removes the branch; blocks up
  // to `timeout_ms`. A no-op when not recording.
  void stop(unsigned timeout_ms = 3000);
  bool recording() const;

 private:
  static GstPadProbeReturn gate(GstPad *pad, GstPadProbeInfo *info, gpointer self);
  static GstPadProbeReturn on_eos(GstPad *pad, GstPadProbeInfo *info, gpointer self);

  gst::GstPtr<GstElement> pipeline_, video_tee_, audio_tee_;
  const bool h264_;
  mutable std::mutex lock_;
  std::condition_variable eos_cv_;
  gst::GstPtr<GstElement> bin_;
  gst::GstPtr<GstPad> video_src_, audio_src_;              // the tees' request pads
  gst::GstPtr<GstPad> video_gate_, audio_gate_;            // the depayloaders' outputs
  GstClockTime start_running_time_ = GST_CLOCK_TIME_NONE;  // the first key frame's
  bool eos_ = false;
};

}  // namespace talker::server
