// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <opencv2/core.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lib/blend/paste_back.h"

namespace talker::avatar {

// What compositing needs of an avatar folder (docs/avatar.md): the full
// frames, decoded once, and per frame the face box, crop box and mask.
// Shared read-only by every element and session that names the folder.
struct AvatarFrames {
  std::string path;
  int width = 0, height = 0;
  std::vector<cv::Mat> frames;    // 8UC3 BGR, width×height
  std::vector<blend::Box> faces;  // where the generated face goes
  std::vector<blend::Box> crops;  // the region the mask covers
  std::vector<cv::Mat> masks;     // 8UC1, crop-box sized
  // Action clips (actions/<name>/frames/NNNNNN.png), full frames at the
  // avatar's size, played instead of the avatar's frames; "idle" loops
  // while silent. Their audio (actions/<name>/audio.*) is the caller's.
  std::map<std::string, std::vector<cv::Mat>> clips;

  size_t size() const { return frames.size(); }
  size_t bytes() const;
};

// Throws talker::Error naming the file and the problem: missing or
// unreadable frames, frames of another size, boxes or masks that do not
// match their frame count or crop size.
std::shared_ptr<const AvatarFrames> load_avatar_frames(const std::string &folder);

// The clip names in folder/actions/ (folders with a frames/000000.png), sorted.
std::vector<std::string> list_action_clips(const std::string &folder);

// Writes frames/, masks/ and boxes.json (avatar.json is written by the caller).
void save_avatar_frames(const std::string &folder, const AvatarFrames &avatar);

}  // namespace talker::avatar
