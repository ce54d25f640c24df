// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <cstdint>
#include <random>

namespace talker::net {

// Delays between reconnection attempts: first_ms, doubling up to max_ms, each
// drawn uniformly from [delay/2, delay] ("equal jitter") so that many clients
// that lost the same server do not come back in step. A server's Retry-After
// overrides the draw when it asks for longer.
class Backoff {
 public:
  Backoff(uint32_t first_ms, uint32_t max_ms, uint64_t seed = std::random_device{}())
      : first_ms_(first_ms), max_ms_(max_ms), rng_(seed) {}

  // The delay before attempt `attempt` (1 for the first retry).
  uint32_t delay_ms(unsigned attempt, uint32_t retry_after_ms = 0) {
    uint64_t ceiling = first_ms_;
    for (unsigned i = 1; i < attempt && ceiling < max_ms_; ++i) ceiling *= 2;
    if (ceiling > max_ms_) ceiling = max_ms_;
    std::uniform_int_distribution<uint64_t> draw(ceiling / 2, ceiling);
    const uint64_t d = draw(rng_);
    return uint32_t(d > retry_after_ms ? d : retry_after_ms);
  }

 private:
  uint32_t first_ms_, max_ms_;
  std::mt19937_64 rng_;
};

}  // namespace talker::net
