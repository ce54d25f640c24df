// SPDX-License-Identifier: LGPL-2.1-or-later
// Full-size MuseTalk v1.5 UNet + sd-vae-ft-mse or TAESD decoder (random
// weights): milliseconds per frame at several batch sizes.
//   musetalk_bench [--device cpu|cuda] [--dtype float32|float16|bfloat16] [--batches 1,4,8,16]
//   [--reps N]
//                  [--decoder sd-vae|taesd] [--peak-tflops T] [--warm-each 1]
// Also prints the FLOP rate the frame rate stands for (MuseTalk: ~800 GFLOP a
// frame with the SD-VAE decoder, ~213 with TAESD) and, given the device's
// peak (--peak-tflops, e.g. 989 for an H100 SXM's dense fp16/bf16), the
// fraction of it.
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <sstream>

#include "lib/nn/device.h"
#include "lib/nn/musetalk.h"

using namespace talker;
using Clock = std::chrono::steady_clock;

int main(int argc, char **argv) {
  std::string device_name = "cpu", dtype_name = "float32", batches_arg = "1,4,8,16",
              decoder = "sd-vae";
  int reps = 1;
  double peak_tflops = 0;
  bool warm_each = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--device")
      device_name = v;
    else if (k == "--dtype")
      dtype_name = v;
    else if (k == "--batches")
      batches_arg = v;
    else if (k == "--reps")
      reps = std::stoi(v);
    else if (k == "--decoder")
      decoder = v;
    else if (k == "--peak-tflops")
      peak_tflops = std::stod(v);
    else if (k == "--warm-each")
      warm_each = v == "1";
  }
  torch::Device device(device_name);
  auto dtype = dtype_name == "float16"    ? torch::kHalf
               : dtype_name == "bfloat16" ? torch::kBFloat16
                                          : torch::kFloat;
  nn::apply_thread_policy();  // as musetalklipsync: every CPU unless OMP_NUM_THREADS says
  std::vector<int64_t> batches;
  std::stringstream ss(batches_arg);
  for (std::string b; std::getline(ss, b, ',');) batches.push_back(std::stoll(b));

  std::string configs = std::string(TALKER_SOURCE_ROOT) + "/models/configs/";
  torch::InferenceMode guard;
  nn::MuseTalkModel m;
  m.unet =
      nn::UNet2DConditionModel(nn::UNetConfig::from_json_file(configs + "musetalk-v15-unet.json"));
  m.unet->eval();
  m.unet->to(device, dtype);
  if (decoder == "taesd") {
    m.taesd = nn::TaesdDecoder();
    m.taesd->eval();
    m.taesd->to(device, dtype);
  } else {
    m.vae = nn::AutoencoderKL(nn::VAEConfig::from_json_file(configs + "sd-vae-ft-mse.json"));
    m.vae->eval();
    m.vae->to(device, dtype);
  }
  m.unet->prepare();
  m.device = device;
  m.dtype = dtype;
  auto sync = [&] {
#ifdef TALKER_HAVE_CUDA
    if (device.is_cuda()) torch::cuda::synchronize();
#endif
  };
  std::printf("MuseTalk v1.5 UNet + %s decoder, random weights, %s %s, %d torch threads\n",
              decoder == "taesd" ? "TAESD" : "sd-vae-ft-mse", device.str().c_str(),
              dtype_name.c_str(), torch::get_num_threads());
  const double gflop_per_frame = decoder == "taesd" ? 213 : 800;
  std::printf("%6s %12s %12s %12s %10s %10s %8s\n", "batch", "UNet ms/fr", "dec. ms/fr",
              "total ms/fr", "fps", "TFLOP/s", "% peak");
  // Warm-up (allocator, kernels).
  m.generate(torch::randn({1, 8, 32, 32}), torch::randn({1, 50, 384}));
  for (int64_t b : batches) {
    auto latents = torch::randn({b, 8, 32, 32}).to(device, dtype);
    auto features = torch::randn({b, 50, 384});
    if (warm_each) m.generate(latents, features);  // warm at this batch's sizes too
    double unet_s = 0, vae_s = 0;
    for (int r = 0; r < reps; ++r) {
      auto ctx = nn::musetalk_positional_encoding(features.to(device)).to(dtype);
      sync();
      auto t0 = Clock::now();
      auto pred = m.unet(latents, ctx);
      sync();
      auto t1 = Clock::now();
      auto faces = m.taesd ? nn::musetalk_decode_to_bgr(m.taesd, pred)
                           : nn::musetalk_decode_to_bgr(m.vae, pred);
      sync();
      auto t2 = Clock::now();
      unet_s += std::chrono::duration<double>(t1 - t0).count();
      vae_s += std::chrono::duration<double>(t2 - t1).count();
    }
    double per = double(b) * reps;
    double total = (unet_s + vae_s) / per;
    const double tflops = gflop_per_frame / total / 1e3;
    char peak[16] = "-";
    if (peak_tflops > 0) std::snprintf(peak, sizeof peak, "%.1f", 100 * tflops / peak_tflops);
    std::printf("%6ld %12.1f %12.1f %12.1f %10.2f %10.3f %8s\n", long(b), unet_s / per * 1e3,
                vae_s / per * 1e3, total * 1e3, 1.0 / total, tflops, peak);
    std::fflush(stdout);
  }
  return 0;
}
