// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>

namespace talker::avatar {

// What the lip-sync stage needs of an avatar folder (docs/avatar.md):
// avatar.json and latents.safetensors ("latents" [N, 8, h, w]: masked lower
// half ‖ reference, VAE-scaled, one row per avatar frame).
struct AvatarLatents {
  std::string path;
  int64_t frame_count = 0;
  double fps = 25;
  torch::Tensor latents;  // [N, 8, h, w] float32, CPU

  // MuseTalk's ping-pong cycle: frames 0..N-1 then N-1..0, repeating.
  int64_t cycle_index(int64_t frame_number) const;
};

// Loads and checks the folder; throws talker::Error naming the file and problem.
std::shared_ptr<const AvatarLatents> load_avatar_latents(const std::string &folder);

}  // namespace talker::avatar
