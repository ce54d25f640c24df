// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "lib/nn/diffusers_blocks.h"

namespace talker::nn {

// The subset of diffusers' UNet2DConditionModel config MuseTalk uses
// (musetalk.json). Parsing rejects options this implementation does not have.
struct UNetConfig {
  int64_t in_channels = 8;
  int64_t out_channels = 4;
  std::vector<int64_t> block_out_channels{320, 640, 1280, 1280};
  std::vector<std::string> down_block_types{"CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                            "CrossAttnDownBlock2D", "DownBlock2D"};
  std::vector<std::string> up_block_types{"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                                          "CrossAttnUpBlock2D"};
  int64_t layers_per_block = 2;
  std::vector<int64_t> attention_heads{8, 8, 8, 8};  // diffusers' attention_head_dim: a head COUNT
  int64_t transformer_layers_per_block = 1;
  int64_t cross_attention_dim = 384;
  int64_t norm_num_groups = 32;
  double norm_eps = 1e-5;
  bool flip_sin_to_cos = true;
  double freq_shift = 0;
  int64_t downsample_padding = 1;
  double mid_block_scale_factor = 1;

  // Throws talker::Error naming the file and the key.
  static UNetConfig from_json_file(const std::string &path);
};

struct UNetDownBlockImpl : torch::nn::Module {
  UNetDownBlockImpl(const UNetConfig &c, int64_t in, int64_t out, int64_t temb,
                    bool cross_attention, bool add_downsample, int64_t heads);
  // Returns the block output; appends every intermediate state to `skips`.
  torch::Tensor forward(torch::Tensor x, const torch::Tensor &temb, const torch::Tensor &context,
                        std::vector<torch::Tensor> &skips);
  torch::nn::ModuleList resnets{nullptr}, attentions{nullptr}, downsamplers{nullptr};
  std::vector<ResnetBlock2D> resnet_list;
  std::vector<Transformer2DModel> attention_list;
  Downsample2D downsampler{nullptr};
};
TORCH_MODULE(UNetDownBlock);

struct UNetMidBlockImpl : torch::nn::Module {
  UNetMidBlockImpl(const UNetConfig &c, int64_t channels, int64_t temb, int64_t heads);
  torch::Tensor forward(torch::Tensor x, const torch::Tensor &temb, const torch::Tensor &context);
  torch::nn::ModuleList resnets{nullptr}, attentions{nullptr};
  std::vector<ResnetBlock2D> resnet_list;
  std::vector<Transformer2DModel> attention_list;
};
TORCH_MODULE(UNetMidBlock);

struct UNetUpBlockImpl : torch::nn::Module {
  UNetUpBlockImpl(const UNetConfig &c, int64_t in, int64_t out, int64_t prev_out, int64_t temb,
                  bool cross_attention, bool add_upsample, int64_t heads);
  // Consumes skips from the back of `skips`; `next_size` is the spatial size
  // the upsampler must reach (the next skip's), or empty.
  torch::Tensor forward(torch::Tensor x, const torch::Tensor &temb, const torch::Tensor &context,
                        std::vector<torch::Tensor> &skips);
  torch::nn::ModuleList resnets{nullptr}, attentions{nullptr}, upsamplers{nullptr};
  std::vector<ResnetBlock2D> resnet_list;
  std::vector<Transformer2DModel> attention_list;
  Upsample2D upsampler{nullptr};
};
TORCH_MODULE(UNetUpBlock);

struct TimestepEmbeddingImpl : torch::nn::Module {
  TimestepEmbeddingImpl(int64_t in, int64_t dim);
  torch::Tensor forward(const torch::Tensor &x);
  torch::nn::Linear linear_1{nullptr}, linear_2{nullptr};
};
TORCH_MODULE(TimestepEmbedding);

struct UNet2DConditionModelImpl : torch::nn::Module {
  explicit UNet2DConditionModelImpl(const UNetConfig &config);
  // sample [B, in, H, W], context [B, T, cross_attention_dim] → [B, out, H, W].
  // Timestep 0 (MuseTalk's only one), embedded once by prepare().
  torch::Tensor forward(const torch::Tensor &sample, const torch::Tensor &context);
  // Any timesteps ([1] or [B]), embedded on every call.
  torch::Tensor forward_timesteps(const torch::Tensor &sample, const torch::Tensor &timesteps,
                                  const torch::Tensor &context);
  // Recomputes the cached timestep-0 embedding (after loading or moving).
  void prepare();

  UNetConfig config;
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  TimestepEmbedding time_embedding{nullptr};
  torch::nn::ModuleList down_blocks{nullptr}, up_blocks{nullptr};
  UNetMidBlock mid_block{nullptr};
  torch::nn::GroupNorm conv_norm_out{nullptr};
  std::vector<UNetDownBlock> down_list;
  std::vector<UNetUpBlock> up_list;

 private:
  torch::Tensor run(const torch::Tensor &sample, const torch::Tensor &temb,
                    const torch::Tensor &context);
  torch::Tensor time_embed(const torch::Tensor &timesteps, torch::ScalarType dtype);
  torch::Tensor temb0_;
};
TORCH_MODULE(UNet2DConditionModel);

// diffusers get_timestep_embedding.
torch::Tensor timestep_embedding(const torch::Tensor &timesteps, int64_t dim, bool flip_sin_to_cos,
                                 double freq_shift);

// Builds the UNet of `config_path` (musetalk.json) and loads `weights_path`
// (unet.pth or pytorch_model.bin) strictly; eval mode on device/dtype.
UNet2DConditionModel load_unet(const std::string &weights_path, const std::string &config_path,
                               const torch::Device &device = torch::kCPU,
                               torch::ScalarType dtype = torch::kFloat);

}  // namespace talker::nn
