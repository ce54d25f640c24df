// SPDX-License-Identifier: LGPL-2.1-or-later
/**
 * SECTION:element-talkerwhipsink
 *
 * A WHIP client (RFC 9725) that keeps a stream up: a bin around webrtcbin that
 * POSTs its complete offer, follows 307/308, sends the auth token as Bearer,
 * uses Link ice-servers, DELETEs the resource on stop, and when the session is
 * lost (HTTP 5xx/408/429 honouring Retry-After, ICE failed, disconnected too
 * long, no RTCP from the peer) starts a new one on a fresh webrtcbin after a
 * back-off, without stopping the pipeline. Every step is a `talker-whip`
 * element message. Raw input is encoded here (H.264 constrained baseline,
 * Opus 48 kHz); H.264/Opus input is only payloaded. Both tracks go in one
 * MediaStream so the receiver keeps them in sync.
 *
 * gst-launch-1.0 videotestsrc is-live=true ! video/x-raw,width=640,height=360 ! \
 *   talkerwhipsink name=out \
 *     location="http://127.0.0.1:1985/rtc/v1/whip/?app=live&stream=livestream" \
 *   audiotestsrc is-live=true ! out.
 */
#include "gst/talkerwhipsink/gsttalkerwhipsink.h"

#define GST_USE_UNSTABLE_API
#include <gio/gio.h>
#include <gst/sdp/sdp.h>
#include <gst/webrtc/webrtc.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gst/common/reconnecting_output.h"
#include "gst/common/webrtc_peer.h"
#include "lib/net/redact.h"
#include "lib/net/whip_client.h"

GST_DEBUG_CATEGORY_STATIC(talkerwhipsink_debug);
#define GST_CAT_DEFAULT talkerwhipsink_debug

namespace {

using talker::gst::MediaKind;
using Ms = std::chrono::milliseconds;

constexpr unsigned kDeleteTimeoutS = 2;
constexpr unsigned kHttpTimeoutS = 10;
constexpr guint64 kAudioOnlyRtcpMs = 8000;
// One MediaStream for both tracks: receivers synchronise tracks of one stream.
constexpr const char *kStreamId = "talker";

guint64 now_ms() {
  return guint64(g_get_monotonic_time() / 1000);
}

// Waits for a webrtcbin promise; the reply (may be null) stays owned by it.
const GstStructure *wait_promise(GstPromise *promise) {
  return gst_promise_wait(promise) == GST_PROMISE_RESULT_REPLIED ? gst_promise_get_reply(promise)
                                                                 : nullptr;
}

bool is_private_address(const std::string &host) {
  if (host == "localhost") return true;
  GInetAddress *a = g_inet_address_new_from_string(host.c_str());
  if (!a) return false;  // a name: take it as public
  bool priv = g_inet_address_get_is_loopback(a) || g_inet_address_get_is_site_local(a) ||
              g_inet_address_get_is_link_local(a);
  if (!priv && g_inet_address_get_family(a) == G_SOCKET_FAMILY_IPV4) {
    const guint8 *b = g_inet_address_to_bytes(a);
    priv = b[0] == 100 && (b[1] & 0xc0) == 64;  // 100.64/10, carrier-grade NAT
  }
  g_object_unref(a);
  return priv;
}

std::string url_host(const std::string &url) {
  GUri *uri = g_uri_parse(url.c_str(), G_URI_FLAGS_NONE, nullptr);
  std::string host = uri && g_uri_get_host(uri) ? g_uri_get_host(uri) : "";
  if (uri) g_uri_unref(uri);
  return host;
}

// The addresses of the answer's candidates.
std::vector<std::string> candidate_addresses(const std::string &sdp) {
  std::vector<std::string> out;
  size_t pos = 0;
  while ((pos = sdp.find("a=candidate:", pos)) != std::string::npos) {
    const size_t end = sdp.find_first_of("\r\n", pos);
    gchar **f = g_strsplit(sdp.substr(pos, end - pos).c_str(), " ", -1);
    if (g_strv_length(f) > 4) out.push_back(f[4]);
    g_strfreev(f);
    pos = end;
  }
  return out;
}

class WhipOutput : public talker::gst::ReconnectingOutput {
 public:
  explicit WhipOutput(GstBin *bin)
      : ReconnectingOutput(bin, talker::gst::WireFormat::kRtp, "talker-whip") {
    // SSRCs chosen up front, so that every offer names them (a=ssrc, msid)
    // whenever media starts to flow: an offer without them gets fewer
    // m-lines back from SRS. They stay over reconnects (the payloaders do).
    rtp_ssrcs[0] = g_random_int_range(1, G_MAXINT32);
    do rtp_ssrcs[1] = g_random_int_range(1, G_MAXINT32);
    while (rtp_ssrcs[1] == rtp_ssrcs[0]);
    peer_.set_own_ssrcs(rtp_ssrcs[0], rtp_ssrcs[1]);
  }
  ~WhipOutput() override { stop(); }

  // Read when a session starts.
  std::string location, auth_token, stun_server, turn_server;
  bool ice_preflight = false;
  guint gather_timeout_ms = 1000, connect_timeout_ms = 10000, disconnect_timeout_ms = 2000,
        rtcp_timeout_ms = 3000;

  GstStructure *stats();

 protected:
  std::string public_location() const override { return talker::net::redact_url(location); }
  SessionEnd run_session(unsigned attempt) override;
  GstPad *stage_target(GstElement *stage, const Track &track, unsigned index) override;
  void interrupt() override {
    std::lock_guard<std::mutex> l(client_lock_);
    if (client_) client_->cancel();
  }

 private:
  GstElement *make_webrtcbin(const std::vector<talker::net::IceServer> &servers);
  bool lost(GstElement *webrtc, guint64 *disconnected_since, std::string *why);

  std::mutex client_lock_;
  std::shared_ptr<talker::net::WhipClient> client_;
  std::vector<talker::net::IceServer> learned_servers_;  // from Link headers, for the next session
  talker::gst::PeerRtcpWatch peer_;
  // For the stats' bitrate: bytes and time at the previous read.
  std::mutex stats_lock_;
  guint64 prev_bytes_ = 0, prev_ms_ = 0;
};

GstElement *WhipOutput::make_webrtcbin(const std::vector<talker::net::IceServer> &servers) {
  GstElement *webrtc = gst_element_factory_make("webrtcbin", "webrtc");
  if (!webrtc) return nullptr;
  gst_util_set_object_arg(G_OBJECT(webrtc), "bundle-policy", "max-bundle");
  // No STUN unless asked for: the usual public default is unreachable in some
  // countries and gathering would wait on it.
  std::string stun = stun_server;
  std::vector<std::string> turns;
  if (!turn_server.empty()) turns.push_back(turn_server);
  for (const auto &s : servers) {
    if (s.url.rfind("stun:", 0) == 0 && stun.empty()) stun = s.webrtcbin_uri();
    if (s.url.rfind("turn", 0) == 0) turns.push_back(s.webrtcbin_uri());
  }
  if (!stun.empty()) g_object_set(webrtc, "stun-server", stun.c_str(), nullptr);
  for (const auto &t : turns) {
    gboolean ok = FALSE;
    g_signal_emit_by_name(webrtc, "add-turn-server", t.c_str(), &ok);
  }
  // A server on this machine (SRS with candidate 127.0.0.1) must be reachable.
  talker::gst::add_all_local_addresses(webrtc);
  return webrtc;
}

GstPad *WhipOutput::stage_target(GstElement *stage, const Track &track, unsigned index) {
  GstElement *webrtc = gst_bin_get_by_name(GST_BIN(stage), "webrtc");
  const bool video = track.kind == MediaKind::kVideo;
  GstCaps *codec = gst_caps_from_string(
      video ? "application/x-rtp, media=(string)video, encoding-name=(string)H264, "
              "payload=(int)96, clock-rate=(int)90000, packetization-mode=(string)1, "
              "profile-level-id=(string)42e01f, level-asymmetry-allowed=(string)1, "
              "rtcp-fb-nack=(boolean)true, rtcp-fb-nack-pli=(boolean)true, "
              "rtcp-fb-ccm-fir=(boolean)true"
            : "application/x-rtp, media=(string)audio, encoding-name=(string)OPUS, "
              "payload=(int)111, clock-rate=(int)48000, encoding-params=(string)2");
  // The SSRC the payloader uses: webrtcbin writes a=ssrc lines from it.
  gst_caps_set_simple(codec, "ssrc", G_TYPE_UINT, rtp_ssrcs[video ? 0 : 1], nullptr);
  // The pad brings its transceiver: make it send-only with the codec the
  // offer must carry (the payloader's caps are not known before data flows).
  const std::string name = "sink_" + std::to_string(index);
  GstPad *pad = gst_element_request_pad_simple(webrtc, name.c_str());
  GstWebRTCRTPTransceiver *transceiver = nullptr;
  g_object_get(pad, "transceiver", &transceiver, nullptr);
  if (transceiver) {
    g_object_set(transceiver, "direction", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDONLY,
                 "codec-preferences", codec, nullptr);
    gst_object_unref(transceiver);
  }
  gst_caps_unref(codec);
  if (g_object_class_find_property(G_OBJECT_GET_CLASS(pad), "msid"))
    g_object_set(pad, "msid", kStreamId, nullptr);
  gst_object_unref(webrtc);
  return pad;
}

bool WhipOutput::lost(GstElement *webrtc, guint64 *disconnected_since, std::string *why) {
  GstWebRTCICEConnectionState ice;
  GstWebRTCPeerConnectionState pc;
  g_object_get(webrtc, "ice-connection-state", &ice, "connection-state", &pc, nullptr);
  const guint64 now = now_ms();
  if (ice == GST_WEBRTC_ICE_CONNECTION_STATE_FAILED ||
      pc == GST_WEBRTC_PEER_CONNECTION_STATE_FAILED) {
    *why = "ICE failed";
    return true;
  }
  if (pc == GST_WEBRTC_PEER_CONNECTION_STATE_CLOSED) {
    *why = "the peer closed the connection";
    return true;
  }
  if (ice == GST_WEBRTC_ICE_CONNECTION_STATE_DISCONNECTED) {
    if (!*disconnected_since) *disconnected_since = now;
    if (now - *disconnected_since > disconnect_timeout_ms) {
      *why = "ICE disconnected for more than " + std::to_string(disconnect_timeout_ms) + " ms";
      return true;
    }
  } else {
    *disconnected_since = 0;
  }
  // Until our video flows, a receiver may only be reporting on audio, which
  // browsers do every 5 s (up to 7.5 s with RFC 3550's jitter); a talking
  // head's first frame comes one pipeline latency after the connection.
  const guint64 silence_ms =
      gate_.video_passed() ? rtcp_timeout_ms : std::max<guint64>(rtcp_timeout_ms, kAudioOnlyRtcpMs);
  if (rtcp_timeout_ms && gint64(now) - peer_.last_rtcp_ms.load() > gint64(silence_ms)) {
    *why = "no RTCP from the peer for " + std::to_string(silence_ms) + " ms";
    return true;
  }
  return false;
}

WhipOutput::SessionEnd WhipOutput::run_session(unsigned attempt) {
  SessionEnd end;
  if (location.empty()) {
    end.fatal = true;
    end.reason = "no location set";
    return end;
  }
  auto client = std::make_shared<talker::net::WhipClient>(location, auth_token, kHttpTimeoutS);
  {
    std::lock_guard<std::mutex> l(client_lock_);
    client_ = client;
  }
  std::vector<talker::net::IceServer> servers = learned_servers_;
  if (ice_preflight && servers.empty()) {
    servers = client->preflight();
    GST_INFO_OBJECT(bin_, "preflight: %zu ice servers", servers.size());
  }
  GstElement *stage = gst_bin_new(nullptr);
  GstElement *webrtc = make_webrtcbin(servers);
  if (!webrtc) {
    gst_object_unref(stage);
    end.fatal = true;
    end.reason = "webrtcbin is not installed (gstreamer1.0-plugins-bad, gstreamer1.0-nice)";
    return end;
  }
  gst_bin_add(GST_BIN(stage), webrtc);
  // Any RTCP from the peer (receiver reports, NACK, PLI, transport feedback)
  // proves it is still there.
  peer_.reset(gint64(now_ms() + connect_timeout_ms));
  peer_.attach(webrtc);
  install_stage(stage);
  if (stopping() || failed()) return end;

  GstPromise *promise = gst_promise_new();
  g_signal_emit_by_name(webrtc, "create-offer", nullptr, promise);
  GstWebRTCSessionDescription *offer = nullptr;
  if (const GstStructure *reply = wait_promise(promise))
    gst_structure_get(reply, "offer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &offer, nullptr);
  gst_promise_unref(promise);
  if (!offer) {
    end.fatal = true;
    end.reason = "webrtcbin made no offer (are both tracks' codecs installed?)";
    return end;
  }
  promise = gst_promise_new();
  g_signal_emit_by_name(webrtc, "set-local-description", offer, promise);
  wait_promise(promise);
  gst_promise_unref(promise);
  gst_webrtc_session_description_free(offer);
  // WHIP sends one complete offer: wait for gathering, or for the deadline.
  wait_until(
      [&] {
        GstWebRTCICEGatheringState g;
        g_object_get(webrtc, "ice-gathering-state", &g, nullptr);
        return g == GST_WEBRTC_ICE_GATHERING_STATE_COMPLETE;
      },
      Ms(gather_timeout_ms));
  if (stopping()) return end;
  GstWebRTCSessionDescription *local = nullptr;
  g_object_get(webrtc, "local-description", &local, nullptr);
  gchar *offer_text = local ? gst_sdp_message_as_text(local->sdp) : g_strdup("");
  GST_DEBUG_OBJECT(bin_, "offer:\n%s", offer_text);
  if (local) gst_webrtc_session_description_free(local);
  const std::string offer_sdp = offer_text;
  g_free(offer_text);

  talker::net::WhipSession session;
  try {
    session = client->publish(offer_sdp);
  } catch (const talker::net::WhipError &e) {
    end.fatal = !e.retryable;
    end.retry_after_ms = e.retry_after_ms;
    end.http_status = e.status;
    end.body_start = e.body_start;
    end.reason = e.what();
    return end;
  }
  GST_INFO_OBJECT(bin_, "session at %s (%u redirects, %zu ice servers)",
                  talker::net::redact_url(session.resource_url).c_str(), session.redirects,
                  session.ice_servers.size());
  if (!session.ice_servers.empty()) learned_servers_ = session.ice_servers;
  struct Delete {
    WhipOutput *self;
    std::shared_ptr<talker::net::WhipClient> client;
    std::string url;
    ~Delete() {
      const unsigned status = client->terminate(url, kDeleteTimeoutS);
      GST_INFO_OBJECT(self->bin_, "DELETE %s: %u", talker::net::redact_url(url).c_str(), status);
    }
  } delete_at_end{this, client, session.resource_url};

  const std::string host = url_host(location);
  for (const std::string &addr : candidate_addresses(session.answer_sdp))
    if (is_private_address(addr) && !is_private_address(host)) {
      GST_ELEMENT_WARNING(bin_, RESOURCE, SETTINGS,
                          ("The WHIP server's only way in is %s, a private or loopback address, "
                           "while it was reached at %s: media will not arrive",
                           addr.c_str(), host.c_str()),
                          ("set the server's public address as its ICE candidate (SRS: "
                           "rtc_server.candidate)"));
      break;
    }

  GstSDPMessage *sdp = nullptr;
  if (gst_sdp_message_new_from_text(session.answer_sdp.c_str(), &sdp) != GST_SDP_OK) {
    end.fatal = true;
    end.reason = "the server's answer is not SDP";
    return end;
  }
  GstWebRTCSessionDescription *answer =
      gst_webrtc_session_description_new(GST_WEBRTC_SDP_TYPE_ANSWER, sdp);
  promise = gst_promise_new();
  g_signal_emit_by_name(webrtc, "set-remote-description", answer, promise);
  const GstStructure *reply = wait_promise(promise);
  GError *set_error = nullptr;
  if (reply) gst_structure_get(reply, "error", G_TYPE_ERROR, &set_error, nullptr);
  gst_promise_unref(promise);
  gst_webrtc_session_description_free(answer);
  if (set_error) {
    // Not fatal: a server may answer one offer badly (SRS drops m-lines it
    // cannot map) and the next one well; max-retries bounds it.
    end.reason = std::string("webrtcbin refused the answer: ") + set_error->message;
    GST_WARNING_OBJECT(bin_, "%s; answer:\n%s", end.reason.c_str(), session.answer_sdp.c_str());
    g_error_free(set_error);
    return end;
  }
  const bool up = wait_until(
      [&] {
        GstWebRTCPeerConnectionState pc;
        g_object_get(webrtc, "connection-state", &pc, nullptr);
        return pc == GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED;
      },
      Ms(connect_timeout_ms));
  if (!up) {
    if (!failed() && !stopping())
      end.reason = "ICE/DTLS did not connect within " + std::to_string(connect_timeout_ms) + " ms";
    return end;
  }
  peer_.last_rtcp_ms = gint64(now_ms());
  connected(gst_structure_new("s", "resource", G_TYPE_STRING,
                              talker::net::redact_url(session.resource_url).c_str(), "redirects",
                              G_TYPE_UINT, session.redirects, nullptr));
  guint64 disconnected_since = 0;
  std::string why;
  wait_until([&] { return lost(webrtc, &disconnected_since, &why); }, std::chrono::hours(24 * 365));
  end.reason = why;
  (void)attempt;
  return end;
}

GstStructure *WhipOutput::stats() {
  GstStructure *s = common_stats();
  GstElement *st = stage();
  GstElement *webrtc = st ? gst_bin_get_by_name(GST_BIN(st), "webrtc") : nullptr;
  if (!webrtc) return s;
  GstPromise *promise = gst_promise_new();
  g_signal_emit_by_name(webrtc, "get-stats", nullptr, promise);
  const GstStructure *reply = wait_promise(promise);
  if (reply) GST_LOG_OBJECT(bin_, "webrtcbin stats: %" GST_PTR_FORMAT, reply);
  guint64 bytes = 0, nack = 0, pli = 0, fir = 0;
  double rtt = -1;
  std::string local_candidate, remote_candidate;
  if (reply) {
    const gint n = gst_structure_n_fields(reply);
    for (gint i = 0; i < n; ++i) {
      const GValue *v = gst_structure_get_value(reply, gst_structure_nth_field_name(reply, i));
      if (!GST_VALUE_HOLDS_STRUCTURE(v)) continue;
      const GstStructure *e = gst_value_get_structure(v);
      GstWebRTCStatsType type;
      if (!gst_structure_get(e, "type", GST_TYPE_WEBRTC_STATS_TYPE, &type, nullptr)) continue;
      guint ui = 0;
      if (type == GST_WEBRTC_STATS_OUTBOUND_RTP) {
        if (gst_structure_get_uint(e, "nack-count", &ui)) nack += ui;
        if (gst_structure_get_uint(e, "pli-count", &ui)) pli += ui;
        if (gst_structure_get_uint(e, "fir-count", &ui)) fir += ui;
      } else if (type == GST_WEBRTC_STATS_REMOTE_INBOUND_RTP) {
        double r;
        if (gst_structure_get_double(e, "round-trip-time", &r) && r > rtt) rtt = r;
      } else if (type == GST_WEBRTC_STATS_LOCAL_CANDIDATE ||
                 type == GST_WEBRTC_STATS_REMOTE_CANDIDATE) {
        const char *addr = gst_structure_get_string(e, "address");
        guint port = 0;
        gst_structure_get_uint(e, "port", &port);
        const char *ctype = gst_structure_get_string(e, "candidate-type");
        std::string text = std::string(addr ? addr : "?") + ":" + std::to_string(port) + " " +
                           (ctype ? ctype : "");
        (type == GST_WEBRTC_STATS_LOCAL_CANDIDATE ? local_candidate : remote_candidate) = text;
      }
    }
  }
  gst_promise_unref(promise);
  gst_object_unref(webrtc);
  // webrtcbin 1.22's per-stream byte counts are unreliable with bundling:
  // count what went in instead.
  bytes = gate_.bytes_passed();
  guint64 bitrate = 0;
  {
    std::lock_guard<std::mutex> l(stats_lock_);
    const guint64 now = now_ms();
    if (prev_ms_ && now > prev_ms_ && bytes >= prev_bytes_)
      bitrate = (bytes - prev_bytes_) * 8000 / (now - prev_ms_);
    prev_bytes_ = bytes;
    prev_ms_ = now;
  }
  gst_structure_set(s, "bytes-sent", G_TYPE_UINT64, bytes, "bitrate", G_TYPE_UINT64, bitrate,
                    "round-trip-time", G_TYPE_DOUBLE, rtt, "nack-count", G_TYPE_UINT64, nack,
                    "pli-count", G_TYPE_UINT64, pli, "fir-count", G_TYPE_UINT64, fir,
                    "local-candidate", G_TYPE_STRING, local_candidate.c_str(), "remote-candidate",
                    G_TYPE_STRING, remote_candidate.c_str(), nullptr);
  return s;
}

enum {
  PROP_0,
  PROP_LOCATION,
  PROP_AUTH_TOKEN,
  PROP_STUN_SERVER,
  PROP_TURN_SERVER,
  PROP_ICE_PREFLIGHT,
  PROP_GATHER_TIMEOUT,
  PROP_CONNECT_TIMEOUT,
  PROP_DISCONNECT_TIMEOUT,
  PROP_RTCP_TIMEOUT,
  PROP_STATS,
};

}  // namespace

struct _GstTalkerWhipSink {
  GstTalkerOutputBin parent;
  WhipOutput *output;  // owned by the parent class
};

G_DEFINE_TYPE(GstTalkerWhipSink, gst_talker_whip_sink, GST_TYPE_TALKER_OUTPUT_BIN);
GST_ELEMENT_REGISTER_DEFINE(talkerwhipsink, "talkerwhipsink", GST_RANK_NONE,
                            GST_TYPE_TALKER_WHIP_SINK);

static GstStaticPadTemplate video_template = GST_STATIC_PAD_TEMPLATE(
    "video", GST_PAD_SINK, GST_PAD_REQUEST,
    GST_STATIC_CAPS("video/x-raw; video/x-h264, stream-format=(string){ avc, byte-stream }"));
static GstStaticPadTemplate audio_template = GST_STATIC_PAD_TEMPLATE(
    "audio", GST_PAD_SINK, GST_PAD_REQUEST, GST_STATIC_CAPS("audio/x-raw; audio/x-opus"));

static std::string *string_field(WhipOutput *o, guint id) {
  switch (id) {
    case PROP_LOCATION:
      return &o->location;
    case PROP_AUTH_TOKEN:
      return &o->auth_token;
    case PROP_STUN_SERVER:
      return &o->stun_server;
    case PROP_TURN_SERVER:
      return &o->turn_server;
  }
  return nullptr;
}

static guint *ms_field(WhipOutput *o, guint id) {
  switch (id) {
    case PROP_GATHER_TIMEOUT:
      return &o->gather_timeout_ms;
    case PROP_CONNECT_TIMEOUT:
      return &o->connect_timeout_ms;
    case PROP_DISCONNECT_TIMEOUT:
      return &o->disconnect_timeout_ms;
    case PROP_RTCP_TIMEOUT:
      return &o->rtcp_timeout_ms;
  }
  return nullptr;
}

static void talker_whip_sink_set_property(GObject *object, guint id, const GValue *value,
                                          GParamSpec *pspec) {
  WhipOutput *o = GST_TALKER_WHIP_SINK(object)->output;
  if (std::string *s = string_field(o, id)) {
    const char *v = g_value_get_string(value);
    *s = v ? v : "";
  } else if (guint *ms = ms_field(o, id)) {
    *ms = g_value_get_uint(value);
  } else if (id == PROP_ICE_PREFLIGHT) {
    o->ice_preflight = g_value_get_boolean(value);
  } else {
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

static void talker_whip_sink_get_property(GObject *object, guint id, GValue *value,
                                          GParamSpec *pspec) {
  WhipOutput *o = GST_TALKER_WHIP_SINK(object)->output;
  if (std::string *s = string_field(o, id)) {
    g_value_set_string(value, s->c_str());
  } else if (guint *ms = ms_field(o, id)) {
    g_value_set_uint(value, *ms);
  } else if (id == PROP_ICE_PREFLIGHT) {
    g_value_set_boolean(value, o->ice_preflight);
  } else if (id == PROP_STATS) {
    g_value_take_boxed(value, o->stats());
  } else {
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

static void gst_talker_whip_sink_class_init(GstTalkerWhipSinkClass *klass) {
  auto *gobject_class = G_OBJECT_CLASS(klass);
  auto *element_class = GST_ELEMENT_CLASS(klass);
  gobject_class->set_property = talker_whip_sink_set_property;
  gobject_class->get_property = talker_whip_sink_get_property;
  const auto rw = GParamFlags(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  g_object_class_install_property(
      gobject_class, PROP_LOCATION,
      g_param_spec_string("location", "Location",
                          "The WHIP endpoint URL (SRS: http://host:1985/rtc/v1/whip/"
                          "?app=live&stream=livestream). Query values other than app/stream "
                          "are redacted in logs and messages",
                          "", rw));
  g_object_class_install_property(
      gobject_class, PROP_AUTH_TOKEN,
      g_param_spec_string("auth-token", "Auth token",
                          "Sent as 'Authorization: Bearer <token>' on every request (POST, "
                          "redirected POST, DELETE); nothing is sent when empty. Never logged",
                          "", rw));
  g_object_class_install_property(
      gobject_class, PROP_STUN_SERVER,
      g_param_spec_string("stun-server", "STUN server",
                          "stun://host:port, or empty (the default) for none: only host "
                          "candidates unless the server's Link headers name one",
                          "", rw));
  g_object_class_install_property(
      gobject_class, PROP_TURN_SERVER,
      g_param_spec_string("turn-server", "TURN server",
                          "turn(s)://user:password@host:port, used beside any TURN servers the "
                          "endpoint names in Link headers",
                          "", rw));
  g_object_class_install_property(
      gobject_class, PROP_ICE_PREFLIGHT,
      g_param_spec_boolean("ice-preflight", "ICE server preflight",
                           "Ask the endpoint for its Link ice-servers with OPTIONS before the "
                           "first offer, so that they are used from the first session. Off: "
                           "ice-servers from a 201 answer are used from the next session on. "
                           "Leave off for servers that treat any request as an offer",
                           FALSE, rw));
  g_object_class_install_property(
      gobject_class, PROP_GATHER_TIMEOUT,
      g_param_spec_uint("gather-timeout", "Gathering deadline",
                        "Milliseconds to wait for ICE gathering before POSTing the offer with "
                        "the candidates found so far",
                        50, 60000, 1000, rw));
  g_object_class_install_property(
      gobject_class, PROP_CONNECT_TIMEOUT,
      g_param_spec_uint("connect-timeout", "Connect timeout",
                        "Milliseconds from the answer to a connected ICE + DTLS transport "
                        "before the attempt counts as failed",
                        500, 120000, 10000, rw));
  g_object_class_install_property(
      gobject_class, PROP_DISCONNECT_TIMEOUT,
      g_param_spec_uint("disconnect-timeout", "Disconnect timeout",
                        "Milliseconds ICE may stay 'disconnected' before the session counts as "
                        "lost",
                        100, 120000, 2000, rw));
  g_object_class_install_property(
      gobject_class, PROP_RTCP_TIMEOUT,
      g_param_spec_uint("rtcp-timeout", "RTCP timeout",
                        "Milliseconds without any RTCP from the peer before the session counts "
                        "as lost (0: do not watch RTCP). Browsers and SRS send reports and "
                        "feedback every second or faster",
                        0, 120000, 3000, rw));
  g_object_class_install_property(
      gobject_class, PROP_STATS,
      g_param_spec_boxed("stats", "Statistics",
                         "state, attempt, sessions, buffers-dropped (while down), bytes-sent, "
                         "bitrate (bit/s since the previous read), round-trip-time (s, -1 "
                         "unknown), nack-count, pli-count, fir-count, local-candidate, "
                         "remote-candidate",
                         GST_TYPE_STRUCTURE,
                         GParamFlags(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));
  gst_element_class_add_static_pad_template(element_class, &video_template);
  gst_element_class_add_static_pad_template(element_class, &audio_template);
  gst_element_class_set_static_metadata(
      element_class, "WHIP output that reconnects", "Sink/Network",
      "WebRTC-HTTP ingestion (RFC 9725) of H.264 + Opus; starts a new session by itself after "
      "a failure, without stopping the pipeline",
      "gst-talker developers");
  GST_DEBUG_CATEGORY_INIT(talkerwhipsink_debug, "talkerwhipsink", 0, "WHIP output");
}

static void gst_talker_whip_sink_init(GstTalkerWhipSink *self) {
  self->output = new WhipOutput(GST_BIN(self));
  talker::gst::output_bin_take_output(GST_TALKER_OUTPUT_BIN(self), self->output);
}
