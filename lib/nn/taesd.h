// SPDX-License-Identifier: LGPL-2.1-or-later
// TAESD's decoder (diffusers AutoencoderTiny / madebyollin/taesd): a tiny
// convolutional decoder for Stable Diffusion latents, ~35 GFLOP for a 256²
// face instead of the SD-VAE's ~622. It decodes MuseTalk's latents directly
// (scaling factor 1: it is trained on the already-scaled latents).
#pragma once

#include <torch/torch.h>

#include <string>

namespace talker::nn {

// AutoencoderTinyBlock: conv-relu-conv-relu-conv, plus the input, then relu.
struct TaesdBlockImpl : torch::nn::Module {
  explicit TaesdBlockImpl(int64_t channels);
  torch::Tensor forward(const torch::Tensor &x);
  torch::nn::Sequential conv{nullptr};
};
TORCH_MODULE(TaesdBlock);

// DecoderTiny with the SD 1.x layout (64 channels, blocks 3,3,3,1):
// layers 0 conv 4→64, 1 relu, then per stage three blocks, ×2 nearest
// upsampling and a conv without bias, and last one block and a conv 64→3.
struct TaesdDecoderImpl : torch::nn::Module {
  TaesdDecoderImpl();
  // Latents [B,4,h,w] (MuseTalk's UNet space) → image [B,3,8h,8w], about
  // [-1,1] (diffusers' decode convention: tanh(z/3)·3 in, ×2−1 out).
  torch::Tensor forward(const torch::Tensor &latents);
  torch::nn::Sequential layers{nullptr};
};
TORCH_MODULE(TaesdDecoder);

// Loads the decoder from a diffusers AutoencoderTiny folder (config.json and
// diffusion_pytorch_model.safetensors or .bin: its decoder.layers.*) or from
// madebyollin/taesd's taesd_decoder.pth (the same tensors, indices one up).
// Throws talker::Error naming the file on a missing or extra tensor or a
// config this layout does not match.
TaesdDecoder load_taesd_decoder(const std::string &path, const torch::Device &device = torch::kCPU,
                                torch::ScalarType dtype = torch::kFloat);

// True when `path` is a TAESD decoder (taesd_decoder.pth, or a folder whose
// config.json names AutoencoderTiny).
bool is_taesd(const std::string &path);

}  // namespace talker::nn
