// SPDX-License-Identifier: LGPL-2.1-or-later
// LLM replies as they stream in (arbitrary pieces, any bytes): the chunks
// the TTS gets are valid UTF-8 and hold nothing that was not sent.
#include <glib.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "lib/text/sentence_chunker.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  using talker::fuzz::require;
  if (size == 0) return 0;
  talker::text::SentenceChunker chunker(data[0] % 32);
  // Pieces split at 0x00 bytes, each made valid as the server does.
  std::string_view rest(reinterpret_cast<const char *>(data + 1), size - 1);
  size_t sent = 0, spoken = 0;
  auto check = [&](const std::vector<std::string> &chunks) {
    for (const auto &c : chunks) {
      require(g_utf8_validate(c.data(), gssize(c.size()), nullptr));
      require(!c.empty());
      spoken += c.size();
    }
  };
  while (!rest.empty()) {
    const size_t cut = rest.find('\0');
    const std::string piece = talker::text::make_valid_utf8(rest.substr(0, cut));
    require(g_utf8_validate(piece.data(), gssize(piece.size()), nullptr));
    sent += piece.size();
    check(chunker.push(piece));
    rest = cut == std::string_view::npos ? std::string_view() : rest.substr(cut + 1);
  }
  check(chunker.flush());
  require(spoken <= sent);
  return 0;
}
