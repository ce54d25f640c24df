// SPDX-License-Identifier: LGPL-2.1-or-later
#include "lib/nn/device.h"

#include <sched.h>

#include <cstdlib>
#include <mutex>

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

int apply_thread_policy() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char *env = std::getenv("OMP_NUM_THREADS");
    if (env && *env) return;  // OpenMP and libtorch already follow it
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    if (sched_getaffinity(0, sizeof(cpus), &cpus) != 0) return;
    const int n = CPU_COUNT(&cpus);
    if (n > 0 && n != torch::get_num_threads()) torch::set_num_threads(n);
  });
  return torch::get_num_threads();
}

}  // namespace talker::nn
