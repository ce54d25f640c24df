// SPDX-License-Identifier: LGPL-2.1-or-later
// What talkerrtmpsink and talkerwhipsink share: the encoders that bring raw
// or encoded input to what the wire carries, and the gate in front of the part
// they replace on every reconnect (muxer + network sink, or webrtcbin).
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <string>

namespace talker::gst {

enum class MediaKind { kVideo, kAudio };
enum class WireFormat { kFlv, kRtp };

struct EncoderSettings {
  guint video_bitrate_kbps = 2000;
  guint keyframe_interval_ms = 2000;
  guint audio_bitrate_bps = 96000;
};

// RTP payload types the WHIP offer uses for what build_branch() payloads.
constexpr int kVideoPayloadType = 96;
constexpr int kAudioPayloadType = 111;

struct Branch {
  GstPad *sink = nullptr;      // the first element's sink pad (a ref)
  GstElement *tail = nullptr;  // its src pad gives what the wire carries
  bool encodes = false;        // raw input, encoded here
};

// Adds to `bin` (in its state) the elements that bring `caps` to the wire
// (`rtp_ssrc`: the payloader's SSRC, 0 for a random one):
// H.264 constrained baseline, zero-latency, a key frame every
// keyframe_interval_ms with SPS/PPS before each (encoded H.264 is only
// parsed, SPS/PPS inserted); audio as Opus 48 kHz (RTP, payloaded) or AAC
// 48 kHz (FLV). Throws talker::Error naming the caps it cannot carry.
Branch build_branch(GstBin *bin, MediaKind kind, const GstCaps *caps, WireFormat wire,
                    const EncoderSettings &settings, guint rtp_ssrc = 0);

// The seam in front of a replaceable stage. Pads made here are the stage's
// ghost sink pads: while the gate is shut they drop what arrives; a flow error
// from a failing stage is handed to on_failure and never returned upstream,
// so one output's trouble cannot stop the pipeline. After every open(), video
// pads drop until a key frame and ask upstream for one.
class StageGate {
 public:
  using FailureHandler = std::function<void(GstFlowReturn)>;
  explicit StageGate(FailureHandler on_failure) : on_failure_(std::move(on_failure)) {}

  // A ghost pad for `target` (unowned by the gate; added to the stage bin by
  // the caller). The gate must outlive the pad's stage.
  GstPad *make_pad(const char *name, GstPad *target, MediaKind kind);
  void open();
  void close();
  bool is_open() const { return open_.load(); }
  guint64 buffers_dropped() const { return dropped_.load(); }
  // Bytes handed to the stage since the gate was made.
  guint64 bytes_passed() const { return passed_bytes_.load(); }
  // Whether a video buffer reached the stage since the last open().
  bool video_passed() const { return video_passed_.load(); }

 private:
  struct PadState;
  static GstFlowReturn chain(GstPad *pad, GstObject *parent, GstBuffer *buffer);
  static gboolean event(GstPad *pad, GstObject *parent, GstEvent *event);
  FailureHandler on_failure_;
  std::atomic<bool> open_{false};
  std::atomic<unsigned> generation_{0};  // bumped by open(): video waits for a key frame again
  std::atomic<guint64> dropped_{0};
  std::atomic<guint64> passed_bytes_{0};
  std::atomic<bool> video_passed_{false};
};

// Posts an element message `name` on `element`'s bus with `state` and the
// fields of `fields` (may be null; consumed).
void post_output_state(GstElement *element, const char *name, const char *state,
                       GstStructure *fields);

}  // namespace talker::gst
