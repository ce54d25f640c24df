// SPDX-License-Identifier: LGPL-2.1-or-later
// Building an avatar from frames: face detection (OpenCV), 68 landmarks
// (dlib), MuseTalk's face box rule, a lower-face blend mask from the
// landmarks, and the 256×256 face crops the VAE turns into latents.
#pragma once

#include <opencv2/core.hpp>

#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lib/blend/paste_back.h"

namespace talker::avatar {

// The iBUG 68-point layout (dlib's, and the face part of MuseTalk's DWPose
// keypoints 23-91): 0-16 jaw, 27-30 nose bridge, 31-35 nostrils, 48-67 mouth.
struct FaceLandmarks {
  std::array<cv::Point, 68> points;
  cv::Rect detection;  // the detector's face rectangle
};

class FaceLandmarker {
 public:
  static constexpr const char *kDefaultCascade =
      "/usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml";
  static constexpr const char *kDefaultPredictor =
      "/usr/share/dlib/shape_predictor_68_face_landmarks.dat";
  // Throws talker::Error when a model file is missing (apt-get install opencv-data libdlib-data).
  explicit FaceLandmarker(const std::string &cascade = kDefaultCascade,
                          const std::string &predictor = kDefaultPredictor);
  ~FaceLandmarker();
  // The largest face in the frame, or nothing.
  std::optional<FaceLandmarks> detect(const cv::Mat &bgr) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// MuseTalk's get_landmark_and_bbox: from landmark 29 (moved down by
// bbox_shift) to the lowest landmark, mirrored upward; x from the landmarks'
// extremes. v1.5 adds extra_margin below. Kept inside the frame; falls back
// to the detector's rectangle when the landmark box is degenerate, as MuseTalk does.
blend::Box musetalk_face_box(const FaceLandmarks &lm, int bbox_shift, int extra_margin,
                             cv::Size frame);

// The lower face (jaw line, nostrils, mouth) as an 8-bit region map at the
// crop box's size, for blend::prepare_mask.
cv::Mat lower_face_region(const FaceLandmarks &lm, const blend::Box &crop);

// Moves a crop box inside the frame, keeping its size where the frame allows.
blend::Box fit_inside(const blend::Box &box, cv::Size frame);

struct PrepareOptions {
  int bbox_shift = 0;
  int extra_margin = 10;  // MuseTalk v1.5
};

struct PreparedAvatar {
  std::vector<cv::Mat> frames;
  std::vector<blend::Box> faces, crops;
  std::vector<cv::Mat> masks;
  std::vector<cv::Mat> face_crops;  // 256×256 BGR, the VAE's input
  std::vector<bool> detected;       // false: the face of a neighbouring frame was reused
};

// Frames without a detectable face reuse the nearest earlier (or, at the
// start, later) frame's landmarks, so frames, boxes, masks and latents stay in
// step. Throws talker::Error when no frame has a face.
PreparedAvatar prepare_avatar(const std::vector<cv::Mat> &frames, const FaceLandmarker &landmarker,
                              const PrepareOptions &options,
                              const std::function<void(size_t done, size_t total)> &progress = {});

}  // namespace talker::avatar
