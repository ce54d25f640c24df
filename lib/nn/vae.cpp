// SPDX-License-Identifier: LGPL-2.1-or-later
#include "lib/nn/vae.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <regex>
#include <sys/stat.h>

#include "lib/common/error.h"
#include "lib/nn/weights.h"

namespace talker::nn {

namespace F = torch::nn::functional;
using torch::nn::Conv2dOptions;
using torch::nn::GroupNormOptions;

constexpr double kVaeEps = 1e-6;  // diffusers' AutoencoderKL blocks, unlike the UNet's 1e-5

VAEConfig VAEConfig::from_json_file(const std::string &path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open VAE config");
  auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Error(path + ": not a JSON object");
  VAEConfig c;
  auto read = [&](const char *key, auto &out) {
    if (!j.contains(key) || j[key].is_null()) return;
    try {
      out = j[key].get<std::decay_t<decltype(out)>>();
    } catch (const std::exception &) {
      throw Error(path + ": key " + key + " has an unexpected value " + j[key].dump());
    }
  };
  read("in_channels", c.in_channels);
  read("out_channels", c.out_channels);
  read("latent_channels", c.latent_channels);
  read("block_out_channels", c.block_out_channels);
  read("layers_per_block", c.layers_per_block);
  read("norm_num_groups", c.norm_num_groups);
  read("scaling_factor", c.scaling_factor);
  if (j.contains("act_fn") && j["act_fn"] != "silu")
    throw Error(path + ": act_fn " + j["act_fn"].dump() + " is not supported");
  for (const char *key : {"down_block_types", "up_block_types"})
    if (j.contains(key))
      for (const auto &t : j[key])
        if (t != "DownEncoderBlock2D" && t != "UpDecoderBlock2D")
          throw Error(path + ": unsupported block type " + t.dump());
  if (c.block_out_channels.empty()) throw Error(path + ": block_out_channels is empty");
  return c;
}

VAEMidBlockImpl::VAEMidBlockImpl(int64_t ch, int64_t groups) {
  resnet0 = ResnetBlock2D(ch, ch, 0, groups, kVaeEps);
  resnet1 = ResnetBlock2D(ch, ch, 0, groups, kVaeEps);
  resnets = register_module("resnets", torch::nn::ModuleList(resnet0, resnet1));
  attention = Attention(ch, ch, 1, ch, true, groups, kVaeEps);
  attentions = register_module("attentions", torch::nn::ModuleList(attention));
}

torch::Tensor VAEMidBlockImpl::forward(const torch::Tensor &x) {
  return resnet1(attention(resnet0(x)));
}

VAEBlockImpl::VAEBlockImpl(int64_t in, int64_t out, int64_t layers, int64_t groups, bool down,
                           bool resample) {
  resnets = register_module("resnets", torch::nn::ModuleList());
  for (int64_t i = 0; i < layers; ++i) {
    resnet_list.emplace_back(i == 0 ? in : out, out, 0, groups, kVaeEps);
    resnets->push_back(resnet_list.back());
  }
  if (resample && down) {
    downsampler = Downsample2D(out, 0);
    downsamplers = register_module("downsamplers", torch::nn::ModuleList(downsampler));
  } else if (resample) {
    upsampler = Upsample2D(out);
    upsamplers = register_module("upsamplers", torch::nn::ModuleList(upsampler));
  }
}

torch::Tensor VAEBlockImpl::forward(torch::Tensor x) {
  for (auto &r : resnet_list) x = r(x);
  if (downsampler) x = downsampler(x);
  if (upsampler) x = upsampler(x);
  return x;
}

VAEEncoderImpl::VAEEncoderImpl(const VAEConfig &c) {
  const auto &ch = c.block_out_channels;
  conv_in = register_module("conv_in",
                            torch::nn::Conv2d(Conv2dOptions(c.in_channels, ch[0], 3).padding(1)));
  down_blocks = register_module("down_blocks", torch::nn::ModuleList());
  int64_t out = ch[0];
  for (size_t i = 0; i < ch.size(); ++i) {
    const int64_t in = out;
    out = ch[i];
    blocks.emplace_back(in, out, c.layers_per_block, c.norm_num_groups, true, i + 1 < ch.size());
    down_blocks->push_back(blocks.back());
  }
  mid_block = register_module("mid_block", VAEMidBlock(ch.back(), c.norm_num_groups));
  conv_norm_out = register_module(
      "conv_norm_out",
      torch::nn::GroupNorm(GroupNormOptions(c.norm_num_groups, ch.back()).eps(kVaeEps)));
  conv_out = register_module(
      "conv_out", torch::nn::Conv2d(Conv2dOptions(ch.back(), 2 * c.latent_channels, 3).padding(1)));
}

torch::Tensor VAEEncoderImpl::forward(const torch::Tensor &image) {
  auto x = conv_in(image);
  for (auto &b : blocks) x = b(x);
  return conv_out(silu_in_place(conv_norm_out(mid_block(x))));
}

VAEDecoderImpl::VAEDecoderImpl(const VAEConfig &c) {
  const std::vector<int64_t> rev(c.block_out_channels.rbegin(), c.block_out_channels.rend());
  conv_in = register_module(
      "conv_in", torch::nn::Conv2d(Conv2dOptions(c.latent_channels, rev[0], 3).padding(1)));
  mid_block = register_module("mid_block", VAEMidBlock(rev[0], c.norm_num_groups));
  up_blocks = register_module("up_blocks", torch::nn::ModuleList());
  int64_t out = rev[0];
  for (size_t i = 0; i < rev.size(); ++i) {
    const int64_t in = out;
    out = rev[i];
    blocks.emplace_back(in, out, c.layers_per_block + 1, c.norm_num_groups, false,
                        i + 1 < rev.size());
    up_blocks->push_back(blocks.back());
  }
  conv_norm_out = register_module(
      "conv_norm_out",
      torch::nn::GroupNorm(GroupNormOptions(c.norm_num_groups, rev.back()).eps(kVaeEps)));
  conv_out = register_module(
      "conv_out", torch::nn::Conv2d(Conv2dOptions(rev.back(), c.out_channels, 3).padding(1)));
}

torch::Tensor VAEDecoderImpl::forward(const torch::Tensor &z) {
  auto x = mid_block(conv_in(z));
  for (auto &b : blocks) x = b(x);
  return conv_out(silu_in_place(conv_norm_out(x)));
}

AutoencoderKLImpl::AutoencoderKLImpl(const VAEConfig &c) : config(c) {
  encoder = register_module("encoder", VAEEncoder(c));
  decoder = register_module("decoder", VAEDecoder(c));
  quant_conv = register_module("quant_conv", torch::nn::Conv2d(Conv2dOptions(
                                                 2 * c.latent_channels, 2 * c.latent_channels, 1)));
  post_quant_conv = register_module(
      "post_quant_conv", torch::nn::Conv2d(Conv2dOptions(c.latent_channels, c.latent_channels, 1)));
}

std::pair<torch::Tensor, torch::Tensor> AutoencoderKLImpl::encode(const torch::Tensor &image) {
  auto moments = quant_conv(encoder(image)).chunk(2, 1);
  return {moments[0], moments[1].clamp(-30.0, 20.0)};
}

torch::Tensor AutoencoderKLImpl::decode(const torch::Tensor &z) {
  return decoder(post_quant_conv(z));
}

namespace {

bool is_file(const std::string &p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
bool is_dir(const std::string &p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

AutoencoderKL load_vae(const std::string &path, const torch::Device &device,
                       torch::ScalarType dtype) {
  std::string weights, config;
  if (is_dir(path)) {
    config = path + "/config.json";
    weights = diffusers_weights_file(path);
  } else {
    weights = path;
    auto slash = path.rfind('/');
    config =
        (slash == std::string::npos ? std::string(".") : path.substr(0, slash)) + "/config.json";
  }
  if (!is_file(config)) throw Error(path + ": VAE config " + config + " not found");
  AutoencoderKL model(VAEConfig::from_json_file(config));
  auto w = load_weights(weights);
  // Old checkpoints (sd-vae-ft-mse's .bin) name the mid-block attention's
  // projections query/key/value/proj_attn; diffusers converts them on load.
  static const std::regex old_name(
      R"(^(.*\.attentions\.\d+\.)(query|key|value|proj_attn)\.(weight|bias)$)");
  StateDict tensors;
  for (auto &kv : w.tensors) {
    std::smatch m;
    std::string key = kv.first;
    if (std::regex_match(kv.first, m, old_name)) {
      static const std::map<std::string, std::string> kNew = {
          {"query", "to_q"}, {"key", "to_k"}, {"value", "to_v"}, {"proj_attn", "to_out.0"}};
      key = m[1].str() + kNew.at(m[2].str()) + "." + m[3].str();
    }
    auto t = kv.second;
    // Some conversions store these projections as 1x1 convolutions.
    if (t.dim() == 4 && t.size(2) == 1 && t.size(3) == 1 &&
        key.find(".attentions.") != std::string::npos)
      t = t.flatten(1);
    if (!tensors.emplace(key, t).second)
      throw Error(weights + ": key " + key + " given under both old and new names");
  }
  load_state_dict(*model, tensors, weights);
  model->eval();
  model->to(device, dtype);
  return model;
}

}  // namespace talker::nn
