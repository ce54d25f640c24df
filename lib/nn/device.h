// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <torch/torch.h>

#include <optional>
#include <string>

namespace talker::nn {

// "cpu", "cuda" or "cuda:N" in libtorch's canonical spelling; nothing when the
// string names no device (for property setters, which reject it).
std::optional<std::string> canonical_device(const std::string &name);

// The device to load models on. Throws talker::Error for a bad name, or for
// CUDA when this libtorch has none (the CPU-only Debian build).
torch::Device usable_device(const std::string &name);

// The thread policy for libtorch's intra-op pool (process-wide, set once):
// OMP_NUM_THREADS when the environment sets it, otherwise every CPU this
// process may run on. libtorch's own default counts physical cores as it
// sees them and chose 1 on 2-vCPU machines, where MuseTalk then ran 1.4-1.6x
// slower. Returns the thread count in force.
int apply_thread_policy();

}  // namespace talker::nn
