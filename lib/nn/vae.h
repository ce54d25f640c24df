// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "lib/nn/diffusers_blocks.h"

namespace talker::nn {

// diffusers AutoencoderKL config (sd-vae-ft-mse's config.json).
struct VAEConfig {
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  int64_t latent_channels = 4;
  std::vector<int64_t> block_out_channels{128, 256, 512, 512};
  int64_t layers_per_block = 2;
  int64_t norm_num_groups = 32;
  double scaling_factor = 0.18215;

  static VAEConfig from_json_file(const std::string &path);
};

// UNetMidBlock2D as the VAE uses it: resnet, spatial self-attention (one head), resnet.
struct VAEMidBlockImpl : torch::nn::Module {
  VAEMidBlockImpl(int64_t channels, int64_t groups);
  torch::Tensor forward(const torch::Tensor &x);
  torch::nn::ModuleList resnets{nullptr}, attentions{nullptr};
  ResnetBlock2D resnet0{nullptr}, resnet1{nullptr};
  Attention attention{nullptr};
};
TORCH_MODULE(VAEMidBlock);

// DownEncoderBlock2D / UpDecoderBlock2D: resnets, then an optional resampler.
struct VAEBlockImpl : torch::nn::Module {
  VAEBlockImpl(int64_t in, int64_t out, int64_t layers, int64_t groups, bool down, bool resample);
  torch::Tensor forward(torch::Tensor x);
  torch::nn::ModuleList resnets{nullptr}, downsamplers{nullptr}, upsamplers{nullptr};
  std::vector<ResnetBlock2D> resnet_list;
  Downsample2D downsampler{nullptr};
  Upsample2D upsampler{nullptr};
};
TORCH_MODULE(VAEBlock);

struct VAEEncoderImpl : torch::nn::Module {
  explicit VAEEncoderImpl(const VAEConfig &c);
  torch::Tensor forward(const torch::Tensor &image);
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::ModuleList down_blocks{nullptr};
  std::vector<VAEBlock> blocks;
  VAEMidBlock mid_block{nullptr};
  torch::nn::GroupNorm conv_norm_out{nullptr};
};
TORCH_MODULE(VAEEncoder);

struct VAEDecoderImpl : torch::nn::Module {
  explicit VAEDecoderImpl(const VAEConfig &c);
  torch::Tensor forward(const torch::Tensor &z);
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::ModuleList up_blocks{nullptr};
  std::vector<VAEBlock> blocks;
  VAEMidBlock mid_block{nullptr};
  torch::nn::GroupNorm conv_norm_out{nullptr};
};
TORCH_MODULE(VAEDecoder);

struct AutoencoderKLImpl : torch::nn::Module {
  explicit AutoencoderKLImpl(const VAEConfig &c);
  // image [B,3,H,W] in [-1,1] → posterior (mean, logvar clamped to [-30,20]).
  std::pair<torch::Tensor, torch::Tensor> encode(const torch::Tensor &image);
  // Unscaled latents → image [B,3,H,W] (about [-1,1]).
  torch::Tensor decode(const torch::Tensor &z);

  VAEConfig config;
  VAEEncoder encoder{nullptr};
  VAEDecoder decoder{nullptr};
  torch::nn::Conv2d quant_conv{nullptr}, post_quant_conv{nullptr};
};
TORCH_MODULE(AutoencoderKL);

// Loads a VAE from a model folder (config.json + diffusion_pytorch_model.safetensors
// or .bin) or from a weights file with config.json beside it. Accepts the old
// attention key names (query/key/value/proj_attn) of sd-vae-ft-mse's .bin.
AutoencoderKL load_vae(const std::string &path, const torch::Device &device = torch::kCPU,
                       torch::ScalarType dtype = torch::kFloat);

}  // namespace talker::nn
