// SPDX-License-Identifier: LGPL-2.1-or-later
// A live talking-head pipeline as a user writes it, for tests and the live
// benchmark:
//   talkertts ! tee ! queue ! fakesink sync=true                 (audio)
//              tee ! queue ! talkinghead ! fakesink sync=true    (video)
// It records every buffer that reaches either sink (when it arrived on the
// clock, and whether the video frame shows a generated, held or idle face),
// and the talker-sentence and QoS messages.
#pragma once

#include <gst/base/gstbasesink.h>
#include <gst/gst.h>

#include <cmath>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "gst/common/face_meta.h"
#include "gst/common/gst_ptr.h"
#include "lib/avatar/avatar_frames.h"
#include "tests/bus_error.h"

namespace talker::test {

struct SinkRecord {
  GstClockTime pts = 0, duration = 0;
  GstClockTime arrived = 0;  // clock time at the sink pad
  bool gap = false;
  double rms = 0;          // audio: sample RMS
  bool speaking = false;   // video: the face meta
  bool generated = false;  // video: a face generated for this frame
  double face_diff = 0;    // video: mean |frame - avatar frame| inside the face box
  double mean = 0;         // video: the whole picture's mean value (flashes, clips)
};

struct SentenceEvent {
  std::string state, reason;
  guint64 id = 0;
  GstClockTime running_time = 0;
};

class LiveChain {
 public:
  // `head`: talkinghead's properties; `avatar`: its folder (for the idle check).
  // `queues`: the queues' properties. Each branch's queue must hold the
  // pipeline latency (the sinks hold buffers that long), or the tee blocks
  // and the source falls behind: by default up to 10 s.
  LiveChain(const std::string &head, const std::string &avatar,
            const std::string &queues =
                "max-size-buffers=0 max-size-bytes=0 "
                "max-size-time=10000000000")
      : avatar_(avatar::load_avatar_frames(avatar)) {
    const std::string description = "talkertts name=tts ! tee name=t t. ! queue " + queues +
                                    " ! fakesink name=asink sync=true t. ! queue " + queues +
                                    " ! talkinghead name=head avatar=" + avatar + " " + head +
                                    " ! queue " + queues + " ! fakesink name=vsink sync=true";
    GError *err = nullptr;
    pipeline_.reset(gst_parse_launch(description.c_str(), &err));
    if (err) {
      std::string msg = err->message;
      g_error_free(err);
      throw std::runtime_error(msg);
    }
    tts_.reset(gst_bin_get_by_name(GST_BIN(pipeline_.get()), "tts"));
    head_.reset(gst_bin_get_by_name(GST_BIN(pipeline_.get()), "head"));
    vsink_.reset(gst_bin_get_by_name(GST_BIN(pipeline_.get()), "vsink"));
    asink_.reset(gst_bin_get_by_name(GST_BIN(pipeline_.get()), "asink"));
    for (auto *sink : {asink_.get(), vsink_.get()}) {
      gst::GstPtr<GstPad> pad(gst_element_get_static_pad(sink, "sink"));
      gst_pad_add_probe(pad.get(), GST_PAD_PROBE_TYPE_BUFFER,
                        sink == vsink_.get() ? on_video : on_audio, this, nullptr);
    }
    gst::GstPtr<GstPad> head_src(gst_element_get_static_pad(head_.get(), "src"));
    gst_pad_add_probe(head_src.get(), GST_PAD_PROBE_TYPE_BUFFER, on_head, this, nullptr);
    bus_.reset(gst_element_get_bus(pipeline_.get()));
  }
  ~LiveChain() { gst_element_set_state(pipeline_.get(), GST_STATE_NULL); }

  GstElement *pipeline() { return pipeline_.get(); }
  GstElement *tts() { return tts_.get(); }
  GstElement *head() { return head_.get(); }

  // PLAYING, or throws with the bus error.
  void start() {
    if (gst_element_set_state(pipeline_.get(), GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE ||
        gst_element_get_state(pipeline_.get(), nullptr, nullptr, 120 * GST_SECOND) !=
            GST_STATE_CHANGE_SUCCESS)
      throw std::runtime_error("pipeline did not start: " + take_error());
    latency_ = gst_base_sink_get_latency(GST_BASE_SINK(vsink_.get()));
  }

  GstClockTime latency() const { return latency_; }
  // The latency the sinks use now (it must not change during a run).
  GstClockTime current_latency() { return gst_base_sink_get_latency(GST_BASE_SINK(vsink_.get())); }

  GstClockTime running_time() {
    gst::GstPtr<GstClock> clock(gst_element_get_clock(pipeline_.get()));
    return clock ? gst_clock_get_time(clock.get()) - gst_element_get_base_time(pipeline_.get()) : 0;
  }

  guint64 say(const std::string &text) {
    guint64 id = 0;
    g_signal_emit_by_name(tts_.get(), "say", text.c_str(), &id);
    return id;
  }
  // talkertts's say-clip: an action clip's audio and name.
  guint64 say_clip(const std::vector<int16_t> &samples, const std::string &clip,
                   GstClockTime duration) {
    GBytes *bytes = g_bytes_new(samples.data(), samples.size() * sizeof(int16_t));
    guint64 id = 0;
    g_signal_emit_by_name(tts_.get(), "say-clip", bytes, clip.c_str(), guint64(duration), &id);
    g_bytes_unref(bytes);
    return id;
  }
  // Returns the running time of the call.
  GstClockTime interrupt() {
    GstClockTime now = running_time();
    g_signal_emit_by_name(tts_.get(), "interrupt");
    return now;
  }

  // Handles bus messages for `seconds`; throws on an error.
  void pump(double seconds) {
    const gint64 until = g_get_monotonic_time() + gint64(seconds * 1e6);
    for (;;) {
      const gint64 left = until - g_get_monotonic_time();
      if (left <= 0) return;
      gst::GstPtr<GstMessage> msg(gst_bus_timed_pop(bus_.get(), left * GST_USECOND));
      if (!msg) return;
      handle(msg.get());
    }
  }
  // Pumps until the sinks have rendered up to running time `t` (they render
  // a buffer one latency after its running time) plus `margin`; at most
  // `timeout` s. On a loaded machine the latency is what grows, so a wait
  // for "what happened at t" must follow it, not a fixed number of seconds.
  void pump_until_rendered(GstClockTime t, GstClockTime margin, double timeout = 30) {
    const gint64 give_up = g_get_monotonic_time() + gint64(timeout * 1e6);
    while (running_time() < t + current_latency() + margin && g_get_monotonic_time() < give_up)
      pump(0.1);
  }
  // Pumps until a sentence message with `state` for `id` arrives (or `timeout` s).
  bool wait_sentence(const std::string &state, guint64 id, double timeout) {
    const gint64 until = g_get_monotonic_time() + gint64(timeout * 1e6);
    while (g_get_monotonic_time() < until) {
      {
        std::lock_guard<std::mutex> l(lock_);
        for (const auto &s : sentences_)
          if (s.state == state && s.id == id) return true;
      }
      pump(0.02);
    }
    return false;
  }

  std::vector<SinkRecord> video() { return copy_of(video_); }
  // Video as it left talkinghead (before the queue in front of the sink).
  std::vector<SinkRecord> head_output() { return copy_of(head_out_); }
  std::vector<SinkRecord> audio() { return copy_of(audio_); }
  std::vector<SentenceEvent> sentences() { return copy_of(sentences_); }
  guint64 qos_messages() const { return qos_messages_; }

  // How late a record reached its sink: arrival minus render time
  // (base time + PTS + latency; the source stamps running time).
  GstClockTimeDiff lateness(const SinkRecord &r) const {
    return GST_CLOCK_DIFF(base_time() + r.pts + latency_, r.arrived);
  }

  gst::GstPtr<GstStructure> stats() {
    GstStructure *s = nullptr;
    g_object_get(head_.get(), "stats", &s, nullptr);
    return gst::GstPtr<GstStructure>(s);
  }

 private:
  GstClockTime base_time() const { return gst_element_get_base_time(pipeline_.get()); }

  GstClockTime clock_now() {
    gst::GstPtr<GstClock> clock(gst_element_get_clock(pipeline_.get()));
    return clock ? gst_clock_get_time(clock.get()) : 0;
  }

  std::string take_error() {
    std::string text = first_error(pipeline_.get());
    return text.empty() ? "(no error message)" : text;
  }

  void handle(GstMessage *msg) {
    switch (GST_MESSAGE_TYPE(msg)) {
      case GST_MESSAGE_ERROR:
        throw std::runtime_error(error_text(msg));
      case GST_MESSAGE_QOS:
        ++qos_messages_;
        break;
      case GST_MESSAGE_ELEMENT: {
        const GstStructure *s = gst_message_get_structure(msg);
        if (!gst_structure_has_name(s, "talker-sentence")) break;
        SentenceEvent e;
        e.state = gst_structure_get_string(s, "state");
        if (const char *r = gst_structure_get_string(s, "reason")) e.reason = r;
        gst_structure_get_uint64(s, "id", &e.id);
        gst_structure_get_uint64(s, "running-time", &e.running_time);
        std::lock_guard<std::mutex> l(lock_);
        sentences_.push_back(e);
        break;
      }
      default:
        break;
    }
  }

  static GstPadProbeReturn on_audio(GstPad *, GstPadProbeInfo *info, gpointer user) {
    auto *self = static_cast<LiveChain *>(user);
    GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
    SinkRecord r = self->record(buf);
    GstMapInfo map;
    if (gst_buffer_map(buf, &map, GST_MAP_READ)) {
      const auto *s = reinterpret_cast<const int16_t *>(map.data);
      const size_t n = map.size / 2;
      double sum = 0;
      for (size_t i = 0; i < n; ++i) sum += double(s[i]) * s[i];
      r.rms = n ? std::sqrt(sum / n) : 0;
      gst_buffer_unmap(buf, &map);
    }
    std::lock_guard<std::mutex> l(self->lock_);
    self->audio_.push_back(r);
    return GST_PAD_PROBE_OK;
  }

  template <typename T>
  std::vector<T> copy_of(const std::vector<T> &records) {
    std::lock_guard<std::mutex> l(lock_);
    return records;
  }

  // Video probes: the same record, kept in the sink's or the head's list.
  void add_video(GstPadProbeInfo *info, std::vector<SinkRecord> &to) {
    SinkRecord r = video_record(GST_PAD_PROBE_INFO_BUFFER(info));
    std::lock_guard<std::mutex> l(lock_);
    to.push_back(r);
  }
  static GstPadProbeReturn on_video(GstPad *, GstPadProbeInfo *info, gpointer user) {
    auto *self = static_cast<LiveChain *>(user);
    self->add_video(info, self->video_);
    return GST_PAD_PROBE_OK;
  }
  static GstPadProbeReturn on_head(GstPad *, GstPadProbeInfo *info, gpointer user) {
    auto *self = static_cast<LiveChain *>(user);
    self->add_video(info, self->head_out_);
    return GST_PAD_PROBE_OK;
  }

  SinkRecord video_record(GstBuffer *buf) {
    SinkRecord r = record(buf);
    auto *self = this;
    if (const TalkerFaceMeta *m = talker_buffer_get_face_meta(buf)) {
      r.speaking = m->speaking;
      r.generated = m->generated;
      const auto &a = *self->avatar_;
      GstMapInfo map;
      if (m->avatar_frame >= 0 && size_t(m->avatar_frame) < a.size() &&
          gst_buffer_map(buf, &map, GST_MAP_READ)) {
        if (map.size == size_t(a.width) * a.height * 3) {
          cv::Mat frame(a.height, a.width, CV_8UC3, map.data);
          const cv::Scalar average = cv::mean(frame);
          r.mean = (average[0] + average[1] + average[2]) / 3;
          const auto &box = a.faces[size_t(m->avatar_frame)];
          cv::Rect roi(box.x1, box.y1, box.width(), box.height());
          r.face_diff = cv::norm(frame(roi), a.frames[size_t(m->avatar_frame)](roi), cv::NORM_L1) /
                        double(roi.area() * 3);
        }
        gst_buffer_unmap(buf, &map);
      }
    }
    return r;
  }

  SinkRecord record(GstBuffer *buf) {
    SinkRecord r;
    r.pts = GST_BUFFER_PTS(buf);
    r.duration = GST_BUFFER_DURATION(buf);
    r.arrived = clock_now();
    r.gap = GST_BUFFER_FLAG_IS_SET(buf, GST_BUFFER_FLAG_GAP);
    return r;
  }

  std::shared_ptr<const avatar::AvatarFrames> avatar_;
  gst::GstPtr<GstElement> pipeline_, tts_, head_, vsink_, asink_;
  gst::GstPtr<GstBus> bus_;
  GstClockTime latency_ = 0;
  std::mutex lock_;
  std::vector<SinkRecord> video_, head_out_, audio_;
  std::vector<SentenceEvent> sentences_;
  guint64 qos_messages_ = 0;
};

}  // namespace talker::test
