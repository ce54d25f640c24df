// SPDX-License-Identifier: LGPL-2.1-or-later
#include "gst/common/webrtc_peer.h"

#define GST_USE_UNSTABLE_API
#include <gst/webrtc/webrtc.h>
#include <nice/agent.h>
#include <nice/interfaces.h>

namespace talker::gst {

void add_all_local_addresses(GstElement *webrtc) {
  GstWebRTCICE *ice = nullptr;
  g_object_get(webrtc, "ice-agent", &ice, nullptr);
  if (ice && g_object_class_find_property(G_OBJECT_GET_CLASS(ice), "agent")) {
    NiceAgent *agent = nullptr;
    g_object_get(ice, "agent", &agent, nullptr);
    if (agent) {
      GList *ips = nice_interfaces_get_local_ips(TRUE);
      for (GList *l = ips; l; l = l->next) {
        NiceAddress address;
        if (nice_address_set_from_string(&address, static_cast<const char *>(l->data)))
          nice_agent_add_local_address(agent, &address);
      }
      g_list_free_full(ips, g_free);
      g_object_unref(agent);
    }
  }
  if (ice) gst_object_unref(ice);
}

bool PeerRtcpWatch::own(guint ssrc) const {
  if (ssrc == 0) return false;
  for (auto &s : own_ssrcs_)
    if (s.load() == ssrc) return true;
  return false;
}

namespace {

guint32 read_u32(const guint8 *p) {
  return guint32(p[0]) << 24 | guint32(p[1]) << 16 | guint32(p[2]) << 8 | p[3];
}

void write_u32(guint8 *p, guint32 v) {
  p[0] = guint8(v >> 24);
  p[1] = guint8(v >> 16);
  p[2] = guint8(v >> 8);
  p[3] = guint8(v);
}

// Packet types whose first word after the header is the sender's SSRC (RFC
// 3550 SR/RR/SDES chunk/BYE/APP, RFC 4585 feedback, RFC 3611 XR).
bool names_sender(guint8 type) {
  return type >= 200 && type <= 207;
}

}  // namespace

bool PeerRtcpWatch::names_us(GstBuffer *buf) const {
  GstMapInfo map;
  if (!gst_buffer_map(buf, &map, GST_MAP_READ)) return false;
  bool found = false;
  for (gsize at = 0; at + 8 <= map.size;) {
    if (names_sender(map.data[at + 1]) && own(read_u32(map.data + at + 4))) found = true;
    at += (gsize(map.data[at + 2]) << 8 | map.data[at + 3]) * 4 + 4;
  }
  gst_buffer_unmap(buf, &map);
  return found;
}

void PeerRtcpWatch::rename_sender(GstBuffer *writable) const {
  GstMapInfo map;
  if (!gst_buffer_map(writable, &map, GST_MAP_READWRITE)) return;
  for (gsize at = 0; at + 8 <= map.size;) {
    const guint32 sender = read_u32(map.data + at + 4);
    // The stand-in differs from both our SSRCs and is the same for every
    // packet from this peer, so rtpsession sees one steady remote source.
    if (names_sender(map.data[at + 1]) && own(sender)) {
      guint32 standin = sender ^ 0x5a5a5a5au;
      while (own(standin) || standin == 0) ++standin;
      write_u32(map.data + at + 4, standin);
    }
    at += (gsize(map.data[at + 2]) << 8 | map.data[at + 3]) * 4 + 4;
  }
  gst_buffer_unmap(writable, &map);
}

GstPadProbeReturn PeerRtcpWatch::on_rtcp(GstPad *, GstPadProbeInfo *info, gpointer data) {
  auto *self = static_cast<PeerRtcpWatch *>(data);
  self->last_rtcp_ms = g_get_monotonic_time() / 1000;
  if (GST_PAD_PROBE_INFO_TYPE(info) & GST_PAD_PROBE_TYPE_BUFFER) {
    self->rtcp_packets.fetch_add(1);
    GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
    if (self->names_us(buf)) {
      self->rewritten.fetch_add(1);
      buf = gst_buffer_make_writable(buf);
      self->rename_sender(buf);
      GST_PAD_PROBE_INFO_DATA(info) = buf;
    }
  } else if (GST_PAD_PROBE_INFO_TYPE(info) & GST_PAD_PROBE_TYPE_BUFFER_LIST) {
    GstBufferList *list = GST_PAD_PROBE_INFO_BUFFER_LIST(info);
    bool any = false;
    for (guint i = 0; i < gst_buffer_list_length(list); ++i) {
      self->rtcp_packets.fetch_add(1);
      any |= self->names_us(gst_buffer_list_get(list, i));
    }
    if (any) {
      list = gst_buffer_list_make_writable(list);
      for (guint i = 0; i < gst_buffer_list_length(list); ++i)
        if (self->names_us(gst_buffer_list_get(list, i))) {
          self->rewritten.fetch_add(1);
          self->rename_sender(gst_buffer_list_get_writable(list, i));
        }
      GST_PAD_PROBE_INFO_DATA(info) = list;
    }
  }
  return GST_PAD_PROBE_OK;
}

void PeerRtcpWatch::watch_pad(GstPad *pad) {
  if (!g_str_has_prefix(GST_PAD_NAME(pad), "recv_rtcp_sink")) return;
  gst_pad_add_probe(pad,
                    GstPadProbeType(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST),
                    &PeerRtcpWatch::on_rtcp, this, nullptr);
}

void PeerRtcpWatch::attach(GstElement *webrtc) {
  GstIterator *it = gst_bin_iterate_recurse(GST_BIN(webrtc));
  GValue item = G_VALUE_INIT;
  while (gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
    auto *e = GST_ELEMENT(g_value_get_object(&item));
    GstElementFactory *f = gst_element_get_factory(e);
    if (f && g_str_equal(GST_OBJECT_NAME(f), "rtpbin")) {
      g_object_set(e, "rtcp-sync-send-time", FALSE, nullptr);
      // Sender reports every second, as browsers send them, not RFC 3550's
      // 5 s minimum: SRS's rtc_to_rtmp bridge drops each track until its
      // first sender report, so with 5 s a (re)connected push had no video
      // in SRS for up to 7 s. The sessions are made when webrtcbin needs them.
      auto quick_reports = +[](GstBin *, GstElement *child, gpointer) {
        GstElementFactory *cf = gst_element_get_factory(child);
        if (cf && g_str_equal(GST_OBJECT_NAME(cf), "rtpsession") &&
            g_object_class_find_property(G_OBJECT_GET_CLASS(child), "rtcp-min-interval"))
          g_object_set(child, "rtcp-min-interval", guint64(GST_SECOND), nullptr);
      };
      g_signal_connect(e, "element-added", G_CALLBACK(quick_reports), nullptr);
      GstIterator *children = gst_bin_iterate_elements(GST_BIN(e));
      GValue c = G_VALUE_INIT;
      while (gst_iterator_next(children, &c) == GST_ITERATOR_OK) {
        quick_reports(GST_BIN(e), GST_ELEMENT(g_value_get_object(&c)), nullptr);
        g_value_reset(&c);
      }
      g_value_unset(&c);
      gst_iterator_free(children);
      // The RTCP receive pads are requested when webrtcbin makes its
      // transport (at the descriptions); any made already are watched too.
      g_signal_connect(e, "pad-added", G_CALLBACK(+[](GstElement *, GstPad *pad, gpointer data) {
                         static_cast<PeerRtcpWatch *>(data)->watch_pad(pad);
                       }),
                       this);
      GstIterator *pads = gst_element_iterate_sink_pads(e);
      GValue p = G_VALUE_INIT;
      while (gst_iterator_next(pads, &p) == GST_ITERATOR_OK) {
        watch_pad(GST_PAD(g_value_get_object(&p)));
        g_value_reset(&p);
      }
      g_value_unset(&p);
      gst_iterator_free(pads);
      g_signal_connect(e, "on-bye-ssrc",
                       G_CALLBACK(+[](GstElement *, guint, guint ssrc, gpointer data) {
                         auto *self = static_cast<PeerRtcpWatch *>(data);
                         if (!self->own(ssrc)) self->bye = true;
                       }),
                       this);
    }
    g_value_reset(&item);
  }
  g_value_unset(&item);
  gst_iterator_free(it);
}

bool PeerRtcpWatch::read_own_ssrcs(GstElement *webrtc) {
  bool all = true;
  unsigned n = 0;
  GstIterator *pads = gst_element_iterate_sink_pads(webrtc);
  GValue p = G_VALUE_INIT;
  while (gst_iterator_next(pads, &p) == GST_ITERATOR_OK) {
    GstCaps *caps = gst_pad_get_current_caps(GST_PAD(g_value_get_object(&p)));
    guint ssrc = 0;
    if (!caps)
      all = false;
    else if (gst_structure_get_uint(gst_caps_get_structure(caps, 0), "ssrc", &ssrc) && n < 2)
      own_ssrcs_[n++] = ssrc;
    if (caps) gst_caps_unref(caps);
    g_value_reset(&p);
  }
  g_value_unset(&p);
  gst_iterator_free(pads);
  return all;
}

}  // namespace talker::gst
