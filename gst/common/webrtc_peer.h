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

// Watches what webrtcbin's rtpbin receives: any RTCP that arrives (receiver
// reports, NACK, PLI, transport feedback) proves the peer is there, whatever
// sender SSRC it claims; a BYE from the peer's SSRCs says it left.
//
// SRS names the publisher's own media SSRC as the sender of its receiver
// reports (srs_app_rtc_conn.cpp, send_rtcp_rr). rtpsession would take that
// SSRC for a remote source, and if the report arrives before our first packet
// of that track, drop all our own packets as an SSRC collision. So RTCP whose
// sender SSRC is one of ours has it replaced by a stand-in for the peer before
// rtpsession reads it (its report blocks, about our streams, are kept).
//
// Also makes sender reports map RTP time to the buffers' running time
// (rtcp-sync-send-time=false): with send time, each track's encoder delay
// (Opus buffers 20 ms more than zero-latency x264) shifts it against the other
// at the receiver. Must outlive the webrtcbin's streaming.
class PeerRtcpWatch {
 public:
  void attach(GstElement *webrtc);
  // Our SSRCs, known up front (the payloaders' ssrc property).
  void set_own_ssrcs(guint video, guint audio) {
    own_ssrcs_[0] = video;
    own_ssrcs_[1] = audio;
  }
  // Reads our SSRCs from webrtcbin's sink pads' caps; true when every pad has caps.
  bool read_own_ssrcs(GstElement *webrtc);
  // A new session: no RTCP seen yet; `last_ms` is when silence starts to count.
  void reset(gint64 last_ms) {
    last_rtcp_ms = last_ms;
    bye = false;
    rtcp_packets = 0;
    rewritten = 0;
  }
  std::atomic<gint64> last_rtcp_ms{0};  // g_get_monotonic_time() / 1000
  std::atomic<bool> bye{false};
  std::atomic<guint64> rtcp_packets{0};  // compound RTCP packets received this session
  std::atomic<guint64> rewritten{0};     // of those, naming our SSRC as their sender

 private:
  bool own(guint ssrc) const;
  bool names_us(GstBuffer *rtcp) const;
  void rename_sender(GstBuffer *writable_rtcp) const;
  static GstPadProbeReturn on_rtcp(GstPad *pad, GstPadProbeInfo *info, gpointer self);
  void watch_pad(GstPad *pad);
  std::atomic<guint> own_ssrcs_[2] = {};
};

}  // namespace talker::gst
