// SPDX-License-Identifier: LGPL-2.1-or-later
#include "tools/server/recorder.h"

#include <gst/video/video.h>

#include <chrono>
#include <stdexcept>

namespace talker::server {
namespace {

GstElement *make(const char *factory, GstElement *bin) {
  GstElement *e = gst_element_factory_make(factory, nullptr);
  if (!e) throw std::runtime_error(std::string("recording needs the '") + factory + "' element");
  gst_bin_add(GST_BIN(bin), e);
  return e;
}

// Links `from`'s src to a new request pad of `mux` from `templ`.
void link_to_mux(GstElement *from, GstElement *mux, const char *templ) {
  gst::GstPtr<GstPad> src(gst_element_get_static_pad(from, "src"));
  GstPad *sink = gst_element_request_pad_simple(mux, templ);
  if (!sink || gst_pad_link(src.get(), sink) != GST_PAD_LINK_OK)
    throw std::runtime_error(std::string("recording: cannot link to the muxer's ") + templ);
  gst_object_unref(sink);
}

void add_ghost(GstElement *bin, GstElement *inner, const char *name) {
  gst::GstPtr<GstPad> target(gst_element_get_static_pad(inner, "sink"));
  gst_element_add_pad(bin, gst_ghost_pad_new(name, target.get()));
}

}  // namespace

Recorder::Recorder(GstElement *pipeline, GstElement *video_tee, GstElement *audio_tee, bool h264)
    : pipeline_(GST_ELEMENT(gst_object_ref(pipeline))),
      video_tee_(GST_ELEMENT(gst_object_ref(video_tee))),
      audio_tee_(GST_ELEMENT(gst_object_ref(audio_tee))),
      h264_(h264) {}

Recorder::~Recorder() {
  stop(1000);
}

bool Recorder::recording() const {
  std::lock_guard<std::mutex> l(lock_);
  return bin_ != nullptr;
}

void Recorder::start(const std::string &path) {
  std::lock_guard<std::mutex> l(lock_);
  if (bin_) throw std::runtime_error("already recording");
  gst::GstPtr<GstElement> bin(GST_ELEMENT(gst_object_ref_sink(gst_bin_new(nullptr))));
  GstElement *vq = make("queue", bin.get());
  GstElement *aq = make("queue", bin.get());
  // The muxer interleaves: each queue holds what arrives while it waits for the other.
  for (GstElement *q : {vq, aq})
    g_object_set(q, "max-size-time", guint64(10 * GST_SECOND), "max-size-buffers", 0u,
                 "max-size-bytes", 0u, nullptr);
  GstElement *vdepay = make(h264_ ? "rtph264depay" : "rtpvp8depay", bin.get());
  GstElement *adepay = make("rtpopusdepay", bin.get());
  GstElement *mux = make(h264_ ? "mp4mux" : "webmmux", bin.get());
  if (h264_)
    // Fragmented: a moof/mdat pair a second, each readable on its own.
    g_object_set(mux, "fragment-duration", 1000u, nullptr);
  else
    g_object_set(mux, "streamable", TRUE, nullptr);
  GstElement *file = make("filesink", bin.get());
  // Unbuffered: each fragment reaches the kernel as it is written, so it
  // survives the process (a 64 KiB stdio buffer is seconds of this video).
  g_object_set(file, "location", path.c_str(), "async", FALSE, "sync", FALSE, nullptr);
  gst_util_set_object_arg(G_OBJECT(file), "buffer-mode", "unbuffered");
  gst_element_link(vq, vdepay);
  gst_element_link(aq, adepay);
  GstElement *video_last = vdepay;
  if (h264_) {
    GstElement *parse = make("h264parse", bin.get());  // to avc, with codec_data, for MP4
    gst_element_link(vdepay, parse);
    video_last = parse;
  }
  link_to_mux(video_last, mux, "video_%u");
  link_to_mux(adepay, mux, "audio_%u");
  gst_element_link(mux, file);
  add_ghost(bin.get(), vq, "video");
  add_ghost(bin.get(), aq, "audio");
  video_gate_.reset(gst_element_get_static_pad(vdepay, "src"));
  audio_gate_.reset(gst_element_get_static_pad(adepay, "src"));
  gst_pad_add_probe(video_gate_.get(), GST_PAD_PROBE_TYPE_BUFFER, gate, this, nullptr);
  gst_pad_add_probe(audio_gate_.get(), GST_PAD_PROBE_TYPE_BUFFER, gate, this, nullptr);
  gst::GstPtr<GstPad> file_sink(gst_element_get_static_pad(file, "sink"));
  gst_pad_add_probe(file_sink.get(), GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, on_eos, this, nullptr);

  eos_ = false;
  start_running_time_ = GST_CLOCK_TIME_NONE;
  gst_bin_add(GST_BIN(pipeline_.get()), GST_ELEMENT(gst_object_ref(bin.get())));
  if (!gst_element_sync_state_with_parent(bin.get())) {
    gst_element_set_state(bin.get(), GST_STATE_NULL);
    gst_bin_remove(GST_BIN(pipeline_.get()), bin.get());
    throw std::runtime_error("cannot write " + path);
  }
  video_src_.reset(gst_element_request_pad_simple(video_tee_.get(), "src_%u"));
  audio_src_.reset(gst_element_request_pad_simple(audio_tee_.get(), "src_%u"));
  gst::GstPtr<GstPad> vghost(gst_element_get_static_pad(bin.get(), "video"));
  gst::GstPtr<GstPad> aghost(gst_element_get_static_pad(bin.get(), "audio"));
  gst_pad_link(video_src_.get(), vghost.get());
  gst_pad_link(audio_src_.get(), aghost.get());
  bin_ = std::move(bin);
  // Start on a key frame now rather than at the encoder's next one (through
  // the payloader to the encoder).
  gst_pad_send_event(video_src_.get(),
                     gst_video_event_new_upstream_force_key_unit(GST_CLOCK_TIME_NONE, TRUE, 0));
}

// Before the first key frame nothing passes; audio from that frame's time on.
// Compared in running time: x264enc's output timestamps are 1000 h ahead
// (GstVideoEncoder's min-pts, so that DTS never goes negative) with a
// segment that says so.
GstPadProbeReturn Recorder::gate(GstPad *pad, GstPadProbeInfo *info, gpointer data) {
  auto *self = static_cast<Recorder *>(data);
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
  GstClockTime start = GST_CLOCK_TIME_NONE, end = GST_CLOCK_TIME_NONE;
  if (GST_BUFFER_PTS_IS_VALID(buf))
    if (gst::GstPtr<GstEvent> ev{gst_pad_get_sticky_event(pad, GST_EVENT_SEGMENT, 0)}) {
      const GstSegment *segment = nullptr;
      gst_event_parse_segment(ev.get(), &segment);
      const GstClockTime pts = GST_BUFFER_PTS(buf);
      start = gst_segment_to_running_time(segment, GST_FORMAT_TIME, pts);
      end = gst_segment_to_running_time(
          segment, GST_FORMAT_TIME,
          pts + (GST_BUFFER_DURATION_IS_VALID(buf) ? GST_BUFFER_DURATION(buf) : 0));
    }
  std::lock_guard<std::mutex> l(self->lock_);
  if (pad == self->video_gate_.get()) {
    if (self->start_running_time_ == GST_CLOCK_TIME_NONE) {
      if (GST_BUFFER_FLAG_IS_SET(buf, GST_BUFFER_FLAG_DELTA_UNIT) || start == GST_CLOCK_TIME_NONE)
        return GST_PAD_PROBE_DROP;
      self->start_running_time_ = start;
    }
    return GST_PAD_PROBE_PASS;
  }
  if (self->start_running_time_ == GST_CLOCK_TIME_NONE || end == GST_CLOCK_TIME_NONE)
    return GST_PAD_PROBE_DROP;
  return end <= self->start_running_time_ ? GST_PAD_PROBE_DROP : GST_PAD_PROBE_PASS;
}

GstPadProbeReturn Recorder::on_eos(GstPad *, GstPadProbeInfo *info, gpointer data) {
  auto *self = static_cast<Recorder *>(data);
  if (GST_EVENT_TYPE(GST_PAD_PROBE_INFO_EVENT(info)) == GST_EVENT_EOS) {
    std::lock_guard<std::mutex> l(self->lock_);
    self->eos_ = true;
    self->eos_cv_.notify_all();
  }
  return GST_PAD_PROBE_OK;
}

void Recorder::stop(unsigned timeout_ms) {
  gst::GstPtr<GstElement> bin;
  gst::GstPtr<GstPad> video_src, audio_src;
  {
    std::lock_guard<std::mutex> l(lock_);
    if (!bin_) return;
    video_src = std::move(video_src_);
    audio_src = std::move(audio_src_);
    bin = std::move(bin_);
    video_gate_.reset();
    audio_gate_.reset();
  }
  // Off the tees between two buffers, then EOS into the branch: the muxer
  // writes what it holds and finishes the file.
  for (GstPad *src : {video_src.get(), audio_src.get()}) {
    gst_pad_add_probe(
        src, GST_PAD_PROBE_TYPE_IDLE,
        [](GstPad *pad, GstPadProbeInfo *, gpointer) {
          gst::GstPtr<GstPad> peer(gst_pad_get_peer(pad));
          if (peer) {
            gst_pad_unlink(pad, peer.get());
            gst_pad_send_event(peer.get(), gst_event_new_eos());
          }
          return GST_PAD_PROBE_REMOVE;
        },
        nullptr, nullptr);
  }
  {
    std::unique_lock<std::mutex> l(lock_);
    eos_cv_.wait_for(l, std::chrono::milliseconds(timeout_ms), [&] { return eos_; });
    if (!eos_) GST_WARNING("recording: the muxer did not finish within %u ms", timeout_ms);
  }
  gst_element_release_request_pad(video_tee_.get(), video_src.get());
  gst_element_release_request_pad(audio_tee_.get(), audio_src.get());
  gst_element_set_state(bin.get(), GST_STATE_NULL);
  gst_bin_remove(GST_BIN(pipeline_.get()), bin.get());
}

}  // namespace talker::server
