// SPDX-License-Identifier: LGPL-2.1-or-later
#include "lib/avatar/avatar_frames.h"

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "lib/common/error.h"

namespace talker::avatar {

namespace {

std::string numbered(const std::string &folder, const char *sub, size_t i) {
  char name[32];
  std::snprintf(name, sizeof name, "/%06zu.png", i);
  return folder + "/" + sub + name;
}

blend::Box box_from(const nlohmann::json &j, const std::string &where) {
  if (!j.is_array() || j.size() != 4) throw Error(where + ": a box must be [x1, y1, x2, y2]");
  blend::Box b{j[0].get<int>(), j[1].get<int>(), j[2].get<int>(), j[3].get<int>()};
  if (b.width() <= 0 || b.height() <= 0) throw Error(where + ": empty box " + j.dump());
  return b;
}

}  // namespace

size_t AvatarFrames::bytes() const {
  size_t n = 0;
  for (const auto &f : frames) n += f.total() * f.elemSize();
  for (const auto &m : masks) n += m.total() * m.elemSize();
  for (const auto &[name, clip] : clips)
    for (const auto &f : clip) n += f.total() * f.elemSize();
  return n;
}

std::vector<std::string> list_action_clips(const std::string &folder) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto &entry : std::filesystem::directory_iterator(folder + "/actions", ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.empty() && name[0] != '.' &&
        std::filesystem::exists(numbered(entry.path().string(), "frames", 0)))
      names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::shared_ptr<const AvatarFrames> load_avatar_frames(const std::string &folder) {
  const std::string meta_path = folder + "/avatar.json";
  std::ifstream meta_in(meta_path);
  if (!meta_in) throw Error(meta_path + ": cannot open (is " + folder + " an avatar folder?)");
  auto meta = nlohmann::json::parse(meta_in, nullptr, false);
  if (meta.is_discarded() || !meta.is_object() || !meta.contains("frame_count"))
    throw Error(meta_path + ": not an avatar description (no frame_count)");
  const size_t n = meta["frame_count"].get<size_t>();

  const std::string boxes_path = folder + "/boxes.json";
  std::ifstream boxes_in(boxes_path);
  if (!boxes_in) throw Error(boxes_path + ": cannot open");
  auto boxes = nlohmann::json::parse(boxes_in, nullptr, false);
  if (boxes.is_discarded() || !boxes.contains("faces") || !boxes.contains("crops"))
    throw Error(boxes_path + ": expected {\"faces\": [...], \"crops\": [...]}");
  if (boxes["faces"].size() != n || boxes["crops"].size() != n)
    throw Error(boxes_path + ": " + std::to_string(boxes["faces"].size()) + " faces and " +
                std::to_string(boxes["crops"].size()) + " crops for " + std::to_string(n) +
                " frames");

  auto a = std::make_shared<AvatarFrames>();
  a->path = folder;
  for (size_t i = 0; i < n; ++i) {
    const std::string frame_path = numbered(folder, "frames", i);
    cv::Mat frame = cv::imread(frame_path, cv::IMREAD_COLOR);
    if (frame.empty()) throw Error(frame_path + ": missing or not an image");
    if (i == 0) {
      a->width = frame.cols;
      a->height = frame.rows;
    } else if (frame.cols != a->width || frame.rows != a->height) {
      throw Error(frame_path + ": " + std::to_string(frame.cols) + "x" +
                  std::to_string(frame.rows) + ", the avatar's frames are " +
                  std::to_string(a->width) + "x" + std::to_string(a->height));
    }
    const std::string where = boxes_path + " frame " + std::to_string(i);
    blend::Box face = box_from(boxes["faces"][i], where), crop = box_from(boxes["crops"][i], where);
    const std::string mask_path = numbered(folder, "masks", i);
    cv::Mat mask = cv::imread(mask_path, cv::IMREAD_GRAYSCALE);
    if (mask.empty()) throw Error(mask_path + ": missing or not an image");
    if (mask.cols != crop.width() || mask.rows != crop.height())
      throw Error(mask_path + ": " + std::to_string(mask.cols) + "x" + std::to_string(mask.rows) +
                  ", its crop box is " + std::to_string(crop.width()) + "x" +
                  std::to_string(crop.height()));
    a->frames.push_back(frame);
    a->faces.push_back(face);
    a->crops.push_back(crop);
    a->masks.push_back(mask);
  }
  for (const auto &name : list_action_clips(folder)) {
    const std::string clip_folder = folder + "/actions/" + name;
    auto &clip = a->clips[name];
    for (size_t i = 0;; ++i) {
      const std::string frame_path = numbered(clip_folder, "frames", i);
      if (!std::filesystem::exists(frame_path)) break;
      cv::Mat frame = cv::imread(frame_path, cv::IMREAD_COLOR);
      if (frame.empty()) throw Error(frame_path + ": not an image");
      if (frame.cols != a->width || frame.rows != a->height)
        throw Error(frame_path + ": " + std::to_string(frame.cols) + "x" +
                    std::to_string(frame.rows) + ", the avatar's frames are " +
                    std::to_string(a->width) + "x" + std::to_string(a->height));
      clip.push_back(frame);
    }
  }
  return a;
}

void save_avatar_frames(const std::string &folder, const AvatarFrames &a) {
  std::error_code ec;
  for (const char *sub : {"/frames", "/masks"}) {
    std::filesystem::create_directories(folder + sub, ec);
    if (ec) throw Error(folder + sub + ": cannot create: " + ec.message());
  }
  nlohmann::json faces = nlohmann::json::array(), crops = nlohmann::json::array();
  for (size_t i = 0; i < a.size(); ++i) {
    if (!cv::imwrite(numbered(folder, "frames", i), a.frames[i]) ||
        !cv::imwrite(numbered(folder, "masks", i), a.masks[i]))
      throw Error(folder + ": cannot write frame " + std::to_string(i));
    faces.push_back({a.faces[i].x1, a.faces[i].y1, a.faces[i].x2, a.faces[i].y2});
    crops.push_back({a.crops[i].x1, a.crops[i].y1, a.crops[i].x2, a.crops[i].y2});
  }
  std::ofstream(folder + "/boxes.json")
      << nlohmann::json{{"faces", faces}, {"crops", crops}}.dump(1);
}

}  // namespace talker::avatar
