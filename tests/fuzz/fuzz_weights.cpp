// SPDX-License-Identifier: LGPL-2.1-or-later
// A weights file as a user gives it: a PyTorch zip checkpoint or safetensors
// (told apart by the first bytes), and a plain pickle file.
#include <cstdint>
#include <exception>

#include "lib/nn/weights.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  talker::fuzz::MemFile file(data, size);
  try {
    talker::nn::load_weights(file.path());
  } catch (const std::exception &) {
  }
  try {
    talker::nn::load_torch_object(file.path());
  } catch (const std::exception &) {
  }
  return 0;
}
