// SPDX-License-Identifier: LGPL-2.1-or-later
// The diffusers building blocks MuseTalk's UNet and the SD VAE are made of,
// registered under diffusers' own attribute names so that named_parameters()
// are the checkpoint keys.
#pragma once

#include <torch/torch.h>

#include <optional>
#include <vector>

namespace talker::nn {

// SiLU computed in place on a temporary (a normalisation's output): the same
// values, one activation-sized allocation less.
inline torch::Tensor silu_in_place(torch::Tensor t) {
  return torch::silu_(t);
}

// diffusers ResnetBlock2D (time_embedding_norm "default", pre-norm, SiLU).
// temb_channels 0: no time embedding (the VAE's blocks).
struct ResnetBlock2DImpl : torch::nn::Module {
  ResnetBlock2DImpl(int64_t in, int64_t out, int64_t temb_channels, int64_t groups, double eps,
                    double output_scale_factor = 1.0);
  torch::Tensor forward(const torch::Tensor &x, const torch::Tensor &temb = {});
  torch::nn::GroupNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv_shortcut{nullptr};
  torch::nn::Linear time_emb_proj{nullptr};
  double output_scale_factor;
};
TORCH_MODULE(ResnetBlock2D);

// Downsample2D with use_conv: a stride-2 3x3 conv. padding 0 pads right and
// bottom by one first (the VAE encoder), padding 1 pads all sides (UNet).
struct Downsample2DImpl : torch::nn::Module {
  Downsample2DImpl(int64_t channels, int64_t padding);
  torch::Tensor forward(const torch::Tensor &x);
  torch::nn::Conv2d conv{nullptr};
  int64_t padding;
};
TORCH_MODULE(Downsample2D);

// Upsample2D with use_conv: nearest x2 (or to `size`), then a 3x3 conv.
struct Upsample2DImpl : torch::nn::Module {
  explicit Upsample2DImpl(int64_t channels);
  torch::Tensor forward(const torch::Tensor &x,
                        std::optional<std::vector<int64_t>> size = std::nullopt);
  torch::nn::Conv2d conv{nullptr};
};
TORCH_MODULE(Upsample2D);

// diffusers Attention with AttnProcessor. Two uses:
//  - transformer attention over tokens [B, N, C] (no q/k/v bias, several heads);
//  - the VAE mid-block attention over a feature map [B, C, H, W]: group_norm
//    first, biased projections, one head, residual added (spatial = true).
struct AttentionImpl : torch::nn::Module {
  AttentionImpl(int64_t query_dim, int64_t context_dim, int64_t heads, int64_t head_dim,
                bool qkv_bias, int64_t norm_groups = 0, double norm_eps = 1e-6);
  torch::Tensor forward(const torch::Tensor &x, const torch::Tensor &context = {});
  torch::Tensor attend(const torch::Tensor &tokens, const torch::Tensor &context);
  torch::nn::GroupNorm group_norm{nullptr};
  torch::nn::Linear to_q{nullptr}, to_k{nullptr}, to_v{nullptr};
  torch::nn::ModuleList to_out{nullptr};  // 0: Linear, 1: Dropout
  int64_t heads, head_dim;
  double scale;
};
TORCH_MODULE(Attention);

struct GEGLUImpl : torch::nn::Module {
  GEGLUImpl(int64_t dim_in, int64_t dim_out);
  torch::Tensor forward(const torch::Tensor &x);
  torch::nn::Linear proj{nullptr};
};
TORCH_MODULE(GEGLU);

// FeedForward(activation_fn="geglu"): net.0 GEGLU(dim, 4*dim), net.1 Dropout, net.2 Linear.
struct FeedForwardImpl : torch::nn::Module {
  explicit FeedForwardImpl(int64_t dim);
  torch::Tensor forward(const torch::Tensor &x);
  torch::nn::ModuleList net{nullptr};
  GEGLU geglu{nullptr};
  torch::nn::Linear out{nullptr};
};
TORCH_MODULE(FeedForward);

// BasicTransformerBlock: self-attention, cross-attention, GEGLU feed-forward, pre-LayerNorm.
struct BasicTransformerBlockImpl : torch::nn::Module {
  BasicTransformerBlockImpl(int64_t dim, int64_t heads, int64_t head_dim, int64_t context_dim);
  torch::Tensor forward(torch::Tensor x, const torch::Tensor &context);
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr};
  Attention attn1{nullptr}, attn2{nullptr};
  FeedForward ff{nullptr};
};
TORCH_MODULE(BasicTransformerBlock);

// Transformer2DModel on a feature map (use_linear_projection false: 1x1 conv projections).
struct Transformer2DModelImpl : torch::nn::Module {
  Transformer2DModelImpl(int64_t channels, int64_t heads, int64_t context_dim, int64_t groups,
                         int64_t layers = 1);
  torch::Tensor forward(const torch::Tensor &x, const torch::Tensor &context);
  torch::nn::GroupNorm norm{nullptr};
  torch::nn::Conv2d proj_in{nullptr}, proj_out{nullptr};
  torch::nn::ModuleList transformer_blocks{nullptr};
  std::vector<BasicTransformerBlock> blocks;
};
TORCH_MODULE(Transformer2DModel);

}  // namespace talker::nn
