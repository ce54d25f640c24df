// SPDX-License-Identifier: LGPL-2.1-or-later
#include "lib/nn/musetalk.h"

#include <cmath>

#include "lib/common/error.h"

namespace talker::nn {

torch::Tensor musetalk_positional_table(int64_t T, int64_t d) {
  auto position = torch::arange(0, T, torch::kFloat).unsqueeze(1);
  auto div_term =
      torch::exp(torch::arange(0, d, 2, torch::kLong).to(torch::kFloat) * (-std::log(10000.0) / d));
  auto pe = torch::zeros({T, d});
  pe.slice(1, 0, d, 2).copy_(torch::sin(position * div_term));
  pe.slice(1, 1, d, 2).copy_(torch::cos(position * div_term));
  return pe;
}

torch::Tensor musetalk_positional_encoding(const torch::Tensor &x) {
  auto pe = musetalk_positional_table(x.size(1), x.size(2)).to(x.device(), x.scalar_type());
  return x + pe.unsqueeze(0);
}

torch::Tensor musetalk_preprocess_face(const torch::Tensor &face_bgr, bool half_mask) {
  if (face_bgr.dim() != 3 || face_bgr.size(2) != 3 || face_bgr.scalar_type() != torch::kByte)
    throw Error("face image must be uint8 [H, W, 3] BGR");
  // BGR→RGB, /255 (MuseTalk does it in float64, then float32).
  auto img = face_bgr.flip(2)
                 .to(torch::kDouble)
                 .div(255.0)
                 .to(torch::kFloat)
                 .permute({2, 0, 1})
                 .contiguous();
  if (half_mask) img.slice(1, img.size(1) / 2).zero_();
  return ((img - 0.5) / 0.5).unsqueeze(0);
}

namespace {
// Decoded images [B, 3, H, W] in [-1, 1] → uint8 BGR [B, H, W, 3] on the CPU.
// The conversion runs where the images are (float32 from there on), so a GPU
// sends back one uint8 tensor, a quarter of the float32 images' bytes.
torch::Tensor faces_to_bgr(const torch::Tensor &images) {
  auto image = (images.to(torch::kFloat) / 2 + 0.5).clamp(0, 1).permute({0, 2, 3, 1});
  return (image * 255).round().to(torch::kByte).flip(3).to(torch::kCPU).contiguous();
}
}  // namespace

torch::Tensor musetalk_decode_to_bgr(AutoencoderKL &vae, const torch::Tensor &latents) {
  return faces_to_bgr(vae->decode(latents * (1.0 / vae->config.scaling_factor)));
}

torch::Tensor musetalk_decode_to_bgr(TaesdDecoder &taesd, const torch::Tensor &latents) {
  return faces_to_bgr(taesd->forward(latents));
}

torch::Tensor musetalk_face_latents(AutoencoderKL &vae, const torch::Tensor &face_bgr) {
  const torch::Tensor p = vae->encoder->conv_in->weight;
  auto prep = [&](bool mask) {
    return musetalk_preprocess_face(face_bgr, mask).to(p.device(), p.scalar_type());
  };
  auto masked = vae->encode(prep(true)).first * vae->config.scaling_factor;
  auto full = vae->encode(prep(false)).first * vae->config.scaling_factor;
  return torch::cat({masked, full}, 1);
}

namespace {
// One host→device copy per input: from pinned memory, asynchronous, so the
// copy overlaps what the stream is still doing. On the CPU, nothing to copy.
torch::Tensor to_device(const torch::Tensor &t, const torch::Device &device) {
  if (!device.is_cuda()) return t;
  return t.pin_memory().to(device, /*non_blocking=*/true);
}
}  // namespace

torch::Tensor MuseTalkModel::generate(const torch::Tensor &latents, const torch::Tensor &features) {
  torch::InferenceMode guard;
  auto context =
      musetalk_positional_encoding(to_device(features.to(torch::kFloat), device)).to(dtype);
  auto pred = unet(to_device(latents, device).to(dtype), context);
  return taesd ? musetalk_decode_to_bgr(taesd, pred) : musetalk_decode_to_bgr(vae, pred);
}

torch::Tensor MuseTalkModel::generate_each(const torch::Tensor &latents,
                                           const torch::Tensor &features) {
  if (latents.size(0) == 1) return generate(latents, features);
  std::vector<torch::Tensor> faces;
  for (int64_t i = 0; i < latents.size(0); ++i)
    faces.push_back(generate(latents.slice(0, i, i + 1), features.slice(0, i, i + 1)));
  return torch::cat(faces);
}

MuseTalkModel load_musetalk(const std::string &unet_path, const std::string &unet_config,
                            const std::string &vae_path, const torch::Device &device,
                            torch::ScalarType dtype, const std::string &decoder) {
  if (decoder != "sd-vae" && decoder != "taesd")
    throw Error("decoder '" + decoder + "': sd-vae or taesd");
  if (decoder == "taesd" && !is_taesd(vae_path))
    throw Error(vae_path +
                ": not a TAESD decoder (an AutoencoderTiny folder or taesd_decoder.pth) "
                "as decoder=taesd needs");
  if (decoder == "sd-vae" && is_taesd(vae_path))
    throw Error(vae_path + ": a TAESD decoder: set decoder=taesd to use it");
  if (dtype == torch::kHalf && !device.is_cuda())
    throw Error(
        "float16 inference needs a CUDA device (CPU half convolutions are missing or slow)");
  MuseTalkModel m;
  m.unet = load_unet(unet_path, unet_config, device, dtype);
  if (decoder == "taesd")
    m.taesd = load_taesd_decoder(vae_path, device, dtype);
  else
    m.vae = load_vae(vae_path, device, dtype);
  m.device = device;
  m.dtype = dtype;
  return m;
}

}  // namespace talker::nn
