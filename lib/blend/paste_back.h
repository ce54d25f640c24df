// SPDX-License-Identifier: LGPL-2.1-or-later
// MuseTalk's real-time compositing (musetalk/utils/blending.py), bit for bit:
// the crop box around a face box, the feathered mask, and the paste of a
// generated face back into the full frame.
#pragma once

#include <opencv2/core.hpp>

namespace talker::blend {

struct Box {
  int x1 = 0, y1 = 0, x2 = 0, y2 = 0;
  int width() const { return x2 - x1; }
  int height() const { return y2 - y1; }
  bool operator==(const Box &o) const {
    return x1 == o.x1 && y1 == o.y1 && x2 == o.x2 && y2 == o.y2;
  }
};

// get_crop_box: a square of side 2*int(max(w,h)//2*expand) centred on the
// face box. It may reach outside the frame.
Box crop_box(const Box &face, double expand = 1.5);

struct BlendMask {
  cv::Mat before_blur;  // 8U, crop-box sized
  cv::Mat mask;         // 8U, crop-box sized, feathered
};

// get_image_prepare_material after the face parser: `region` is the 8U
// face-region map at crop-box size (face parsing, or any lower-face mask).
// Keeps it inside the face box and below upper_boundary_ratio of the crop
// height, then blurs with MuseTalk's kernel (int(0.1*W//2*2)+1).
BlendMask prepare_mask(const cv::Mat &region, const Box &face, const Box &crop,
                       double upper_boundary_ratio = 0.5);

// MuseTalk's blur kernel size for a crop of width W.
int blur_kernel(int crop_width);

// get_image_blending: the face (already resized to the face box) replaces the
// face box inside the crop, and the crop is blended into `frame` (8UC3, in
// place) with `mask` the way PIL pastes with an "L" mask:
// out = DIV255(dst*(255-m) + src*m). Pixels outside the frame are skipped.
// `alpha` (0..255) scales the mask, for cross-fades; 255 is MuseTalk's paste.
void paste_face(cv::Mat &frame, const cv::Mat &face_resized, const Box &face, const cv::Mat &mask,
                const Box &crop, int alpha = 255);

// cv2.resize(face, (w, h)) with INTER_LINEAR, as the real-time script does.
cv::Mat resize_face(const cv::Mat &face, const Box &to);

}  // namespace talker::blend
