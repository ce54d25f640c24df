// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>

namespace talker::nn {

// Which hidden states a caller stacks. OpenAI: [embedding, block 1..N] as
// openai-whisper's encoder produces them (MuseTalk v1.0). HF: the same with
// ln_post applied to the last one, transformers' output_hidden_states
// (MuseTalk v1.5).
enum class WhisperLayout { OpenAI, HF };

struct WhisperEncoderConfig {
  int64_t n_mels = 80;
  int64_t n_ctx = 1500;
  int64_t n_state = 384;
  int64_t n_head = 6;
  int64_t n_layer = 4;
};

// openai-whisper's module names, so named_parameters() are the checkpoint keys
// (without the "encoder." prefix).
struct WhisperAttentionImpl : torch::nn::Module {
  WhisperAttentionImpl(int64_t n_state, int64_t n_head);
  torch::Tensor forward(const torch::Tensor &x);
  int64_t n_head;
  torch::nn::Linear query{nullptr}, key{nullptr}, value{nullptr}, out{nullptr};
};
TORCH_MODULE(WhisperAttention);

struct WhisperBlockImpl : torch::nn::Module {
  WhisperBlockImpl(int64_t n_state, int64_t n_head);
  torch::Tensor forward(torch::Tensor x);
  WhisperAttention attn{nullptr};
  torch::nn::LayerNorm attn_ln{nullptr};
  torch::nn::Sequential mlp{nullptr};  // 0: Linear, 1: GELU, 2: Linear
  torch::nn::LayerNorm mlp_ln{nullptr};
};
TORCH_MODULE(WhisperBlock);

struct WhisperEncoderImpl : torch::nn::Module {
  explicit WhisperEncoderImpl(const WhisperEncoderConfig &config);
  // mel [B, n_mels, T] → hidden states [B, T/2, n_layer+1, n_state]. T may be
  // shorter than whisper's 3000 frames (positions 0..T/2 are used).
  torch::Tensor forward(const torch::Tensor &mel, WhisperLayout layout);

  WhisperEncoderConfig config;
  torch::nn::Conv1d conv1{nullptr}, conv2{nullptr};
  torch::Tensor positional_embedding;
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm ln_post{nullptr};
};
TORCH_MODULE(WhisperEncoder);

// Loads the encoder of an openai checkpoint (tiny.pt: {"dims", "model_state_dict"})
// or a transformers one (pytorch_model.bin / model.safetensors, keys with or
// without "model."). Decoder keys are ignored; encoder keys must match exactly.
// The model is in eval mode on `device`. Throws talker::Error.
WhisperEncoder load_whisper_encoder(const std::string &path,
                                    const torch::Device &device = torch::kCPU);

}  // namespace talker::nn
