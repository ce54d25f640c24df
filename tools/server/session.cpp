// SPDX-License-Identifier: LGPL-2.1-or-later
#include "tools/server/session.h"

#include "lib/net/redact.h"

#define GST_USE_UNSTABLE_API
#include <gst/sdp/sdp.h>
#include <gst/webrtc/webrtc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <thread>

#include "gst/common/sentence_meta.h"
#include "gst/common/webrtc_peer.h"
#include "tools/server/audio_upload.h"

GST_DEBUG_CATEGORY_STATIC(talker_session_debug);
#define GST_CAT_DEFAULT talker_session_debug

namespace talker::server {
namespace {

// Each queue in front of a clocksync holds the talking head's latency.
const std::string kHold = "queue max-size-time=10000000000 max-size-buffers=0 max-size-bytes=0";

std::int64_t monotonic_ms() {
  return g_get_monotonic_time() / 1000;
}

// Quotes a property value for gst_parse_launch.
std::string quoted(const std::string &v) {
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// webrtcbin answers every promise from its own thread (with an error
// structure when it cannot do what was asked).
const GstStructure *wait_promise(GstPromise *promise) {
  return gst_promise_wait(promise) == GST_PROMISE_RESULT_REPLIED ? gst_promise_get_reply(promise)
                                                                 : nullptr;
}

}  // namespace

struct Session::Playback {
  std::function<void(const SentenceEvent &)> on_event;
  std::atomic<bool> alive{true};
  std::atomic<int> active{0};
  std::mutex lock;
  std::vector<GstClockID> pending;
};

Session::Session(std::uint64_t id, const Options &options, std::string avatar_name,
                 std::string avatar_dir, std::function<void(const SentenceEvent &)> on_event)
    : id_(id),
      options_(options),
      avatar_(std::move(avatar_name)),
      avatar_dir_(std::move(avatar_dir)),
      on_event_(std::move(on_event)),
      created_unix_ms_(g_get_real_time() / 1000),
      created_mono_ms_(monotonic_ms()),
      playback_(std::make_shared<Playback>()),
      last_activity_ms_(monotonic_ms()) {
  static gsize debug_init = 0;
  if (g_once_init_enter(&debug_init)) {
    GST_DEBUG_CATEGORY_INIT(talker_session_debug, "talkerserver", 0, "talker-server sessions");
    g_once_init_leave(&debug_init, 1);
  }
  playback_->on_event = on_event_;
  gst_segment_init(&audio_segment_, GST_FORMAT_TIME);
}

Session::~Session() {
  stop();
}

std::int64_t Session::now_ms() const {
  return monotonic_ms();
}

bool Session::speaking() const {
  return playback_->active.load() > 0;
}

// talkertts ! tee name=t, t. ! queue ! talkinghead ! queue ! videoconvert
// (I420 out), and the queue named aqueue to be continued from t.
std::string Session::source_description() const {
  const Options &o = options_;
  std::string tts = "talkertts name=tts engine=" + o.tts_engine;
  if (!o.tts_voice.empty()) tts += " voice=" + quoted(o.tts_voice);
  if (!o.tts_server.empty()) tts += " server=" + quoted(o.tts_server);
  if (!o.tts_model.empty()) tts += " model=" + quoted(o.tts_model);
  if (!o.tts_ref_audio.empty()) tts += " ref-audio=" + quoted(o.tts_ref_audio);
  if (!o.tts_ref_text.empty()) tts += " ref-text=" + quoted(o.tts_ref_text);
  std::string head = "talkinghead name=head avatar=" + quoted(avatar_dir_) +
                     " device=" + quoted(o.device) +
                     " transition-ms=" + std::to_string(o.transition_ms);
  if (!o.whisper_model.empty()) head += " whisper-model=" + quoted(o.whisper_model);
  if (!o.unet.empty()) head += " unet=" + quoted(o.unet);
  if (!o.unet_config.empty()) head += " unet-config=" + quoted(o.unet_config);
  if (!o.vae.empty()) head += " vae=" + quoted(o.vae);
  if (!o.dtype.empty()) head += " dtype=" + quoted(o.dtype);
  if (!o.decoder.empty()) head += " decoder=" + o.decoder;
  if (o.batch_size) head += " batch-size=" + std::to_string(o.batch_size);
  if (o.encoder_latency_ms >= 0)
    head += " encoder-latency-ms=" + std::to_string(o.encoder_latency_ms);
  if (o.inference_latency_ms >= 0)
    head += " inference-latency-ms=" + std::to_string(o.inference_latency_ms);
  if (o.shared_batch_size >= 0) head += " shared-batch-size=" + std::to_string(o.shared_batch_size);
  return tts + " ! tee name=t  t. ! " + kHold + " ! " + head + " ! " + kHold +
         " ! videoconvert ! video/x-raw,format=I420";
}

void Session::build(const OfferedCodecs *codecs) {
  const Options &o = options_;
  std::string description;
  if (!codecs) {
    // A push: the output bin encodes (H.264 + Opus for WHIP, + AAC for RTMP).
    std::string out = std::string(push_.transport == "whip" ? "talkerwhipsink" : "talkerrtmpsink") +
                      " name=out location=" + quoted(push_.url) +
                      " video-bitrate=" + std::to_string(o.video_bitrate_kbps);
    description = source_description() + " ! clocksync name=vsync ! out.video  t. ! " + kHold +
                  " name=aqueue ! audioconvert ! audioresample ! "
                  "audio/x-raw,format=S16LE,rate=48000,channels=1 ! clocksync name=async ! "
                  "out.audio  " +
                  out;
  } else {
    std::string video_enc;
    if (codecs->video == VideoCodec::kH264)
      // Constrained baseline as browsers decode in hardware too; x264 says
      // 42c0xx, which is the same profile: name it as the offer did, or the
      // caps miss webrtcbin's codec preferences.
      video_enc =
          "x264enc name=venc tune=zerolatency speed-preset=superfast key-int-max=50 bitrate=" +
          std::to_string(o.video_bitrate_kbps) +
          " ! video/x-h264,profile=constrained-baseline,stream-format=byte-stream"
          " ! h264parse config-interval=-1 ! rtph264pay config-interval=-1 "
          "aggregate-mode=zero-latency pt=" +
          std::to_string(codecs->video_pt) +
          " ! capssetter caps=\"application/x-rtp,profile-level-id=(string)" +
          codecs->video_profile + "\"";
    else
      video_enc =
          "vp8enc name=venc deadline=1 cpu-used=8 keyframe-max-dist=50 error-resilient=default "
          "end-usage=cbr target-bitrate=" +
          std::to_string(o.video_bitrate_kbps * 1000) +
          " ! rtpvp8pay pt=" + std::to_string(codecs->video_pt);
    description =
        source_description() + " ! " + video_enc +
        " ! clocksync name=vsync ! tee name=vrec  vrec.src_%u ! webrtc.  t. ! " + kHold +
        " name=aqueue ! audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=1 ! opusenc "
        "bitrate=" +
        std::to_string(o.audio_bitrate) + " ! rtpopuspay pt=" + std::to_string(codecs->audio_pt) +
        " ! clocksync name=async ! tee name=arec  arec.src_%u ! webrtc.  "
        "webrtcbin name=webrtc bundle-policy=max-bundle";
  }
  GST_DEBUG("session %" G_GUINT64_FORMAT ": %s", id_, description.c_str());
  GError *err = nullptr;
  GstElement *pipeline =
      gst_parse_launch_full(description.c_str(), nullptr, GST_PARSE_FLAG_FATAL_ERRORS, &err);
  if (err) {
    const std::string msg = err->message;
    g_error_free(err);
    if (pipeline) gst_object_unref(pipeline);
    throw SessionError("cannot build the session pipeline: " + msg);
  }
  pipeline_.reset(pipeline);
  auto by_name = [&](const char *name) {
    return gst::GstPtr<GstElement>(gst_bin_get_by_name(GST_BIN(pipeline), name));
  };
  tts_ = by_name("tts");
  head_ = by_name("head");
  vsync_ = by_name("vsync");
  async_ = by_name("async");

  // A client's text never goes through the launch line: set as properties.
  if (!ref_audio_.empty())
    g_object_set(tts_.get(), "ref-audio", ref_audio_.c_str(), "ref-text", ref_text_.c_str(),
                 nullptr);
  // The API key comes from the environment, never from a command line.
  if (!o.tts_api_key_env.empty())
    if (const char *key = g_getenv(o.tts_api_key_env.c_str()))
      g_object_set(tts_.get(), "api-key", key, nullptr);

  // Sentence marks, read before the encoder and played out one video
  // latency later (when the audio leaves the server).
  gst::GstPtr<GstElement> aqueue = by_name("aqueue");
  gst::GstPtr<GstPad> asrc(gst_element_get_static_pad(aqueue.get(), "src"));
  gst_pad_add_probe(
      asrc.get(), GstPadProbeType(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM),
      audio_probe, this, nullptr);

  gst::GstPtr<GstBus> bus(gst_element_get_bus(pipeline));
  bus_watch_ = gst_bus_create_watch(bus.get());
  g_source_set_callback(bus_watch_, G_SOURCE_FUNC(on_bus), this, nullptr);
  g_source_attach(bus_watch_, g_main_context_default());

  if (!codecs) {
    out_ = by_name("out");
    if (!push_.token.empty()) g_object_set(out_.get(), "auth-token", push_.token.c_str(), nullptr);
    return;
  }
  webrtc_ = by_name("webrtc");
  // /record taps the RTP streams here, where they leave for the viewer:
  // the bytes the viewer gets, both at the same point of the timeline.
  recorder_ = std::make_unique<Recorder>(pipeline, by_name("vrec").get(), by_name("arec").get(),
                                         codecs->video == VideoCodec::kH264);

  // Transceivers: send-only, with the browser's payload types.
  GstIterator *it = gst_element_iterate_sink_pads(webrtc_.get());
  GValue item = G_VALUE_INIT;
  while (gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
    GstPad *pad = GST_PAD(g_value_get_object(&item));
    gst::GstPtr<GstPad> peer(gst_pad_get_peer(pad));
    gst::GstPtr<GstElement> vrec(by_name("vrec"));
    const bool video = peer && GST_OBJECT_PARENT(peer.get()) == GST_OBJECT(vrec.get());
    std::string caps_text;
    if (video && codecs->video == VideoCodec::kH264)
      caps_text = "application/x-rtp,media=video,encoding-name=H264,clock-rate=90000,payload=" +
                  std::to_string(codecs->video_pt) +
                  ",packetization-mode=(string)1,profile-level-id=(string)" + codecs->video_profile;
    else if (video)
      caps_text = "application/x-rtp,media=video,encoding-name=VP8,clock-rate=90000,payload=" +
                  std::to_string(codecs->video_pt);
    else
      caps_text = "application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,payload=" +
                  std::to_string(codecs->audio_pt);
    GstWebRTCRTPTransceiver *transceiver = nullptr;
    g_object_get(pad, "transceiver", &transceiver, nullptr);
    if (transceiver) {
      gst::GstPtr<GstCaps> caps(gst_caps_from_string(caps_text.c_str()));
      g_object_set(transceiver, "direction", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDONLY,
                   "codec-preferences", caps.get(), nullptr);
      gst_object_unref(transceiver);
    }
    g_value_reset(&item);
  }
  g_value_unset(&item);
  gst_iterator_free(it);

  // ICE: servers, the port range, and loopback among the host candidates (a
  // browser on this machine).
  if (!o.stun.empty()) g_object_set(webrtc_.get(), "stun-server", o.stun.c_str(), nullptr);
  for (const auto &t : o.turn) {
    gboolean ok = FALSE;
    g_signal_emit_by_name(webrtc_.get(), "add-turn-server", t.c_str(), &ok);
  }
  GstWebRTCICE *ice = nullptr;
  g_object_get(webrtc_.get(), "ice-agent", &ice, nullptr);
  if (ice) {
    if (o.ice_port_min && g_object_class_find_property(G_OBJECT_GET_CLASS(ice), "min-rtp-port"))
      g_object_set(ice, "min-rtp-port", o.ice_port_min, "max-rtp-port", o.ice_port_max, nullptr);
    gst_object_unref(ice);
  }
  gst::add_all_local_addresses(webrtc_.get());

  // The browser is there as long as it sends RTCP (receiver reports, NACK, PLI).
  peer_.attach(webrtc_.get());
}

GstPadProbeReturn Session::audio_probe(GstPad *, GstPadProbeInfo *info, gpointer data) {
  auto *self = static_cast<Session *>(data);
  if (info->type & GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM) {
    GstEvent *event = GST_PAD_PROBE_INFO_EVENT(info);
    if (GST_EVENT_TYPE(event) == GST_EVENT_SEGMENT)
      gst_event_copy_segment(event, &self->audio_segment_);
    return GST_PAD_PROBE_OK;
  }
  GstBuffer *buffer = GST_PAD_PROBE_INFO_BUFFER(info);
  self->on_sentence_meta(buffer, self->audio_segment_);
  return GST_PAD_PROBE_OK;
}

void Session::on_sentence_meta(GstBuffer *buffer, const GstSegment &segment) {
  gpointer state = nullptr;
  while (GstMeta *m =
             gst_buffer_iterate_meta_filtered(buffer, &state, TALKER_SENTENCE_META_API_TYPE)) {
    auto *meta = reinterpret_cast<TalkerSentenceMeta *>(m);
    const GstClockTime rt = gst_segment_to_running_time(&segment, GST_FORMAT_TIME,
                                                        GST_BUFFER_PTS(buffer) + meta->offset);
    gst::GstPtr<GstClock> clock(gst_element_get_clock(pipeline_.get()));
    if (!clock || !GST_CLOCK_TIME_IS_VALID(rt)) continue;
    SentenceEvent ev;
    ev.state = meta->state == TALKER_SENTENCE_START ? "start" : "end";
    ev.text = meta->text ? meta->text : "";
    ev.id = meta->id;
    {
      // A chat reply's subtitle is its text as written (Markdown, emoji).
      std::lock_guard<std::mutex> l(lock_);
      auto w = written_.find(meta->utterance);
      if (w != written_.end()) {
        if (w->second.second == 0 && meta->state == TALKER_SENTENCE_START)
          w->second.second = meta->id;
        if (w->second.second == meta->id) {
          ev.spoken = ev.text;
          ev.text = w->second.first;
          if (meta->state == TALKER_SENTENCE_END) written_.erase(w);
        }
      }
    }
    if (meta->state == TALKER_SENTENCE_END)
      ev.reason = talker_sentence_end_reason_name(meta->reason);
    const GstClockTime due =
        gst_element_get_base_time(pipeline_.get()) + rt + playout_delay_.load();
    GstClockID cid = gst_clock_new_single_shot_id(clock.get(), due);
    struct Pending {
      std::shared_ptr<Playback> playback;
      SentenceEvent event;
    };
    auto *pending = new Pending{playback_, ev};
    {
      std::lock_guard<std::mutex> l(playback_->lock);
      playback_->pending.push_back(gst_clock_id_ref(cid));
    }
    gst_clock_id_wait_async(
        cid,
        +[](GstClock *, GstClockTime, GstClockID id, gpointer user) -> gboolean {
          auto *p = static_cast<Pending *>(user);
          {
            std::lock_guard<std::mutex> l(p->playback->lock);
            auto &v = p->playback->pending;
            for (auto it = v.begin(); it != v.end(); ++it)
              if (*it == id) {
                gst_clock_id_unref(*it);
                v.erase(it);
                break;
              }
          }
          if (!p->playback->alive) return TRUE;
          p->playback->active += p->event.state == "start" ? 1 : -1;
          if (p->playback->active < 0) p->playback->active = 0;
          p->playback->on_event(p->event);
          return TRUE;
        },
        pending, +[](gpointer user) { delete static_cast<Pending *>(user); });
    gst_clock_id_unref(cid);
  }
}

// Both branches leave at running time + the video branch's latency: the
// audio clocksync waits the difference on top of its own upstream latency.
void Session::align_branches() {
  auto upstream_min = [](GstElement *sync) -> GstClockTime {
    gst::GstPtr<GstPad> src(gst_element_get_static_pad(sync, "src"));
    gst::GstPtr<GstQuery> q(gst_query_new_latency());
    // Through the clocksync, so that it records the same upstream latency.
    if (!gst_pad_query(src.get(), q.get())) return GST_CLOCK_TIME_NONE;
    gboolean live = FALSE;
    GstClockTime min = 0, max = 0;
    gst_query_parse_latency(q.get(), &live, &min, &max);
    return live ? min : 0;
  };
  const GstClockTime video = upstream_min(vsync_.get()), audio = upstream_min(async_.get());
  if (!GST_CLOCK_TIME_IS_VALID(video) || !GST_CLOCK_TIME_IS_VALID(audio)) return;
  const gint64 offset = gint64(video) - gint64(audio);
  g_object_set(async_.get(), "ts-offset", offset > 0 ? offset : gint64(0), nullptr);
  g_object_set(vsync_.get(), "ts-offset", offset < 0 ? -offset : gint64(0), nullptr);
  // webrtcbin ignores the pipeline's LATENCY event (its sinks do not sync),
  // so nothing upstream would learn the latency, and the talking head would
  // find every frame late. The clocksyncs are where frames meet the clock:
  // tell both branches from there.
  const GstClockTime delay = std::max(video, audio);
  for (GstElement *sync : {vsync_.get(), async_.get()}) {
    gst::GstPtr<GstPad> src(gst_element_get_static_pad(sync, "src"));
    gst_pad_send_event(src.get(), gst_event_new_latency(delay));
  }
  if (playout_delay_.exchange(delay) != delay)
    g_print("session %" G_GUINT64_FORMAT
            ": latency %.0f ms (video branch), audio waits %.0f ms more\n",
            id_, video / 1e6, offset / 1e6);
}

gboolean Session::on_bus(GstBus *, GstMessage *msg, gpointer data) {
  auto *self = static_cast<Session *>(data);
  switch (GST_MESSAGE_TYPE(msg)) {
    case GST_MESSAGE_ERROR: {
      GError *err = nullptr;
      gchar *dbg = nullptr;
      gst_message_parse_error(msg, &err, &dbg);
      g_printerr("session %" G_GUINT64_FORMAT ": error from %s: %s (%s)\n", self->id_,
                 GST_OBJECT_NAME(GST_MESSAGE_SRC(msg)), err->message, dbg ? dbg : "");
      {
        std::lock_guard<std::mutex> l(self->lock_);
        if (self->error_.empty()) self->error_ = err->message;
      }
      g_error_free(err);
      g_free(dbg);
      break;
    }
    case GST_MESSAGE_WARNING: {
      GError *err = nullptr;
      gst_message_parse_warning(msg, &err, nullptr);
      g_printerr("session %" G_GUINT64_FORMAT ": warning from %s: %s\n", self->id_,
                 GST_OBJECT_NAME(GST_MESSAGE_SRC(msg)), err->message);
      g_error_free(err);
      break;
    }
    case GST_MESSAGE_ELEMENT: {
      // The push output's state: connecting, connected, reconnecting, …
      const GstStructure *st = gst_message_get_structure(msg);
      const char *state = st ? gst_structure_get_string(st, "state") : nullptr;
      if (state && (gst_structure_has_name(st, "talker-whip") ||
                    gst_structure_has_name(st, "talker-rtmp"))) {
        std::lock_guard<std::mutex> l(self->lock_);
        if (self->push_state_ != state) {
          // Why a push reconnects, with any URL in it redacted (stream keys).
          std::string why;
          if (const char *r = gst_structure_get_string(st, "reason")) {
            std::istringstream words(r);
            for (std::string w; words >> w;)
              why += (why.empty() ? "" : " ") +
                     (w.find("://") != std::string::npos ? net::redact_url(w) : w);
          }
          g_print("session %" G_GUINT64_FORMAT ": push %s%s%s\n", self->id_, state,
                  why.empty() ? "" : ": ", why.c_str());
        }
        self->push_state_ = state;
      }
      break;
    }
    case GST_MESSAGE_LATENCY:
      gst_bin_recalculate_latency(GST_BIN(self->pipeline_.get()));
      self->align_branches();
      break;
    default:
      break;
  }
  return G_SOURCE_CONTINUE;
}

void Session::play() {
  if (gst_element_set_state(pipeline_.get(), GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE ||
      gst_element_get_state(pipeline_.get(), nullptr, nullptr, 120 * GST_SECOND) ==
          GST_STATE_CHANGE_FAILURE) {
    std::lock_guard<std::mutex> l(lock_);
    throw SessionError("the session pipeline did not start" +
                       (error_.empty() ? "" : ": " + error_));
  }
  align_branches();
}

void Session::start_push(const PushTarget &target) {
  push_ = target;
  build(nullptr);
  play();
}

std::string Session::answer(const std::string &offer_text) {
  const OfferedCodecs codecs = choose_codecs(offer_text);
  build(&codecs);
  play();

  GstSDPMessage *sdp = nullptr;
  gst_sdp_message_new_from_text(offer_text.c_str(), &sdp);
  GstWebRTCSessionDescription *offer =
      gst_webrtc_session_description_new(GST_WEBRTC_SDP_TYPE_OFFER, sdp);
  GstPromise *promise = gst_promise_new();
  g_signal_emit_by_name(webrtc_.get(), "set-remote-description", offer, promise);
  const GstStructure *reply = wait_promise(promise);
  GError *error = nullptr;
  if (reply) gst_structure_get(reply, "error", G_TYPE_ERROR, &error, nullptr);
  gst_promise_unref(promise);
  gst_webrtc_session_description_free(offer);
  if (error) {
    const std::string msg = error->message;
    g_error_free(error);
    throw OfferError("sdp: webrtcbin refused the offer: " + msg);
  }

  // The answer names each track's SSRC and stream (a=msid, which the
  // LiveTalking pages need for event.streams[0]) once its caps reached
  // webrtcbin: the first encoded frame brings them.
  const gint64 caps_until = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;
  for (;;) {
    if (peer_.read_own_ssrcs(webrtc_.get())) break;
    {
      std::lock_guard<std::mutex> l(lock_);
      if (!error_.empty()) throw SessionError("the session pipeline failed: " + error_);
    }
    if (g_get_monotonic_time() > caps_until)
      throw SessionError("no media reached webrtcbin within 20 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  promise = gst_promise_new();
  g_signal_emit_by_name(webrtc_.get(), "create-answer", nullptr, promise);
  reply = wait_promise(promise);
  GstWebRTCSessionDescription *answer = nullptr;
  if (reply)
    gst_structure_get(reply, "answer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &answer, nullptr);
  if (reply && !answer) gst_structure_get(reply, "error", G_TYPE_ERROR, &error, nullptr);
  gst_promise_unref(promise);
  if (!answer) {
    const std::string msg = error ? error->message : "no answer";
    if (error) g_error_free(error);
    throw OfferError("sdp: webrtcbin cannot answer this offer: " + msg);
  }
  promise = gst_promise_new();
  g_signal_emit_by_name(webrtc_.get(), "set-local-description", answer, promise);
  wait_promise(promise);
  gst_promise_unref(promise);
  gst_webrtc_session_description_free(answer);

  // The LiveTalking pages do not trickle: the answer carries every candidate.
  const gint64 gather_until = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
  for (;;) {
    GstWebRTCICEGatheringState g;
    g_object_get(webrtc_.get(), "ice-gathering-state", &g, nullptr);
    if (g == GST_WEBRTC_ICE_GATHERING_STATE_COMPLETE || g_get_monotonic_time() > gather_until)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  GstWebRTCSessionDescription *local = nullptr;
  g_object_get(webrtc_.get(), "local-description", &local, nullptr);
  if (!local) throw SessionError("webrtcbin has no local description");
  gchar *text = gst_sdp_message_as_text(local->sdp);
  std::string out = text;
  g_free(text);
  gst_webrtc_session_description_free(local);
  if (!options_.public_ip.empty()) out = add_public_candidates(out, options_.public_ip);
  GST_DEBUG("session %" G_GUINT64_FORMAT " answer:\n%s", id_, out.c_str());
  last_activity_ms_ = now_ms();
  return out;
}

namespace {

// talkertts's voice structure: only what is set.
GstStructure *voice_structure(const talker::tts::VoiceOptions &voice) {
  GstStructure *s = gst_structure_new_empty("voice");
  if (!voice.voice.empty())
    gst_structure_set(s, "voice", G_TYPE_STRING, voice.voice.c_str(), nullptr);
  if (voice.speed > 0) gst_structure_set(s, "speed", G_TYPE_DOUBLE, voice.speed, nullptr);
  return s;
}

}  // namespace

guint64 Session::say(const std::string &text, const talker::tts::VoiceOptions &voice) {
  touch();
  guint64 id = 0;
  if (voice.empty()) {
    g_signal_emit_by_name(tts_.get(), "say", text.c_str(), &id);
  } else {
    GstStructure *s = voice_structure(voice);
    g_signal_emit_by_name(tts_.get(), "say-with-voice", text.c_str(), s, &id);
    gst_structure_free(s);
  }
  return id;
}

std::string Session::check_voice(const talker::tts::VoiceOptions &voice) {
  if (voice.empty()) return "";
  GstStructure *s = voice_structure(voice);
  gchar *why = nullptr;
  g_signal_emit_by_name(tts_.get(), "check-voice", s, &why);
  gst_structure_free(s);
  std::string out = why ? why : "";
  g_free(why);
  return out;
}

void Session::set_clip_map(std::map<std::string, std::string> audiotype_to_clip) {
  clip_map_ = std::move(audiotype_to_clip);
}

std::string Session::clip_for(const std::string &audiotype) const {
  if (auto it = clip_map_.find(audiotype); it != clip_map_.end()) return it->second;
  // A clip's own name (not a number: numbers go through custom_config).
  if (audiotype.empty() || audiotype[0] == '.' ||
      audiotype.find_first_not_of("0123456789") == std::string::npos ||
      audiotype.find_first_not_of(
          "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.") != std::string::npos)
    return "";
  const std::string first = avatar_dir_ + "/actions/" + audiotype + "/frames/000000.png";
  return g_file_test(first.c_str(), G_FILE_TEST_IS_REGULAR) ? audiotype : "";
}

double Session::play_clip(const std::string &name) {
  touch();
  std::vector<int16_t> samples;
  GstClockTime duration = 0;
  {
    std::lock_guard<std::mutex> l(clip_lock_);
    auto it = clip_audio_.find(name);
    if (it == clip_audio_.end()) {
      const std::string folder = avatar_dir_ + "/actions/" + name;
      std::size_t frames = 0;
      for (;; ++frames) {
        char file[32];
        std::snprintf(file, sizeof file, "/frames/%06zu.png", frames);
        if (!g_file_test((folder + file).c_str(), G_FILE_TEST_IS_REGULAR)) break;
      }
      // Its audio: the first actions/<name>/audio.* (any format GStreamer decodes).
      std::vector<int16_t> audio;
      if (GDir *dir = g_dir_open(folder.c_str(), 0, nullptr)) {
        std::string file;
        while (const char *entry = g_dir_read_name(dir))
          if (g_str_has_prefix(entry, "audio.") && (file.empty() || file > entry)) file = entry;
        g_dir_close(dir);
        if (!file.empty()) {
          gchar *contents = nullptr;
          gsize size = 0;
          if (!g_file_get_contents((folder + "/" + file).c_str(), &contents, &size, nullptr))
            throw SessionError("audiotype: cannot read the clip's " + file);
          const std::string bytes(contents, size);
          g_free(contents);
          DecodeLimits limits;
          limits.max_seconds = 600;
          try {
            audio = decode_audio_upload(bytes, limits);
          } catch (const std::exception &e) {
            throw SessionError("audiotype: the clip's " + file + ": " + e.what());
          }
        }
      }
      const GstClockTime length =
          std::max(gst_util_uint64_scale_int(frames, GST_SECOND, 25),
                   gst_util_uint64_scale_int(audio.size(), GST_SECOND, 16000));
      it = clip_audio_.emplace(name, std::make_pair(std::move(audio), length)).first;
    }
    samples = it->second.first;
    duration = it->second.second;
  }
  GBytes *bytes = g_bytes_new(samples.data(), samples.size() * sizeof(int16_t));
  guint64 id = 0;
  g_signal_emit_by_name(tts_.get(), "say-clip", bytes, name.c_str(), guint64(duration), &id);
  g_bytes_unref(bytes);
  if (!id) throw SessionError("audiotype: the clip '" + name + "' is empty");
  return double(duration) / GST_SECOND;
}

void Session::set_reference(const std::string &ref_audio, const std::string &ref_text) {
  ref_audio_ = ref_audio;
  ref_text_ = ref_text;
}

guint64 Session::say_audio(std::vector<int16_t> samples) {
  touch();
  GBytes *bytes = g_bytes_new(samples.data(), samples.size() * sizeof(int16_t));
  guint64 id = 0;
  g_signal_emit_by_name(tts_.get(), "say-audio", bytes, "", &id);
  g_bytes_unref(bytes);
  return id;
}

void Session::chat(const std::string &text, const talker::tts::VoiceOptions &voice) {
  touch();
  {
    std::lock_guard<std::mutex> l(lock_);
    chat_voice_ = voice;
  }
  if (!conversation_) {
    ConversationSettings c;
    c.chat.base_url = options_.llm_url;
    c.chat.model = options_.llm_model;
    c.chat.timeout_s = options_.llm_timeout_s;
    // The key comes from the environment, never from a command line or a log.
    if (!options_.llm_key_env.empty())
      if (const char *key = g_getenv(options_.llm_key_env.c_str())) c.chat.api_key = key;
    c.system_prompt = options_.system_prompt;
    c.max_turns = options_.llm_max_turns;
    conversation_ = std::make_unique<Conversation>(
        c,
        [this](const std::string &words, const std::string &written) {
          talker::tts::VoiceOptions voice;
          {
            std::lock_guard<std::mutex> l(lock_);
            voice = chat_voice_;
          }
          // Its audio starts after synthesis: the text is in place by then.
          const guint64 utterance = say(words, voice);
          std::lock_guard<std::mutex> l(lock_);
          if (utterance && written != words) written_[utterance] = {written, 0};
        },
        [this](const std::string &why) {
          g_printerr("session %" G_GUINT64_FORMAT ": LLM: %s\n", id_, why.c_str());
          SentenceEvent e;
          e.state = "warning";
          e.text = why;
          on_event_(e);
        });
  }
  conversation_->ask(text);
}

void Session::interrupt() {
  touch();
  {
    // Reply sentences that never started never will.
    std::lock_guard<std::mutex> l(lock_);
    for (auto w = written_.begin(); w != written_.end();)
      w = w->second.second == 0 ? written_.erase(w) : std::next(w);
  }
  // The reply first, so that none of it is queued after the speech stops.
  if (conversation_) conversation_->cancel();
  g_signal_emit_by_name(tts_.get(), "interrupt");
}

void Session::detach_bus() {
  if (!bus_watch_) return;
  g_source_destroy(bus_watch_);
  g_source_unref(bus_watch_);
  bus_watch_ = nullptr;
}

void Session::touch() {
  last_activity_ms_ = now_ms();
}

std::string Session::start_recording(const std::string &dir) {
  touch();
  std::lock_guard<std::mutex> l(record_lock_);
  if (!recorder_) throw SessionError("the session has ended");
  const std::string path = dir + "/" + std::to_string(id_) + "." + recorder_->extension();
  recorder_->start(path);
  recording_ = true;
  return path;
}

void Session::stop_recording() {
  touch();
  std::lock_guard<std::mutex> l(record_lock_);
  if (recorder_) recorder_->stop();
  recording_ = false;
}

bool Session::recording() const {
  return recording_;
}

SessionInfo Session::info() {
  SessionInfo i;
  i.id = id_;
  i.avatar = avatar_;
  i.speaking = speaking();
  i.created_unix_ms = created_unix_ms_;
  i.connected = connected_at_ms_.load() != 0;
  i.viewers = i.connected ? 1 : 0;
  i.latency_ms = playout_delay_.load() / 1e6;
  i.recording = recording();
  if (push()) {
    i.transport = push_.transport;
    std::lock_guard<std::mutex> l(lock_);
    i.push_state = push_state_;
    i.connected = push_state_ == "connected";
    i.viewers = 0;  // the server it pushes to knows its viewers
  }
  if (head_) {
    GstStructure *stats = nullptr;
    g_object_get(head_.get(), "stats", &stats, nullptr);
    if (stats) {
      gst_structure_get_uint64(stats, "frames-generated", &i.frames_generated);
      gst_structure_get_uint64(stats, "frames-skipped", &i.frames_skipped);
      gst_structure_free(stats);
    }
  }
  return i;
}

std::string Session::check() {
  {
    std::lock_guard<std::mutex> l(lock_);
    if (!error_.empty()) return "pipeline error: " + error_;
  }
  const std::int64_t now = now_ms();
  if (speaking()) last_activity_ms_ = now;
  // A push is a broadcast: it runs until it is ended, silent or not.
  if (!push() && now - last_activity_ms_.load() > std::int64_t(options_.idle_timeout_s * 1000))
    return "idle for " + std::to_string(int(options_.idle_timeout_s)) + " s";
  if (!webrtc_) return "";
  GstWebRTCPeerConnectionState pc;
  GstWebRTCICEConnectionState ice;
  g_object_get(webrtc_.get(), "connection-state", &pc, "ice-connection-state", &ice, nullptr);
  if (pc == GST_WEBRTC_PEER_CONNECTION_STATE_FAILED ||
      ice == GST_WEBRTC_ICE_CONNECTION_STATE_FAILED)
    return "ICE failed";
  if (pc == GST_WEBRTC_PEER_CONNECTION_STATE_CLOSED) return "the browser closed the connection";
  if (peer_.bye) return "the browser left (RTCP BYE)";
  if (pc == GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED && !connected_at_ms_) {
    connected_at_ms_ = now;
    peer_.last_rtcp_ms = now;
  }
  if (!connected_at_ms_) {
    if (now - created_mono_ms_ > std::int64_t(options_.connect_timeout_s * 1000))
      return "not connected within " + std::to_string(int(options_.connect_timeout_s)) + " s";
    return "";
  }
  if (now - peer_.last_rtcp_ms.load() > std::int64_t(options_.peer_timeout_s * 1000))
    return "no RTCP from the browser for " + std::to_string(int(options_.peer_timeout_s)) + " s";
  return "";
}

void Session::stop() {
  if (stopped_) return;
  stopped_ = true;
  conversation_.reset();  // cancels and joins the reply in flight
  playback_->alive = false;
  {
    std::lock_guard<std::mutex> l(playback_->lock);
    for (GstClockID id : playback_->pending) {
      gst_clock_id_unschedule(id);
      gst_clock_id_unref(id);
    }
    playback_->pending.clear();
  }
  detach_bus();
  // A recording is finished (its muxer writes its end) while data still flows.
  {
    std::lock_guard<std::mutex> l(record_lock_);
    if (recorder_) recorder_->stop();
    recorder_.reset();
    recording_ = false;
  }
  if (pipeline_) gst_element_set_state(pipeline_.get(), GST_STATE_NULL);
  async_.reset();
  vsync_.reset();
  out_.reset();
  head_.reset();
  tts_.reset();
  webrtc_.reset();
  pipeline_.reset();
}

}  // namespace talker::server
