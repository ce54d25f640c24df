// SPDX-License-Identifier: LGPL-2.1-or-later
// Runs a pipeline around talkertts and records what left its src pad (every
// buffer, with the pipeline's running time when it left) and its
// talker-sentence messages, for the element tests.
#pragma once

#include <gst/gst.h>

#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "gst/common/gst_ptr.h"
#include "gst/common/sentence_meta.h"
#include "tests/tts_util.h"

namespace talker::test {

struct SentenceMark {
  TalkerSentenceState state;
  guint64 id;
  std::string text;
  GstClockTime offset;
  TalkerSentenceEndReason reason;
};

struct RecordedBuffer {
  GstClockTime pts, duration, left_at;  // left_at: running time when pushed
  guint64 offset, offset_end;
  bool gap, discont;
  std::vector<int16_t> samples;
  std::vector<SentenceMark> marks;
};

struct SentenceMessage {
  std::string state, text, reason;
  guint64 id, utterance;
  GstClockTime running_time;
};

class TalkerRun {
 public:
  explicit TalkerRun(const std::string &description) {
    GError *err = nullptr;
    pipeline_.reset(gst_parse_launch(description.c_str(), &err));
    if (err) throw std::runtime_error(err->message);
    tts_.reset(gst_bin_get_by_name(GST_BIN(pipeline_.get()), "tts"));
    gst::GstPtr<GstPad> src(gst_element_get_static_pad(tts_.get(), "src"));
    gst_pad_add_probe(src.get(), GST_PAD_PROBE_TYPE_BUFFER, on_buffer, this, nullptr);
    bus_.reset(gst_element_get_bus(pipeline_.get()));
  }
  ~TalkerRun() { gst_element_set_state(pipeline_.get(), GST_STATE_NULL); }

  GstElement *pipeline() { return pipeline_.get(); }
  GstElement *tts() { return tts_.get(); }

  GstClockTime running_time() {
    gst::GstPtr<GstClock> clock(gst_element_get_clock(pipeline_.get()));
    if (!clock) return 0;
    return gst_clock_get_time(clock.get()) - gst_element_get_base_time(pipeline_.get());
  }

  // Handles bus messages for up to `timeout`; returns false on EOS or error.
  bool pump(GstClockTime timeout) {
    bool popped;
    return handle_one(timeout, popped);
  }

  // Handles bus messages for `duration` of wall time, or until `done()`;
  // false on EOS or error.
  bool pump_for(GstClockTime duration, const std::function<bool()> &done = {}) {
    const gint64 end = g_get_monotonic_time() + gint64(duration / 1000);
    while (g_get_monotonic_time() < end && !(done && done()))
      if (!pump(5 * GST_MSECOND)) return false;
    return true;
  }

  // The say action signal; returns the utterance id.
  guint64 say(const std::string &text) {
    guint64 id = 0;
    g_signal_emit_by_name(tts_.get(), "say", text.c_str(), &id);
    return id;
  }

  // Handles what is on the bus now.
  void drain() {
    bool popped = true;
    while (popped && handle_one(0, popped)) {
    }
  }

  // Plays until EOS or error (rendering), at most `limit`.
  void run_to_eos(GstClockTime limit = 60 * GST_SECOND) {
    gst_element_set_state(pipeline_.get(), GST_STATE_PLAYING);
    const gint64 deadline = g_get_monotonic_time() + gint64(limit / 1000);
    while (g_get_monotonic_time() < deadline && pump(100 * GST_MSECOND)) {
    }
    drain();
  }

  std::vector<RecordedBuffer> take_buffers() {
    std::lock_guard<std::mutex> l(lock_);
    return buffers_;
  }

  std::vector<SentenceMessage> messages;
  std::vector<std::string> errors, warnings, warning_details;
  bool eos = false;

 private:
  bool handle_one(GstClockTime timeout, bool &popped) {
    gst::GstPtr<GstMessage> msg(
        gst_bus_timed_pop_filtered(bus_.get(), timeout,
                                   GstMessageType(GST_MESSAGE_ELEMENT | GST_MESSAGE_EOS |
                                                  GST_MESSAGE_ERROR | GST_MESSAGE_WARNING)));
    popped = msg != nullptr;
    if (!msg) return true;
    switch (GST_MESSAGE_TYPE(msg.get())) {
      case GST_MESSAGE_EOS:
        eos = true;
        return false;
      case GST_MESSAGE_ERROR:
      case GST_MESSAGE_WARNING: {
        GError *e = nullptr;
        gchar *debug = nullptr;
        if (GST_MESSAGE_TYPE(msg.get()) == GST_MESSAGE_ERROR)
          gst_message_parse_error(msg.get(), &e, &debug);
        else
          gst_message_parse_warning(msg.get(), &e, &debug);
        (GST_MESSAGE_TYPE(msg.get()) == GST_MESSAGE_ERROR ? errors : warnings)
            .push_back(e->message);
        const GstStructure *details = nullptr;
        if (GST_MESSAGE_TYPE(msg.get()) == GST_MESSAGE_WARNING) {
          gst_message_parse_warning_details(msg.get(), &details);
          if (details) warning_details.emplace_back(gst_structure_to_string(details));
        }
        g_error_free(e);
        g_free(debug);
        return GST_MESSAGE_TYPE(msg.get()) != GST_MESSAGE_ERROR;
      }
      default: {
        const GstStructure *s = gst_message_get_structure(msg.get());
        if (!gst_structure_has_name(s, "talker-sentence")) return true;
        SentenceMessage m;
        m.state = gst_structure_get_string(s, "state");
        m.text = gst_structure_get_string(s, "text");
        const char *reason = gst_structure_get_string(s, "reason");
        m.reason = reason ? reason : "";
        gst_structure_get_uint64(s, "id", &m.id);
        gst_structure_get_uint64(s, "utterance", &m.utterance);
        gst_structure_get_uint64(s, "running-time", &m.running_time);
        messages.push_back(m);
        return true;
      }
    }
  }

  static GstPadProbeReturn on_buffer(GstPad *, GstPadProbeInfo *info, gpointer data) {
    auto *self = static_cast<TalkerRun *>(data);
    GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
    RecordedBuffer r;
    r.pts = GST_BUFFER_PTS(buf);
    r.duration = GST_BUFFER_DURATION(buf);
    r.offset = GST_BUFFER_OFFSET(buf);
    r.offset_end = GST_BUFFER_OFFSET_END(buf);
    r.gap = GST_BUFFER_FLAG_IS_SET(buf, GST_BUFFER_FLAG_GAP);
    r.discont = GST_BUFFER_FLAG_IS_SET(buf, GST_BUFFER_FLAG_DISCONT);
    r.left_at = self->running_time();
    r.samples.resize(gst_buffer_get_size(buf) / 2);
    gst_buffer_extract(buf, 0, r.samples.data(), r.samples.size() * 2);
    gpointer state = nullptr;
    while (GstMeta *meta =
               gst_buffer_iterate_meta_filtered(buf, &state, TALKER_SENTENCE_META_API_TYPE)) {
      auto *m = reinterpret_cast<TalkerSentenceMeta *>(meta);
      r.marks.push_back({m->state, m->id, m->text ? m->text : "", m->offset, m->reason});
    }
    std::lock_guard<std::mutex> l(self->lock_);
    self->buffers_.push_back(std::move(r));
    return GST_PAD_PROBE_OK;
  }

  gst::GstPtr<GstElement> pipeline_, tts_;
  gst::GstPtr<GstBus> bus_;
  std::mutex lock_;
  std::vector<RecordedBuffer> buffers_;
};

}  // namespace talker::test
