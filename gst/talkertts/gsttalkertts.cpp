// SPDX-License-Identifier: LGPL-2.1-or-later
/**
 * SECTION:element-talkertts
 *
 * Text to speech as a source: S16LE 16 kHz mono in 20 ms buffers. Live by
 * default: buffers at clock pace, GAP-flagged silence while nothing is said,
 * so a live pipeline never stalls. With is-live=false it renders the text as
 * fast as the engine allows and ends with EOS.
 *
 * Text comes from the `text` property, the `say` action signal, or a `text`
 * request pad (text/x-raw, for streamed text such as LLM output). It is cut
 * into sentences on punctuation; a synthesis thread runs ahead of playback.
 * `say-audio` queues ready-made speech (16 kHz mono samples) in the same
 * queue, played as one sentence.
 * `interrupt` drops everything not yet played. Each sentence's start and end
 * is posted as a `talker-sentence` element message and carried by a
 * TalkerSentenceMeta on its first and last buffer.
 */
#include "gst/talkertts/gsttalkertts.h"

#include <gst/audio/audio.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gst/common/clip_event.h"
#include "gst/common/interrupt_event.h"
#include "gst/common/sentence_meta.h"
#include "lib/tts/speaker.h"

GST_DEBUG_CATEGORY_STATIC(talkertts_debug);
#define GST_CAT_DEFAULT talkertts_debug

using talker::tts::EngineSettings;
using talker::tts::Frame;
using talker::tts::kFrameSamples;
using talker::tts::kSampleRate;
using talker::tts::ResponseFormat;
using talker::tts::Sentence;
using talker::tts::SentenceEnd;
using talker::tts::Speaker;

namespace {

enum class EngineKind { kEspeak, kOpenAi, kGptSovits, kCosyVoice };
const char *engine_name(EngineKind k) {
  switch (k) {
    case EngineKind::kOpenAi:
      return "openai";
    case EngineKind::kGptSovits:
      return "gpt-sovits";
    case EngineKind::kCosyVoice:
      return "cosyvoice";
    default:
      return "espeak";
  }
}

struct Settings {
  bool is_live = true;
  std::string last_text;
  EngineKind engine = EngineKind::kEspeak;
  EngineSettings engine_settings;
  guint min_chunk_chars = 10;
};

const GstClockTime kFrameDuration = GST_SECOND * kFrameSamples / kSampleRate;

struct TalkerTtsState {
  std::mutex settings_lock;
  Settings settings;
  std::string active_engine;
  std::unique_ptr<Speaker> speaker;

  // The text request pad, when there is one.
  GstPad *text_pad = nullptr;
  bool text_eos = false;

  // Clock waits of the live source, so unlock() can cut them short.
  std::mutex clock_lock;
  GstClockID clock_id = nullptr;
  bool flushing = false;

  bool timing_started = false;
  GstClockTime first_pts = 0;
  guint64 samples_out = 0;
};

}  // namespace

struct _GstTalkerTts {
  GstPushSrc parent;
  TalkerTtsState *state;
};

G_DEFINE_TYPE(GstTalkerTts, gst_talker_tts, GST_TYPE_PUSH_SRC);
GST_ELEMENT_REGISTER_DEFINE(talkertts, "talkertts", GST_RANK_NONE, GST_TYPE_TALKER_TTS);

enum {
  PROP_0,
  PROP_IS_LIVE,
  PROP_TEXT,
  PROP_ENGINE,
  PROP_VOICE,
  PROP_RATE,
  PROP_PITCH,
  PROP_SERVER,
  PROP_MODEL,
  PROP_API_KEY,
  PROP_RESPONSE_FORMAT,
  PROP_REF_AUDIO,
  PROP_REF_TEXT,
  PROP_LANGUAGE,
  PROP_SERVER_RATE,
  PROP_TIMEOUT,
  PROP_MIN_CHUNK_CHARS,
};

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src", GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS("audio/x-raw, format=S16LE, rate=16000, channels=1, layout=interleaved"));
static GstStaticPadTemplate text_template = GST_STATIC_PAD_TEMPLATE(
    "text", GST_PAD_SINK, GST_PAD_REQUEST, GST_STATIC_CAPS("text/x-raw, format=utf8"));

#define GST_TYPE_TALKER_TTS_ENGINE (talker_tts_engine_get_type())
static GType talker_tts_engine_get_type() {
  static GType type = 0;
  static const GEnumValue values[] = {
      {int(EngineKind::kEspeak), "libespeak-ng, embedded and offline", "espeak"},
      {int(EngineKind::kOpenAi), "OpenAI-compatible POST {server}/v1/audio/speech", "openai"},
      {int(EngineKind::kGptSovits), "GPT-SoVITS api_v2 POST {server}/tts", "gpt-sovits"},
      {int(EngineKind::kCosyVoice), "CosyVoice FastAPI server {server}/inference_*", "cosyvoice"},
      {0, nullptr, nullptr}};
  if (g_once_init_enter(&type))
    g_once_init_leave(&type, g_enum_register_static("GstTalkerTtsEngine", values));
  return type;
}

#define GST_TYPE_TALKER_TTS_RESPONSE_FORMAT (talker_tts_response_format_get_type())
static GType talker_tts_response_format_get_type() {
  static GType type = 0;
  static const GEnumValue values[] = {
      {int(ResponseFormat::kWav), "WAV (any rate and channel count)", "wav"},
      {int(ResponseFormat::kPcm), "raw S16LE mono (24 kHz, or server-rate)", "pcm"},
      {0, nullptr, nullptr}};
  if (g_once_init_enter(&type))
    g_once_init_leave(&type, g_enum_register_static("GstTalkerTtsResponseFormat", values));
  return type;
}

static TalkerTtsState &state_of(gpointer self) {
  return *GST_TALKER_TTS(self)->state;
}

// ---- text in ---------------------------------------------------------------

static guint64 talker_tts_say(GstTalkerTts *self, const gchar *text) {
  if (!text || !*text) return 0;
  const guint64 id = self->state->speaker->say(text);
  GST_DEBUG_OBJECT(self, "utterance %" G_GUINT64_FORMAT ": %s", id, text);
  return id;
}

// A "voice" structure (voice: string, speed: double) as the engine takes it.
static talker::tts::VoiceOptions voice_options(const GstStructure *voice) {
  talker::tts::VoiceOptions v;
  if (!voice) return v;
  if (const char *name = gst_structure_get_string(voice, "voice")) v.voice = name;
  gst_structure_get_double(voice, "speed", &v.speed);
  return v;
}

static gchar *talker_tts_check_voice(GstTalkerTts *self, const GstStructure *voice) {
  const std::string why = self->state->speaker->check(voice_options(voice));
  return why.empty() ? nullptr : g_strdup(why.c_str());
}

static guint64 talker_tts_say_with_voice(GstTalkerTts *self, const gchar *text,
                                         const GstStructure *voice) {
  if (!text || !*text) return 0;
  const auto options = voice_options(voice);
  const std::string why = self->state->speaker->check(options);
  if (!why.empty()) {
    GST_ELEMENT_WARNING(self, RESOURCE, SETTINGS, ("Cannot speak with that voice: %s", why.c_str()),
                        ("not spoken: %s", text));
    return 0;
  }
  const guint64 id = self->state->speaker->say(text, options);
  GST_DEBUG_OBJECT(self, "utterance %" G_GUINT64_FORMAT " (voice '%s', speed %.2f): %s", id,
                   options.voice.c_str(), options.speed, text);
  return id;
}

static guint64 talker_tts_say_audio(GstTalkerTts *self, GBytes *samples, const gchar *label) {
  if (!samples) return 0;
  gsize size = 0;
  const auto *data = static_cast<const int16_t *>(g_bytes_get_data(samples, &size));
  if (size < sizeof(int16_t)) return 0;
  std::vector<int16_t> pcm(data, data + size / sizeof(int16_t));
  const guint64 id = self->state->speaker->say_audio(std::move(pcm), label ? label : "");
  GST_DEBUG_OBJECT(self, "utterance %" G_GUINT64_FORMAT ": %" G_GSIZE_FORMAT " samples of audio",
                   id, size / sizeof(int16_t));
  return id;
}

static guint64 talker_tts_say_clip(GstTalkerTts *self, GBytes *samples, const gchar *clip,
                                   guint64 duration) {
  if (!clip || !*clip) return 0;
  gsize size = 0;
  const auto *data =
      samples ? static_cast<const int16_t *>(g_bytes_get_data(samples, &size)) : nullptr;
  std::vector<int16_t> pcm(data, data + size / sizeof(int16_t));
  // A clip plays at least as long as its frames: silence makes up the rest.
  const size_t total = gst_util_uint64_scale_round(duration, kSampleRate, GST_SECOND);
  if (pcm.size() < total) pcm.resize(total, 0);
  if (pcm.empty()) return 0;
  const guint64 id = self->state->speaker->say_clip(std::move(pcm), clip);
  GST_DEBUG_OBJECT(self, "utterance %" G_GUINT64_FORMAT ": clip %s", id, clip);
  return id;
}

static void talker_tts_interrupt(GstTalkerTts *self) {
  GST_DEBUG_OBJECT(self, "interrupt");
  self->state->speaker->interrupt();
}

static GstFlowReturn text_pad_chain(GstPad *pad, GstObject *parent, GstBuffer *buffer) {
  auto &st = state_of(parent);
  GstMapInfo map;
  if (gst_buffer_map(buffer, &map, GST_MAP_READ)) {
    st.speaker->append_text(std::string_view(reinterpret_cast<const char *>(map.data), map.size));
    gst_buffer_unmap(buffer, &map);
  }
  gst_buffer_unref(buffer);
  return GST_FLOW_OK;
}

static gboolean text_pad_event(GstPad *pad, GstObject *parent, GstEvent *event) {
  auto &st = state_of(parent);
  switch (GST_EVENT_TYPE(event)) {
    case GST_EVENT_EOS:
      // The rest is spoken; a rendering (non-live) element ends after it.
      st.speaker->end_text();
      st.text_eos = true;
      st.speaker->set_input_open(false);
      break;
    case GST_EVENT_GAP:
      // Sparse text streams say "nothing more for now" with GAP: speak the rest.
      st.speaker->end_text();
      break;
    case GST_EVENT_FLUSH_START:
      st.speaker->interrupt();
      break;
    case GST_EVENT_FLUSH_STOP:
      st.text_eos = false;
      st.speaker->set_input_open(true);
      break;
    default:
      break;
  }
  gst_event_unref(event);
  return TRUE;
}

static GstPad *talker_tts_request_new_pad(GstElement *element, GstPadTemplate *templ,
                                          const gchar *name, const GstCaps *caps) {
  auto &st = state_of(element);
  GST_OBJECT_LOCK(element);
  const bool taken = st.text_pad != nullptr;
  GST_OBJECT_UNLOCK(element);
  if (taken) {
    GST_WARNING_OBJECT(element, "talkertts has one text pad");
    return nullptr;
  }
  GstPad *pad = gst_pad_new_from_template(templ, "text");
  gst_pad_set_chain_function(pad, text_pad_chain);
  gst_pad_set_event_function(pad, text_pad_event);
  GST_OBJECT_LOCK(element);
  st.text_pad = pad;
  st.text_eos = false;
  GST_OBJECT_UNLOCK(element);
  st.speaker->set_input_open(true);
  gst_pad_set_active(pad, TRUE);
  gst_element_add_pad(element, pad);
  return pad;
}

static void talker_tts_release_pad(GstElement *element, GstPad *pad) {
  auto &st = state_of(element);
  GST_OBJECT_LOCK(element);
  st.text_pad = nullptr;
  GST_OBJECT_UNLOCK(element);
  st.speaker->end_text();
  st.speaker->set_input_open(false);
  gst_pad_set_active(pad, FALSE);
  gst_element_remove_pad(element, pad);
}

// ---- speech out --------------------------------------------------------------

static void post_sentence(GstTalkerTts *self, const char *state, const Sentence &s,
                          GstClockTime running_time, const char *reason) {
  GstStructure *st =
      gst_structure_new("talker-sentence", "state", G_TYPE_STRING, state, "id", G_TYPE_UINT64, s.id,
                        "utterance", G_TYPE_UINT64, s.utterance, "text", G_TYPE_STRING,
                        s.text.c_str(), "running-time", G_TYPE_UINT64, running_time, nullptr);
  if (reason) gst_structure_set(st, "reason", G_TYPE_STRING, reason, nullptr);
  gst_element_post_message(GST_ELEMENT(self), gst_message_new_element(GST_OBJECT(self), st));
}

static TalkerSentenceEndReason end_reason(SentenceEnd e) {
  switch (e) {
    case SentenceEnd::kInterrupted:
      return TALKER_SENTENCE_INTERRUPTED;
    case SentenceEnd::kFailed:
      return TALKER_SENTENCE_FAILED;
    default:
      return TALKER_SENTENCE_FINISHED;
  }
}

// Waits until the clock reaches running time `until`. FALSE when unlocked.
static bool wait_for_running_time(GstTalkerTts *self, GstClockTime until) {
  auto &st = state_of(self);
  GstClock *clock = gst_element_get_clock(GST_ELEMENT(self));
  if (!clock) return true;  // no clock (a harness without one): do not pace
  const GstClockTime base = gst_element_get_base_time(GST_ELEMENT(self));
  GstClockID id = gst_clock_new_single_shot_id(clock, base + until);
  gst_object_unref(clock);
  {
    std::lock_guard<std::mutex> lock(st.clock_lock);
    if (st.flushing) {
      gst_clock_id_unref(id);
      return false;
    }
    st.clock_id = id;
  }
  const GstClockReturn ret = gst_clock_id_wait(id, nullptr);
  {
    std::lock_guard<std::mutex> lock(st.clock_lock);
    st.clock_id = nullptr;
  }
  gst_clock_id_unref(id);
  return ret != GST_CLOCK_UNSCHEDULED;
}

static GstClockTime current_running_time(GstTalkerTts *self) {
  GstClock *clock = gst_element_get_clock(GST_ELEMENT(self));
  if (!clock) return 0;
  const GstClockTime now = gst_clock_get_time(clock);
  gst_object_unref(clock);
  const GstClockTime base = gst_element_get_base_time(GST_ELEMENT(self));
  return now > base ? now - base : 0;
}

static GstFlowReturn talker_tts_create(GstPushSrc *src, GstBuffer **out) {
  auto *self = GST_TALKER_TTS(src);
  auto &st = state_of(src);
  const bool live = gst_base_src_is_live(GST_BASE_SRC(src));
  if (!st.timing_started) {
    // A live source stamps with the running time it starts at; a render starts at 0.
    st.first_pts = live ? current_running_time(self) : 0;
    st.samples_out = 0;
    st.timing_started = true;
  }
  const GstClockTime pts =
      st.first_pts + gst_util_uint64_scale_int(st.samples_out, GST_SECOND, kSampleRate);
  const GstClockTime end = st.first_pts + gst_util_uint64_scale_int(st.samples_out + kFrameSamples,
                                                                    GST_SECOND, kSampleRate);
  Frame frame;
  if (live) {
    // Decide the buffer's content when its last sample is due, as a capture
    // device would: an interrupt silences the very next buffer.
    if (!wait_for_running_time(self, end)) return GST_FLOW_FLUSHING;
    frame = st.speaker->next_frame_now();
  } else {
    auto next = st.speaker->next_frame_wait();
    if (!next) {
      std::lock_guard<std::mutex> lock(st.clock_lock);
      if (st.flushing) return GST_FLOW_FLUSHING;
      GST_DEBUG_OBJECT(self, "all text spoken: EOS");
      return GST_FLOW_EOS;
    }
    frame = std::move(*next);
  }

  GstBuffer *buf = gst_buffer_new_allocate(nullptr, kFrameSamples * 2, nullptr);
  gst_buffer_fill(buf, 0, frame.samples.data(), kFrameSamples * 2);
  GST_BUFFER_PTS(buf) = pts;
  GST_BUFFER_DURATION(buf) = end - pts;
  GST_BUFFER_OFFSET(buf) = st.samples_out;
  GST_BUFFER_OFFSET_END(buf) = st.samples_out + kFrameSamples;
  if (st.samples_out == 0) GST_BUFFER_FLAG_SET(buf, GST_BUFFER_FLAG_DISCONT);
  if (frame.silent) GST_BUFFER_FLAG_SET(buf, GST_BUFFER_FLAG_GAP);
  st.samples_out += kFrameSamples;

  const GstSegment &segment = GST_BASE_SRC(src)->segment;
  const GstClockTime running = gst_segment_to_running_time(&segment, GST_FORMAT_TIME, pts);
  if (frame.ended) {
    const GstClockTime offset =
        gst_util_uint64_scale_int(frame.end_sample, GST_SECOND, kSampleRate);
    const auto reason = end_reason(frame.end_reason);
    talker_buffer_add_sentence_meta(buf, TALKER_SENTENCE_END, frame.ended->id,
                                    frame.ended->utterance, frame.ended->text.c_str(), offset,
                                    reason);
    GST_DEBUG_OBJECT(self, "sentence %" G_GUINT64_FORMAT " ends (%s) at %" GST_TIME_FORMAT,
                     frame.ended->id, talker_sentence_end_reason_name(reason),
                     GST_TIME_ARGS(running + offset));
    post_sentence(self, "end", *frame.ended, running + offset,
                  talker_sentence_end_reason_name(reason));
    if (frame.end_reason == SentenceEnd::kInterrupted) {
      // Ahead of the first silent buffer, in order: downstream elements drop
      // or finish what they hold for the interrupted speech.
      gst_pad_push_event(
          GST_BASE_SRC_PAD(src),
          talker_interrupt_event_new(pts + offset, frame.ended->id, frame.ended->utterance));
    }
  }
  if (frame.started && !frame.started->clip.empty()) {
    // Ahead of the clip's first sample, in order: faceblend shows the
    // clip's frames from this PTS on.
    const GstClockTime duration = gst_util_uint64_scale_int(
        frame.started->audio ? frame.started->audio->size() : 0, GST_SECOND, kSampleRate);
    gst_pad_push_event(GST_BASE_SRC_PAD(src),
                       talker_clip_event_new(frame.started->clip.c_str(), pts, duration));
  }
  if (frame.started) {
    talker_buffer_add_sentence_meta(buf, TALKER_SENTENCE_START, frame.started->id,
                                    frame.started->utterance, frame.started->text.c_str(), 0,
                                    TALKER_SENTENCE_FINISHED);
    GST_DEBUG_OBJECT(self, "sentence %" G_GUINT64_FORMAT " starts at %" GST_TIME_FORMAT ": %s",
                     frame.started->id, GST_TIME_ARGS(running), frame.started->text.c_str());
    post_sentence(self, "start", *frame.started, running, nullptr);
  }
  *out = buf;
  return GST_FLOW_OK;
}

static gboolean talker_tts_start(GstBaseSrc *src) {
  auto *self = GST_TALKER_TTS(src);
  auto &st = state_of(src);
  EngineSettings engine_settings;
  guint min_chunk_chars;
  {
    std::lock_guard<std::mutex> lock(st.settings_lock);
    engine_settings = st.settings.engine_settings;
    engine_settings.engine = engine_name(st.settings.engine);
    min_chunk_chars = st.settings.min_chunk_chars;
  }
  std::unique_ptr<talker::tts::Engine> engine;
  try {
    engine = talker::tts::make_engine(engine_settings);
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS,
                      ("Cannot use the %s engine: %s", engine_settings.engine.c_str(), e.what()),
                      (nullptr));
    return FALSE;
  }
  st.active_engine = engine_settings.engine;
  st.speaker->set_min_chunk_chars(min_chunk_chars);
  st.timing_started = false;
  {
    std::lock_guard<std::mutex> lock(st.clock_lock);
    st.flushing = false;
  }
  st.speaker->set_flushing(false);
  GST_OBJECT_LOCK(self);
  st.speaker->set_input_open(st.text_pad != nullptr && !st.text_eos);
  GST_OBJECT_UNLOCK(self);
  st.speaker->start(std::move(engine));
  GST_INFO_OBJECT(self, "%s engine, %s", st.active_engine.c_str(),
                  gst_base_src_is_live(src) ? "live" : "rendering");
  return TRUE;
}

static gboolean talker_tts_stop(GstBaseSrc *src) {
  state_of(src).speaker->stop();
  return TRUE;
}

static gboolean talker_tts_unlock(GstBaseSrc *src) {
  auto &st = state_of(src);
  {
    std::lock_guard<std::mutex> lock(st.clock_lock);
    st.flushing = true;
    if (st.clock_id) gst_clock_id_unschedule(st.clock_id);
  }
  st.speaker->set_flushing(true);
  return TRUE;
}

static gboolean talker_tts_unlock_stop(GstBaseSrc *src) {
  auto &st = state_of(src);
  {
    std::lock_guard<std::mutex> lock(st.clock_lock);
    st.flushing = false;
  }
  st.speaker->set_flushing(false);
  return TRUE;
}

static gboolean talker_tts_query(GstBaseSrc *src, GstQuery *query) {
  if (GST_QUERY_TYPE(query) == GST_QUERY_LATENCY) {
    // Live: a buffer leaves when its last sample is due, one buffer after its
    // PTS. Nothing is lost when downstream holds it up longer: no maximum.
    const bool live = gst_base_src_is_live(src);
    gst_query_set_latency(query, live, live ? kFrameDuration : 0, GST_CLOCK_TIME_NONE);
    return TRUE;
  }
  return GST_BASE_SRC_CLASS(gst_talker_tts_parent_class)->query(src, query);
}

// ---- properties ---------------------------------------------------------------

static void set_string(std::string &field, const GValue *value) {
  const gchar *s = g_value_get_string(value);
  field = s ? s : "";
}

// Unset strings read back as NULL, as gst-inspect shows their default.
static void get_string(GValue *value, const std::string &field) {
  g_value_set_string(value, field.empty() ? nullptr : field.c_str());
}

static void talker_tts_set_property(GObject *object, guint prop_id, const GValue *value,
                                    GParamSpec *pspec) {
  auto *self = GST_TALKER_TTS(object);
  auto &st = state_of(object);
  if (prop_id == PROP_TEXT) {
    const gchar *text = g_value_get_string(value);
    {
      std::lock_guard<std::mutex> lock(st.settings_lock);
      st.settings.last_text = text ? text : "";
    }
    talker_tts_say(self, text);
    return;
  }
  if (prop_id == PROP_IS_LIVE) {
    gst_base_src_set_live(GST_BASE_SRC(object), g_value_get_boolean(value));
    return;
  }
  std::lock_guard<std::mutex> lock(st.settings_lock);
  auto &s = st.settings;
  auto &e = s.engine_settings;
  switch (prop_id) {
    case PROP_ENGINE:
      s.engine = EngineKind(g_value_get_enum(value));
      break;
    case PROP_VOICE:
      set_string(e.voice, value);
      break;
    case PROP_RATE:
      e.rate = g_value_get_int(value);
      break;
    case PROP_PITCH:
      e.pitch = g_value_get_int(value);
      break;
    case PROP_SERVER:
      set_string(e.server, value);
      break;
    case PROP_MODEL:
      set_string(e.model, value);
      break;
    case PROP_API_KEY:
      set_string(e.api_key, value);
      break;
    case PROP_RESPONSE_FORMAT:
      e.response_format = ResponseFormat(g_value_get_enum(value));
      break;
    case PROP_REF_AUDIO:
      set_string(e.ref_audio, value);
      break;
    case PROP_REF_TEXT:
      set_string(e.ref_text, value);
      break;
    case PROP_LANGUAGE:
      set_string(e.language, value);
      break;
    case PROP_SERVER_RATE:
      e.server_rate = g_value_get_int(value);
      break;
    case PROP_TIMEOUT:
      e.timeout_s = g_value_get_uint(value);
      break;
    case PROP_MIN_CHUNK_CHARS:
      s.min_chunk_chars = g_value_get_uint(value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
  }
}

static void talker_tts_get_property(GObject *object, guint prop_id, GValue *value,
                                    GParamSpec *pspec) {
  auto &st = state_of(object);
  if (prop_id == PROP_IS_LIVE) {
    g_value_set_boolean(value, gst_base_src_is_live(GST_BASE_SRC(object)));
    return;
  }
  std::lock_guard<std::mutex> lock(st.settings_lock);
  const auto &s = st.settings;
  const auto &e = s.engine_settings;
  switch (prop_id) {
    case PROP_TEXT:
      g_value_set_string(value, s.last_text.c_str());
      break;
    case PROP_ENGINE:
      g_value_set_enum(value, int(s.engine));
      break;
    case PROP_VOICE:
      get_string(value, e.voice);
      break;
    case PROP_RATE:
      g_value_set_int(value, e.rate);
      break;
    case PROP_PITCH:
      g_value_set_int(value, e.pitch);
      break;
    case PROP_SERVER:
      get_string(value, e.server);
      break;
    case PROP_MODEL:
      get_string(value, e.model);
      break;
    case PROP_API_KEY:
      get_string(value, e.api_key);
      break;
    case PROP_RESPONSE_FORMAT:
      g_value_set_enum(value, int(e.response_format));
      break;
    case PROP_REF_AUDIO:
      get_string(value, e.ref_audio);
      break;
    case PROP_REF_TEXT:
      get_string(value, e.ref_text);
      break;
    case PROP_LANGUAGE:
      get_string(value, e.language);
      break;
    case PROP_SERVER_RATE:
      g_value_set_int(value, e.server_rate);
      break;
    case PROP_TIMEOUT:
      g_value_set_uint(value, e.timeout_s);
      break;
    case PROP_MIN_CHUNK_CHARS:
      g_value_set_uint(value, s.min_chunk_chars);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
  }
}

static void talker_tts_finalize(GObject *object) {
  delete GST_TALKER_TTS(object)->state;
  G_OBJECT_CLASS(gst_talker_tts_parent_class)->finalize(object);
}

static void gst_talker_tts_init(GstTalkerTts *self) {
  self->state = new TalkerTtsState();
  self->state->speaker = std::make_unique<Speaker>(
      talker::tts::SpeakerOptions{}, [self](const Sentence &s, const std::string &cause) {
        // Called on the synthesis thread: the sentence is skipped, speech goes on.
        const std::string &engine = self->state->active_engine;
        GST_ELEMENT_WARNING_WITH_DETAILS(
            self, RESOURCE, READ,
            ("The %s engine failed on sentence %" G_GUINT64_FORMAT
             " (\"%s\"), which is skipped: %s",
             engine.c_str(), s.id, s.text.c_str(), cause.c_str()),
            (nullptr),
            ("engine", G_TYPE_STRING, engine.c_str(), "id", G_TYPE_UINT64, s.id, "text",
             G_TYPE_STRING, s.text.c_str(), "cause", G_TYPE_STRING, cause.c_str(), nullptr));
      });
  gst_base_src_set_live(GST_BASE_SRC(self), TRUE);
  gst_base_src_set_format(GST_BASE_SRC(self), GST_FORMAT_TIME);
}

static void gst_talker_tts_class_init(GstTalkerTtsClass *klass) {
  auto *gobject_class = G_OBJECT_CLASS(klass);
  auto *element_class = GST_ELEMENT_CLASS(klass);
  auto *basesrc_class = GST_BASE_SRC_CLASS(klass);
  auto *pushsrc_class = GST_PUSH_SRC_CLASS(klass);
  gobject_class->set_property = talker_tts_set_property;
  gobject_class->get_property = talker_tts_get_property;
  gobject_class->finalize = talker_tts_finalize;

  const auto rw = GParamFlags(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS);
  const auto rw_ready = GParamFlags(rw | GST_PARAM_MUTABLE_READY);
  const auto rw_playing = GParamFlags(rw | GST_PARAM_MUTABLE_PLAYING);
  g_object_class_install_property(
      gobject_class, PROP_IS_LIVE,
      g_param_spec_boolean("is-live", "Is live",
                           "TRUE: 20 ms buffers at clock pace, GAP-flagged silence while idle, "
                           "never EOS. FALSE: render queued text as fast as possible, then EOS "
                           "(after the text pad's EOS, when there is one)",
                           TRUE, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_TEXT,
      g_param_spec_string("text", "Text",
                          "Text to speak: setting it queues it, like the say signal (reading "
                          "gives the last text set)",
                          nullptr, rw_playing));
  g_object_class_install_property(
      gobject_class, PROP_ENGINE,
      g_param_spec_enum("engine", "Engine", "Speech synthesizer", GST_TYPE_TALKER_TTS_ENGINE,
                        int(EngineKind::kEspeak), rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_VOICE,
      g_param_spec_string("voice", "Voice",
                          "espeak: voice or language (en, en-us, zh, …; default en). openai: "
                          "voice name (default alloy). cosyvoice: speaker id without ref-audio "
                          "(default 中文女)",
                          nullptr, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_RATE,
      g_param_spec_int("rate", "Rate", "espeak: speaking rate in words per minute", 80, 450, 175,
                       rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_PITCH,
      g_param_spec_int("pitch", "Pitch", "espeak: base pitch, 0-100", 0, 100, 50, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_SERVER,
      g_param_spec_string("server", "Server",
                          "HTTP engines: base URL (default openai https://api.openai.com, "
                          "gpt-sovits http://127.0.0.1:9880, cosyvoice http://127.0.0.1:50000)",
                          nullptr, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_MODEL,
      g_param_spec_string("model", "Model", "openai: model name (default tts-1)", nullptr,
                          rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_API_KEY,
      g_param_spec_string("api-key", "API key", "openai: sent as 'Authorization: Bearer KEY'",
                          nullptr, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_RESPONSE_FORMAT,
      g_param_spec_enum("response-format", "Response format", "openai: audio format to ask for",
                        GST_TYPE_TALKER_TTS_RESPONSE_FORMAT, int(ResponseFormat::kWav), rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_REF_AUDIO,
      g_param_spec_string("ref-audio", "Reference audio",
                          "Voice to clone. gpt-sovits: path of a WAV on the server (required). "
                          "cosyvoice: local WAV file, uploaded (zero-shot); unset uses voice",
                          nullptr, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_REF_TEXT,
      g_param_spec_string("ref-text", "Reference text", "What ref-audio says", nullptr, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_LANGUAGE,
      g_param_spec_string("language", "Language",
                          "gpt-sovits: text_lang and prompt_lang (default auto)", nullptr,
                          rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_SERVER_RATE,
      g_param_spec_int("server-rate", "Server rate",
                       "Sample rate of raw PCM answers, Hz; 0: the API's (openai pcm 24000, "
                       "cosyvoice 24000; CosyVoice 1 servers send 22050)",
                       0, 384000, 0, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_TIMEOUT,
      g_param_spec_uint("timeout", "Timeout",
                        "HTTP engines: seconds without progress (connect or read) before a "
                        "sentence is given up",
                        1, 3600, 30, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_MIN_CHUNK_CHARS,
      g_param_spec_uint("min-chunk-chars", "Minimum chunk characters",
                        "Text is cut at punctuation once a chunk has at least this many "
                        "characters; 0 cuts at every mark",
                        0, 10000, 10, rw_ready));

  /**
   * GstTalkerTts::say:
   * @text: UTF-8 text
   *
   * Queues @text to be spoken after what is queued already. Thread-safe.
   * Returns: the utterance id that the sentence messages and metas carry.
   */
  g_signal_new_class_handler(
      "say", G_TYPE_FROM_CLASS(klass), GSignalFlags(G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION),
      G_CALLBACK(talker_tts_say), nullptr, nullptr, nullptr, G_TYPE_UINT64, 1, G_TYPE_STRING);
  /**
   * GstTalkerTts::say-audio:
   * @samples: S16LE 16 kHz mono samples (native-endian int16)
   * @label: the text its sentence messages and metas carry (may be empty)
   *
   * Queues ready-made speech, an uploaded recording for example, after what
   * is queued already; it is played and interrupted like a synthesized
   * sentence. Thread-safe.
   * Returns: the utterance id, 0 when @samples is empty.
   */
  g_signal_new_class_handler("say-audio", G_TYPE_FROM_CLASS(klass),
                             GSignalFlags(G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION),
                             G_CALLBACK(talker_tts_say_audio), nullptr, nullptr, nullptr,
                             G_TYPE_UINT64, 2, G_TYPE_BYTES, G_TYPE_STRING);
  /**
   * GstTalkerTts::say-with-voice:
   * @text: UTF-8 text
   * @voice: (nullable): a structure (any name) with `voice` (string: the
   *   engine's voice name: an espeak voice or language, an OpenAI voice, a
   *   CosyVoice speaker id) and/or `speed` (double, 0.5-2: a factor of the
   *   engine's pace; espeak scales its rate, OpenAI sends speed, GPT-SoVITS
   *   speed_factor)
   *
   * Like say, with this utterance's voice changed. When the engine cannot
   * speak with @voice (check-voice says why) nothing is queued and a
   * warning is posted. Thread-safe.
   * Returns: the utterance id, 0 when nothing was queued.
   */
  g_signal_new_class_handler("say-with-voice", G_TYPE_FROM_CLASS(klass),
                             GSignalFlags(G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION),
                             G_CALLBACK(talker_tts_say_with_voice), nullptr, nullptr, nullptr,
                             G_TYPE_UINT64, 2, G_TYPE_STRING, GST_TYPE_STRUCTURE);
  /**
   * GstTalkerTts::check-voice:
   * @voice: a structure as for say-with-voice
   *
   * Asks the engine whether it can speak with @voice (an unknown espeak
   * voice, a speed the engine has no setting for, a speaker id where a
   * reference audio is the voice). Only once the element has started (PAUSED
   * and up: the engine exists then); before, it answers NULL.
   * Returns: (transfer full) (nullable): why not, or NULL when it can.
   */
  g_signal_new_class_handler("check-voice", G_TYPE_FROM_CLASS(klass),
                             GSignalFlags(G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION),
                             G_CALLBACK(talker_tts_check_voice), nullptr, nullptr, nullptr,
                             G_TYPE_STRING, 1, GST_TYPE_STRUCTURE);
  /**
   * GstTalkerTts::say-clip:
   * @samples: (nullable): the clip's audio, S16LE 16 kHz mono (native-endian)
   * @clip: the action clip's name (actions/<name>/ of the avatar)
   * @duration: how long the clip's frames last (ns); silence makes the
   *   audio up to it
   *
   * Queues an action clip's audio like say-audio, its sentence with an empty
   * text, and sends a `talker-clip` event (name, timestamp, duration) just
   * before its first buffer, so that faceblend shows the clip's frames from
   * that time on, in step with the sound. Interrupted like speech.
   * Thread-safe.
   * Returns: the utterance id, 0 when nothing was queued.
   */
  g_signal_new_class_handler("say-clip", G_TYPE_FROM_CLASS(klass),
                             GSignalFlags(G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION),
                             G_CALLBACK(talker_tts_say_clip), nullptr, nullptr, nullptr,
                             G_TYPE_UINT64, 3, G_TYPE_BYTES, G_TYPE_STRING, G_TYPE_UINT64);
  /**
   * GstTalkerTts::interrupt:
   *
   * Drops all queued text and unplayed audio; the next buffer is silence.
   */
  g_signal_new_class_handler(
      "interrupt", G_TYPE_FROM_CLASS(klass), GSignalFlags(G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION),
      G_CALLBACK(talker_tts_interrupt), nullptr, nullptr, nullptr, G_TYPE_NONE, 0);

  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_add_static_pad_template(element_class, &text_template);
  gst_element_class_set_static_metadata(
      element_class, "Talker text to speech", "Source/Audio",
      "Speaks text as 16 kHz mono audio, live with silence between sentences or rendered; "
      "espeak-ng or OpenAI, GPT-SoVITS, CosyVoice servers",
      "gst-talker developers");
  element_class->request_new_pad = talker_tts_request_new_pad;
  element_class->release_pad = talker_tts_release_pad;
  basesrc_class->start = talker_tts_start;
  basesrc_class->stop = talker_tts_stop;
  basesrc_class->unlock = talker_tts_unlock;
  basesrc_class->unlock_stop = talker_tts_unlock_stop;
  basesrc_class->query = talker_tts_query;
  pushsrc_class->create = talker_tts_create;

  gst_type_mark_as_plugin_api(GST_TYPE_TALKER_TTS_ENGINE, GstPluginAPIFlags(0));
  gst_type_mark_as_plugin_api(GST_TYPE_TALKER_TTS_RESPONSE_FORMAT, GstPluginAPIFlags(0));
  GST_DEBUG_CATEGORY_INIT(talkertts_debug, "talkertts", 0, "Talker text to speech");
}
