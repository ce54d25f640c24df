// SPDX-License-Identifier: LGPL-2.1-or-later
/**
 * SECTION:element-whisperfeat
 *
 * Whisper encoder features for lip-sync models, one buffer per video frame.
 * 16 kHz mono audio in; for each video frame at #GstWhisperFeat:framerate a
 * float32 [10×layers, width] buffer (MuseTalk's audio chunk: the frame's two
 * 20 ms encoder rows with four before and four after, all hidden states
 * stacked) with the frame's PTS and DURATION. Frames whose audio was all GAP
 * come out as GAP buffers and cost no encoder run.
 *
 * gst-launch-1.0 talkertts is-live=false text="Hello" ! whisperfeat model=models/whisper/tiny.pt !
 * fakesink
 */
#include "gst/whisperfeat/gstwhisperfeat.h"

#include <gst/audio/audio.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include "gst/common/gst_ptr.h"
#include "gst/common/interrupt_event.h"
#include "lib/audio/log_mel.h"
#include "lib/audio/whisper_features.h"
#include "lib/common/error.h"
#include "lib/common/shared_cache.h"
#include "lib/nn/device.h"

GST_DEBUG_CATEGORY_STATIC(whisperfeat_debug);
#define GST_CAT_DEFAULT whisperfeat_debug

using talker::audio::FeatureStream;
using talker::audio::FeatureStreamConfig;
using talker::audio::WhisperFeaturizer;
namespace nn = talker::nn;

namespace {

enum class Mode { Auto, Utterance, Sliding };

struct Settings {
  std::string model;
  nn::WhisperLayout layout = nn::WhisperLayout::HF;
  int fps_num = 25, fps_den = 1;
  Mode mode = Mode::Auto;
  guint context_ms = 10000;
  guint lookahead_ms = 200;
  guint hop_frames = 5;
  bool whisper_padding = true;
  double gap_threshold_db = -200;  // off
  std::string device = "cpu";
  guint encoder_latency_ms = 0;  // 0: measured when the model loads
  bool qos = true;
};

// Sliding mode in a live pipeline: at most this many hops per encoder run
// when the encoder has fallen behind (see FeatureStreamConfig).
constexpr int kMaxHopsPerRun = 16;

// Featurizers are read-only after loading: one per (file, layout, device) per process.
talker::SharedCache<WhisperFeaturizer> &featurizer_cache() {
  static talker::SharedCache<WhisperFeaturizer> cache;
  return cache;
}

struct WhisperFeatState {
  std::mutex settings_lock;
  Settings settings;

  // Audio and serialized events wait here for the encoder thread (the src
  // pad's task), so a slow encoder never holds up the streaming thread.
  std::mutex queue_lock;
  std::condition_variable queue_cond;
  std::deque<GstMiniObject *> queue;  // GstBuffer or GstEvent, owned
  gint64 queued_samples = 0;
  bool flushing = true;
  bool busy = false;  // the encoder thread is working on what it took
  GstFlowReturn src_result = GST_FLOW_FLUSHING;
  bool live = false;  // upstream is live (from the latency query)
  // One encoder run, measured on a warm-up window when the model loads.
  GstClockTime encoder_cost = 0;
  // Live: what the latency query promised downstream (upstream's and ours)
  // and whether the sinks have configured a latency: frames that would
  // leave later than promised are produced without an encoder run.
  GstClockTime promised_latency = GST_CLOCK_TIME_NONE;
  bool latency_configured = false;
  GstClockTime run_cost = 0;  // running average of recent encoder runs
  guint64 runs = 0, frames_unencoded = 0;

  // Encoder-thread state.
  Settings active;  // settings captured when the model was loaded
  std::shared_ptr<const WhisperFeaturizer> featurizer;
  std::unique_ptr<FeatureStream> stream;
  GstAudioInfo info;
  bool have_info = false;
  GstSegment segment;
  GstClockTime origin = GST_CLOCK_TIME_NONE;  // timestamp of sample 0 of the stream
  gint64 samples_in = 0;
  bool discont = true;
  gint64 frames_out = 0;
};

}  // namespace

struct _GstWhisperFeat {
  GstElement parent;
  GstPad *sinkpad;
  GstPad *srcpad;
  WhisperFeatState *state;
};

G_DEFINE_TYPE(GstWhisperFeat, gst_whisper_feat, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE(whisperfeat, "whisperfeat", GST_RANK_NONE, GST_TYPE_WHISPER_FEAT);

enum {
  PROP_0,
  PROP_MODEL,
  PROP_LAYOUT,
  PROP_FRAMERATE,
  PROP_MODE,
  PROP_CONTEXT_MS,
  PROP_LOOKAHEAD_MS,
  PROP_HOP_FRAMES,
  PROP_WHISPER_PADDING,
  PROP_DEVICE,
  PROP_GAP_THRESHOLD_DB,
  PROP_ENCODER_LATENCY_MS,
  PROP_QOS,
  PROP_STATS,
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE(
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS("audio/x-raw, format=(string){ S16LE, F32LE }, rate=(int)16000, "
                    "channels=(int)1, layout=(string)interleaved"));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src", GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS("application/x-talker-features, format=(string)F32LE, "
                    "layers=(int)[1, 64], width=(int)[1, 4096], steps=(int)10, "
                    "layout=(string){ hf, openai }, framerate=(fraction)[1/1, 120/1]"));

#define GST_TYPE_WHISPER_FEAT_LAYOUT (whisper_feat_layout_get_type())
static GType whisper_feat_layout_get_type() {
  static GType type = 0;
  static const GEnumValue values[] = {
      {int(nn::WhisperLayout::HF),
       "Last hidden state after the final layer norm (transformers; MuseTalk v1.5)", "hf"},
      {int(nn::WhisperLayout::OpenAI),
       "Hidden states as openai-whisper's blocks leave them (MuseTalk v1.0)", "openai"},
      {0, nullptr, nullptr}};
  if (g_once_init_enter(&type))
    g_once_init_leave(&type, g_enum_register_static("GstWhisperFeatLayout", values));
  return type;
}

#define GST_TYPE_WHISPER_FEAT_MODE (whisper_feat_mode_get_type())
static GType whisper_feat_mode_get_type() {
  static GType type = 0;
  static const GEnumValue values[] = {
      {int(Mode::Auto), "Sliding when upstream is live, utterance otherwise", "auto"},
      {int(Mode::Utterance),
       "Encode each run of speech whole (up to 30 s at a time): MuseTalk's offline features, "
       "latency up to 30 s",
       "utterance"},
      {int(Mode::Sliding),
       "Encode the speech so far plus a look-ahead for every hop of frames: bounded latency, "
       "features close to offline",
       "sliding"},
      {0, nullptr, nullptr}};
  if (g_once_init_enter(&type))
    g_once_init_leave(&type, g_enum_register_static("GstWhisperFeatMode", values));
  return type;
}

static WhisperFeatState &state_of(GstWhisperFeat *self) {
  return *self->state;
}

// Loads (or shares) the model named by the settings. Posts an error and
// returns false on failure.
static bool load_model(GstWhisperFeat *self) {
  auto &st = state_of(self);
  {
    std::lock_guard<std::mutex> lock(st.settings_lock);
    st.active = st.settings;
  }
  const Settings &s = st.active;
  if (s.model.empty()) {
    GST_ELEMENT_ERROR(
        self, RESOURCE, NOT_FOUND, ("No whisper model given"),
        ("Set the 'model' property to a whisper-tiny checkpoint (tiny.pt or pytorch_model.bin)"));
    return false;
  }
  try {
    const torch::Device device = nn::usable_device(s.device);
    std::string key = s.model + "|" + std::to_string(int(s.layout)) + "|" + device.str();
    st.featurizer = featurizer_cache().get(key, [&] {
      GST_INFO_OBJECT(self, "loading %s on %s", s.model.c_str(), device.str().c_str());
      return std::make_shared<WhisperFeaturizer>(nn::load_whisper_encoder(s.model, device),
                                                 s.layout);
    });
    // One warm-up run on a window as long as a sliding run's: the first
    // real run is not slowed by lazy initialisation, and the latency query
    // starts from a measurement.
    const gint64 window = std::min<gint64>(
        talker::audio::kWindowSamples, gint64(s.context_ms + s.lookahead_ms) * 16 +
                                           gint64(s.hop_frames) * 16000 * s.fps_den / s.fps_num);
    std::vector<float> silence(size_t(std::max<gint64>(window, 16000)), 0.0f);
    st.featurizer->encode(silence.data(), gint64(silence.size()), s.whisper_padding);  // cold
    auto t0 = std::chrono::steady_clock::now();
    st.featurizer->encode(silence.data(), gint64(silence.size()), s.whisper_padding);
    st.encoder_cost =
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    GST_INFO_OBJECT(self, "one encoder run in %.1f ms", st.encoder_cost / 1e6);
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ, ("Could not load whisper model"),
                      ("%s", e.what()));
    return false;
  }
  return true;
}

static bool upstream_is_live(GstWhisperFeat *self) {
  talker::gst::GstPtr<GstQuery> q(gst_query_new_latency());
  gboolean live = FALSE;
  if (gst_pad_peer_query(self->sinkpad, q.get()))
    gst_query_parse_latency(q.get(), &live, nullptr, nullptr);
  return live;
}

// The stream's configuration for these settings, upstream live or not.
static FeatureStreamConfig stream_config(const Settings &s, bool live) {
  FeatureStreamConfig cfg;
  const Mode mode = s.mode == Mode::Auto ? (live ? Mode::Sliding : Mode::Utterance) : s.mode;
  cfg.mode = mode == Mode::Sliding ? FeatureStreamConfig::Mode::Sliding
                                   : FeatureStreamConfig::Mode::Utterance;
  cfg.grid.fps_num = s.fps_num;
  cfg.grid.fps_den = s.fps_den;
  cfg.context_samples = gint64(s.context_ms) * talker::audio::kSampleRate / 1000;
  cfg.lookahead_samples = gint64(s.lookahead_ms) * talker::audio::kSampleRate / 1000;
  cfg.hop_frames = int(s.hop_frames);
  cfg.pad_to_30s = s.whisper_padding;
  // Live, an encoder that fell behind catches up with wider runs instead of
  // lagging further; rendering keeps one run per hop (reproducible features).
  if (mode == Mode::Sliding && live) cfg.max_hops_per_run = kMaxHopsPerRun;
  return cfg;
}

static void make_stream(GstWhisperFeat *self) {
  auto &st = state_of(self);
  const bool live = upstream_is_live(self);
  {
    std::lock_guard<std::mutex> l(st.queue_lock);
    st.live = live;
  }
  const FeatureStreamConfig cfg = stream_config(st.active, live);
  st.stream = std::make_unique<FeatureStream>(st.featurizer, cfg);
  GST_INFO_OBJECT(self, "%s mode, latency %" G_GINT64_FORMAT " ms",
                  cfg.mode == FeatureStreamConfig::Mode::Sliding ? "sliding" : "utterance",
                  st.stream->latency_samples() / 16);
  st.samples_in = 0;
  st.frames_out = 0;
  st.origin = GST_CLOCK_TIME_NONE;
  st.discont = true;
}

static GstFlowReturn push_ready(GstWhisperFeat *self) {
  auto &st = state_of(self);
  const Settings &s = st.active;
  const gsize bytes = gsize(talker::audio::kRowsPerChunk) * st.featurizer->layers() *
                      st.featurizer->width() * sizeof(float);
  for (auto &frame : st.stream->take_ready()) {
    GstBuffer *buf = gst_buffer_new_allocate(nullptr, bytes, nullptr);
    GstMapInfo map;
    gst_buffer_map(buf, &map, GST_MAP_WRITE);
    if (!frame.chunk.defined())
      memset(map.data, 0, bytes);
    else
      memcpy(map.data, frame.chunk.contiguous().data_ptr<float>(), bytes);
    gst_buffer_unmap(buf, &map);
    const GstClockTime origin = GST_CLOCK_TIME_IS_VALID(st.origin) ? st.origin : 0;
    const GstClockTime start =
        gst_util_uint64_scale(frame.index, GST_SECOND * s.fps_den, s.fps_num);
    const GstClockTime end =
        gst_util_uint64_scale(frame.index + 1, GST_SECOND * s.fps_den, s.fps_num);
    GST_BUFFER_PTS(buf) = origin + start;
    GST_BUFFER_DURATION(buf) = end - start;
    GST_BUFFER_OFFSET(buf) = frame.index;
    if (frame.gap) GST_BUFFER_FLAG_SET(buf, GST_BUFFER_FLAG_GAP);
    // Speech that could not be encoded in time: no features, the face is held.
    if (frame.unencoded) GST_BUFFER_FLAG_SET(buf, GST_BUFFER_FLAG_DROPPABLE);
    if (st.discont) {
      GST_BUFFER_FLAG_SET(buf, GST_BUFFER_FLAG_DISCONT);
      st.discont = false;
    }
    ++st.frames_out;
    GST_LOG_OBJECT(self, "frame %" G_GINT64_FORMAT " %s pts %" GST_TIME_FORMAT, frame.index,
                   frame.gap ? "gap" : "speech", GST_TIME_ARGS(GST_BUFFER_PTS(buf)));
    GstFlowReturn ret = gst_pad_push(self->srcpad, buf);
    if (ret != GST_FLOW_OK) return ret;
  }
  return GST_FLOW_OK;
}

// Runs `step` on the feature stream, turning library exceptions into a bus error.
template <typename Step>
static GstFlowReturn run_stream(GstWhisperFeat *self, Step step) {
  try {
    step(*state_of(self).stream);
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR(self, STREAM, FAILED, ("Whisper feature extraction failed"),
                      ("%s", e.what()));
    return GST_FLOW_ERROR;
  }
  return push_ready(self);
}

static GstFlowReturn drain(GstWhisperFeat *self) {
  auto &st = state_of(self);
  if (!st.stream) return GST_FLOW_OK;
  GstFlowReturn ret = run_stream(self, [](FeatureStream &s) { s.finish(); });
  st.stream->reset();
  st.samples_in = 0;
  st.origin = GST_CLOCK_TIME_NONE;
  st.discont = true;
  return ret;
}

// Reads 16 kHz mono caps into `info`; anything else is a bus error.
static bool parse_audio_caps(GstWhisperFeat *self, GstCaps *caps, GstAudioInfo *info) {
  if (gst_audio_info_from_caps(info, caps) && GST_AUDIO_INFO_RATE(info) == 16000 &&
      GST_AUDIO_INFO_CHANNELS(info) == 1)
    return true;
  GST_ELEMENT_ERROR(
      self, STREAM, FORMAT, ("whisperfeat needs 16 kHz mono audio"),
      ("got caps %" GST_PTR_FORMAT "; put audioconvert ! audioresample in front", caps));
  return false;
}

static gboolean set_caps(GstWhisperFeat *self, GstCaps *caps) {
  auto &st = state_of(self);
  GstAudioInfo info;
  if (!parse_audio_caps(self, caps, &info)) return FALSE;
  if (st.stream && st.have_info && !gst_audio_info_is_equal(&info, &st.info)) drain(self);
  st.info = info;
  st.have_info = true;
  if (!st.stream) make_stream(self);
  const Settings &s = st.active;
  talker::gst::GstPtr<GstCaps> out(gst_caps_new_simple(
      "application/x-talker-features", "format", G_TYPE_STRING, "F32LE", "layers", G_TYPE_INT,
      int(st.featurizer->layers()), "width", G_TYPE_INT, int(st.featurizer->width()), "steps",
      G_TYPE_INT, talker::audio::kRowsPerChunk, "layout", G_TYPE_STRING,
      s.layout == nn::WhisperLayout::HF ? "hf" : "openai", "framerate", GST_TYPE_FRACTION,
      s.fps_num, s.fps_den, nullptr));
  return gst_pad_set_caps(self->srcpad, out.get());
}

// Encoder thread: one buffer of audio into the feature stream.
static GstFlowReturn process_buffer(GstWhisperFeat *self, GstBuffer *buffer) {
  auto &st = state_of(self);
  talker::gst::GstPtr<GstBuffer> buf(buffer);
  if (!st.have_info || !st.stream) {
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("No caps before the first buffer"), (nullptr));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  const int bpf = GST_AUDIO_INFO_BPF(&st.info);
  const bool gap = GST_BUFFER_FLAG_IS_SET(buffer, GST_BUFFER_FLAG_GAP);
  gint64 n = gint64(gst_buffer_get_size(buffer)) / bpf;
  if (n == 0 && gap && GST_BUFFER_DURATION_IS_VALID(buffer))
    n = gint64(gst_util_uint64_scale_round(GST_BUFFER_DURATION(buffer), 16000, GST_SECOND));

  const GstClockTime pts = GST_BUFFER_PTS(buffer);
  GstFlowReturn ret = GST_FLOW_OK;
  if (GST_CLOCK_TIME_IS_VALID(st.origin) && GST_CLOCK_TIME_IS_VALID(pts)) {
    // Timestamps that jump by more than half a buffer start a new stream: the
    // frame grid follows the audio, so drain and restart at the new time.
    const GstClockTime expected =
        st.origin + gst_util_uint64_scale(st.samples_in, GST_SECOND, 16000);
    const GstClockTimeDiff drift = GST_CLOCK_DIFF(expected, pts);
    if (std::llabs(drift) > GST_MSECOND * 10) {
      GST_DEBUG_OBJECT(self, "timestamp jump of %" GST_STIME_FORMAT ", restarting",
                       GST_STIME_ARGS(drift));
      ret = drain(self);
      if (ret != GST_FLOW_OK) return ret;
    }
  }
  if (!GST_CLOCK_TIME_IS_VALID(st.origin))
    st.origin = GST_CLOCK_TIME_IS_VALID(pts)
                    ? pts
                    : (st.segment.format == GST_FORMAT_TIME ? st.segment.start : 0);

  std::vector<float> samples;
  if (!gap && n > 0) {
    samples.resize(n);
    GstMapInfo map;
    if (!gst_buffer_map(buffer, &map, GST_MAP_READ)) return GST_FLOW_ERROR;
    if (GST_AUDIO_INFO_FORMAT(&st.info) == GST_AUDIO_FORMAT_F32LE) {
      memcpy(samples.data(), map.data, n * sizeof(float));
    } else {
      const gint16 *s16 = reinterpret_cast<const gint16 *>(map.data);
      for (gint64 i = 0; i < n; ++i) samples[i] = s16[i] / 32768.0f;
    }
    gst_buffer_unmap(buffer, &map);
  }
  st.samples_in += n;
  const double threshold_db = st.active.gap_threshold_db;
  if (gap || threshold_db <= -200)
    return run_stream(self,
                      [&](FeatureStream &s) { s.push(gap ? nullptr : samples.data(), n, gap); });
  // Silence gate for sources that do not flag GAP: 20 ms stretches quieter
  // than the threshold count as silence.
  const double threshold = std::pow(10.0, threshold_db / 20.0);
  return run_stream(self, [&](FeatureStream &s) {
    for (gint64 off = 0; off < n; off += talker::audio::kSamplesPerRow) {
      const gint64 len = std::min<gint64>(talker::audio::kSamplesPerRow, n - off);
      double energy = 0;
      for (gint64 i = 0; i < len; ++i) energy += double(samples[off + i]) * samples[off + i];
      const bool quiet = std::sqrt(energy / len) < threshold;
      s.push(quiet ? nullptr : samples.data() + off, len, quiet);
    }
  });
}

// Encoder thread: a serialized event, in order with the audio around it.
static void process_event(GstWhisperFeat *self, GstEvent *event) {
  auto &st = state_of(self);
  switch (GST_EVENT_TYPE(event)) {
    case GST_EVENT_CAPS: {
      GstCaps *caps;
      gst_event_parse_caps(event, &caps);
      set_caps(self, caps);
      gst_event_unref(event);
      return;
    }
    case GST_EVENT_SEGMENT:
      gst_event_copy_segment(event, &st.segment);
      break;
    case GST_EVENT_GAP: {
      // Silence announced without buffers: the frames it covers are GAP frames.
      GstClockTime ts, dur;
      gst_event_parse_gap(event, &ts, &dur);
      if (st.stream && GST_CLOCK_TIME_IS_VALID(dur)) {
        if (!GST_CLOCK_TIME_IS_VALID(st.origin)) st.origin = ts;
        gint64 n = gint64(gst_util_uint64_scale_round(dur, 16000, GST_SECOND));
        st.samples_in += n;
        run_stream(self, [&](FeatureStream &s) { s.push(nullptr, n, true); });
      }
      gst_event_unref(event);
      return;
    }
    case GST_EVENT_EOS:
      drain(self);
      break;
    default:
      // Interrupted speech: what follows is silence, so the frames waiting
      // for look-ahead or for their utterance's end are produced at once.
      if (talker_event_is_interrupt(event) && st.stream)
        run_stream(self, [](FeatureStream &s) { s.assume_silence_ahead(); });
      break;
  }
  gst_pad_push_event(self->srcpad, event);
}

// Drops what waits for the encoder thread. A flush keeps the sticky events
// that outlive it (stream-start, caps, tags): upstream does not send them
// again, and caps dropped before the thread read them left the element
// without caps after the flush (not-negotiated on the next buffer).
static void clear_queue(WhisperFeatState &st, bool flush = false) {
  std::deque<GstMiniObject *> kept;
  for (GstMiniObject *obj : st.queue) {
    if (flush && GST_IS_EVENT(obj)) {
      GstEvent *e = GST_EVENT_CAST(obj);
      if (GST_EVENT_IS_STICKY(e) && GST_EVENT_TYPE(e) != GST_EVENT_SEGMENT &&
          GST_EVENT_TYPE(e) != GST_EVENT_EOS) {
        kept.push_back(obj);
        continue;
      }
    }
    gst_mini_object_unref(obj);
  }
  st.queue.swap(kept);
  st.queued_samples = 0;
}

// Live: frames whose audio is here but that an encoder run started now
// would deliver later than the latency promised are produced at once without
// features (DROPPABLE), and the run covers only the frames after them.
static void skip_late_frames(GstWhisperFeat *self) {
  auto &st = state_of(self);
  GstClockTime promised, cost;
  {
    std::lock_guard<std::mutex> l(st.queue_lock);
    if (!st.active.qos || !st.live || !st.latency_configured ||
        !GST_CLOCK_TIME_IS_VALID(st.promised_latency))
      return;
    promised = st.promised_latency;
    cost = std::max(st.run_cost, st.encoder_cost) * 5 / 4;
  }
  GstClock *clock = gst_element_get_clock(GST_ELEMENT(self));
  if (!clock || !GST_CLOCK_TIME_IS_VALID(st.origin)) {
    if (clock) gst_object_unref(clock);
    return;
  }
  const GstClockTime now = gst_clock_get_time(clock);
  gst_object_unref(clock);
  const GstClockTime base = gst_element_get_base_time(GST_ELEMENT(self));
  // Frames whose running time is before this are late if encoded now.
  if (now + cost < base + promised) return;
  const GstClockTime late_rt = now + cost - base - promised;
  const GstClockTime late_pts =
      gst_segment_position_from_running_time(&st.segment, GST_FORMAT_TIME, late_rt);
  if (!GST_CLOCK_TIME_IS_VALID(late_pts) || late_pts <= st.origin) return;
  const auto &g = st.stream->config().grid;
  const gint64 t_end =
      g.frame_of(gint64(gst_util_uint64_scale(late_pts - st.origin, 16000, GST_SECOND)));
  GST_LOG_OBJECT(self,
                 "now %" GST_TIME_FORMAT " late before %" GST_TIME_FORMAT " (pts %" GST_TIME_FORMAT
                 "), frame %" G_GINT64_FORMAT ", next %" G_GINT64_FORMAT,
                 GST_TIME_ARGS(now - base), GST_TIME_ARGS(late_rt), GST_TIME_ARGS(late_pts), t_end,
                 st.stream->next_frame());
  if (t_end <= st.stream->next_frame()) return;
  const gint64 skipped = st.stream->skip_frames_before(t_end);
  if (skipped > 0) {
    GST_DEBUG_OBJECT(self, "%" G_GINT64_FORMAT " speech frames unencoded to keep time", skipped);
    std::lock_guard<std::mutex> l(st.queue_lock);
    st.frames_unencoded += skipped;
  }
}

// The src pad's task: takes everything queued at once, so audio that piled
// up while the encoder ran is encoded in wider runs (catch-up).
static void whisper_feat_loop(gpointer user_data) {
  auto *self = GST_WHISPER_FEAT(user_data);
  auto &st = state_of(self);
  std::deque<GstMiniObject *> items;
  {
    std::unique_lock<std::mutex> l(st.queue_lock);
    st.queue_cond.wait(l, [&] { return st.flushing || !st.queue.empty(); });
    if (st.flushing) {
      l.unlock();
      gst_pad_pause_task(self->srcpad);
      return;
    }
    items.swap(st.queue);
    st.queued_samples = 0;
    st.busy = true;
    st.queue_cond.notify_all();
  }
  GstFlowReturn ret = GST_FLOW_OK;
  bool held = false;
  auto release = [&] {
    if (!held) return;
    held = false;
    if (!st.stream) return;
    skip_late_frames(self);
    const gint64 runs_before = st.stream->encoder_runs();
    const auto t0 = std::chrono::steady_clock::now();
    ret = run_stream(self, [](FeatureStream &s) { s.release(); });
    const gint64 runs = st.stream ? st.stream->encoder_runs() - runs_before : 0;
    if (runs > 0) {
      const GstClockTime ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                  std::chrono::steady_clock::now() - t0)
                                  .count();
      std::lock_guard<std::mutex> l(st.queue_lock);
      // Up at once, down slowly: an estimate that lags a slower spell lets
      // runs start that then deliver late.
      st.run_cost = std::max<GstClockTime>(ns / runs, (st.run_cost * 7 + ns / runs) / 8);
      st.runs += runs;
    }
  };
  for (GstMiniObject *obj : items) {
    if (ret != GST_FLOW_OK) {
      gst_mini_object_unref(obj);
      continue;
    }
    if (GST_IS_BUFFER(obj)) {
      if (st.stream && !held) {
        st.stream->hold();
        held = true;
      }
      ret = process_buffer(self, GST_BUFFER_CAST(obj));
      continue;
    }
    release();
    if (ret != GST_FLOW_OK) {
      gst_mini_object_unref(obj);
      continue;
    }
    GstEvent *event = GST_EVENT_CAST(obj);
    const bool eos = GST_EVENT_TYPE(event) == GST_EVENT_EOS;
    process_event(self, event);
    if (eos) ret = GST_FLOW_EOS;
  }
  if (ret == GST_FLOW_OK) release();
  std::lock_guard<std::mutex> l(st.queue_lock);
  st.busy = false;
  st.queue_cond.notify_all();
  if (ret != GST_FLOW_OK) {
    st.src_result = ret;
    if (ret == GST_FLOW_NOT_LINKED || ret < GST_FLOW_EOS) GST_ELEMENT_FLOW_ERROR(self, ret);
    gst_pad_pause_task(self->srcpad);
  }
}

// Queues a buffer or serialized event for the encoder thread. Blocks while
// more audio than `limit` waits (backpressure for renders; live, only when
// the encoder is hopelessly behind).
static GstFlowReturn enqueue(GstWhisperFeat *self, GstMiniObject *obj, gint64 samples) {
  auto &st = state_of(self);
  std::unique_lock<std::mutex> l(st.queue_lock);
  const gint64 limit = st.live ? 10 * 16000 : 2 * 16000;
  if (st.queued_samples >= limit)
    GST_DEBUG_OBJECT(self, "%" G_GINT64_FORMAT " samples wait for the encoder: holding upstream",
                     st.queued_samples);
  st.queue_cond.wait(l, [&] { return st.flushing || st.queued_samples < limit; });
  if (st.flushing || (st.src_result != GST_FLOW_OK && GST_IS_BUFFER(obj))) {
    GstFlowReturn ret = st.flushing ? GST_FLOW_FLUSHING : st.src_result;
    l.unlock();
    gst_mini_object_unref(obj);
    return ret;
  }
  st.queue.push_back(obj);
  st.queued_samples += samples;
  st.queue_cond.notify_all();
  return GST_FLOW_OK;
}

static GstFlowReturn whisper_feat_chain(GstPad *, GstObject *parent, GstBuffer *buffer) {
  auto *self = GST_WHISPER_FEAT(parent);
  GstClockTime dur = GST_BUFFER_DURATION(buffer);
  gint64 samples = GST_CLOCK_TIME_IS_VALID(dur)
                       ? gint64(gst_util_uint64_scale(dur, 16000, GST_SECOND))
                       : gint64(gst_buffer_get_size(buffer) / 2);
  return enqueue(self, GST_MINI_OBJECT_CAST(buffer), samples);
}

static gboolean whisper_feat_sink_event(GstPad *pad, GstObject *parent, GstEvent *event) {
  auto *self = GST_WHISPER_FEAT(parent);
  auto &st = state_of(self);
  switch (GST_EVENT_TYPE(event)) {
    case GST_EVENT_FLUSH_START: {
      {
        std::lock_guard<std::mutex> l(st.queue_lock);
        st.flushing = true;
        st.src_result = GST_FLOW_FLUSHING;
        st.queue_cond.notify_all();
      }
      gboolean ret = gst_pad_push_event(self->srcpad, event);
      gst_pad_pause_task(self->srcpad);
      return ret;
    }
    case GST_EVENT_FLUSH_STOP: {
      {
        std::lock_guard<std::mutex> l(st.queue_lock);
        clear_queue(st, true);
        st.flushing = false;
        st.src_result = GST_FLOW_OK;
      }
      if (st.stream) st.stream->reset();
      st.samples_in = 0;
      st.origin = GST_CLOCK_TIME_NONE;
      st.discont = true;
      gboolean ret = gst_pad_push_event(self->srcpad, event);
      gst_pad_start_task(self->srcpad, whisper_feat_loop, self, nullptr);
      return ret;
    }
    case GST_EVENT_CAPS: {
      // Checked here so that negotiation fails where upstream sees it.
      GstCaps *caps;
      gst_event_parse_caps(event, &caps);
      GstAudioInfo info;
      if (!parse_audio_caps(self, caps, &info)) {
        gst_event_unref(event);
        return FALSE;
      }
      break;
    }
    case GST_EVENT_SEGMENT: {
      GstSegment segment;
      gst_event_copy_segment(event, &segment);
      if (segment.format != GST_FORMAT_TIME) {
        GST_ELEMENT_ERROR(self, STREAM, FORMAT, ("whisperfeat needs a TIME segment"), (nullptr));
        gst_event_unref(event);
        return FALSE;
      }
      break;
    }
    default:
      break;
  }
  if (GST_EVENT_IS_SERIALIZED(event))
    return enqueue(self, GST_MINI_OBJECT_CAST(event), 0) == GST_FLOW_OK;
  return gst_pad_event_default(pad, parent, event);
}

static gboolean whisper_feat_src_event(GstPad *pad, GstObject *parent, GstEvent *event) {
  auto &st = state_of(GST_WHISPER_FEAT(parent));
  if (GST_EVENT_TYPE(event) == GST_EVENT_LATENCY) {
    std::lock_guard<std::mutex> l(st.queue_lock);
    st.latency_configured = true;
  }
  return gst_pad_event_default(pad, parent, event);
}

static gboolean whisper_feat_sink_query(GstPad *pad, GstObject *parent, GstQuery *query) {
  auto &st = state_of(GST_WHISPER_FEAT(parent));
  if (GST_QUERY_IS_SERIALIZED(query)) {
    // In order with the data: answer once everything before it is processed
    // (a DRAIN query waits for every frame the audio so far makes).
    std::unique_lock<std::mutex> l(st.queue_lock);
    // A task stopped by EOS or an error takes nothing more: do not wait for it.
    st.queue_cond.wait(l, [&] {
      return st.flushing || st.src_result != GST_FLOW_OK || (st.queue.empty() && !st.busy);
    });
    if (st.flushing) return FALSE;
  }
  return gst_pad_query_default(pad, parent, query);
}

static gboolean whisper_feat_src_activate_mode(GstPad *pad, GstObject *parent, GstPadMode mode,
                                               gboolean active) {
  auto *self = GST_WHISPER_FEAT(parent);
  auto &st = state_of(self);
  if (mode != GST_PAD_MODE_PUSH) return FALSE;
  if (active) {
    {
      std::lock_guard<std::mutex> l(st.queue_lock);
      st.flushing = false;
      st.src_result = GST_FLOW_OK;
      st.latency_configured = false;
      st.promised_latency = GST_CLOCK_TIME_NONE;
      st.run_cost = st.encoder_cost;
      st.runs = st.frames_unencoded = 0;
    }
    return gst_pad_start_task(pad, whisper_feat_loop, self, nullptr);
  }
  {
    std::lock_guard<std::mutex> l(st.queue_lock);
    st.flushing = true;
    st.src_result = GST_FLOW_FLUSHING;
    st.queue_cond.notify_all();
  }
  gboolean ok = gst_pad_stop_task(pad);
  std::lock_guard<std::mutex> l(st.queue_lock);
  clear_queue(st);
  return ok;
}

static gboolean whisper_feat_src_query(GstPad *pad, GstObject *parent, GstQuery *query) {
  auto *self = GST_WHISPER_FEAT(parent);
  auto &st = state_of(self);
  if (GST_QUERY_TYPE(query) == GST_QUERY_LATENCY) {
    if (!gst_pad_peer_query(self->sinkpad, query)) return FALSE;
    gboolean live;
    GstClockTime min, max;
    gst_query_parse_latency(query, &live, &min, &max);
    // Frames wait for the audio after them that their chunk (and the
    // look-ahead) covers; in utterance mode, for the end of the utterance.
    {
      std::lock_guard<std::mutex> l(st.queue_lock);
      st.live = live;
    }
    // From the settings, not the stream: the query may come before the caps
    // reach the encoder thread.
    GstClockTime ours = gst_util_uint64_scale(
        FeatureStream::latency_samples(stream_config(st.active, live)), GST_SECOND, 16000);
    // And the encoder: live, a frame's run may wait for the run before it.
    ours += st.active.encoder_latency_ms ? st.active.encoder_latency_ms * GST_MSECOND
                                         : st.encoder_cost * 2 * 5 / 4;
    min += ours;
    {
      std::lock_guard<std::mutex> l(st.queue_lock);
      st.promised_latency = min;
    }
    if (GST_CLOCK_TIME_IS_VALID(max)) max += ours;
    GST_DEBUG_OBJECT(self, "latency: ours %" GST_TIME_FORMAT ", total min %" GST_TIME_FORMAT,
                     GST_TIME_ARGS(ours), GST_TIME_ARGS(min));
    gst_query_set_latency(query, live, min, max);
    return TRUE;
  }
  return gst_pad_query_default(pad, parent, query);
}

static GstStateChangeReturn whisper_feat_change_state(GstElement *element,
                                                      GstStateChange transition) {
  auto *self = GST_WHISPER_FEAT(element);
  auto &st = state_of(self);
  if (transition == GST_STATE_CHANGE_NULL_TO_READY && !load_model(self))
    return GST_STATE_CHANGE_FAILURE;
  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED) {
    gst_segment_init(&st.segment, GST_FORMAT_TIME);
    st.have_info = false;
    st.stream.reset();
  }
  GstStateChangeReturn ret =
      GST_ELEMENT_CLASS(gst_whisper_feat_parent_class)->change_state(element, transition);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) {
    st.stream.reset();
    st.have_info = false;
  }
  if (transition == GST_STATE_CHANGE_READY_TO_NULL) st.featurizer.reset();
  return ret;
}

static void whisper_feat_set_property(GObject *object, guint prop_id, const GValue *value,
                                      GParamSpec *pspec) {
  auto *self = GST_WHISPER_FEAT(object);
  auto &st = state_of(self);
  std::lock_guard<std::mutex> lock(st.settings_lock);
  Settings &s = st.settings;
  switch (prop_id) {
    case PROP_MODEL:
      s.model = g_value_get_string(value) ? g_value_get_string(value) : "";
      break;
    case PROP_LAYOUT:
      s.layout = nn::WhisperLayout(g_value_get_enum(value));
      break;
    case PROP_FRAMERATE: {
      int num = gst_value_get_fraction_numerator(value),
          den = gst_value_get_fraction_denominator(value);
      if (num <= 0 || den <= 0 || num > 120 * den) {
        g_warning("whisperfeat: framerate %d/%d out of range (1/1 to 120/1)", num, den);
        break;
      }
      s.fps_num = num;
      s.fps_den = den;
      break;
    }
    case PROP_MODE:
      s.mode = Mode(g_value_get_enum(value));
      break;
    case PROP_CONTEXT_MS:
      s.context_ms = g_value_get_uint(value);
      break;
    case PROP_LOOKAHEAD_MS:
      s.lookahead_ms = g_value_get_uint(value);
      break;
    case PROP_HOP_FRAMES:
      s.hop_frames = g_value_get_uint(value);
      break;
    case PROP_WHISPER_PADDING:
      s.whisper_padding = g_value_get_boolean(value);
      break;
    case PROP_GAP_THRESHOLD_DB:
      s.gap_threshold_db = g_value_get_double(value);
      break;
    case PROP_ENCODER_LATENCY_MS:
      s.encoder_latency_ms = g_value_get_uint(value);
      break;
    case PROP_QOS:
      s.qos = g_value_get_boolean(value);
      break;
    case PROP_DEVICE: {
      const char *d = g_value_get_string(value);
      if (auto name = nn::canonical_device(d ? d : ""))
        s.device = *name;
      else
        g_warning("whisperfeat: invalid device '%s' (expected cpu, cuda or cuda:N)", d ? d : "");
      break;
    }
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
  }
}

static void whisper_feat_get_property(GObject *object, guint prop_id, GValue *value,
                                      GParamSpec *pspec) {
  auto *self = GST_WHISPER_FEAT(object);
  auto &st = state_of(self);
  if (prop_id == PROP_STATS) {
    std::lock_guard<std::mutex> l(st.queue_lock);
    g_value_take_boxed(
        value, gst_structure_new("whisperfeat-stats", "encoder-runs", G_TYPE_UINT64, st.runs,
                                 "frames-unencoded", G_TYPE_UINT64, st.frames_unencoded,
                                 "encoder-run-ms", G_TYPE_DOUBLE, st.run_cost / 1e6, nullptr));
    return;
  }
  std::lock_guard<std::mutex> lock(st.settings_lock);
  const Settings &s = st.settings;
  switch (prop_id) {
    case PROP_MODEL:
      g_value_set_string(value, s.model.c_str());
      break;
    case PROP_LAYOUT:
      g_value_set_enum(value, int(s.layout));
      break;
    case PROP_FRAMERATE:
      gst_value_set_fraction(value, s.fps_num, s.fps_den);
      break;
    case PROP_MODE:
      g_value_set_enum(value, int(s.mode));
      break;
    case PROP_CONTEXT_MS:
      g_value_set_uint(value, s.context_ms);
      break;
    case PROP_LOOKAHEAD_MS:
      g_value_set_uint(value, s.lookahead_ms);
      break;
    case PROP_HOP_FRAMES:
      g_value_set_uint(value, s.hop_frames);
      break;
    case PROP_WHISPER_PADDING:
      g_value_set_boolean(value, s.whisper_padding);
      break;
    case PROP_GAP_THRESHOLD_DB:
      g_value_set_double(value, s.gap_threshold_db);
      break;
    case PROP_ENCODER_LATENCY_MS:
      g_value_set_uint(value, s.encoder_latency_ms);
      break;
    case PROP_QOS:
      g_value_set_boolean(value, s.qos);
      break;
    case PROP_DEVICE:
      g_value_set_string(value, s.device.c_str());
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
  }
}

static void whisper_feat_finalize(GObject *object) {
  delete GST_WHISPER_FEAT(object)->state;
  G_OBJECT_CLASS(gst_whisper_feat_parent_class)->finalize(object);
}

static void gst_whisper_feat_class_init(GstWhisperFeatClass *klass) {
  auto *gobject_class = G_OBJECT_CLASS(klass);
  auto *element_class = GST_ELEMENT_CLASS(klass);
  gobject_class->set_property = whisper_feat_set_property;
  gobject_class->get_property = whisper_feat_get_property;
  gobject_class->finalize = whisper_feat_finalize;
  element_class->change_state = whisper_feat_change_state;

  const auto flags =
      GParamFlags(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  g_object_class_install_property(
      gobject_class, PROP_GAP_THRESHOLD_DB,
      g_param_spec_double(
          "gap-threshold-db", "GAP threshold (dBFS)",
          "Treat 20 ms of audio quieter than this (RMS, dBFS) as silence, like GAP buffers, "
          "for sources that do not flag GAP (files); -200 (default) turns the gate off, "
          "which keeps MuseTalk's offline features exact",
          -200, 0, -200, flags));
  g_object_class_install_property(
      gobject_class, PROP_MODEL,
      g_param_spec_string(
          "model", "Model",
          "Whisper checkpoint: openai tiny.pt, or transformers "
          "pytorch_model.bin / model.safetensors (encoder keys are used, decoder keys ignored)",
          "", flags));
  g_object_class_install_property(
      gobject_class, PROP_LAYOUT,
      g_param_spec_enum("layout", "Layout",
                        "Which hidden states are stacked: hf for MuseTalk v1.5, openai for v1.0",
                        GST_TYPE_WHISPER_FEAT_LAYOUT, int(nn::WhisperLayout::HF), flags));
  g_object_class_install_property(
      gobject_class, PROP_FRAMERATE,
      gst_param_spec_fraction("framerate", "Frame rate",
                              "Video frame rate: one feature buffer per frame", 1, 1, 120, 1, 25, 1,
                              flags));
  g_object_class_install_property(
      gobject_class, PROP_MODE,
      g_param_spec_enum("mode", "Mode", "How audio is grouped for the encoder",
                        GST_TYPE_WHISPER_FEAT_MODE, int(Mode::Auto), flags));
  g_object_class_install_property(
      gobject_class, PROP_CONTEXT_MS,
      g_param_spec_uint(
          "context-ms", "Context (ms)",
          "Sliding mode: how far back into the current run of "
          "speech each encoder window reaches before the hop, in milliseconds. Windows never reach "
          "into the silence before an utterance. With whisper-padding the cost does not depend on "
          "it; "
          "without, the cost grows with it",
          0, 29000, 10000, flags));
  g_object_class_install_property(
      gobject_class, PROP_LOOKAHEAD_MS,
      g_param_spec_uint("lookahead-ms", "Look-ahead (ms)",
                        "Sliding mode: audio after each hop's last chunk row "
                        "that the encoder also sees, in milliseconds; adds to the latency",
                        0, 5000, 200, flags));
  g_object_class_install_property(
      gobject_class, PROP_HOP_FRAMES,
      g_param_spec_uint("hop-frames", "Hop (frames)",
                        "Sliding mode: video frames per encoder run; each adds one "
                        "frame of latency, fewer runs cost less",
                        1, 250, 5, flags));
  g_object_class_install_property(
      gobject_class, PROP_WHISPER_PADDING,
      g_param_spec_boolean(
          "whisper-padding", "Whisper padding",
          "Pad every encoder window with silence to 30 s "
          "as whisper expects (true), or encode only the window (false: far cheaper, features "
          "further from offline)",
          TRUE, flags));
  g_object_class_install_property(
      gobject_class, PROP_DEVICE,
      g_param_spec_string("device", "Device", "Where the encoder runs: cpu, cuda or cuda:N", "cpu",
                          flags));
  g_object_class_install_property(
      gobject_class, PROP_ENCODER_LATENCY_MS,
      g_param_spec_uint(
          "encoder-latency-ms", "Encoder latency (ms)",
          "Time allowed for encoding, in milliseconds, reported in the latency query on top of "
          "the hop and look-ahead. 0 (default): two encoder runs at the cost measured on a "
          "warm-up window when the model loads, plus 25 % (a hop's run may wait for the run "
          "before it). The encoder runs on a thread of its own; live, when it falls behind it "
          "encodes everything waiting in one wider run rather than lagging further",
          0, 60000, 0, flags));
  g_object_class_install_property(
      gobject_class, PROP_QOS,
      g_param_spec_boolean(
          "qos", "QoS",
          "Live: send speech frames that could no longer be encoded within the latency this "
          "element promised at once without features (flagged DROPPABLE; musetalklipsync holds "
          "the last face), so the stream keeps time. Off: every frame is encoded, however late",
          TRUE, flags));
  g_object_class_install_property(
      gobject_class, PROP_STATS,
      g_param_spec_boxed(
          "stats", "Statistics",
          "Since the element started: encoder-runs, frames-unencoded (live speech frames sent "
          "without features because encoding them would have missed the latency promised; "
          "musetalklipsync holds the last face for them), encoder-run-ms (recent average)",
          GST_TYPE_STRUCTURE, GParamFlags(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "Whisper audio features", "Filter/Audio/Converter",
      "Whisper encoder hidden states per video frame, as MuseTalk's audio chunks",
      "gst-talker developers");
  gst_type_mark_as_plugin_api(GST_TYPE_WHISPER_FEAT_LAYOUT, GstPluginAPIFlags(0));
  gst_type_mark_as_plugin_api(GST_TYPE_WHISPER_FEAT_MODE, GstPluginAPIFlags(0));
  GST_DEBUG_CATEGORY_INIT(whisperfeat_debug, "whisperfeat", 0, "whisper feature extraction");
}

static void gst_whisper_feat_init(GstWhisperFeat *self) {
  self->state = new WhisperFeatState();
  gst_segment_init(&self->state->segment, GST_FORMAT_TIME);
  self->sinkpad = gst_pad_new_from_static_template(&sink_template, "sink");
  gst_pad_set_chain_function(self->sinkpad, whisper_feat_chain);
  gst_pad_set_event_function(self->sinkpad, whisper_feat_sink_event);
  gst_pad_set_query_function(self->sinkpad, whisper_feat_sink_query);
  GST_PAD_SET_PROXY_ALLOCATION(self->sinkpad);
  gst_element_add_pad(GST_ELEMENT(self), self->sinkpad);
  self->srcpad = gst_pad_new_from_static_template(&src_template, "src");
  gst_pad_set_query_function(self->srcpad, whisper_feat_src_query);
  gst_pad_set_activatemode_function(self->srcpad, whisper_feat_src_activate_mode);
  gst_pad_set_event_function(self->srcpad, whisper_feat_src_event);
  gst_pad_use_fixed_caps(self->srcpad);
  gst_element_add_pad(GST_ELEMENT(self), self->srcpad);
}
