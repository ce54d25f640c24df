// SPDX-License-Identifier: LGPL-2.1-or-later
#include "lib/avatar/prepare.h"

#include <dlib/image_processing.h>
#include <dlib/opencv.h>
#include <opencv2/imgproc.hpp>
#include <opencv2/objdetect.hpp>

#include <sys/stat.h>

#include "lib/common/error.h"

namespace talker::avatar {

struct FaceLandmarker::Impl {
  mutable cv::CascadeClassifier cascade;
  mutable dlib::shape_predictor predictor;
};

static bool readable(const std::string &p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

FaceLandmarker::FaceLandmarker(const std::string &cascade, const std::string &predictor)
    : impl_(new Impl) {
  if (!readable(cascade) || !impl_->cascade.load(cascade))
    throw Error(cascade + ": cannot load the face detector (apt-get install opencv-data)");
  if (!readable(predictor))
    throw Error(predictor + ": landmark model missing (apt-get install libdlib-data)");
  try {
    dlib::deserialize(predictor) >> impl_->predictor;
  } catch (const std::exception &e) {
    throw Error(predictor + ": cannot load the landmark model: " + e.what());
  }
}

FaceLandmarker::~FaceLandmarker() = default;

std::optional<FaceLandmarks> FaceLandmarker::detect(const cv::Mat &bgr) const {
  cv::Mat gray;
  cv::cvtColor(bgr, gray, cv::COLOR_BGR2GRAY);
  cv::equalizeHist(gray, gray);
  std::vector<cv::Rect> faces;
  const int min_side = std::max(24, std::min(bgr.cols, bgr.rows) / 10);
  impl_->cascade.detectMultiScale(gray, faces, 1.1, 4, 0, cv::Size(min_side, min_side));
  if (faces.empty()) return std::nullopt;
  const cv::Rect face =
      *std::max_element(faces.begin(), faces.end(),
                        [](const cv::Rect &a, const cv::Rect &b) { return a.area() < b.area(); });
  dlib::cv_image<dlib::bgr_pixel> image(cvIplImage(bgr));
  auto shape = impl_->predictor(
      image, dlib::rectangle(face.x, face.y, face.x + face.width - 1, face.y + face.height - 1));
  if (shape.num_parts() != 68) return std::nullopt;
  FaceLandmarks lm;
  lm.detection = face;
  for (int i = 0; i < 68; ++i)
    lm.points[i] = cv::Point(int(shape.part(i).x()), int(shape.part(i).y()));
  return lm;
}

blend::Box musetalk_face_box(const FaceLandmarks &lm, int bbox_shift, int extra_margin,
                             cv::Size frame) {
  int min_x = INT_MAX, max_x = INT_MIN, max_y = INT_MIN;
  for (const auto &p : lm.points) {
    min_x = std::min(min_x, p.x);
    max_x = std::max(max_x, p.x);
    max_y = std::max(max_y, p.y);
  }
  const int half_y = lm.points[29].y + bbox_shift;
  const int upper = half_y - (max_y - half_y);
  blend::Box box{min_x, upper, max_x, max_y};
  if (box.height() <= 0 || box.width() <= 0 || box.x1 < 0)
    box = {lm.detection.x, lm.detection.y, lm.detection.x + lm.detection.width,
           lm.detection.y + lm.detection.height};
  box.y2 += extra_margin;
  box.x1 = std::max(box.x1, 0);
  box.y1 = std::max(box.y1, 0);
  box.x2 = std::min(box.x2, frame.width);
  box.y2 = std::min(box.y2, frame.height);
  return box;
}

cv::Mat lower_face_region(const FaceLandmarks &lm, const blend::Box &crop) {
  std::vector<cv::Point> pts;
  for (int i = 0; i <= 16; ++i) pts.push_back(lm.points[i]);   // jaw line
  for (int i = 31; i <= 35; ++i) pts.push_back(lm.points[i]);  // under the nose
  for (int i = 48; i <= 59; ++i) pts.push_back(lm.points[i]);  // mouth
  for (auto &p : pts) p -= cv::Point(crop.x1, crop.y1);
  std::vector<cv::Point> hull;
  cv::convexHull(pts, hull);
  cv::Mat region = cv::Mat::zeros(crop.height(), crop.width(), CV_8UC1);
  cv::fillConvexPoly(region, hull, cv::Scalar(255));
  return region;
}

blend::Box fit_inside(const blend::Box &box, cv::Size frame) {
  // Shift along each axis into the frame (the face box, inside the frame and
  // the square, stays inside); clip only where the square is larger than the frame.
  auto fit = [](int lo, int hi, int limit, int *out_lo, int *out_hi) {
    const int side = hi - lo;
    if (side >= limit) {
      *out_lo = 0;
      *out_hi = limit;
      return;
    }
    const int shift = lo < 0 ? -lo : (hi > limit ? limit - hi : 0);
    *out_lo = lo + shift;
    *out_hi = hi + shift;
  };
  blend::Box out;
  fit(box.x1, box.x2, frame.width, &out.x1, &out.x2);
  fit(box.y1, box.y2, frame.height, &out.y1, &out.y2);
  return out;
}

PreparedAvatar prepare_avatar(const std::vector<cv::Mat> &frames, const FaceLandmarker &landmarker,
                              const PrepareOptions &opt,
                              const std::function<void(size_t, size_t)> &progress) {
  std::vector<std::optional<FaceLandmarks>> found(frames.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    found[i] = landmarker.detect(frames[i]);
    if (progress) progress(i + 1, 2 * frames.size());
  }
  // Fill the gaps from the nearest earlier face, or the first one for leading frames.
  std::optional<FaceLandmarks> last;
  for (const auto &f : found)
    if (f) {
      last = f;
      break;
    }
  if (!last)
    throw Error("no face found in any of the " + std::to_string(frames.size()) + " frames");
  PreparedAvatar out;
  for (size_t i = 0; i < frames.size(); ++i) {
    out.detected.push_back(found[i].has_value());
    if (found[i]) last = found[i];
    const FaceLandmarks &lm = *last;
    const cv::Mat &frame = frames[i];
    blend::Box face = musetalk_face_box(lm, opt.bbox_shift, opt.extra_margin, frame.size());
    blend::Box crop = fit_inside(blend::crop_box(face), frame.size());
    cv::Mat face_crop;
    cv::resize(frame(cv::Rect(face.x1, face.y1, face.width(), face.height())), face_crop,
               cv::Size(256, 256), 0, 0, cv::INTER_LANCZOS4);
    out.frames.push_back(frame);
    out.faces.push_back(face);
    out.crops.push_back(crop);
    out.masks.push_back(blend::prepare_mask(lower_face_region(lm, crop), face, crop).mask);
    out.face_crops.push_back(face_crop);
    if (progress) progress(frames.size() + i + 1, 2 * frames.size());
  }
  return out;
}

}  // namespace talker::avatar
