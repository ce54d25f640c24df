// SPDX-License-Identifier: LGPL-2.1-or-later
#include "lib/nn/unet.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>

#include "lib/common/error.h"
#include "lib/nn/weights.h"

namespace talker::nn {

namespace F = torch::nn::functional;
using json = nlohmann::json;

namespace {

template <typename T>
void read(const json &j, const char *key, T &out, const std::string &path) {
  if (!j.contains(key) || j[key].is_null()) return;
  try {
    out = j[key].get<T>();
  } catch (const std::exception &) {
    throw Error(path + ": key " + key + " has an unexpected value " + j[key].dump());
  }
}

// Options diffusers has that this UNet does not implement: refuse them rather
// than compute something else.
void require(const json &j, const char *key, const json &allowed, const std::string &path) {
  if (j.contains(key) && !j[key].is_null() && j[key] != allowed)
    throw Error(path + ": " + key + " = " + j[key].dump() + " is not supported (only " +
                allowed.dump() + ")");
}

}  // namespace

UNetConfig UNetConfig::from_json_file(const std::string &path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open UNet config");
  json j = json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Error(path + ": not a JSON object");
  UNetConfig c;
  read(j, "in_channels", c.in_channels, path);
  read(j, "out_channels", c.out_channels, path);
  read(j, "block_out_channels", c.block_out_channels, path);
  read(j, "down_block_types", c.down_block_types, path);
  read(j, "up_block_types", c.up_block_types, path);
  read(j, "layers_per_block", c.layers_per_block, path);
  read(j, "cross_attention_dim", c.cross_attention_dim, path);
  read(j, "norm_num_groups", c.norm_num_groups, path);
  read(j, "norm_eps", c.norm_eps, path);
  read(j, "flip_sin_to_cos", c.flip_sin_to_cos, path);
  read(j, "freq_shift", c.freq_shift, path);
  read(j, "downsample_padding", c.downsample_padding, path);
  read(j, "mid_block_scale_factor", c.mid_block_scale_factor, path);
  read(j, "transformer_layers_per_block", c.transformer_layers_per_block, path);
  // diffusers' naming quirk: attention_head_dim is the number of heads unless
  // num_attention_heads is given.
  const char *heads_key = j.contains("num_attention_heads") && !j["num_attention_heads"].is_null()
                              ? "num_attention_heads"
                              : "attention_head_dim";
  if (j.contains(heads_key) && j[heads_key].is_number_integer())
    c.attention_heads.assign(c.block_out_channels.size(), j[heads_key].get<int64_t>());
  else
    read(j, heads_key, c.attention_heads, path);
  require(j, "act_fn", "silu", path);
  require(j, "use_linear_projection", false, path);
  require(j, "center_input_sample", false, path);
  require(j, "only_cross_attention", false, path);
  require(j, "dual_cross_attention", false, path);
  require(j, "upcast_attention", false, path);
  require(j, "class_embed_type", nullptr, path);
  require(j, "addition_embed_type", nullptr, path);
  require(j, "encoder_hid_dim", nullptr, path);
  require(j, "time_embedding_type", "positional", path);
  require(j, "resnet_time_scale_shift", "default", path);
  require(j, "mid_block_type", "UNetMidBlock2DCrossAttn", path);
  require(j, "conv_in_kernel", 3, path);
  require(j, "conv_out_kernel", 3, path);
  const size_t n = c.block_out_channels.size();
  if (n == 0 || c.down_block_types.size() != n || c.up_block_types.size() != n ||
      c.attention_heads.size() != n)
    throw Error(
        path +
        ": block_out_channels, down/up_block_types and attention heads must have the same length");
  for (size_t i = 0; i < n; ++i) {
    const auto &d = c.down_block_types[i], &u = c.up_block_types[i];
    if (d != "CrossAttnDownBlock2D" && d != "DownBlock2D")
      throw Error(path + ": unsupported down block " + d);
    if (u != "CrossAttnUpBlock2D" && u != "UpBlock2D")
      throw Error(path + ": unsupported up block " + u);
    if (c.block_out_channels[i] % c.norm_num_groups != 0 ||
        c.block_out_channels[i] % c.attention_heads[i] != 0)
      throw Error(path + ": block_out_channels[" + std::to_string(i) +
                  "] does not divide into groups/heads");
  }
  return c;
}

UNetDownBlockImpl::UNetDownBlockImpl(const UNetConfig &c, int64_t in, int64_t out, int64_t temb,
                                     bool cross_attention, bool add_downsample, int64_t heads) {
  resnets = register_module("resnets", torch::nn::ModuleList());
  if (cross_attention) attentions = register_module("attentions", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.layers_per_block; ++i) {
    resnet_list.emplace_back(i == 0 ? in : out, out, temb, c.norm_num_groups, c.norm_eps);
    resnets->push_back(resnet_list.back());
    if (cross_attention) {
      attention_list.emplace_back(out, heads, c.cross_attention_dim, c.norm_num_groups,
                                  c.transformer_layers_per_block);
      attentions->push_back(attention_list.back());
    }
  }
  if (add_downsample) {
    downsampler = Downsample2D(out, c.downsample_padding);
    downsamplers = register_module("downsamplers", torch::nn::ModuleList(downsampler));
  }
}

torch::Tensor UNetDownBlockImpl::forward(torch::Tensor x, const torch::Tensor &temb,
                                         const torch::Tensor &context,
                                         std::vector<torch::Tensor> &skips) {
  for (size_t i = 0; i < resnet_list.size(); ++i) {
    x = resnet_list[i](x, temb);
    if (!attention_list.empty()) x = attention_list[i](x, context);
    skips.push_back(x);
  }
  if (downsampler) {
    x = downsampler(x);
    skips.push_back(x);
  }
  return x;
}

UNetMidBlockImpl::UNetMidBlockImpl(const UNetConfig &c, int64_t ch, int64_t temb, int64_t heads) {
  resnets = register_module("resnets", torch::nn::ModuleList());
  attentions = register_module("attentions", torch::nn::ModuleList());
  for (int i = 0; i < 2; ++i) {
    resnet_list.emplace_back(ch, ch, temb, c.norm_num_groups, c.norm_eps, c.mid_block_scale_factor);
    resnets->push_back(resnet_list.back());
  }
  attention_list.emplace_back(ch, heads, c.cross_attention_dim, c.norm_num_groups,
                              c.transformer_layers_per_block);
  attentions->push_back(attention_list.back());
}

torch::Tensor UNetMidBlockImpl::forward(torch::Tensor x, const torch::Tensor &temb,
                                        const torch::Tensor &context) {
  x = resnet_list[0](x, temb);
  x = attention_list[0](x, context);
  return resnet_list[1](x, temb);
}

UNetUpBlockImpl::UNetUpBlockImpl(const UNetConfig &c, int64_t in, int64_t out, int64_t prev_out,
                                 int64_t temb, bool cross_attention, bool add_upsample,
                                 int64_t heads) {
  resnets = register_module("resnets", torch::nn::ModuleList());
  if (cross_attention) attentions = register_module("attentions", torch::nn::ModuleList());
  const int64_t layers = c.layers_per_block + 1;
  for (int64_t i = 0; i < layers; ++i) {
    const int64_t skip = i == layers - 1 ? in : out;
    const int64_t resnet_in = i == 0 ? prev_out : out;
    resnet_list.emplace_back(resnet_in + skip, out, temb, c.norm_num_groups, c.norm_eps);
    resnets->push_back(resnet_list.back());
    if (cross_attention) {
      attention_list.emplace_back(out, heads, c.cross_attention_dim, c.norm_num_groups,
                                  c.transformer_layers_per_block);
      attentions->push_back(attention_list.back());
    }
  }
  if (add_upsample) {
    upsampler = Upsample2D(out);
    upsamplers = register_module("upsamplers", torch::nn::ModuleList(upsampler));
  }
}

torch::Tensor UNetUpBlockImpl::forward(torch::Tensor x, const torch::Tensor &temb,
                                       const torch::Tensor &context,
                                       std::vector<torch::Tensor> &skips) {
  for (size_t i = 0; i < resnet_list.size(); ++i) {
    x = resnet_list[i](torch::cat({x, skips.back()}, 1), temb);
    skips.pop_back();
    if (!attention_list.empty()) x = attention_list[i](x, context);
  }
  if (upsampler) {
    // Upsample to the next skip's size: odd sizes round as the down path did.
    std::optional<std::vector<int64_t>> size;
    if (!skips.empty()) size = std::vector<int64_t>{skips.back().size(2), skips.back().size(3)};
    x = upsampler(x, size);
  }
  return x;
}

TimestepEmbeddingImpl::TimestepEmbeddingImpl(int64_t in, int64_t dim) {
  linear_1 = register_module("linear_1", torch::nn::Linear(in, dim));
  linear_2 = register_module("linear_2", torch::nn::Linear(dim, dim));
}

torch::Tensor TimestepEmbeddingImpl::forward(const torch::Tensor &x) {
  return linear_2(F::silu(linear_1(x)));
}

torch::Tensor timestep_embedding(const torch::Tensor &timesteps, int64_t dim, bool flip_sin_to_cos,
                                 double freq_shift) {
  const int64_t half = dim / 2;
  auto exponent =
      -std::log(10000.0) * torch::arange(0, half, torch::TensorOptions().dtype(torch::kFloat));
  exponent = exponent / (half - freq_shift);
  auto emb = timesteps.to(torch::kFloat).unsqueeze(1) * torch::exp(exponent).unsqueeze(0);
  emb = torch::cat({torch::sin(emb), torch::cos(emb)}, -1);
  if (flip_sin_to_cos) emb = torch::cat({emb.slice(1, half), emb.slice(1, 0, half)}, -1);
  if (dim % 2 == 1) emb = F::pad(emb, F::PadFuncOptions({0, 1}));
  return emb;
}

UNet2DConditionModelImpl::UNet2DConditionModelImpl(const UNetConfig &c) : config(c) {
  const auto &ch = c.block_out_channels;
  const int64_t temb = ch[0] * 4;
  const size_t n = ch.size();
  conv_in = register_module(
      "conv_in", torch::nn::Conv2d(torch::nn::Conv2dOptions(c.in_channels, ch[0], 3).padding(1)));
  time_embedding = register_module("time_embedding", TimestepEmbedding(ch[0], temb));
  down_blocks = register_module("down_blocks", torch::nn::ModuleList());
  int64_t out = ch[0];
  for (size_t i = 0; i < n; ++i) {
    const int64_t in = out;
    out = ch[i];
    down_list.emplace_back(c, in, out, temb, c.down_block_types[i] == "CrossAttnDownBlock2D",
                           i + 1 < n, c.attention_heads[i]);
    down_blocks->push_back(down_list.back());
  }
  mid_block =
      register_module("mid_block", UNetMidBlock(c, ch[n - 1], temb, c.attention_heads[n - 1]));
  up_blocks = register_module("up_blocks", torch::nn::ModuleList());
  const std::vector<int64_t> rev(ch.rbegin(), ch.rend());
  out = rev[0];
  for (size_t i = 0; i < n; ++i) {
    const int64_t prev_out = out;
    out = rev[i];
    const int64_t in = rev[std::min(i + 1, n - 1)];
    up_list.emplace_back(c, in, out, prev_out, temb, c.up_block_types[i] == "CrossAttnUpBlock2D",
                         i + 1 < n, c.attention_heads[n - 1 - i]);
    up_blocks->push_back(up_list.back());
  }
  conv_norm_out = register_module(
      "conv_norm_out",
      torch::nn::GroupNorm(torch::nn::GroupNormOptions(c.norm_num_groups, ch[0]).eps(c.norm_eps)));
  conv_out = register_module(
      "conv_out", torch::nn::Conv2d(torch::nn::Conv2dOptions(ch[0], c.out_channels, 3).padding(1)));
}

torch::Tensor UNet2DConditionModelImpl::time_embed(const torch::Tensor &timesteps,
                                                   torch::ScalarType dtype) {
  auto t = timestep_embedding(timesteps, config.block_out_channels[0], config.flip_sin_to_cos,
                              config.freq_shift);
  return time_embedding(t.to(conv_in->weight.device(), dtype));
}

void UNet2DConditionModelImpl::prepare() {
  torch::NoGradGuard no_grad;
  temb0_ = time_embed(torch::zeros({1}, torch::kLong), conv_in->weight.scalar_type());
}

torch::Tensor UNet2DConditionModelImpl::run(const torch::Tensor &sample, const torch::Tensor &temb,
                                            const torch::Tensor &context) {
  std::vector<torch::Tensor> skips;
  auto x = conv_in(sample);
  skips.push_back(x);
  for (auto &block : down_list) x = block(x, temb, context, skips);
  x = mid_block(x, temb, context);
  for (auto &block : up_list) x = block(x, temb, context, skips);
  return conv_out(silu_in_place(conv_norm_out(x)));
}

torch::Tensor UNet2DConditionModelImpl::forward(const torch::Tensor &sample,
                                                const torch::Tensor &context) {
  if (!temb0_.defined() || temb0_.device() != sample.device() ||
      temb0_.scalar_type() != sample.scalar_type())
    prepare();
  return run(sample, temb0_.expand({sample.size(0), temb0_.size(1)}), context);
}

torch::Tensor UNet2DConditionModelImpl::forward_timesteps(const torch::Tensor &sample,
                                                          const torch::Tensor &timesteps,
                                                          const torch::Tensor &context) {
  auto t = timesteps.dim() == 0 ? timesteps.unsqueeze(0) : timesteps;
  if (t.size(0) == 1) t = t.expand({sample.size(0)});
  return run(sample, time_embed(t, sample.scalar_type()), context);
}

UNet2DConditionModel load_unet(const std::string &weights_path, const std::string &config_path,
                               const torch::Device &device, torch::ScalarType dtype) {
  UNet2DConditionModel model(UNetConfig::from_json_file(config_path));
  auto w = load_weights(weights_path);
  load_state_dict(*model, w.tensors, weights_path);
  model->eval();
  model->to(device, dtype);
  model->prepare();
  return model;
}

}  // namespace talker::nn
