// SPDX-License-Identifier: LGPL-2.1-or-later
#include "lib/nn/device.h"

#include "lib/common/error.h"

namespace talker::nn {

std::optional<std::string> canonical_device(const std::string &name) {
  try {
    return torch::Device(name).str();
  } catch (const std::exception &) {
    return std::nullopt;
  }
}

torch::Device usable_device(const std::string &name) {
  auto canonical = canonical_device(name);
  if (!canonical) throw Error("'" + name + "' is not a device (expected cpu, cuda or cuda:N)");
  torch::Device device(*canonical);
  if (device.is_cuda() && !torch::cuda::is_available())
    throw Error("device " + name + " requested, but this libtorch has no usable CUDA");
  return device;
}

}  // namespace talker::nn
