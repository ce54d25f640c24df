// SPDX-License-Identifier: LGPL-2.1-or-later
// MuseTalk's paste-back (blending.py) against its own outputs: exact.
#include "tests/catch.h"

#include <opencv2/core.hpp>

#include "lib/blend/paste_back.h"
#include "tests/golden.h"

using namespace talker;

namespace {

const nn::StateDict &inputs() {
  static auto t = test::golden_tensors("blend/inputs.safetensors");
  return t;
}
const nn::StateDict &expected() {
  static auto t = test::golden_tensors("blend/expected.safetensors");
  return t;
}

// A cv::Mat viewing a contiguous uint8 tensor [H, W] or [H, W, 3].
cv::Mat as_mat(const torch::Tensor &t) {
  auto c = t.contiguous();
  int type = c.dim() == 3 ? CV_8UC3 : CV_8UC1;
  return cv::Mat(int(c.size(0)), int(c.size(1)), type, c.data_ptr<uint8_t>()).clone();
}

bool same(const cv::Mat &a, const torch::Tensor &b) {
  cv::Mat ref = as_mat(b);
  if (a.size() != ref.size() || a.type() != ref.type()) return false;
  return cv::norm(a, ref, cv::NORM_INF) == 0;
}

blend::Box box_of(const torch::Tensor &t) {
  auto v = t.to(torch::kInt).contiguous();
  const int *p = v.data_ptr<int>();
  return {p[0], p[1], p[2], p[3]};
}

}  // namespace

TEST_CASE("paste-back reproduces MuseTalk's blending exactly") {
  for (const char *name : {"case0", "case1"}) {
    std::string c = name;
    INFO(c);
    const blend::Box face = box_of(inputs().at(c + "_bbox"));
    const blend::Box crop = blend::crop_box(face, 1.5);
    CHECK(crop == box_of(expected().at(c + "_crop_box")));

    auto mask = blend::prepare_mask(as_mat(expected().at(c + "_seg_resized")), face, crop, 0.5);
    CHECK(same(mask.before_blur, expected().at(c + "_mask_before_blur")));
    CHECK(same(mask.mask, expected().at(c + "_mask")));

    cv::Mat face_resized = blend::resize_face(as_mat(inputs().at("face_256_bgr")), face);
    CHECK(same(face_resized, expected().at(c + "_face_resized_bgr")));

    cv::Mat frame = as_mat(inputs().at("frame_bgr"));
    blend::paste_face(frame, face_resized, face, mask.mask, crop);
    CHECK(same(frame, expected().at(c + "_blended_bgr")));
  }
}

TEST_CASE("blur kernel and crop box rules") {
  CHECK(blend::blur_kernel(366) == 37);
  CHECK(blend::blur_kernel(344) == 35);
  CHECK(blend::blur_kernel(100) == 11);
  // A crop box may leave the frame; it stays square and centred.
  auto crop = blend::crop_box({0, 0, 10, 31}, 1.5);
  CHECK(crop == blend::Box{5 - 22, 15 - 22, 5 + 22, 15 + 22});
}

TEST_CASE("alpha scales the paste: 0 leaves the frame, 255 is the full paste") {
  cv::Mat frame(40, 40, CV_8UC3, cv::Scalar(10, 20, 30));
  cv::Mat face(20, 20, CV_8UC3, cv::Scalar(200, 100, 50));
  blend::Box fb{10, 10, 30, 30};
  blend::Box crop = blend::crop_box(fb, 1.5);
  cv::Mat mask(crop.height(), crop.width(), CV_8UC1, cv::Scalar(255));
  cv::Mat untouched = frame.clone();
  blend::paste_face(untouched, face, fb, mask, crop, 0);
  CHECK(cv::norm(untouched, frame, cv::NORM_INF) == 0);
  cv::Mat full = frame.clone();
  blend::paste_face(full, face, fb, mask, crop, 255);
  CHECK(full.at<cv::Vec3b>(20, 20) == cv::Vec3b(200, 100, 50));
  CHECK(full.at<cv::Vec3b>(5, 5) == cv::Vec3b(10, 20, 30));
  cv::Mat half = frame.clone();
  blend::paste_face(half, face, fb, mask, crop, 128);
  auto px = half.at<cv::Vec3b>(20, 20);
  CHECK(px[0] > 100);
  CHECK(px[0] < 110);
}

TALKER_GOLDEN_MAIN
