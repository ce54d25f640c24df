// SPDX-License-Identifier: LGPL-2.1-or-later
// A browser's offer as talker-server reads it (POST /offer's sdp): codec
// choice and the public-address candidates added to it.
#include <cstdint>
#include <exception>
#include <string>

#include "tests/fuzz/fuzz_util.h"
#include "tools/server/offer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string sdp(reinterpret_cast<const char *>(data), size);
  try {
    const auto codecs = talker::server::choose_codecs(sdp);
    talker::fuzz::require(codecs.video_pt >= 0 && codecs.video_pt <= 127);
    talker::fuzz::require(codecs.audio_pt >= 0 && codecs.audio_pt <= 127);
  } catch (const talker::server::OfferError &) {
  }
  try {
    talker::server::add_public_candidates(sdp, "203.0.113.7");
  } catch (const std::exception &) {
  }
  return 0;
}
