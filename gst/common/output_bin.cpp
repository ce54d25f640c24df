// SPDX-License-Identifier: LGPL-2.1-or-later
#include "gst/common/output_bin.h"

#include <algorithm>

namespace {

struct GstTalkerOutputBinPrivate {
  talker::gst::ReconnectingOutput *output;
};

enum {
  PROP_0,
  PROP_VIDEO_BITRATE,
  PROP_KEYFRAME_INTERVAL,
  PROP_AUDIO_BITRATE,
  PROP_RETRY_DELAY,
  PROP_MAX_RETRY_DELAY,
  PROP_MAX_RETRIES,
};

}  // namespace

G_DEFINE_ABSTRACT_TYPE_WITH_PRIVATE(GstTalkerOutputBin, gst_talker_output_bin, GST_TYPE_BIN)

static talker::gst::ReconnectingOutput *output_of(gpointer bin) {
  return static_cast<GstTalkerOutputBinPrivate *>(
             gst_talker_output_bin_get_instance_private(GST_TALKER_OUTPUT_BIN(bin)))
      ->output;
}

namespace talker::gst {
void output_bin_take_output(GstTalkerOutputBin *bin, ReconnectingOutput *output) {
  static_cast<GstTalkerOutputBinPrivate *>(gst_talker_output_bin_get_instance_private(bin))
      ->output = output;
}
}  // namespace talker::gst

static void output_bin_set_property(GObject *object, guint id, const GValue *value,
                                    GParamSpec *pspec) {
  talker::gst::ReconnectingOutput &out = *output_of(object);
  switch (id) {
    case PROP_VIDEO_BITRATE:
      out.encoder.video_bitrate_kbps = g_value_get_uint(value);
      break;
    case PROP_KEYFRAME_INTERVAL:
      out.encoder.keyframe_interval_ms = g_value_get_uint(value);
      break;
    case PROP_AUDIO_BITRATE:
      out.encoder.audio_bitrate_bps = g_value_get_uint(value);
      break;
    case PROP_RETRY_DELAY:
      out.retry.first_delay_ms = g_value_get_uint(value);
      break;
    case PROP_MAX_RETRY_DELAY:
      out.retry.max_delay_ms = g_value_get_uint(value);
      break;
    case PROP_MAX_RETRIES:
      out.retry.max_retries = g_value_get_int(value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

static void output_bin_get_property(GObject *object, guint id, GValue *value, GParamSpec *pspec) {
  const talker::gst::ReconnectingOutput &out = *output_of(object);
  switch (id) {
    case PROP_VIDEO_BITRATE:
      g_value_set_uint(value, out.encoder.video_bitrate_kbps);
      break;
    case PROP_KEYFRAME_INTERVAL:
      g_value_set_uint(value, out.encoder.keyframe_interval_ms);
      break;
    case PROP_AUDIO_BITRATE:
      g_value_set_uint(value, out.encoder.audio_bitrate_bps);
      break;
    case PROP_RETRY_DELAY:
      g_value_set_uint(value, out.retry.first_delay_ms);
      break;
    case PROP_MAX_RETRY_DELAY:
      g_value_set_uint(value, out.retry.max_delay_ms);
      break;
    case PROP_MAX_RETRIES:
      g_value_set_int(value, out.retry.max_retries);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

static GstPad *output_bin_request_new_pad(GstElement *element, GstPadTemplate *templ, const gchar *,
                                          const GstCaps *) {
  const bool video = g_str_equal(GST_PAD_TEMPLATE_NAME_TEMPLATE(templ), "video");
  return output_of(element)->request_pad(
      templ, video ? talker::gst::MediaKind::kVideo : talker::gst::MediaKind::kAudio);
}

static void output_bin_release_pad(GstElement *element, GstPad *pad) {
  output_of(element)->release_pad(pad);
}

static GstStateChangeReturn output_bin_change_state(GstElement *element,
                                                    GstStateChange transition) {
  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED) output_of(element)->start();
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) output_of(element)->stop();
  return GST_ELEMENT_CLASS(gst_talker_output_bin_parent_class)->change_state(element, transition);
}

static void output_bin_handle_message(GstBin *bin, GstMessage *message) {
  if (output_of(bin)->swallow_message(message)) {
    gst_message_unref(message);
    return;
  }
  GST_BIN_CLASS(gst_talker_output_bin_parent_class)->handle_message(bin, message);
}

// A live sink: the pipeline's latency is what upstream needs (the largest
// minimum of our inputs). The stage's own network sinks do not sync, and a
// bin of them answers "not live", which left the pipeline with latency 0 and
// made a talking head pushed alone drop its frames as late.
static gboolean output_bin_query(GstElement *element, GstQuery *query) {
  if (GST_QUERY_TYPE(query) != GST_QUERY_LATENCY)
    return GST_ELEMENT_CLASS(gst_talker_output_bin_parent_class)->query(element, query);
  gboolean live = FALSE;
  GstClockTime min = 0, max = GST_CLOCK_TIME_NONE;
  bool answered = false;
  GstIterator *it = gst_element_iterate_sink_pads(element);
  GValue item = G_VALUE_INIT;
  while (gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
    GstQuery *upstream = gst_query_new_latency();
    if (gst_pad_peer_query(GST_PAD(g_value_get_object(&item)), upstream)) {
      gboolean l = FALSE;
      GstClockTime mn = 0, mx = GST_CLOCK_TIME_NONE;
      gst_query_parse_latency(upstream, &l, &mn, &mx);
      if (l) {
        live = TRUE;
        min = std::max(min, mn);
        if (GST_CLOCK_TIME_IS_VALID(mx))
          max = GST_CLOCK_TIME_IS_VALID(max) ? std::min(max, mx) : mx;
      }
      answered = true;
    }
    gst_query_unref(upstream);
    g_value_reset(&item);
  }
  g_value_unset(&item);
  gst_iterator_free(it);
  if (!answered) return FALSE;
  gst_query_set_latency(query, live, min, max);
  return TRUE;
}

// The pipeline's LATENCY event goes upstream from here, as from any sink
// (musetalklipsync takes its frames' deadlines from it).
static gboolean output_bin_send_event(GstElement *element, GstEvent *event) {
  if (GST_EVENT_TYPE(event) != GST_EVENT_LATENCY)
    return GST_ELEMENT_CLASS(gst_talker_output_bin_parent_class)->send_event(element, event);
  gboolean ok = TRUE;
  GstIterator *it = gst_element_iterate_sink_pads(element);
  GValue item = G_VALUE_INIT;
  while (gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
    ok &= gst_pad_push_event(GST_PAD(g_value_get_object(&item)), gst_event_ref(event));
    g_value_reset(&item);
  }
  g_value_unset(&item);
  gst_iterator_free(it);
  gst_event_unref(event);
  return ok;
}

// Disposed without going back to READY (the pipeline dropped while playing):
// stop the session thread before GstBin removes the stage under it.
static void output_bin_dispose(GObject *object) {
  if (auto *out = output_of(object)) out->stop();
  G_OBJECT_CLASS(gst_talker_output_bin_parent_class)->dispose(object);
}

static void output_bin_finalize(GObject *object) {
  delete output_of(object);
  G_OBJECT_CLASS(gst_talker_output_bin_parent_class)->finalize(object);
}

static void gst_talker_output_bin_class_init(GstTalkerOutputBinClass *klass) {
  auto *gobject_class = G_OBJECT_CLASS(klass);
  auto *element_class = GST_ELEMENT_CLASS(klass);
  gobject_class->set_property = output_bin_set_property;
  gobject_class->get_property = output_bin_get_property;
  gobject_class->dispose = output_bin_dispose;
  gobject_class->finalize = output_bin_finalize;
  element_class->request_new_pad = output_bin_request_new_pad;
  element_class->release_pad = output_bin_release_pad;
  element_class->change_state = output_bin_change_state;
  element_class->query = output_bin_query;
  element_class->send_event = output_bin_send_event;
  GST_BIN_CLASS(klass)->handle_message = output_bin_handle_message;
  const auto rw = GParamFlags(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  g_object_class_install_property(
      gobject_class, PROP_VIDEO_BITRATE,
      g_param_spec_uint("video-bitrate", "Video bitrate",
                        "H.264 bitrate in kbit/s when the bin encodes raw video", 100, 50000, 2000,
                        rw));
  g_object_class_install_property(
      gobject_class, PROP_KEYFRAME_INTERVAL,
      g_param_spec_uint("keyframe-interval", "Key-frame interval",
                        "Milliseconds between H.264 key frames when the bin encodes (SPS/PPS go "
                        "with each); a (re)connected viewer waits at most this long for a picture",
                        200, 10000, 2000, rw));
  g_object_class_install_property(
      gobject_class, PROP_AUDIO_BITRATE,
      g_param_spec_uint("audio-bitrate", "Audio bitrate",
                        "Audio bitrate in bit/s when the bin encodes raw audio (Opus for WHIP, "
                        "AAC for RTMP)",
                        16000, 320000, 96000, rw));
  g_object_class_install_property(
      gobject_class, PROP_RETRY_DELAY,
      g_param_spec_uint("retry-delay", "Retry delay",
                        "Milliseconds before the first reconnection attempt; each further attempt "
                        "doubles it (up to max-retry-delay), each drawn at random from half to "
                        "all of that so that many clients do not return in step",
                        10, 600000, 1000, rw));
  g_object_class_install_property(
      gobject_class, PROP_MAX_RETRY_DELAY,
      g_param_spec_uint("max-retry-delay", "Maximum retry delay",
                        "Upper bound in milliseconds of the back-off between attempts (a "
                        "server's Retry-After may ask for longer)",
                        10, 3600000, 30000, rw));
  g_object_class_install_property(
      gobject_class, PROP_MAX_RETRIES,
      g_param_spec_int("max-retries", "Maximum retries",
                       "Consecutive failed attempts before the element gives up with a bus error "
                       "(-1: never give up). A session that connected resets the count",
                       -1, G_MAXINT, -1, rw));
}

static void gst_talker_output_bin_init(GstTalkerOutputBin *self) {
  // A sink even while no stage (with its network sink) is inside.
  GST_OBJECT_FLAG_SET(self, GST_ELEMENT_FLAG_SINK);
}
