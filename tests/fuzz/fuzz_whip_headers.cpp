// SPDX-License-Identifier: LGPL-2.1-or-later
// What a WHIP server sends back in headers: Location (resolved against the
// URL that answered), Retry-After, Link ice-server values. Input lines:
// base URL, Location, Retry-After, then Link values.
#include <cstdint>
#include <exception>
#include <sstream>
#include <string>
#include <vector>

#include "lib/net/redact.h"
#include "lib/net/whip_client.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char *>(data), size));
  std::string base, location, retry_after, line;
  std::getline(in, base);
  std::getline(in, location);
  std::getline(in, retry_after);
  std::vector<std::string> links;
  while (std::getline(in, line)) links.push_back(line);
  try {
    talker::net::resolve_url(base, location);
  } catch (const std::exception &) {
  }
  // Bounded: a server cannot make the client wait for more than a day.
  talker::fuzz::require(talker::net::parse_retry_after_ms(retry_after) <= 24u * 3600 * 1000);
  try {
    talker::net::parse_ice_server_links(links);
  } catch (const std::exception &) {
  }
  talker::net::redact_url(base);
  return 0;
}
