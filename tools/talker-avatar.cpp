// SPDX-License-Identifier: LGPL-2.1-or-later
// talker-avatar: builds an avatar folder (docs/avatar.md) from a video or a photo.
#include <opencv2/imgcodecs.hpp>
#include <opencv2/videoio.hpp>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <unistd.h>

#include "lib/avatar/avatar_frames.h"
#include "lib/avatar/import_musetalk.h"
#include "lib/avatar/prepare.h"
#include "lib/common/error.h"
#include "lib/nn/musetalk.h"
#include "lib/nn/weights.h"

using namespace talker;

namespace {

const char *kUsage =
    "usage: talker-avatar build INPUT OUTPUT --vae VAE [options]\n"
    "       talker-avatar import MUSETALK_AVATAR OUTPUT [--fps F]\n"
    "  import converts a MuseTalk/LiveTalking avatar folder (full_imgs/, mask/, coords.pkl,\n"
    "  mask_coords.pkl, latents.pt)\n"
    "  INPUT            a video file, or a single photo (one-frame avatar)\n"
    "  OUTPUT           the avatar folder to write\n"
    "  --vae PATH       sd-vae-ft-mse folder (models/sd-vae) for the latents\n"
    "  --bbox-shift N   move the face box's top by N pixels (MuseTalk's bbox_shift; default 0)\n"
    "  --extra-margin N pixels added below the chin (MuseTalk v1.5: 10)\n"
    "  --max-frames N   use at most N frames of the video\n"
    "  --fps F          frame rate to record when the input has none (default 25)\n";

// A progress bar on a terminal, nothing otherwise.
struct Progress {
  const char *what;
  bool tty = isatty(2);
  void operator()(size_t done, size_t total) const {
    if (!tty || total == 0) return;
    const int width = 30, filled = int(width * done / total);
    std::fprintf(stderr, "\r%-10s [%.*s%*s] %zu/%zu", what, filled,
                 "##############################", width - filled, "", done, total);
    if (done == total) std::fprintf(stderr, "\n");
  }
};

std::vector<cv::Mat> read_frames(const std::string &input, int max_frames, double *fps) {
  std::vector<cv::Mat> frames;
  cv::Mat photo = cv::imread(input, cv::IMREAD_COLOR);
  if (!photo.empty()) return {photo};
  cv::VideoCapture video(input);
  if (!video.isOpened()) throw Error(input + ": cannot read it as an image or a video");
  const double rate = video.get(cv::CAP_PROP_FPS);
  if (rate > 0) *fps = rate;
  for (cv::Mat frame; (max_frames <= 0 || int(frames.size()) < max_frames) && video.read(frame);)
    frames.push_back(frame.clone());
  if (frames.empty()) throw Error(input + ": no frames could be decoded");
  return frames;
}

int build(int argc, char **argv) {
  if (argc < 4) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  std::string input = argv[2], output = argv[3], vae_path;
  avatar::PrepareOptions opt;
  int max_frames = 0;
  double fps = 25;
  for (int i = 4; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw Error("option " + a + " needs a value");
      return argv[++i];
    };
    if (a == "--vae")
      vae_path = value();
    else if (a == "--bbox-shift")
      opt.bbox_shift = std::stoi(value());
    else if (a == "--extra-margin")
      opt.extra_margin = std::stoi(value());
    else if (a == "--max-frames")
      max_frames = std::stoi(value());
    else if (a == "--fps")
      fps = std::stod(value());
    else {
      std::fprintf(stderr, "talker-avatar: unknown option %s\n%s", a.c_str(), kUsage);
      return 2;
    }
  }
  if (vae_path.empty()) throw Error("--vae is required (models/sd-vae after models/download.sh)");

  auto vae = nn::load_vae(vae_path);
  auto frames = read_frames(input, max_frames, &fps);
  avatar::FaceLandmarker landmarker;
  auto prepared = avatar::prepare_avatar(frames, landmarker, opt, Progress{"faces"});

  std::vector<torch::Tensor> latents;
  Progress latent_progress{"latents"};
  {
    torch::InferenceMode guard;
    for (size_t i = 0; i < prepared.face_crops.size(); ++i) {
      const cv::Mat &crop = prepared.face_crops[i];
      auto bgr = torch::from_blob(crop.data, {256, 256, 3}, torch::kByte).clone();
      latents.push_back(nn::musetalk_face_latents(vae, bgr)[0]);
      latent_progress(i + 1, prepared.face_crops.size());
    }
  }

  avatar::AvatarFrames out;
  out.frames = prepared.frames;
  out.faces = prepared.faces;
  out.crops = prepared.crops;
  out.masks = prepared.masks;
  avatar::save_avatar_frames(output, out);
  nn::save_safetensors(output + "/latents.safetensors", {{"latents", torch::stack(latents)}});
  size_t detected = std::count(prepared.detected.begin(), prepared.detected.end(), true);
  nlohmann::json meta = {{"version", 1},
                         {"fps", fps},
                         {"frame_count", frames.size()},
                         {"width", frames[0].cols},
                         {"height", frames[0].rows},
                         {"crop", "musetalk-v15"},
                         {"bbox_shift", opt.bbox_shift},
                         {"extra_margin", opt.extra_margin},
                         {"faces_detected", detected},
                         {"source", input}};
  std::ofstream(output + "/avatar.json") << meta.dump(1) << "\n";
  std::printf("%s: %zu frames %dx%d, face found in %zu (the others reuse a neighbour's)\n",
              output.c_str(), frames.size(), frames[0].cols, frames[0].rows, detected);
  return 0;
}

int import_avatar(int argc, char **argv) {
  if (argc < 4) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  double fps = 25;
  for (int i = 4; i < argc; ++i) {
    if (std::strcmp(argv[i], "--fps") == 0 && i + 1 < argc) {
      fps = std::stod(argv[++i]);
    } else {
      std::fprintf(stderr, "talker-avatar: unknown option %s\n%s", argv[i], kUsage);
      return 2;
    }
  }
  size_t n = avatar::import_musetalk_avatar(argv[2], argv[3], fps);
  std::printf("%s: imported %zu frames from %s\n", argv[3], n, argv[2]);
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::fputs(kUsage, stdout);
      return 0;
    }
  const bool is_build = argc >= 2 && std::strcmp(argv[1], "build") == 0;
  const bool is_import = argc >= 2 && std::strcmp(argv[1], "import") == 0;
  if (!is_build && !is_import) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  try {
    return is_build ? build(argc, argv) : import_avatar(argc, argv);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "talker-avatar: %s\n", e.what());
    return 1;
  }
}
