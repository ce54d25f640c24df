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
#include <memory>
#include <mutex>
#include <string>

#include "gst/common/gst_ptr.h"
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
};

// Featurizers are read-only after loading: one per (file, layout, device) per process.
talker::SharedCache<WhisperFeaturizer> &featurizer_cache() {
  static talker::SharedCache<WhisperFeaturizer> cache;
  return cache;
}

struct WhisperFeatState {
  std::mutex settings_lock;
  Settings settings;

  // Streaming-thread state.
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

static void make_stream(GstWhisperFeat *self) {
  auto &st = state_of(self);
  const Settings &s = st.active;
  FeatureStreamConfig cfg;
  Mode mode =
      s.mode == Mode::Auto ? (upstream_is_live(self) ? Mode::Sliding : Mode::Utterance) : s.mode;
  cfg.mode = mode == Mode::Sliding ? FeatureStreamConfig::Mode::Sliding
                                   : FeatureStreamConfig::Mode::Utterance;
  cfg.grid.fps_num = s.fps_num;
  cfg.grid.fps_den = s.fps_den;
  cfg.context_samples = gint64(s.context_ms) * talker::audio::kSampleRate / 1000;
  cfg.lookahead_samples = gint64(s.lookahead_ms) * talker::audio::kSampleRate / 1000;
  cfg.hop_frames = int(s.hop_frames);
  cfg.pad_to_30s = s.whisper_padding;
  st.stream = std::make_unique<FeatureStream>(st.featurizer, cfg);
  GST_INFO_OBJECT(self, "%s mode, latency %" G_GINT64_FORMAT " ms",
                  mode == Mode::Sliding ? "sliding" : "utterance",
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
    if (frame.gap)
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

static gboolean set_caps(GstWhisperFeat *self, GstCaps *caps) {
  auto &st = state_of(self);
  GstAudioInfo info;
  if (!gst_audio_info_from_caps(&info, caps) || GST_AUDIO_INFO_RATE(&info) != 16000 ||
      GST_AUDIO_INFO_CHANNELS(&info) != 1) {
    GST_ELEMENT_ERROR(
        self, STREAM, FORMAT, ("whisperfeat needs 16 kHz mono audio"),
        ("got caps %" GST_PTR_FORMAT "; put audioconvert ! audioresample in front", caps));
    return FALSE;
  }
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

static GstFlowReturn whisper_feat_chain(GstPad *pad, GstObject *parent, GstBuffer *buffer) {
  auto *self = GST_WHISPER_FEAT(parent);
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

static gboolean whisper_feat_sink_event(GstPad *pad, GstObject *parent, GstEvent *event) {
  auto *self = GST_WHISPER_FEAT(parent);
  auto &st = state_of(self);
  switch (GST_EVENT_TYPE(event)) {
    case GST_EVENT_CAPS: {
      GstCaps *caps;
      gst_event_parse_caps(event, &caps);
      gboolean ok = set_caps(self, caps);
      gst_event_unref(event);
      return ok;
    }
    case GST_EVENT_SEGMENT:
      gst_event_copy_segment(event, &st.segment);
      if (st.segment.format != GST_FORMAT_TIME) {
        GST_ELEMENT_ERROR(self, STREAM, FORMAT, ("whisperfeat needs a TIME segment"), (nullptr));
        gst_event_unref(event);
        return FALSE;
      }
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
      return TRUE;
    }
    case GST_EVENT_EOS:
      drain(self);
      break;
    case GST_EVENT_FLUSH_STOP:
      if (st.stream) st.stream->reset();
      st.samples_in = 0;
      st.origin = GST_CLOCK_TIME_NONE;
      st.discont = true;
      break;
    default:
      break;
  }
  return gst_pad_event_default(pad, parent, event);
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
    GstClockTime ours =
        st.stream ? gst_util_uint64_scale(st.stream->latency_samples(), GST_SECOND, 16000) : 0;
    min += ours;
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
    case PROP_GAP_THRESHOLD_DB:
      s.gap_threshold_db = g_value_get_double(value);
      break;
      s.whisper_padding = g_value_get_boolean(value);
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
  GST_PAD_SET_PROXY_ALLOCATION(self->sinkpad);
  gst_element_add_pad(GST_ELEMENT(self), self->sinkpad);
  self->srcpad = gst_pad_new_from_static_template(&src_template, "src");
  gst_pad_set_query_function(self->srcpad, whisper_feat_src_query);
  gst_pad_use_fixed_caps(self->srcpad);
  gst_element_add_pad(GST_ELEMENT(self), self->srcpad);
}
