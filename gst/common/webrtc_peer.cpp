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
  for (auto &s : own_ssrcs_)
    if (s.load() == ssrc) return true;
  return false;
}

void PeerRtcpWatch::attach(GstElement *webrtc) {
  GstIterator *it = gst_bin_iterate_recurse(GST_BIN(webrtc));
  GValue item = G_VALUE_INIT;
  while (gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
    auto *e = GST_ELEMENT(g_value_get_object(&item));
    GstElementFactory *f = gst_element_get_factory(e);
    if (f && g_str_equal(GST_OBJECT_NAME(f), "rtpbin")) {
      g_object_set(e, "rtcp-sync-send-time", FALSE, nullptr);
      g_signal_connect(e, "on-ssrc-active",
                       G_CALLBACK(+[](GstElement *, guint, guint ssrc, gpointer data) {
                         auto *self = static_cast<PeerRtcpWatch *>(data);
                         if (!self->own(ssrc)) self->last_rtcp_ms = g_get_monotonic_time() / 1000;
                       }),
                       this);
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
