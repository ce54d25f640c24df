// SPDX-License-Identifier: LGPL-2.1-or-later
// talker-avatar on real faces: skimage's astronaut.png and OpenCV's
// Megamind.avi (Debian's python3-skimage and opencv-doc; .ci/run installs them).
#include "tests/catch.h"

#include <opencv2/imgcodecs.hpp>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "lib/avatar/avatar.h"
#include "lib/avatar/avatar_frames.h"
#include "lib/avatar/prepare.h"
#include "lib/common/error.h"
#include "tests/golden.h"

using namespace talker;

namespace {

const char *kAstronaut = "/usr/lib/python3/dist-packages/skimage/data/astronaut.png";
const char *kMegamind = "/usr/share/doc/opencv-doc/examples/data/Megamind.avi";

bool exists(const char *p) {
  struct stat st {};
  return stat(p, &st) == 0;
}

// Runs talker-avatar; returns its exit code, its stderr in `err`.
int run_tool(const std::string &args, std::string *err) {
  std::string log = std::string(TALKER_BUILD_ROOT) + "/tests/talker-avatar.log";
  std::string cmd =
      std::string(TALKER_BUILD_ROOT) + "/tools/talker-avatar " + args + " 2>" + log + " >/dev/null";
  int status = std::system(cmd.c_str());
  std::ifstream in(log);
  err->assign(std::istreambuf_iterator<char>(in), {});
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST_CASE("the face box on a real face follows MuseTalk's landmark rule") {
  cv::Mat photo = cv::imread(kAstronaut, cv::IMREAD_COLOR);
  REQUIRE_FALSE(photo.empty());
  avatar::FaceLandmarker landmarker;
  auto lm = landmarker.detect(photo);
  REQUIRE(lm);
  const auto &p = lm->points;
  int min_x = 10000, max_x = -1, max_y = -1;
  for (const auto &q : p) {
    min_x = std::min(min_x, q.x);
    max_x = std::max(max_x, q.x);
    max_y = std::max(max_y, q.y);
  }
  auto box = avatar::musetalk_face_box(*lm, 0, 10, photo.size());
  // From landmark 29 down to the chin, mirrored upward; v1.5's 10 px margin below.
  CHECK(box.y1 == p[29].y - (max_y - p[29].y));
  CHECK(box.x1 == min_x);
  CHECK(box.x2 == max_x);
  CHECK(box.y2 == max_y + 10);
  // The lower face is inside: mouth, chin, nose tip.
  for (int i : {8, 30, 48, 54, 57, 62, 66}) {
    INFO("landmark " << i);
    CHECK(box.x1 <= p[i].x);
    CHECK(p[i].x < box.x2);
    CHECK(box.y1 <= p[i].y);
    CHECK(p[i].y < box.y2);
  }
  // bbox_shift N moves landmark 29 down by N, so the top (2*y29 - max_y) moves by 2N.
  auto shifted = avatar::musetalk_face_box(*lm, 5, 10, photo.size());
  CHECK(shifted.y1 == box.y1 + 10);

  // The mask covers the mouth and stays off the eyes.
  auto crop = blend::crop_box(box);
  auto mask = blend::prepare_mask(avatar::lower_face_region(*lm, crop), box, crop).mask;
  auto at = [&](cv::Point q) { return int(mask.at<uint8_t>(q.y - crop.y1, q.x - crop.x1)); };
  CHECK(at((p[62] + p[66]) / 2) > 200);
  CHECK(at(p[57]) > 100);
  CHECK(at(p[36]) == 0);
  CHECK(at(p[45]) == 0);
}

TEST_CASE("talker-avatar builds a video avatar whose frames, boxes, masks and latents agree") {
  REQUIRE(exists(kMegamind));
  std::string out = std::string(TALKER_BUILD_ROOT) + "/tests/avatar_megamind";
  std::string err;
  int rc = run_tool(std::string("build ") + kMegamind + " " + out + " --max-frames 12 --vae " +
                        test::golden("vae_small"),
                    &err);
  INFO(err);
  REQUIRE(rc == 0);
  auto latents = avatar::load_avatar_latents(out);
  auto frames = avatar::load_avatar_frames(out);
  CHECK(latents->frame_count == 12);
  CHECK(latents->latents.sizes() == torch::IntArrayRef({12, 8, 32, 32}));
  REQUIRE(frames->size() == 12);
  for (size_t i = 0; i < frames->size(); ++i) {
    const auto &f = frames->faces[i];
    CHECK(f.x1 >= 0);
    CHECK(f.y1 >= 0);
    CHECK(f.x2 <= frames->width);
    CHECK(f.y2 <= frames->height);
    CHECK(f.width() > 20);
    CHECK(frames->masks[i].cols == frames->crops[i].width());
    const auto &c = frames->crops[i];
    CHECK(c.x1 >= 0);
    CHECK(c.y1 >= 0);
    CHECK(c.x2 <= frames->width);
    CHECK(c.y2 <= frames->height);
    CHECK(c.x1 <= f.x1);  // the crop box still holds the face box
    CHECK(c.y1 <= f.y1);
    CHECK(f.x2 <= c.x2);
    CHECK(f.y2 <= c.y2);
    CHECK(cv::countNonZero(frames->masks[i]) > 0);
  }
  // Latents differ frame to frame (the face moves), and are not all zero.
  CHECK(latents->latents.abs().sum().item<double>() > 0);

  // An avatar.json whose fps is 0, negative or not a number is refused by
  // name (it makes the frame grid): a copy of this avatar with each.
  const std::string bad = out + "_badfps";
  std::filesystem::create_directories(bad);
  std::filesystem::copy_file(out + "/latents.safetensors", bad + "/latents.safetensors",
                             std::filesystem::copy_options::overwrite_existing);
  for (const char *fps : {"0", "-25", "\"25\"", "1e9"}) {
    INFO("fps " << fps);
    std::ofstream(bad + "/avatar.json")
        << R"({"version": 1, "frame_count": 12, "fps": )" << fps << "}";
    try {
      avatar::load_avatar_latents(bad);
      FAIL("loaded");
    } catch (const Error &e) {
      CHECK(std::string(e.what()).find("fps") != std::string::npos);
    }
  }
}

TEST_CASE("talker-avatar refuses bad input with a message and a non-zero exit") {
  std::string dir = std::string(TALKER_BUILD_ROOT) + "/tests/";
  cv::imwrite(dir + "blank.png", cv::Mat(200, 200, CV_8UC3, cv::Scalar(90, 90, 90)));
  std::string vae = " --vae " + test::golden("vae_small");
  struct Case {
    std::string args, expect;
    int rc;
  } cases[] = {
      {"build " + dir + "blank.png " + dir + "avatar_blank" + vae, "no face found", 1},
      {"build /nonexistent.mp4 " + dir + "avatar_none" + vae, "cannot read", 1},
      {std::string("build ") + kAstronaut + " " + dir + "avatar_novae", "--vae is required", 1},
      {std::string("build ") + kAstronaut + " " + dir + "avatar_badvae --vae /nonexistent",
       "/nonexistent", 1},
      {"frobnicate", "usage", 2},
  };
  for (const auto &c : cases) {
    std::string err;
    int rc = run_tool(c.args, &err);
    INFO(c.args << " -> " << err);
    CHECK(rc == c.rc);
    CHECK(err.find(c.expect) != std::string::npos);
  }
}

TEST_CASE("crop boxes are moved inside the frame, keeping their size") {
  cv::Size frame(200, 100);
  CHECK(avatar::fit_inside({-10, 20, 50, 80}, frame) == blend::Box{0, 20, 60, 80});
  CHECK(avatar::fit_inside({170, -5, 230, 55}, frame) == blend::Box{140, 0, 200, 60});
  CHECK(avatar::fit_inside({10, 10, 60, 60}, frame) == blend::Box{10, 10, 60, 60});
  CHECK(avatar::fit_inside({-20, -20, 130, 130}, frame) ==
        blend::Box{0, 0, 150, 100});  // taller than the frame: clipped
}

TALKER_GOLDEN_MAIN
