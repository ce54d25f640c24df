// SPDX-License-Identifier: LGPL-2.1-or-later
// Pickles as a checkpoint's data.pkl or a LiveTalking coords.pkl hold them.
#include <cstdint>
#include <exception>

#include "lib/nn/pickle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  using talker::nn::PyRef;
  using talker::nn::PyValue;
  try {
    talker::nn::unpickle(data, size, "fuzz",
                         [](const PyRef &) { return std::make_shared<PyValue>(); });
  } catch (const std::exception &) {
    // Refused with a message: what a bad file must get.
  }
  return 0;
}
