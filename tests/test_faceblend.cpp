// SPDX-License-Identifier: LGPL-2.1-or-later
// faceblend in GstHarness with an avatar made here: which frame, which box,
// idle frames untouched and not copied, timestamps kept, cross-fades, errors.
#include "tests/catch.h"
#include "tests/bus_error.h"

#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <fstream>

#include "gst/common/face_meta.h"
#include "gst/common/gst_ptr.h"
#include "lib/avatar/avatar_frames.h"

using namespace talker;
using gst::GstPtr;

namespace {

constexpr GstClockTime kFrame = 40 * GST_MSECOND;
const blend::Box kFace{100, 60, 220, 200};

std::string make_avatar(const std::string &name) {
  std::string dir = std::string(TALKER_BUILD_ROOT) + "/tests/" + name;
  avatar::AvatarFrames a;
  cv::RNG rng(11);
  for (int i = 0; i < 3; ++i) {
    cv::Mat frame(240, 320, CV_8UC3);
    rng.fill(frame, cv::RNG::UNIFORM, 0, 256);
    a.frames.push_back(frame);
    a.faces.push_back(kFace);
    a.crops.push_back(blend::crop_box(kFace));
    const auto &crop = a.crops.back();
    cv::Mat region = cv::Mat::zeros(crop.height(), crop.width(), CV_8UC1);
    cv::ellipse(region, cv::Point(crop.width() / 2, crop.height() / 2 + 20), cv::Size(55, 60), 0, 0,
                360, 255, -1);
    a.masks.push_back(blend::prepare_mask(region, kFace, crop).mask);
  }
  avatar::save_avatar_frames(dir, a);
  std::ofstream(dir + "/avatar.json")
      << R"({"version": 1, "fps": 25, "frame_count": 3, "width": 320, "height": 240})";
  return dir;
}

cv::Mat face_image(int i) {
  return cv::Mat(256, 256, CV_8UC3, cv::Scalar(40 + 60 * i, 200 - 50 * i, 90));
}

GstBuffer *face_buffer(int face, gint64 avatar_frame, bool speaking, GstClockTime pts,
                       bool with_meta = true) {
  cv::Mat img = face_image(face);
  GstBuffer *b = gst_buffer_new_memdup(img.data, img.total() * 3);
  GST_BUFFER_PTS(b) = pts;
  GST_BUFFER_DURATION(b) = kFrame;
  if (!speaking) GST_BUFFER_FLAG_SET(b, GST_BUFFER_FLAG_GAP);
  if (with_meta) talker_buffer_add_face_meta(b, avatar_frame, speaking, speaking);
  return b;
}

cv::Mat image_of(GstBuffer *b) {
  GstMapInfo map;
  REQUIRE(gst_buffer_map(b, &map, GST_MAP_READ));
  REQUIRE(map.size == 320 * 240 * 3);
  cv::Mat m = cv::Mat(240, 320, CV_8UC3, map.data).clone();
  gst_buffer_unmap(b, &map);
  return m;
}

// The avatar frame as stored on disk, read independently of the element.
cv::Mat stored_frame(const std::string &dir, int i) {
  char name[32];
  std::snprintf(name, sizeof name, "/frames/%06d.png", i);
  return cv::imread(dir + name, cv::IMREAD_COLOR);
}

double max_diff(const cv::Mat &a, const cv::Mat &b) {
  return cv::norm(a, b, cv::NORM_INF);
}

struct Harness {
  GstHarness *h;
  explicit Harness(const std::string &launch) {
    h = gst_harness_new_parse(launch.c_str());
    gst_harness_set_src_caps_str(h, "video/x-raw,format=BGR,width=256,height=256,framerate=25/1");
  }
  ~Harness() { gst_harness_teardown(h); }
};

}  // namespace

TEST_CASE("speaking frames get the face in the box, idle frames are the avatar frame") {
  std::string dir = make_avatar("avatar_blend");
  Harness h("faceblend avatar=" + dir);
  struct Step {
    int face;
    gint64 frame;
    bool speaking;
  } steps[] = {{0, 0, false}, {1, 1, true}, {2, 2, true},
               {0, 1, false}, {1, 0, true}, {0, 2, false}};
  for (int t = 0; t < 6; ++t)
    REQUIRE(gst_harness_push(h.h, face_buffer(steps[t].face, steps[t].frame, steps[t].speaking,
                                              t * kFrame)) == GST_FLOW_OK);

  auto crop = blend::crop_box(kFace);
  for (int t = 0; t < 6; ++t) {
    INFO("frame " << t);
    GstPtr<GstBuffer> b(gst_harness_pull(h.h));
    REQUIRE(b);
    CHECK(GST_BUFFER_PTS(b.get()) == t * kFrame);
    CHECK(GST_BUFFER_DURATION(b.get()) == kFrame);
    CHECK_FALSE(GST_BUFFER_FLAG_IS_SET(b.get(), GST_BUFFER_FLAG_GAP));
    auto *meta = talker_buffer_get_face_meta(b.get());
    REQUIRE(meta);
    CHECK(meta->avatar_frame == steps[t].frame);
    cv::Mat out = image_of(b.get()), avatar = stored_frame(dir, int(steps[t].frame));
    if (!steps[t].speaking) {
      CHECK(max_diff(out, avatar) == 0);
      // Shared, not copied: the frame's own read-only memory.
      CHECK(GST_MEMORY_IS_READONLY(gst_buffer_peek_memory(b.get(), 0)));
      continue;
    }
    // Outside the face box nothing changes.
    cv::Mat outside_mask(240, 320, CV_8UC1, cv::Scalar(255));
    outside_mask(cv::Rect(kFace.x1, kFace.y1, kFace.width(), kFace.height())).setTo(0);
    for (int y = 0; y < 240; ++y)
      for (int x = 0; x < 320; ++x)
        if (outside_mask.at<uint8_t>(y, x) && out.at<cv::Vec3b>(y, x) != avatar.at<cv::Vec3b>(y, x))
          FAIL("pixel changed outside the face box");
    // Low in the mask the generated face shows through fully; above the
    // mask.s top boundary (past the blur) the avatar stays.
    cv::Vec3b face_px = face_image(steps[t].face).at<cv::Vec3b>(0, 0);
    CHECK(out.at<cv::Vec3b>(175, 160) == face_px);
    CHECK(out.at<cv::Vec3b>(crop.y1 + crop.height() / 2 - 15, 160) ==
          avatar.at<cv::Vec3b>(crop.y1 + crop.height() / 2 - 15, 160));
  }
}

TEST_CASE("transition-ms cross-fades in and out") {
  std::string dir = make_avatar("avatar_fade");
  Harness h("faceblend transition-ms=80 avatar=" + dir);  // two 40 ms frames per fade
  const bool speaking[] = {true, true, true, false, false, false};
  for (int t = 0; t < 6; ++t)
    REQUIRE(gst_harness_push(h.h, face_buffer(1, 0, speaking[t], t * kFrame)) == GST_FLOW_OK);
  cv::Mat avatar = stored_frame(dir, 0);
  const cv::Vec3b face_px = face_image(1).at<cv::Vec3b>(0, 0),
                  base = avatar.at<cv::Vec3b>(175, 160);
  std::vector<double> weight;
  for (int t = 0; t < 6; ++t) {
    GstPtr<GstBuffer> b(gst_harness_pull(h.h));
    cv::Vec3b px = image_of(b.get()).at<cv::Vec3b>(175, 160);
    // Where the face and the avatar differ most, how far the pixel went toward the face.
    int c = std::abs(face_px[0] - base[0]) > std::abs(face_px[1] - base[1]) ? 0 : 1;
    weight.push_back(double(px[c] - base[c]) / double(face_px[c] - base[c]));
  }
  CHECK(weight[0] > 0.4);
  CHECK(weight[0] < 0.6);
  CHECK(weight[1] == Approx(1.0).margin(0.01));
  CHECK(weight[2] == Approx(1.0).margin(0.01));
  CHECK(weight[3] > 0.4);  // fading out with the last face
  CHECK(weight[3] < 0.6);
  CHECK(weight[4] == Approx(0.0).margin(0.01));
  CHECK(weight[5] == Approx(0.0).margin(0.01));
}

TEST_CASE("missing meta, bad frame index and bad avatars are errors on the bus") {
  std::string dir = make_avatar("avatar_err");
  {
    Harness h("faceblend avatar=" + dir);
    CHECK(gst_harness_push(h.h, face_buffer(0, 0, true, 0, false)) == GST_FLOW_ERROR);
  }
  {
    Harness h("faceblend avatar=" + dir);
    CHECK(gst_harness_push(h.h, face_buffer(0, 7, true, 0)) == GST_FLOW_ERROR);
  }
  std::string broken = make_avatar("avatar_broken");
  std::remove((broken + "/masks/000002.png").c_str());
  for (const std::string &avatar : {broken, std::string("/nonexistent")}) {
    GError *err = nullptr;
    GstPtr<GstElement> pipeline(gst_parse_launch(
        ("videotestsrc num-buffers=1 ! video/x-raw,format=BGR ! faceblend avatar=" + avatar +
         " ! fakesink")
            .c_str(),
        &err));
    REQUIRE(pipeline);
    gst_element_set_state(pipeline.get(), GST_STATE_PAUSED);
    std::string text = test::first_error(pipeline.get(), 10 * GST_SECOND);
    INFO(text);
    REQUIRE_FALSE(text.empty());
    CHECK(text.find(avatar == broken ? "masks/000002.png" : "/nonexistent/avatar.json") !=
          std::string::npos);
    gst_element_set_state(pipeline.get(), GST_STATE_NULL);
  }
}

int main(int argc, char **argv) {
  gst_init(nullptr, nullptr);
  return Catch::Session().run(argc, argv);
}
