// SPDX-License-Identifier: LGPL-2.1-or-later
// faceblend's work per speaking frame (copy the avatar frame, resize the
// 256×256 face into the face box, blend through the mask in the crop box) at
// 540p, 720p and 1080p. Idle frames are passed on without a copy.
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <chrono>
#include <cstdio>

#include "lib/blend/paste_back.h"

using namespace talker;

int main() {
  std::printf("%-8s %-16s %14s %14s %14s\n", "frame", "face box", "copy ms", "resize+blend",
              "total ms");
  struct Res {
    const char *name;
    int w, h;
  } res[] = {{"540p", 960, 540}, {"720p", 1280, 720}, {"1080p", 1920, 1080}};
  for (const auto &r : res) {
    cv::Mat avatar(r.h, r.w, CV_8UC3), out(r.h, r.w, CV_8UC3);
    cv::randu(avatar, 0, 255);
    cv::Mat face(256, 256, CV_8UC3);
    cv::randu(face, 0, 255);
    // A face about 40 % of the frame height, as in a head-and-shoulders shot.
    const int fh = r.h * 2 / 5, fw = fh * 5 / 6;
    blend::Box box{r.w / 2 - fw / 2, r.h / 3, r.w / 2 + fw / 2, r.h / 3 + fh};
    blend::Box crop = blend::crop_box(box);
    cv::Mat region = cv::Mat::zeros(crop.height(), crop.width(), CV_8UC1);
    cv::ellipse(region, cv::Point(crop.width() / 2, crop.height() / 2), cv::Size(fw / 2, fh / 2), 0,
                0, 360, 255, -1);
    cv::Mat mask = blend::prepare_mask(region, box, crop).mask;
    const int n = 200;
    double copy_s = 0, blend_s = 0;
    for (int i = 0; i < n + 10; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      avatar.copyTo(out);
      auto t1 = std::chrono::steady_clock::now();
      blend::paste_face(out, blend::resize_face(face, box), box, mask, crop);
      auto t2 = std::chrono::steady_clock::now();
      if (i < 10) continue;  // warm-up
      copy_s += std::chrono::duration<double>(t1 - t0).count();
      blend_s += std::chrono::duration<double>(t2 - t1).count();
    }
    char boxs[32];
    std::snprintf(boxs, sizeof boxs, "%dx%d", fw, fh);
    std::printf("%-8s %-16s %14.3f %14.3f %14.3f\n", r.name, boxs, copy_s / n * 1e3,
                blend_s / n * 1e3, (copy_s + blend_s) / n * 1e3);
  }
  return 0;
}
