// SPDX-License-Identifier: LGPL-2.1-or-later
// Where the golden vectors are, and the skip rule: a test binary that needs
// them exits 77 (meson's "skipped") with the reason when they are absent.
#pragma once

#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <sys/stat.h>

#include "lib/nn/weights.h"

namespace talker::test {

inline std::string golden_dir() {
  if (const char *env = std::getenv("TALKER_GOLDEN_DIR")) return env;
  return std::string(TALKER_SOURCE_ROOT) + "/../shared/golden";
}

inline bool golden_available() {
  struct stat st {};
  return stat((golden_dir() + "/index.json").c_str(), &st) == 0;
}

inline std::string golden(const std::string &rel) {
  return golden_dir() + "/" + rel;
}

inline nn::StateDict golden_tensors(const std::string &rel) {
  return nn::load_safetensors(golden(rel)).tensors;
}

inline double max_abs_diff(const torch::Tensor &a, const torch::Tensor &b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

}  // namespace talker::test

// Catch2 main that skips the whole binary when the golden vectors are absent;
// `setup` runs first when they are there.
#define TALKER_GOLDEN_MAIN_WITH(setup)                                              \
  int main(int argc, char **argv) {                                                 \
    if (!talker::test::golden_available()) {                                        \
      std::printf("SKIP: golden vectors not found at %s (set TALKER_GOLDEN_DIR)\n", \
                  talker::test::golden_dir().c_str());                              \
      return 77;                                                                    \
    }                                                                               \
    setup;                                                                          \
    return Catch::Session().run(argc, argv);                                        \
  }
#define TALKER_GOLDEN_MAIN TALKER_GOLDEN_MAIN_WITH((void)0)
// For binaries that use GStreamer.
#define TALKER_GOLDEN_GST_MAIN TALKER_GOLDEN_MAIN_WITH(gst_init(nullptr, nullptr))
