// SPDX-License-Identifier: LGPL-2.1-or-later
// talker-avatar: builds an avatar folder (docs/avatar.md) from a video or a photo.
#include <opencv2/imgcodecs.hpp>
#include <opencv2/videoio.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
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
    "       talker-avatar probe INPUT [--untrusted-input]\n"
    "  probe prints what INPUT is as one JSON line ({kind, frames, width, height, fps}),\n"
    "  or a message and exit code 1 when it is neither an image nor a video\n"
    "  import converts a MuseTalk/LiveTalking avatar folder (full_imgs/, mask/, coords.pkl,\n"
    "  mask_coords.pkl, latents.pt)\n"
    "  INPUT            a video file, or a single photo (one-frame avatar)\n"
    "  OUTPUT           the avatar folder to write\n"
    "  --vae PATH       sd-vae-ft-mse folder (models/sd-vae) for the latents\n"
    "  --bbox-shift N   move the face box's top by N pixels (MuseTalk's bbox_shift; default 0)\n"
    "  --extra-margin N pixels added below the chin (MuseTalk v1.5: 10)\n"
    "  --max-frames N   use at most N frames of the video\n"
    "  --fps F          frame rate to record when the input has none (default 25)\n"
    "  --progress       print 'progress STAGE DONE TOTAL' lines on stdout (stages: frames,\n"
    "                   faces, latents), for a program that runs this one\n"
    "  --source TEXT    what avatar.json records as the source (default: INPUT)\n"
    "  --untrusted-input  decode videos with FFmpeg's plain container demuxers only (AVI, "
    "MP4/MOV,\n"
    "                   Matroska/WebM, FLV, MPEG-TS/PS, Ogg, GIF): never a playlist that names\n"
    "                   other files or URLs. talker-server uses it for every job\n";

// A progress bar on a terminal; with --progress, lines a program can read.
struct Progress {
  const char *what;
  bool lines = false;
  bool tty = isatty(2);
  void operator()(size_t done, size_t total) const {
    if (lines) {
      std::printf("progress %s %zu %zu\n", what, done, total);
      std::fflush(stdout);
    }
    if (!tty || total == 0) return;
    const int width = 30, filled = int(width * done / total);
    std::fprintf(stderr, "\r%-10s [%.*s%*s] %zu/%zu", what, filled,
                 "##############################", width - filled, "", done, total);
    if (done == total) std::fprintf(stderr, "\n");
  }
};

// For files from strangers (talker-server's uploads): OpenCV decodes videos
// with FFmpeg only, and FFmpeg opens local files with the plain container
// demuxers only. A playlist (HLS, concat, SDP) would otherwise make a video of
// whatever local file or URL it names: an avatar of a file on the server.
// GStreamer's backend goes too (its typefind plugs hlsdemux the same way).
// Images are decoded by OpenCV's own codecs, which read nothing else.
void restrict_decoders() {
  setenv("OPENCV_VIDEOIO_PRIORITY_GSTREAMER", "0", 1);
  setenv("OPENCV_VIDEOIO_PRIORITY_LIST", "FFMPEG", 1);
  setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS",
         "protocol_whitelist;file|format_whitelist;avi,mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,flv,"
         "mpegts,mpeg,ogg,gif",
         1);
}

std::vector<cv::Mat> read_frames(const std::string &input, int max_frames, double *fps,
                                 const Progress &progress) {
  std::vector<cv::Mat> frames;
  cv::Mat photo = cv::imread(input, cv::IMREAD_COLOR);
  if (!photo.empty()) return {photo};
  cv::VideoCapture video(input);
  if (!video.isOpened()) throw Error(input + ": cannot read it as an image or a video");
  const double rate = video.get(cv::CAP_PROP_FPS);
  if (rate > 0) *fps = rate;
  // The container's count, for progress only (it may be off by a few).
  size_t expected = std::max(0.0, video.get(cv::CAP_PROP_FRAME_COUNT));
  if (max_frames > 0 && (expected == 0 || expected > size_t(max_frames))) expected = max_frames;
  for (cv::Mat frame; (max_frames <= 0 || int(frames.size()) < max_frames) && video.read(frame);) {
    frames.push_back(frame.clone());
    if (frames.size() % 25 == 0) progress(frames.size(), std::max(expected, frames.size()));
  }
  if (frames.empty()) throw Error(input + ": no frames could be decoded");
  progress(frames.size(), frames.size());
  return frames;
}

// What INPUT is, without decoding all of it: talker-server checks uploads with this.
int probe(int argc, char **argv) {
  if (argc < 3 || argc > 4 || (argc == 4 && std::strcmp(argv[3], "--untrusted-input") != 0)) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  if (argc == 4) restrict_decoders();
  const std::string input = argv[2];
  nlohmann::json info;
  cv::Mat photo = cv::imread(input, cv::IMREAD_COLOR);
  if (!photo.empty()) {
    info = {{"kind", "photo"}, {"frames", 1}, {"width", photo.cols}, {"height", photo.rows}};
  } else {
    cv::VideoCapture video(input);
    cv::Mat frame;
    if (!video.isOpened() || !video.read(frame) || frame.empty())
      throw Error("not an image or a video that can be decoded");
    info = {{"kind", "video"},
            {"frames", std::max(1.0, video.get(cv::CAP_PROP_FRAME_COUNT))},
            {"width", frame.cols},
            {"height", frame.rows},
            {"fps", video.get(cv::CAP_PROP_FPS)}};
  }
  std::printf("%s\n", info.dump().c_str());
  return 0;
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
  bool progress_lines = false;
  std::string source = input;  // recorded in avatar.json
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
    else if (a == "--progress")
      progress_lines = true;
    else if (a == "--source")
      source = value();
    else if (a == "--untrusted-input")
      restrict_decoders();
    else {
      std::fprintf(stderr, "talker-avatar: unknown option %s\n%s", a.c_str(), kUsage);
      return 2;
    }
  }
  if (vae_path.empty()) throw Error("--vae is required (models/sd-vae after models/download.sh)");

  auto vae = nn::load_vae(vae_path);
  auto frames = read_frames(input, max_frames, &fps, Progress{"frames", progress_lines});
  avatar::FaceLandmarker landmarker;
  auto prepared =
      avatar::prepare_avatar(frames, landmarker, opt, Progress{"faces", progress_lines});

  std::vector<torch::Tensor> latents;
  Progress latent_progress{"latents", progress_lines};
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
                         {"source", source}};
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
  const bool is_probe = argc >= 2 && std::strcmp(argv[1], "probe") == 0;
  if (!is_build && !is_import && !is_probe) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  try {
    if (is_probe) return probe(argc, argv);
    return is_build ? build(argc, argv) : import_avatar(argc, argv);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "talker-avatar: %s\n", e.what());
    return 1;
  }
}
