// SPDX-License-Identifier: LGPL-2.1-or-later
#include "lib/avatar/import_musetalk.h"

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "lib/avatar/avatar_frames.h"
#include "lib/common/error.h"
#include "lib/nn/weights.h"

namespace talker::avatar {

namespace fs = std::filesystem;

namespace {

std::vector<std::string> pngs(const std::string &dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto &e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".png") out.push_back(e.path().string());
  if (ec) throw Error(dir + ": cannot list: " + ec.message());
  std::sort(out.begin(), out.end());  // zero-padded names: name order is frame order
  return out;
}

std::vector<blend::Box> boxes(const std::string &path) {
  nn::PyRef root = nn::load_pickle(path);
  if (!root->is(nn::PyValue::Kind::List) && !root->is(nn::PyValue::Kind::Tuple))
    throw Error(path + ": expected a list of boxes");
  std::vector<blend::Box> out;
  for (size_t i = 0; i < root->items.size(); ++i) {
    const auto &b = root->items[i];
    if (b->items.size() != 4)
      throw Error(path + ": entry " + std::to_string(i) + " is not [x1, y1, x2, y2]");
    int v[4];
    for (int k = 0; k < 4; ++k) {
      const auto &x = b->items[k];
      if (x->is(nn::PyValue::Kind::Int))
        v[k] = int(x->integer);
      else if (x->is(nn::PyValue::Kind::Float))
        v[k] = int(x->real);
      else
        throw Error(path + ": entry " + std::to_string(i) + " holds a non-number");
    }
    out.push_back({v[0], v[1], v[2], v[3]});
  }
  return out;
}

}  // namespace

size_t import_musetalk_avatar(const std::string &src, const std::string &dst, double fps) {
  const auto frame_files = pngs(src + "/full_imgs");
  const auto mask_files = pngs(src + "/mask");
  const size_t n = frame_files.size();
  if (n == 0)
    throw Error(src + "/full_imgs: no frames (is " + src + " a MuseTalk/LiveTalking avatar?)");
  if (mask_files.size() != n)
    throw Error(src + "/mask: " + std::to_string(mask_files.size()) + " masks for " +
                std::to_string(n) + " frames");
  auto faces = boxes(src + "/coords.pkl");
  auto crops = boxes(src + "/mask_coords.pkl");
  if (faces.size() != n || crops.size() != n)
    throw Error(src + ": coords.pkl has " + std::to_string(faces.size()) +
                " boxes and mask_coords.pkl " + std::to_string(crops.size()) + " for " +
                std::to_string(n) + " frames");

  const std::string latents_path = src + "/latents.pt";
  auto obj = nn::load_torch_object(latents_path);
  if (!obj.root->is(nn::PyValue::Kind::List) || obj.root->items.size() != n)
    throw Error(latents_path + ": expected a list of " + std::to_string(n) + " latent tensors");
  std::vector<torch::Tensor> latents;
  for (size_t i = 0; i < n; ++i) {
    const auto &t = obj.root->items[i];
    if (!t->is(nn::PyValue::Kind::Tensor))
      throw Error(latents_path + ": entry " + std::to_string(i) + " is not a tensor");
    auto l = t->tensor.to(torch::kFloat);
    if (l.dim() == 4 && l.size(0) == 1) l = l[0];
    if (l.dim() != 3 || l.size(0) != 8)
      throw Error(latents_path + ": entry " + std::to_string(i) + " has shape " +
                  nn::shape_string(l.sizes()) + ", expected [1, 8, h, w]");
    latents.push_back(l);
  }

  AvatarFrames a;
  for (size_t i = 0; i < n; ++i) {
    cv::Mat frame = cv::imread(frame_files[i], cv::IMREAD_COLOR);
    cv::Mat mask = cv::imread(mask_files[i], cv::IMREAD_GRAYSCALE);
    if (frame.empty()) throw Error(frame_files[i] + ": not an image");
    if (mask.empty()) throw Error(mask_files[i] + ": not an image");
    if (mask.cols != crops[i].width() || mask.rows != crops[i].height())
      throw Error(mask_files[i] + ": " + std::to_string(mask.cols) + "x" +
                  std::to_string(mask.rows) + ", mask_coords.pkl gives a " +
                  std::to_string(crops[i].width()) + "x" + std::to_string(crops[i].height()) +
                  " crop");
    a.frames.push_back(frame);
    a.masks.push_back(mask);
  }
  a.faces = faces;
  a.crops = crops;
  save_avatar_frames(dst, a);
  nn::save_safetensors(dst + "/latents.safetensors", {{"latents", torch::stack(latents)}});
  nlohmann::json meta = {{"version", 1},
                         {"fps", fps},
                         {"frame_count", n},
                         {"width", a.frames[0].cols},
                         {"height", a.frames[0].rows},
                         {"imported_from", src}};
  std::ofstream(dst + "/avatar.json") << meta.dump(1) << "\n";
  return n;
}

}  // namespace talker::avatar
