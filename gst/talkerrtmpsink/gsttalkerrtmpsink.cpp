// SPDX-License-Identifier: LGPL-2.1-or-later
/**
 * SECTION:element-talkerrtmpsink
 *
 * Pushes audio and video to an RTMP server (nginx-rtmp, SRS, Bilibili,
 * Douyin, YouTube...) and keeps pushing: on a connection error it rebuilds
 * flvmux + rtmp2sink (a new connection needs a fresh FLV header and sequence
 * headers) after a back-off, without stopping the pipeline, and reports every
 * step as a `talker-rtmp` element message. Raw input is encoded here (H.264
 * constrained baseline, AAC 48 kHz); H.264/AAC input is only parsed.
 *
 * gst-launch-1.0 videotestsrc is-live=true ! video/x-raw,width=640,height=360 ! \
 *   talkerrtmpsink name=out location="rtmp://127.0.0.1/live/demo" \
 *   audiotestsrc is-live=true ! out.
 */
#include "gst/talkerrtmpsink/gsttalkerrtmpsink.h"

#include <memory>
#include <string>

#include "gst/common/reconnecting_output.h"
#include "lib/net/redact.h"

GST_DEBUG_CATEGORY_STATIC(talkerrtmpsink_debug);
#define GST_CAT_DEFAULT talkerrtmpsink_debug

namespace {

using talker::gst::MediaKind;

// Bytes a connection sends before any media: handshake, connect, publish.
constexpr guint64 kSetupBytes = 8192;
constexpr auto kConnectTimeout = std::chrono::seconds(15);
constexpr GstClockTime kMuxLatency = 300 * GST_MSECOND;

guint64 bytes_sent(GstElement *rtmpsink) {
  GstStructure *stats = nullptr;
  g_object_get(rtmpsink, "stats", &stats, nullptr);
  guint64 bytes = 0;
  if (stats) {
    gst_structure_get_uint64(stats, "out-bytes-total", &bytes);
    gst_structure_free(stats);
  }
  return bytes;
}

class RtmpOutput : public talker::gst::ReconnectingOutput {
 public:
  explicit RtmpOutput(GstBin *bin)
      : ReconnectingOutput(bin, talker::gst::WireFormat::kFlv, "talker-rtmp") {}
  ~RtmpOutput() override { stop(); }

  std::string location;  // read when a session starts
  guint timeout_s = 10;

  GstStructure *stats() {
    GstStructure *s = common_stats();
    guint64 bytes = 0;
    if (GstElement *sink = current_sink()) {
      bytes = bytes_sent(sink);
      gst_object_unref(sink);
    }
    gst_structure_set(s, "bytes-sent", G_TYPE_UINT64, bytes, nullptr);
    return s;
  }

 protected:
  std::string public_location() const override { return talker::net::redact_url(location); }
  bool stage_posts_eos() const override { return true; }

  SessionEnd run_session(unsigned) override {
    SessionEnd end;
    if (location.empty()) {
      end.fatal = true;
      end.reason = "no location set";
      return end;
    }
    GstElement *stage = gst_bin_new(nullptr);
    GstElement *mux = gst_element_factory_make("flvmux", "mux");
    GstElement *sink = gst_element_factory_make("rtmp2sink", "rtmp");
    if (!mux || !sink) {
      end.fatal = true;
      end.reason = "flvmux or rtmp2sink is not installed (gstreamer1.0-plugins-good/-bad)";
      return end;
    }
    // flvmux never writes a timestamp older than the last one: without time
    // to wait for the later stream (the AAC encoder holds ~45 ms), audio tags
    // are bumped to the last video frame's time, up to 40 ms off.
    g_object_set(mux, "streamable", TRUE, "latency", kMuxLatency, nullptr);
    // Connect on the first buffer, from the streaming thread, so that a server
    // that is down fails a session, not a state change; async=false so that a
    // stage added while playing does not take the pipeline back to PAUSED.
    g_object_set(sink, "location", location.c_str(), "async-connect", FALSE, "async", FALSE,
                 "timeout", timeout_s, nullptr);
    gst_bin_add_many(GST_BIN(stage), mux, sink, nullptr);
    gst_element_link(mux, sink);
    install_stage(stage);
    // FLV needs media flowing to connect: open now, not on "connected".
    gate_.open();
    const bool up =
        wait_until([&] { return bytes_sent(sink) > kSetupBytes; },
                   std::chrono::duration_cast<std::chrono::milliseconds>(kConnectTimeout));
    if (!up) {
      if (!failed() && !stopping()) end.reason = "no media reached the server within 15 s";
      return end;
    }
    connected(nullptr);
    wait_until([] { return false; }, std::chrono::hours(24 * 365));
    return end;
  }

  GstPad *stage_target(GstElement *stage, const Track &track, unsigned) override {
    // A leaky queue per track: a stalled TCP connection drops old media here
    // instead of holding the encoders (and through them the pipeline).
    GstElement *queue = gst_element_factory_make("queue", nullptr);
    g_object_set(queue, "max-size-time", guint64(2 * GST_SECOND), "max-size-buffers", 0,
                 "max-size-bytes", 0, nullptr);
    gst_util_set_object_arg(G_OBJECT(queue), "leaky", "downstream");
    gst_bin_add(GST_BIN(stage), queue);
    GstElement *mux = gst_bin_get_by_name(GST_BIN(stage), "mux");
    GstPad *mux_pad =
        gst_element_request_pad_simple(mux, track.kind == MediaKind::kVideo ? "video" : "audio");
    GstPad *queue_src = gst_element_get_static_pad(queue, "src");
    gst_pad_link(queue_src, mux_pad);
    gst_object_unref(queue_src);
    gst_object_unref(mux_pad);
    gst_object_unref(mux);
    return gst_element_get_static_pad(queue, "sink");
  }

 private:
  GstElement *current_sink() {
    GstElement *s = stage();
    return s ? gst_bin_get_by_name(GST_BIN(s), "rtmp") : nullptr;
  }
};

enum { PROP_0, PROP_LOCATION, PROP_TIMEOUT, PROP_STATS };

}  // namespace

struct _GstTalkerRtmpSink {
  GstTalkerOutputBin parent;
  RtmpOutput *output;  // owned by the parent class
};

G_DEFINE_TYPE(GstTalkerRtmpSink, gst_talker_rtmp_sink, GST_TYPE_TALKER_OUTPUT_BIN);
GST_ELEMENT_REGISTER_DEFINE(talkerrtmpsink, "talkerrtmpsink", GST_RANK_NONE,
                            GST_TYPE_TALKER_RTMP_SINK);

static GstStaticPadTemplate video_template = GST_STATIC_PAD_TEMPLATE(
    "video", GST_PAD_SINK, GST_PAD_REQUEST,
    GST_STATIC_CAPS("video/x-raw; video/x-h264, stream-format=(string){ avc, byte-stream }"));
static GstStaticPadTemplate audio_template =
    GST_STATIC_PAD_TEMPLATE("audio", GST_PAD_SINK, GST_PAD_REQUEST,
                            GST_STATIC_CAPS("audio/x-raw; audio/mpeg, mpegversion=(int)4"));

static void talker_rtmp_sink_set_property(GObject *object, guint id, const GValue *value,
                                          GParamSpec *pspec) {
  auto *self = GST_TALKER_RTMP_SINK(object);
  switch (id) {
    case PROP_LOCATION: {
      const char *s = g_value_get_string(value);
      self->output->location = s ? s : "";
      break;
    }
    case PROP_TIMEOUT:
      self->output->timeout_s = g_value_get_uint(value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

static void talker_rtmp_sink_get_property(GObject *object, guint id, GValue *value,
                                          GParamSpec *pspec) {
  auto *self = GST_TALKER_RTMP_SINK(object);
  switch (id) {
    case PROP_LOCATION:
      g_value_set_string(value, self->output->location.c_str());
      break;
    case PROP_TIMEOUT:
      g_value_set_uint(value, self->output->timeout_s);
      break;
    case PROP_STATS:
      g_value_take_boxed(value, self->output->stats());
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

static void gst_talker_rtmp_sink_class_init(GstTalkerRtmpSinkClass *klass) {
  auto *gobject_class = G_OBJECT_CLASS(klass);
  auto *element_class = GST_ELEMENT_CLASS(klass);
  gobject_class->set_property = talker_rtmp_sink_set_property;
  gobject_class->get_property = talker_rtmp_sink_get_property;
  const auto rw = GParamFlags(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  g_object_class_install_property(
      gobject_class, PROP_LOCATION,
      g_param_spec_string(
          "location", "Location",
          "rtmp:// or rtmps:// URL to publish to: rtmp://host[:port]/app/stream, or a platform's "
          "form (Bilibili: rtmp://live-push.bilivideo.com/live-bvc/?streamname=…&key=…). The "
          "stream name and query values are redacted in logs and messages",
          "", rw));
  g_object_class_install_property(
      gobject_class, PROP_TIMEOUT,
      g_param_spec_uint("timeout", "Timeout",
                        "Seconds rtmp2sink waits on the server before the connection counts as "
                        "lost",
                        1, 300, 10, rw));
  g_object_class_install_property(
      gobject_class, PROP_STATS,
      g_param_spec_boxed(
          "stats", "Statistics",
          "state (idle, connecting, connected, reconnecting, failed, ended), attempt, "
          "sessions (connections that carried media), buffers-dropped (while "
          "down), bytes-sent (this connection)",
          GST_TYPE_STRUCTURE, GParamFlags(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));
  gst_element_class_add_static_pad_template(element_class, &video_template);
  gst_element_class_add_static_pad_template(element_class, &audio_template);
  gst_element_class_set_static_metadata(
      element_class, "RTMP output that reconnects", "Sink/Network",
      "Encodes (H.264 + AAC) and pushes to an RTMP server; rebuilds the connection by itself "
      "after a failure, without stopping the pipeline",
      "gst-talker developers");
  GST_DEBUG_CATEGORY_INIT(talkerrtmpsink_debug, "talkerrtmpsink", 0, "RTMP output");
}

static void gst_talker_rtmp_sink_init(GstTalkerRtmpSink *self) {
  self->output = new RtmpOutput(GST_BIN(self));
  talker::gst::output_bin_take_output(GST_TALKER_OUTPUT_BIN(self), self->output);
}
