// SPDX-License-Identifier: LGPL-2.1-or-later
// What our webrtcbin users share (talkerwhipsink, talker-server's sessions):
// loopback among the ICE host candidates, sender reports in capture time,
// and telling whether the remote peer is still there from its RTCP.
#pragma once

#include <gst/gst.h>

#include <atomic>

namespace talker::gst {

// libnice leaves loopback out of its host candidates; a peer on this machine
// (SRS with candidate 127.0.0.1, a browser on localhost) is then unreachable.
// Gives webrtcbin's agent every local address, loopback included.
void add_all_local_addresses(GstElement *webrtc);

// Watches webrtcbin's rtpbin: RTCP from the peer's SSRCs (receiver reports,
// NACK, PLI) proves it is there; a BYE from them says it left. rtpbin reports
// our own senders active too, so their SSRCs (from the sink pads' caps, once
// known) are skipped. Also makes sender reports map RTP time to the buffers'
// running time (rtcp-sync-send-time=false): with send time, each track's
// encoder delay (Opus buffers 20 ms more than zero-latency x264) shifts it
// against the other at the receiver. Must outlive the webrtcbin's streaming.
class PeerRtcpWatch {
 public:
  void attach(GstElement *webrtc);
  // Reads our SSRCs from webrtcbin's sink pads' caps; true when every pad has caps.
  bool read_own_ssrcs(GstElement *webrtc);
  void reset(gint64 last_ms) {
    last_rtcp_ms = last_ms;
    bye = false;
    for (auto &s : own_ssrcs_) s = 0;
  }
  std::atomic<gint64> last_rtcp_ms{0};  // g_get_monotonic_time() / 1000
  std::atomic<bool> bye{false};

 private:
  bool own(guint ssrc) const;
  std::atomic<guint> own_ssrcs_[2] = {};
};

}  // namespace talker::gst
