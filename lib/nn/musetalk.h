// SPDX-License-Identifier: LGPL-2.1-or-later
// MuseTalk's inference around the UNet and VAE: audio positional encoding,
// face pre-processing into latents, and latents back to uint8 BGR faces.
#pragma once

#include <torch/torch.h>

#include <string>

#include "lib/nn/taesd.h"
#include "lib/nn/unet.h"
#include "lib/nn/vae.h"

namespace talker::nn {

// MuseTalk's PositionalEncoding(d_model): x [B, T, d] + sinusoid table[:T].
torch::Tensor musetalk_positional_encoding(const torch::Tensor &x);
// The table itself, [T, d] float32.
torch::Tensor musetalk_positional_table(int64_t T, int64_t d);

// MuseTalk's VAE.preprocess_img: uint8 BGR [H, W, 3] (256x256) → float [1, 3, H, W]
// in [-1, 1], RGB; half_mask zeroes the lower half (which then becomes -1).
torch::Tensor musetalk_preprocess_face(const torch::Tensor &face_bgr, bool half_mask);

// MuseTalk's VAE.decode_latents: (1/scaling) * latents → decode → (x/2+0.5)
// clamped → ×255 rounded → uint8 NHWC, RGB→BGR. Returns [B, H, W, 3] on CPU.
torch::Tensor musetalk_decode_to_bgr(AutoencoderKL &vae, const torch::Tensor &latents);
// The same with TAESD's decoder, which takes the UNet's latents as they are.
torch::Tensor musetalk_decode_to_bgr(TaesdDecoder &taesd, const torch::Tensor &latents);

// get_latents_for_unet with the posterior mean (deterministic): [1, 8, h, w] =
// masked-lower-half latents ‖ full-face latents, both scaled.
torch::Tensor musetalk_face_latents(AutoencoderKL &vae, const torch::Tensor &face_bgr);

// UNet + VAE decoder, on one device and dtype.
struct MuseTalkModel {
  UNet2DConditionModel unet{nullptr};
  AutoencoderKL vae{nullptr};
  TaesdDecoder taesd{nullptr};  // decoder=taesd: decodes instead of the VAE
  torch::Device device = torch::kCPU;
  torch::ScalarType dtype = torch::kFloat;

  // latents [B, 8, h, w] (masked ‖ reference), features [B, 50, 384] (raw
  // whisper chunks) → faces uint8 BGR [B, 8h, 8w, 3] on CPU.
  torch::Tensor generate(const torch::Tensor &latents, const torch::Tensor &features);
  // The same, one frame at a time. On the CPU a frame's result from a batch
  // differs in the last bits with the batch it shares (the BLAS and oneDNN
  // kernels block by the whole batch's size); frame by frame, a face never
  // depends on which frames or sessions it was batched with.
  torch::Tensor generate_each(const torch::Tensor &latents, const torch::Tensor &features);
};

// `decoder`: "sd-vae" (vae_path is sd-vae-ft-mse) or "taesd" (vae_path is a
// TAESD AutoencoderTiny folder or taesd_decoder.pth). A path of the other
// kind is refused with a message saying so.
MuseTalkModel load_musetalk(const std::string &unet_path, const std::string &unet_config,
                            const std::string &vae_path, const torch::Device &device = torch::kCPU,
                            torch::ScalarType dtype = torch::kFloat,
                            const std::string &decoder = "sd-vae");

}  // namespace talker::nn
