// SPDX-License-Identifier: LGPL-2.1-or-later
// Writes micro models: random weights in the exact architectures and file
// formats of the real ones (whisper encoder, MuseTalk UNet, SD VAE) with far
// smaller channels, plus an avatar folder for them. The whole live chain runs
// near real time on a CPU with them, so live behaviour can be tested and
// benchmarked; numbers are checked against ../shared/golden, never these.
//
//   make-micro-models OUT_DIR
// writes OUT_DIR/whisper.safetensors, OUT_DIR/unet.safetensors +
// OUT_DIR/musetalk.json, OUT_DIR/vae/ (config.json +
// diffusion_pytorch_model.safetensors) and OUT_DIR/avatar/.
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>
#include <string>

#include "lib/avatar/avatar_frames.h"
#include "lib/nn/unet.h"
#include "lib/nn/vae.h"
#include "lib/nn/weights.h"
#include "lib/nn/whisper_encoder.h"

using namespace talker;
using nlohmann::json;

namespace {

nn::StateDict state_of(torch::nn::Module &m, const std::string &prefix = "") {
  nn::StateDict out;
  for (const auto &p : m.named_parameters()) out[prefix + p.key()] = p.value().detach().clone();
  for (const auto &b : m.named_buffers()) out[prefix + b.key()] = b.value().detach().clone();
  return out;
}

void write_json(const std::string &path, const json &j) {
  std::ofstream(path) << j.dump(2) << "\n";
}

// Whisper's layout with 64 channels: 5 stacked states of width 64. The real
// 1500 positions and 80 mels are kept, so 30 s padding works as in whisper.
void write_whisper(const std::string &dir) {
  nn::WhisperEncoderConfig cfg;
  cfg.n_state = 64;
  cfg.n_head = 1;  // the loader infers n_state / 64 heads without a config.json
  cfg.n_layer = 4;
  nn::WhisperEncoder enc(cfg);
  nn::save_safetensors(dir + "/whisper.safetensors", state_of(*enc, "encoder."));
}

json unet_config() {
  return {{"_class_name", "UNet2DConditionModel"},
          {"act_fn", "silu"},
          {"attention_head_dim", 1},
          {"block_out_channels", {16, 16, 16, 16}},
          {"center_input_sample", false},
          {"cross_attention_dim", 64},
          {"down_block_types",
           {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"}},
          {"downsample_padding", 1},
          {"flip_sin_to_cos", true},
          {"freq_shift", 0},
          {"in_channels", 8},
          {"layers_per_block", 1},
          {"mid_block_scale_factor", 1},
          {"norm_eps", 1e-5},
          {"norm_num_groups", 8},
          {"out_channels", 4},
          {"sample_size", 16},
          {"up_block_types",
           {"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"}}};
}

json vae_config() {
  return {
      {"_class_name", "AutoencoderKL"},
      {"act_fn", "silu"},
      {"block_out_channels", {8, 8, 8, 8}},
      {"down_block_types",
       {"DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"}},
      {"in_channels", 3},
      {"latent_channels", 4},
      {"layers_per_block", 1},
      {"norm_num_groups", 4},
      {"out_channels", 3},
      {"sample_size", 128},
      {"scaling_factor", 0.18215},
      {"up_block_types",
       {"UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"}}};
}

// 16 frames of a plain drawn head, its face box in the middle, an elliptic
// lower-face mask, and random latents ([N, 8, 32, 32], as the avatar tool
// stores them).
void write_avatar(const std::string &dir) {
  const int frames = 16, width = 320, height = 240;
  mkdir(dir.c_str(), 0755);
  avatar::AvatarFrames a;
  const blend::Box face{110, 50, 210, 170};
  for (int i = 0; i < frames; ++i) {
    cv::Mat img(height, width, CV_8UC3, cv::Scalar(90, 60, 40));
    cv::ellipse(img, cv::Point(160, 110 + i % 4), cv::Size(55, 70), 0, 0, 360,
                cv::Scalar(140, 170, 220), -1);
    a.frames.push_back(img);
    a.faces.push_back(face);
    a.crops.push_back(blend::crop_box(face));
    const auto &crop = a.crops.back();
    cv::Mat region = cv::Mat::zeros(crop.height(), crop.width(), CV_8UC1);
    cv::ellipse(region, cv::Point(crop.width() / 2, crop.height() / 2 + 25), cv::Size(45, 40), 0, 0,
                360, 255, -1);
    a.masks.push_back(blend::prepare_mask(region, face, crop).mask);
  }
  avatar::save_avatar_frames(dir, a);
  nn::save_safetensors(dir + "/latents.safetensors",
                       {{"latents", torch::randn({frames, 8, 16, 16})}});
  write_json(dir + "/avatar.json", {{"version", 1},
                                    {"fps", 25},
                                    {"frame_count", frames},
                                    {"width", width},
                                    {"height", height},
                                    {"crop", "musetalk-v15"}});
}

}  // namespace

int main(int argc, char **argv) {
  if (argc != 2 || std::string(argv[1]) == "--help") {
    std::fprintf(argc == 2 ? stdout : stderr,
                 "usage: make-micro-models OUT_DIR\n"
                 "Writes random-weight micro models (whisper, MuseTalk UNet, SD VAE in their real\n"
                 "file formats, tiny channels) and an avatar for live tests and benchmarks.\n");
    return argc == 2 ? 0 : 2;
  }
  try {
    const std::string out = argv[1];
    mkdir(out.c_str(), 0755);
    torch::manual_seed(20261203);
    torch::NoGradGuard no_grad;
    write_whisper(out);
    write_json(out + "/musetalk.json", unet_config());
    nn::UNet2DConditionModel unet(nn::UNetConfig::from_json_file(out + "/musetalk.json"));
    nn::save_safetensors(out + "/unet.safetensors", state_of(*unet));
    mkdir((out + "/vae").c_str(), 0755);
    write_json(out + "/vae/config.json", vae_config());
    nn::AutoencoderKL vae(nn::VAEConfig::from_json_file(out + "/vae/config.json"));
    nn::save_safetensors(out + "/vae/diffusion_pytorch_model.safetensors", state_of(*vae));
    write_avatar(out + "/avatar");
  } catch (const std::exception &e) {
    std::fprintf(stderr, "make-micro-models: %s\n", e.what());
    return 1;
  }
  return 0;
}
