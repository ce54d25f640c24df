// SPDX-License-Identifier: LGPL-2.1-or-later
#include "lib/avatar/avatar.h"

#include <nlohmann/json.hpp>

#include <fstream>

#include "lib/common/error.h"
#include "lib/nn/weights.h"

namespace talker::avatar {

int64_t AvatarLatents::cycle_index(int64_t frame_number) const {
  const int64_t i = frame_number % (2 * frame_count);
  return i < frame_count ? i : 2 * frame_count - 1 - i;
}

std::shared_ptr<const AvatarLatents> load_avatar_latents(const std::string &folder) {
  const std::string meta_path = folder + "/avatar.json";
  std::ifstream in(meta_path);
  if (!in) throw Error(meta_path + ": cannot open (is " + folder + " an avatar folder?)");
  auto meta = nlohmann::json::parse(in, nullptr, false);
  if (meta.is_discarded() || !meta.is_object()) throw Error(meta_path + ": not a JSON object");
  auto a = std::make_shared<AvatarLatents>();
  a->path = folder;
  if (!meta.contains("frame_count") || !meta["frame_count"].is_number_integer() ||
      meta["frame_count"].get<int64_t>() <= 0)
    throw Error(meta_path + ": frame_count missing or not a positive integer");
  a->frame_count = meta["frame_count"].get<int64_t>();
  if (meta.contains("fps")) {
    // The frame grid is built from it: 0, negative or absurd rates are refused.
    if (!meta["fps"].is_number() || !(meta["fps"].get<double>() > 0) ||
        meta["fps"].get<double>() > 1000)
      throw Error(meta_path + ": fps must be a number above 0 (and at most 1000), not " +
                  meta["fps"].dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    a->fps = meta["fps"].get<double>();
  }

  const std::string latents_path = folder + "/latents.safetensors";
  auto w = nn::load_safetensors(latents_path);
  auto it = w.tensors.find("latents");
  if (it == w.tensors.end()) throw Error(latents_path + ": no tensor named latents");
  const auto &t = it->second;
  if (t.dim() != 4 || t.size(1) != 8)
    throw Error(latents_path + ": latents has shape " + nn::shape_string(t.sizes()) +
                ", expected [N, 8, h, w]");
  if (t.size(0) != a->frame_count)
    throw Error(latents_path + ": " + std::to_string(t.size(0)) +
                " latent frames, avatar.json says " + std::to_string(a->frame_count));
  a->latents = t.to(torch::kFloat).contiguous().clone();
  return a;
}

}  // namespace talker::avatar
