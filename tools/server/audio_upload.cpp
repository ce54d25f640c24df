// SPDX-License-Identifier: LGPL-2.1-or-later
#include "tools/server/audio_upload.h"

#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>

#include <cstring>

#include "gst/common/gst_ptr.h"

namespace talker::server {
namespace {

constexpr int kRate = 16000;

// decodebin's GstAutoplugSelectResult (not in a public header).
enum AutoplugSelect { kTry = 0, kExpose = 1, kSkip = 2 };

// Bytes from a client must not make the decoder fetch anything: adaptive
// demuxers follow the URIs of an HLS/DASH playlist, sdpdemux opens sockets.
int refuse_network(GstElement *, GstPad *, GstCaps *, GstElementFactory *factory, gpointer) {
  const char *klass = gst_element_factory_get_metadata(factory, GST_ELEMENT_METADATA_KLASS);
  if (klass && (std::strstr(klass, "Adaptive") || std::strstr(klass, "Network") ||
                std::strstr(klass, "Source")))
    return kSkip;
  return kTry;
}

struct Chain {
  GstElement *convert = nullptr;
  bool linked = false;
};

void on_pad_added(GstElement *, GstPad *pad, gpointer data) {
  auto *chain = static_cast<Chain *>(data);
  if (chain->linked) return;  // the first audio stream only
  gst::GstPtr<GstCaps> caps(gst_pad_get_current_caps(pad));
  if (!caps) caps.reset(gst_pad_query_caps(pad, nullptr));
  const GstStructure *s =
      caps && gst_caps_get_size(caps.get()) > 0 ? gst_caps_get_structure(caps.get(), 0) : nullptr;
  if (!s || !g_str_has_prefix(gst_structure_get_name(s), "audio/x-raw")) return;
  gst::GstPtr<GstPad> sink(gst_element_get_static_pad(chain->convert, "sink"));
  chain->linked = gst_pad_link(pad, sink.get()) == GST_PAD_LINK_OK;
}

}  // namespace

std::vector<int16_t> decode_audio_upload(const std::string &bytes, const DecodeLimits &limits) {
  if (bytes.empty()) throw UploadError("file: empty");
  gst::GstPtr<GstElement> pipeline(gst_pipeline_new("humanaudio"));
  GstElement *src = gst_element_factory_make("appsrc", nullptr);
  GstElement *decode = gst_element_factory_make("decodebin", nullptr);
  GstElement *convert = gst_element_factory_make("audioconvert", nullptr);
  GstElement *resample = gst_element_factory_make("audioresample", nullptr);
  GstElement *sink = gst_element_factory_make("appsink", nullptr);
  if (!src || !decode || !convert || !resample || !sink)
    throw std::runtime_error("audio decoding needs gstreamer1.0-plugins-base");
  gst_bin_add_many(GST_BIN(pipeline.get()), src, decode, convert, resample, sink, nullptr);
  g_object_set(src, "format", GST_FORMAT_BYTES, "size", gint64(bytes.size()), nullptr);
  gst::GstPtr<GstCaps> caps(gst_caps_new_simple(
      "audio/x-raw", "format", G_TYPE_STRING, "S16LE", "rate", G_TYPE_INT, kRate, "channels",
      G_TYPE_INT, 1, "layout", G_TYPE_STRING, "interleaved", nullptr));
  g_object_set(sink, "caps", caps.get(), "sync", FALSE, nullptr);
  gst_element_link(src, decode);
  gst_element_link_many(convert, resample, sink, nullptr);
  Chain chain{convert};
  g_signal_connect(decode, "autoplug-select", G_CALLBACK(refuse_network), nullptr);
  g_signal_connect(decode, "pad-added", G_CALLBACK(on_pad_added), &chain);

  GBytes *data = g_bytes_new(bytes.data(), bytes.size());
  gst_app_src_push_buffer(GST_APP_SRC(src), gst_buffer_new_wrapped_bytes(data));
  g_bytes_unref(data);
  gst_app_src_end_of_stream(GST_APP_SRC(src));

  struct Stop {
    GstElement *p;
    ~Stop() { gst_element_set_state(p, GST_STATE_NULL); }
  } stop{pipeline.get()};
  gst_element_set_state(pipeline.get(), GST_STATE_PLAYING);

  gst::GstPtr<GstBus> bus(gst_element_get_bus(pipeline.get()));
  const std::size_t max_samples = std::size_t(limits.max_seconds * kRate);
  const gint64 deadline = g_get_monotonic_time() + gint64(limits.timeout_s * 1e6);
  std::vector<int16_t> out;
  for (;;) {
    if (gst::GstPtr<GstMessage> m{gst_bus_pop_filtered(bus.get(), GST_MESSAGE_ERROR)}) {
      GError *err = nullptr;
      gst_message_parse_error(m.get(), &err, nullptr);
      const std::string why = err ? err->message : "unknown error";
      if (err) g_error_free(err);
      if (!chain.linked)
        throw UploadError("file: not audio that this server can decode (" + why + ")");
      throw UploadError("file: decoding failed (" + why + ")");
    }
    if (gst_app_sink_is_eos(GST_APP_SINK(sink))) break;
    if (g_get_monotonic_time() > deadline)
      throw UploadError("file: decoding took longer than " + std::to_string(int(limits.timeout_s)) +
                        " s");
    gst::GstPtr<GstSample> sample(
        gst_app_sink_try_pull_sample(GST_APP_SINK(sink), 100 * GST_MSECOND));
    if (!sample) continue;
    GstBuffer *buf = gst_sample_get_buffer(sample.get());
    GstMapInfo map;
    if (!buf || !gst_buffer_map(buf, &map, GST_MAP_READ)) continue;
    const auto *s = reinterpret_cast<const int16_t *>(map.data);
    out.insert(out.end(), s, s + map.size / sizeof(int16_t));
    gst_buffer_unmap(buf, &map);
    if (out.size() > max_samples)
      throw UploadError("file: longer than " + std::to_string(int(limits.max_seconds)) + " s");
  }
  if (!chain.linked) throw UploadError("file: holds no audio stream");
  if (out.empty()) throw UploadError("file: no audio samples");
  return out;
}

}  // namespace talker::server
