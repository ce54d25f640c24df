// SPDX-License-Identifier: LGPL-2.1-or-later
#include "lib/blend/paste_back.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

namespace talker::blend {

Box crop_box(const Box &f, double expand) {
  // Python's // on non-negative ints, then int() of the float product.
  const int xc = (f.x1 + f.x2) / 2, yc = (f.y1 + f.y2) / 2;
  const int s = int(std::floor(double(std::max(f.width(), f.height()) / 2) * expand));
  return {xc - s, yc - s, xc + s, yc + s};
}

int blur_kernel(int crop_width) {
  return int(std::floor(0.1 * crop_width / 2.0) * 2.0) + 1;
}

BlendMask prepare_mask(const cv::Mat &region, const Box &face, const Box &crop,
                       double upper_boundary_ratio) {
  CV_Assert(region.type() == CV_8UC1 && region.cols == crop.width() &&
            region.rows == crop.height());
  BlendMask out;
  out.before_blur = cv::Mat::zeros(region.size(), CV_8UC1);
  // The face box in crop coordinates, clipped to the crop.
  const int top = int(region.rows * upper_boundary_ratio);
  const int x0 = std::max(face.x1 - crop.x1, 0), x1 = std::min(face.x2 - crop.x1, region.cols);
  const int y0 = std::max(std::max(face.y1 - crop.y1, 0), top),
            y1 = std::min(face.y2 - crop.y1, region.rows);
  if (x1 > x0 && y1 > y0) {
    cv::Rect r(x0, y0, x1 - x0, y1 - y0);
    region(r).copyTo(out.before_blur(r));
  }
  const int k = blur_kernel(crop.width());
  cv::GaussianBlur(out.before_blur, out.mask, cv::Size(k, k), 0);
  return out;
}

cv::Mat resize_face(const cv::Mat &face, const Box &to) {
  cv::Mat out;
  cv::resize(face, out, cv::Size(to.width(), to.height()), 0, 0, cv::INTER_LINEAR);
  return out;
}

void paste_face(cv::Mat &frame, const cv::Mat &face_resized, const Box &face, const cv::Mat &mask,
                const Box &crop, int alpha) {
  CV_Assert(frame.type() == CV_8UC3 && face_resized.type() == CV_8UC3 && mask.type() == CV_8UC1);
  CV_Assert(face_resized.cols == face.width() && face_resized.rows == face.height());
  CV_Assert(mask.cols == crop.width() && mask.rows == crop.height());
  // Only the face box changes: elsewhere in the crop the source is the frame
  // itself, and DIV255(b*(255-m) + b*m) = b exactly.
  const int x0 = std::max({face.x1, crop.x1, 0}), x1 = std::min({face.x2, crop.x2, frame.cols});
  const int y0 = std::max({face.y1, crop.y1, 0}), y1 = std::min({face.y2, crop.y2, frame.rows});
  for (int y = y0; y < y1; ++y) {
    uint8_t *dst = frame.ptr<uint8_t>(y);
    const uint8_t *src = face_resized.ptr<uint8_t>(y - face.y1);
    const uint8_t *m = mask.ptr<uint8_t>(y - crop.y1);
    for (int x = x0; x < x1; ++x) {
      int a = m[x - crop.x1];
      if (alpha != 255) a = (a * alpha + 127) / 255;
      for (int c = 0; c < 3; ++c) {
        const int v = dst[3 * x + c] * (255 - a) + src[3 * (x - face.x1) + c] * a + 128;
        dst[3 * x + c] = uint8_t((v + (v >> 8)) >> 8);
      }
    }
  }
}

}  // namespace talker::blend
