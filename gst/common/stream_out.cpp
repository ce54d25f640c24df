// SPDX-License-Identifier: LGPL-2.1-or-later
#include "gst/common/stream_out.h"

#include <gst/video/video.h>

#include <string>
#include <vector>

#include "gst/common/gst_ptr.h"
#include "lib/common/error.h"

namespace talker::gst {
namespace {

GstElement *make(const char *factory) {
  GstElement *e = gst_element_factory_make(factory, nullptr);
  if (!e) throw Error(std::string("the GStreamer element '") + factory + "' is not installed");
  return e;
}

GstElement *capsfilter(const char *caps) {
  GstElement *e = make("capsfilter");
  GstCaps *c = gst_caps_from_string(caps);
  g_object_set(e, "caps", c, nullptr);
  gst_caps_unref(c);
  return e;
}

// Frames between key frames at the input's rate (60 when the rate is unknown).
guint keyframe_distance(const GstStructure *s, guint interval_ms) {
  gint num = 0, den = 1;
  if (!gst_structure_get_fraction(s, "framerate", &num, &den) || num <= 0 || den <= 0) return 60;
  const guint64 frames = guint64(num) * interval_ms / (guint64(den) * 1000);
  return frames > 0 ? guint(frames) : 1;
}

std::vector<GstElement *> video_chain(const GstStructure *s, WireFormat wire,
                                      const EncoderSettings &settings, guint ssrc, bool *encodes) {
  std::vector<GstElement *> chain;
  const char *name = gst_structure_get_name(s);
  if (g_str_equal(name, "video/x-raw")) {
    *encodes = true;
    chain.push_back(make("videoconvert"));
    GstElement *x264 = make("x264enc");
    // zerolatency: no B-frames, no look-ahead, sliced threads; superfast leaves
    // the cores to the models (the talking head shares them).
    gst_util_set_object_arg(G_OBJECT(x264), "tune", "zerolatency");
    gst_util_set_object_arg(G_OBJECT(x264), "speed-preset", "superfast");
    g_object_set(x264, "bitrate", settings.video_bitrate_kbps, "key-int-max",
                 keyframe_distance(s, settings.keyframe_interval_ms), nullptr);
    chain.push_back(x264);
    // Constrained baseline: what every WebRTC peer and RTMP platform decodes.
    chain.push_back(capsfilter("video/x-h264, profile=(string)constrained-baseline"));
  } else if (!g_str_equal(name, "video/x-h264")) {
    throw Error(std::string("video must be raw or H.264, not ") + name);
  }
  GstElement *parse = make("h264parse");
  g_object_set(parse, "config-interval", -1, nullptr);  // SPS/PPS before every key frame
  chain.push_back(parse);
  if (wire == WireFormat::kFlv) {
    chain.push_back(capsfilter("video/x-h264, stream-format=(string)avc, alignment=(string)au"));
  } else {
    GstElement *pay = make("rtph264pay");
    g_object_set(pay, "pt", kVideoPayloadType, "config-interval", -1, nullptr);
    if (ssrc) g_object_set(pay, "ssrc", ssrc, nullptr);
    gst_util_set_object_arg(G_OBJECT(pay), "aggregate-mode", "zero-latency");
    chain.push_back(pay);
    // x264 marks constrained baseline as 42c0xx, the offer (and every WebRTC
    // peer) as 42e01f: the same profile. Say what the offer says, or the
    // caps do not meet webrtcbin's codec preferences.
    GstElement *setter = make("capssetter");
    GstCaps *c = gst_caps_from_string("application/x-rtp, profile-level-id=(string)42e01f");
    g_object_set(setter, "caps", c, nullptr);
    gst_caps_unref(c);
    chain.push_back(setter);
  }
  return chain;
}

std::vector<GstElement *> audio_chain(const GstStructure *s, WireFormat wire,
                                      const EncoderSettings &settings, guint ssrc, bool *encodes) {
  std::vector<GstElement *> chain;
  const char *name = gst_structure_get_name(s);
  if (g_str_equal(name, "audio/x-raw")) {
    *encodes = true;
    chain.push_back(make("audioconvert"));
    chain.push_back(make("audioresample"));
    chain.push_back(capsfilter("audio/x-raw, rate=(int)48000"));
    if (wire == WireFormat::kRtp) {
      GstElement *opus = make("opusenc");
      g_object_set(opus, "bitrate", gint(settings.audio_bitrate_bps), nullptr);
      chain.push_back(opus);
    } else {
      GstElement *aac = gst_element_factory_make("avenc_aac", nullptr);
      if (!aac) aac = make("voaacenc");
      g_object_set(aac, "bitrate", gint(settings.audio_bitrate_bps), nullptr);
      chain.push_back(aac);
    }
  }
  const bool opus = *encodes ? wire == WireFormat::kRtp : g_str_equal(name, "audio/x-opus");
  gint mpegversion = 0;
  const bool aac = *encodes ? wire == WireFormat::kFlv
                            : g_str_equal(name, "audio/mpeg") &&
                                  gst_structure_get_int(s, "mpegversion", &mpegversion) &&
                                  mpegversion == 4;
  if (wire == WireFormat::kRtp) {
    if (!opus) throw Error(std::string("WebRTC carries Opus: give raw or Opus audio, not ") + name);
    if (!*encodes) chain.push_back(make("opusparse"));
    GstElement *pay = make("rtpopuspay");
    g_object_set(pay, "pt", kAudioPayloadType, nullptr);
    if (ssrc) g_object_set(pay, "ssrc", ssrc, nullptr);
    chain.push_back(pay);
  } else {
    if (!aac) throw Error(std::string("FLV carries AAC: give raw or AAC audio, not ") + name);
    chain.push_back(make("aacparse"));
  }
  return chain;
}

}  // namespace

Branch build_branch(GstBin *bin, MediaKind kind, const GstCaps *caps, WireFormat wire,
                    const EncoderSettings &settings, guint rtp_ssrc) {
  if (!caps || gst_caps_is_empty(caps)) throw Error("no caps");
  const GstStructure *s = gst_caps_get_structure(caps, 0);
  Branch branch;
  std::vector<GstElement *> chain = kind == MediaKind::kVideo
                                        ? video_chain(s, wire, settings, rtp_ssrc, &branch.encodes)
                                        : audio_chain(s, wire, settings, rtp_ssrc, &branch.encodes);
  for (GstElement *e : chain) gst_bin_add(bin, e);
  for (size_t i = 1; i < chain.size(); ++i)
    if (!gst_element_link(chain[i - 1], chain[i]))
      throw Error(std::string("cannot link ") + GST_ELEMENT_NAME(chain[i - 1]) + " to " +
                  GST_ELEMENT_NAME(chain[i]));
  branch.sink = gst_element_get_static_pad(chain.front(), "sink");
  branch.tail = chain.back();
  return branch;
}

struct StageGate::PadState {
  StageGate *gate;
  MediaKind kind;
  unsigned keyframe_seen_in = ~0u;  // the generation that saw a key frame
  unsigned keyframe_asked_in = ~0u;
};

GstPad *StageGate::make_pad(const char *name, GstPad *target, MediaKind kind) {
  GstPad *pad = gst_ghost_pad_new(name, target);
  gst_pad_set_element_private(pad, new PadState{this, kind});
  g_object_weak_ref(
      G_OBJECT(pad), [](gpointer data, GObject *) { delete static_cast<PadState *>(data); },
      gst_pad_get_element_private(pad));
  gst_pad_set_chain_function(pad, &StageGate::chain);
  gst_pad_set_event_function(pad, &StageGate::event);
  return pad;
}

// Sticky events a stage cannot take yet (its pads still starting) stay
// pending on the ghost pad and go with the next buffer; reporting the failure
// upstream would stop the branch for good.
gboolean StageGate::event(GstPad *pad, GstObject *parent, GstEvent *event) {
  const bool sticky = GST_EVENT_IS_STICKY(event) && GST_EVENT_TYPE(event) != GST_EVENT_EOS;
  GstCaps *caps = nullptr;
  if (GST_EVENT_TYPE(event) == GST_EVENT_CAPS) {
    gst_event_parse_caps(event, &caps);
    gst_caps_ref(caps);
  }
  const gboolean ok = gst_pad_event_default(pad, parent, event);
  if (!ok && caps) GST_WARNING_OBJECT(pad, "the stage refused caps %" GST_PTR_FORMAT, caps);
  if (caps) gst_caps_unref(caps);
  return ok || sticky;
}

// A copy of each of upstream's sticky events (stream-start, caps, segment),
// sent to the stage's pad in order.
static gboolean resend_sticky(GstPad *, GstEvent **event, gpointer target) {
  if (GST_EVENT_TYPE(*event) != GST_EVENT_EOS)
    gst_pad_send_event(GST_PAD(target), gst_event_ref(*event));
  return TRUE;
}

void StageGate::open() {
  video_passed_.store(false);
  generation_.fetch_add(1);
  open_.store(true);
}

void StageGate::close() {
  open_.store(false);
}

GstFlowReturn StageGate::chain(GstPad *pad, GstObject *parent, GstBuffer *buffer) {
  auto *state = static_cast<PadState *>(gst_pad_get_element_private(pad));
  StageGate *gate = state->gate;
  if (!gate->open_.load()) {
    gate->dropped_.fetch_add(1);
    gst_buffer_unref(buffer);
    return GST_FLOW_OK;
  }
  if (state->kind == MediaKind::kVideo) {
    const unsigned generation = gate->generation_.load();
    if (state->keyframe_seen_in != generation) {
      if (GST_BUFFER_FLAG_IS_SET(buffer, GST_BUFFER_FLAG_DELTA_UNIT)) {
        if (state->keyframe_asked_in != generation) {
          state->keyframe_asked_in = generation;
          gst_pad_push_event(
              pad, gst_video_event_new_upstream_force_key_unit(GST_CLOCK_TIME_NONE, TRUE, 0));
        }
        gate->dropped_.fetch_add(1);
        gst_buffer_unref(buffer);
        return GST_FLOW_OK;
      }
      state->keyframe_seen_in = generation;
    }
  }
  // A stage pad without caps would refuse the buffer, and upstream, which
  // took its caps event as delivered (event() never reports a refusal),
  // would not send it again: that track then never reaches the stage (seen
  // in CI: a WHIP receiver with video and no audio at all). Give the stage
  // the stream's sticky events again first.
  if (GstPad *target = gst_ghost_pad_get_target(GST_GHOST_PAD(pad))) {
    if (!gst_pad_has_current_caps(target)) {
      if (GstPad *upstream = gst_pad_get_peer(pad)) {
        GST_INFO_OBJECT(pad, "the stage has no caps yet: sending the stream's events again");
        gst_pad_sticky_events_foreach(upstream, resend_sticky, target);
        gst_object_unref(upstream);
      }
    }
    gst_object_unref(target);
  }
  gate->passed_bytes_.fetch_add(gst_buffer_get_size(buffer));
  if (state->kind == MediaKind::kVideo) gate->video_passed_.store(true);
  const GstFlowReturn ret = gst_proxy_pad_chain_default(pad, parent, buffer);
  if (ret == GST_FLOW_OK || ret == GST_FLOW_EOS) return ret;
  // FLUSHING while the stage is being replaced or stopped is expected.
  if (ret != GST_FLOW_FLUSHING && gate->on_failure_) gate->on_failure_(ret);
  return GST_FLOW_OK;
}

void post_output_state(GstElement *element, const char *name, const char *state,
                       GstStructure *fields) {
  GstStructure *s = fields ? fields : gst_structure_new_empty(name);
  gst_structure_set_name(s, name);
  gst_structure_set(s, "state", G_TYPE_STRING, state, nullptr);
  gst_element_post_message(element, gst_message_new_element(GST_OBJECT(element), s));
}

}  // namespace talker::gst
