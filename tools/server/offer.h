// SPDX-License-Identifier: LGPL-2.1-or-later
// What to send a browser that offers to receive: its payload types for
// H.264 constrained baseline (packetization-mode 1), else VP8, and Opus.
#pragma once

#include <stdexcept>
#include <string>

namespace talker::server {

enum class VideoCodec { kH264, kVP8 };

struct OfferedCodecs {
  VideoCodec video = VideoCodec::kH264;
  int video_pt = -1;
  std::string video_profile;  // H.264: the profile-level-id answered (e.g. 42e01f)
  int audio_pt = -1;
  bool video_first = true;  // the offer's m-line order
};

struct OfferError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Throws OfferError with a message for the client when the offer is not SDP,
// or offers no video or audio we can send.
OfferedCodecs choose_codecs(const std::string &sdp);

// Each UDP host candidate of `sdp` again at `public_ip` (another foundation,
// same port): a browser outside a 1:1 NAT reaches the same socket that way.
std::string add_public_candidates(const std::string &sdp, const std::string &public_ip);

}  // namespace talker::server
