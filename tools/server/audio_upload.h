// SPDX-License-Identifier: LGPL-2.1-or-later
// /humanaudio's decoder: any audio GStreamer can decode, from bytes a client
// uploaded, to the 16 kHz mono samples talkertts's say-audio takes.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace talker::server {

struct UploadError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct DecodeLimits {
  double max_seconds = 120;  // longer audio is refused, not cut
  double timeout_s = 30;     // wall time for the decode
};

// Decodes `bytes` (WAV, MP3, Ogg, FLAC, AAC/M4A, a video's audio track …)
// to S16 16 kHz mono. Demuxers that would reach the network (HLS/DASH
// playlists, SDP) are never plugged: the bytes are the client's. Throws
// UploadError with a message for the client. Blocking: call off the HTTP
// thread.
std::vector<int16_t> decode_audio_upload(const std::string &bytes, const DecodeLimits &limits);

}  // namespace talker::server
