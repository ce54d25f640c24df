// SPDX-License-Identifier: LGPL-2.1-or-later
#include "lib/nn/taesd.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <regex>

#include "lib/common/error.h"
#include "lib/nn/weights.h"

namespace talker::nn {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kChannels = 64;

torch::nn::Conv2d conv3x3(int64_t in, int64_t out, bool bias = true) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1).bias(bias));
}

}  // namespace

TaesdBlockImpl::TaesdBlockImpl(int64_t c) {
  conv =
      register_module("conv", torch::nn::Sequential(conv3x3(c, c), torch::nn::ReLU(), conv3x3(c, c),
                                                    torch::nn::ReLU(), conv3x3(c, c)));
}

torch::Tensor TaesdBlockImpl::forward(const torch::Tensor &x) {
  return torch::relu_(conv->forward(x).add_(x));  // skip: Identity (in == out)
}

TaesdDecoderImpl::TaesdDecoderImpl() {
  torch::nn::Sequential s;
  s->push_back(conv3x3(4, kChannels));
  s->push_back(torch::nn::ReLU());
  for (int stage = 0; stage < 3; ++stage) {
    for (int b = 0; b < 3; ++b) s->push_back(TaesdBlock(kChannels));
    s->push_back(torch::nn::Upsample(torch::nn::UpsampleOptions()
                                         .scale_factor(std::vector<double>{2, 2})
                                         .mode(torch::kNearest)));
    s->push_back(conv3x3(kChannels, kChannels, false));
  }
  s->push_back(TaesdBlock(kChannels));
  s->push_back(conv3x3(kChannels, 3));
  layers = register_module("layers", s);
}

torch::Tensor TaesdDecoderImpl::forward(const torch::Tensor &latents) {
  // DecoderTiny.forward: a soft clamp of the latents, the layers, then [0,1] → [-1,1].
  auto x = torch::tanh(latents / 3) * 3;
  return layers->forward(x).mul(2).sub(1);
}

bool is_taesd(const std::string &path) {
  if (fs::is_regular_file(path)) {
    // taesd_decoder.pth (any name): taesd.py's Sequential, "1.weight" its first conv.
    try {
      const auto w = load_weights(path);
      return w.tensors.count("1.weight") && w.tensors.at("1.weight").dim() == 4 &&
             w.tensors.at("1.weight").size(1) == 4;
    } catch (const std::exception &) {
      return false;
    }
  }
  const std::string config = path + "/config.json";
  std::ifstream in(config);
  if (!in) return false;
  auto j = nlohmann::json::parse(in, nullptr, false);
  return !j.is_discarded() && j.value("_class_name", "") == "AutoencoderTiny";
}

TaesdDecoder load_taesd_decoder(const std::string &path, const torch::Device &device,
                                torch::ScalarType dtype) {
  std::string weights;
  bool single_file = false;
  if (fs::is_directory(path)) {
    const std::string config = path + "/config.json";
    std::ifstream in(config);
    if (!in) throw Error(path + ": no config.json in this AutoencoderTiny folder");
    auto j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || j.value("_class_name", "") != "AutoencoderTiny")
      throw Error(config + ": not an AutoencoderTiny config");
    const auto channels = j.value("decoder_block_out_channels", std::vector<int64_t>{});
    const auto blocks = j.value("num_decoder_blocks", std::vector<int64_t>{});
    if (channels != std::vector<int64_t>{64, 64, 64, 64} ||
        blocks != std::vector<int64_t>{3, 3, 3, 1} || j.value("latent_channels", 4) != 4 ||
        j.value("act_fn", std::string("relu")) != "relu")
      throw Error(config +
                  ": only TAESD's SD 1.x layout is supported (64 channels, blocks "
                  "3,3,3,1, relu, 4 latent channels)");
    weights = diffusers_weights_file(path);
  } else {
    weights = path;
    single_file = true;
  }
  auto w = load_weights(weights);
  // diffusers: decoder.layers.<i>.*, encoder.* ignored; taesd_decoder.pth:
  // <i+1>.* (its index 0 is the Clamp that diffusers applies in forward()).
  static const std::regex pth_key(R"(^(\d+)\.(.*)$)");
  StateDict tensors;
  for (auto &kv : w.tensors) {
    std::string key;
    std::smatch m;
    if (single_file && std::regex_match(kv.first, m, pth_key) && std::stoi(m[1].str()) > 0)
      key = "layers." + std::to_string(std::stoi(m[1].str()) - 1) + "." + m[2].str();
    else if (!single_file && kv.first.rfind("decoder.", 0) == 0)
      key = kv.first.substr(8);
    else if (!single_file && kv.first.rfind("encoder.", 0) == 0)
      continue;
    else
      throw Error(weights + ": unexpected tensor " + kv.first + " for a TAESD decoder");
    tensors.emplace(key, kv.second);
  }
  TaesdDecoder model;
  load_state_dict(*model, tensors, weights);
  model->to(device, dtype);
  model->eval();
  return model;
}

}  // namespace talker::nn
