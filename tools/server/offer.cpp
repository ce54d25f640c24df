// SPDX-License-Identifier: LGPL-2.1-or-later
#include "tools/server/offer.h"

#include <gst/sdp/sdp.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <sstream>
#include <vector>

namespace talker::server {
namespace {

std::string lower(std::string s) {
  for (auto &c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Calls fn(pt, rest) for each "a=KEY:PT rest" attribute of the media.
template <typename Fn>
void for_each_pt_attribute(const GstSDPMedia *media, const char *key, Fn fn) {
  for (guint i = 0; i < gst_sdp_media_attributes_len(media); ++i) {
    const GstSDPAttribute *a = gst_sdp_media_get_attribute(media, i);
    if (!a->key || std::string(a->key) != key || !a->value) continue;
    const std::string v = a->value;
    const auto sp = v.find(' ');
    // RTP payload types are 0..127 (7 bits): anything else in an offer is
    // ignored, never handed to a payloader (found by fuzz_offer_sdp).
    if (sp == std::string::npos || sp == 0 || sp > 3) continue;
    const std::string digits = v.substr(0, sp);
    if (digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const int pt = std::atoi(digits.c_str());
    if (pt <= 127) fn(pt, v.substr(sp + 1));
  }
}

// "a=fmtp:PT k=v;k=v" values by payload type.
std::map<int, std::map<std::string, std::string>> fmtps(const GstSDPMedia *media) {
  std::map<int, std::map<std::string, std::string>> out;
  for_each_pt_attribute(media, "fmtp", [&](int pt, const std::string &rest) {
    std::size_t pos = 0;
    while (pos <= rest.size()) {
      auto semi = rest.find(';', pos);
      if (semi == std::string::npos) semi = rest.size();
      std::string kv = rest.substr(pos, semi - pos);
      const auto b = kv.find_first_not_of(' ');
      if (b != std::string::npos) kv = kv.substr(b);
      const auto eq = kv.find('=');
      if (eq != std::string::npos) out[pt][lower(kv.substr(0, eq))] = lower(kv.substr(eq + 1));
      pos = semi + 1;
    }
  });
  return out;
}

// encoding name (upper case) → payload types in offer order.
std::multimap<std::string, int> rtpmaps(const GstSDPMedia *media,
                                        std::map<int, std::string> *by_pt) {
  std::multimap<std::string, int> out;
  for_each_pt_attribute(media, "rtpmap", [&](int pt, const std::string &rest) {
    std::string enc = rest.substr(0, rest.find('/'));
    for (auto &c : enc) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    out.emplace(enc, pt);
    (*by_pt)[pt] = rest;
  });
  return out;
}

bool receives(const GstSDPMedia *media) {
  // The browser's direction: it must be willing to receive.
  for (const char *d : {"sendonly", "inactive"})
    if (gst_sdp_media_get_attribute_val(media, d)) return false;
  return gst_sdp_media_get_port(media) != 0;
}

}  // namespace

// Every candidate line "typ host" again at `public_ip`: a browser outside a
// 1:1 NAT reaches the same socket through the public address.
std::string add_public_candidates(const std::string &sdp, const std::string &public_ip) {
  std::istringstream in(sdp);
  std::string line, out;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    out += line + "\r\n";
    if (line.rfind("a=candidate:", 0) != 0 || line.find(" typ host") == std::string::npos) continue;
    std::istringstream fields(line.substr(12));
    std::vector<std::string> f;
    for (std::string w; fields >> w;) f.push_back(w);
    if (f.size() < 8 || (f[2] != "UDP" && f[2] != "udp")) continue;
    f[0] = "p" + f[0];  // another foundation: another address
    f[4] = public_ip;
    std::string copy = "a=candidate:";
    for (std::size_t i = 0; i < f.size(); ++i) copy += (i ? " " : "") + f[i];
    out += copy + "\r\n";
  }
  return out;
}

OfferedCodecs choose_codecs(const std::string &text) {
  GstSDPMessage *raw = nullptr;
  gst_sdp_message_new(&raw);
  std::unique_ptr<GstSDPMessage, decltype(&gst_sdp_message_free)> sdp(raw, gst_sdp_message_free);
  if (text.rfind("v=0", 0) != 0 ||
      gst_sdp_message_parse_buffer(reinterpret_cast<const guint8 *>(text.data()), text.size(),
                                   sdp.get()) != GST_SDP_OK ||
      gst_sdp_message_medias_len(sdp.get()) == 0)
    throw OfferError("sdp: not an SDP offer");
  OfferedCodecs c;
  int video_index = -1, audio_index = -1;
  for (guint m = 0; m < gst_sdp_message_medias_len(sdp.get()); ++m) {
    const GstSDPMedia *media = gst_sdp_message_get_media(sdp.get(), m);
    const std::string kind = gst_sdp_media_get_media(media) ? gst_sdp_media_get_media(media) : "";
    std::map<int, std::string> by_pt;
    const auto maps = rtpmaps(media, &by_pt);
    const auto params = fmtps(media);
    if (kind == "video" && video_index < 0 && receives(media)) {
      // Constrained baseline first (profile_idc 0x42 with constraint_set1),
      // then plain baseline, which our constrained-baseline stream satisfies.
      int best = -1, best_rank = 99;
      auto range = maps.equal_range("H264");
      for (auto it = range.first; it != range.second; ++it) {
        const auto f = params.find(it->second);
        if (f == params.end()) continue;
        const auto pm = f->second.find("packetization-mode");
        if (pm == f->second.end() || pm->second != "1") continue;
        const auto pl = f->second.find("profile-level-id");
        const std::string profile = pl == f->second.end() ? "42001f" : pl->second;
        if (profile.size() != 6 || profile.substr(0, 2) != "42") continue;
        const unsigned constraints = std::strtoul(profile.substr(2, 2).c_str(), nullptr, 16);
        const int rank = profile == "42e01f" ? 0 : (constraints & 0x40) ? 1 : 2;
        if (rank < best_rank) {
          best_rank = rank;
          best = it->second;
          c.video_profile = profile;
        }
      }
      if (best >= 0) {
        c.video = VideoCodec::kH264;
        c.video_pt = best;
      } else if (maps.count("VP8")) {
        c.video = VideoCodec::kVP8;
        c.video_pt = maps.find("VP8")->second;
        c.video_profile.clear();
      }
      if (c.video_pt >= 0) video_index = static_cast<int>(m);
    } else if (kind == "audio" && audio_index < 0 && receives(media)) {
      auto range = maps.equal_range("OPUS");
      for (auto it = range.first; it != range.second; ++it)
        if (lower(by_pt[it->second]).find("opus/48000") == 0) {
          c.audio_pt = it->second;
          audio_index = static_cast<int>(m);
          break;
        }
    }
  }
  if (c.video_pt < 0)
    throw OfferError(
        "sdp: the offer receives no video in H.264 (packetization-mode=1, baseline) or VP8");
  if (c.audio_pt < 0) throw OfferError("sdp: the offer receives no Opus audio");
  c.video_first = video_index < audio_index;
  return c;
}

}  // namespace talker::server
