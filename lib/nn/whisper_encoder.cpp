// SPDX-License-Identifier: LGPL-2.1-or-later
#include "lib/nn/whisper_encoder.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <set>
#include <utility>
#include <vector>

#include "lib/common/error.h"
#include "lib/nn/weights.h"

namespace talker::nn {

namespace F = torch::nn::functional;

WhisperAttentionImpl::WhisperAttentionImpl(int64_t n_state, int64_t n_head_) : n_head(n_head_) {
  query = register_module("query", torch::nn::Linear(n_state, n_state));
  key = register_module("key",
                        torch::nn::Linear(torch::nn::LinearOptions(n_state, n_state).bias(false)));
  value = register_module("value", torch::nn::Linear(n_state, n_state));
  out = register_module("out", torch::nn::Linear(n_state, n_state));
}

torch::Tensor WhisperAttentionImpl::forward(const torch::Tensor &x) {
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2), D = C / n_head;
  // openai scales q and k by D^-1/4 each (not q by D^-1/2): same math, its rounding.
  const double scale = std::pow(static_cast<double>(D), -0.25);
  auto q = query(x).view({B, T, n_head, D}).permute({0, 2, 1, 3}) * scale;
  auto k = key(x).view({B, T, n_head, D}).permute({0, 2, 3, 1}) * scale;
  auto v = value(x).view({B, T, n_head, D}).permute({0, 2, 1, 3});
  auto w = torch::softmax(torch::matmul(q, k).to(torch::kFloat), -1).to(q.scalar_type());
  return out(torch::matmul(w, v).permute({0, 2, 1, 3}).flatten(2));
}

WhisperBlockImpl::WhisperBlockImpl(int64_t n_state, int64_t n_head) {
  attn = register_module("attn", WhisperAttention(n_state, n_head));
  attn_ln =
      register_module("attn_ln", torch::nn::LayerNorm(torch::nn::LayerNormOptions({n_state})));
  mlp = register_module(
      "mlp", torch::nn::Sequential(torch::nn::Linear(n_state, 4 * n_state), torch::nn::GELU(),
                                   torch::nn::Linear(4 * n_state, n_state)));
  mlp_ln = register_module("mlp_ln", torch::nn::LayerNorm(torch::nn::LayerNormOptions({n_state})));
}

torch::Tensor WhisperBlockImpl::forward(torch::Tensor x) {
  x = x + attn(attn_ln(x));
  return x + mlp->forward(mlp_ln(x));
}

WhisperEncoderImpl::WhisperEncoderImpl(const WhisperEncoderConfig &c) : config(c) {
  conv1 = register_module(
      "conv1", torch::nn::Conv1d(torch::nn::Conv1dOptions(c.n_mels, c.n_state, 3).padding(1)));
  conv2 = register_module(
      "conv2",
      torch::nn::Conv1d(torch::nn::Conv1dOptions(c.n_state, c.n_state, 3).stride(2).padding(1)));
  positional_embedding =
      register_buffer("positional_embedding", torch::zeros({c.n_ctx, c.n_state}));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.n_layer; ++i) blocks->push_back(WhisperBlock(c.n_state, c.n_head));
  ln_post =
      register_module("ln_post", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.n_state})));
}

torch::Tensor WhisperEncoderImpl::forward(const torch::Tensor &mel, WhisperLayout layout) {
  auto x = F::gelu(conv1(mel));
  x = F::gelu(conv2(x)).permute({0, 2, 1});
  const int64_t T = x.size(1);
  TORCH_CHECK(T <= config.n_ctx, "whisper input longer than the positional embedding");
  x = x + positional_embedding.slice(0, 0, T);
  std::vector<torch::Tensor> states{x};
  for (const auto &block : *blocks) {
    x = block->as<WhisperBlock>()->forward(x);
    states.push_back(x);
  }
  if (layout == WhisperLayout::HF) states.back() = ln_post(states.back());
  return torch::stack(states, 2);
}

namespace {

// transformers' names → openai's, for the part after "encoder.layers.N.".
const std::vector<std::pair<std::string, std::string>> kHfLayerNames = {
    {"self_attn.q_proj.", "attn.query."},
    {"self_attn.k_proj.", "attn.key."},
    {"self_attn.v_proj.", "attn.value."},
    {"self_attn.out_proj.", "attn.out."},
    {"self_attn_layer_norm.", "attn_ln."},
    {"fc1.", "mlp.0."},
    {"fc2.", "mlp.2."},
    {"final_layer_norm.", "mlp_ln."}};

std::string openai_name(const std::string &key) {
  if (key == "embed_positions.weight") return "positional_embedding";
  if (key.rfind("layer_norm.", 0) == 0) return "ln_post." + key.substr(11);
  if (key.rfind("layers.", 0) == 0) {
    auto dot = key.find('.', 7);
    if (dot == std::string::npos) return key;
    std::string index = key.substr(7, dot - 7), rest = key.substr(dot + 1);
    for (const auto &m : kHfLayerNames)
      if (rest.rfind(m.first, 0) == 0)
        return "blocks." + index + "." + m.second + rest.substr(m.first.size());
    return "blocks." + index + "." + rest;
  }
  return key;
}

int64_t head_count(const Weights &w, int64_t n_state) {
  if (w.root) {
    if (auto dims = w.root->get("dims"))
      if (auto h = dims->get("n_audio_head"); h && h->is(PyValue::Kind::Int)) return h->integer;
  }
  // A transformers model folder keeps its dimensions in config.json.
  auto slash = w.path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : w.path.substr(0, slash);
  std::ifstream in(dir + "/config.json");
  if (in) {
    auto cfg = nlohmann::json::parse(in, nullptr, false);
    if (cfg.is_object() && cfg.contains("encoder_attention_heads") &&
        cfg["encoder_attention_heads"].is_number_integer())
      return cfg["encoder_attention_heads"].get<int64_t>();
  }
  return n_state / 64;  // every published whisper size has 64-wide heads
}

}  // namespace

WhisperEncoder load_whisper_encoder(const std::string &path, const torch::Device &device) {
  Weights w = load_weights(path);
  StateDict encoder;
  for (const auto &kv : w.tensors) {
    std::string key = kv.first;
    if (key.rfind("model.", 0) == 0) key = key.substr(6);
    if (key.rfind("encoder.", 0) != 0) continue;  // decoder, projection heads
    std::string name = openai_name(key.substr(8));
    if (!encoder.emplace(name, kv.second).second)
      throw Error(path + ": key encoder." + name + " given twice (openai and transformers names?)");
  }
  if (encoder.empty()) throw Error(path + ": no whisper encoder keys (encoder.*) in this file");
  auto need = [&](const std::string &k) -> const torch::Tensor & {
    auto it = encoder.find(k);
    if (it == encoder.end()) throw Error(path + ": missing key encoder." + k);
    return it->second;
  };
  const auto &conv1 = need("conv1.weight");
  const auto &pos = need("positional_embedding");
  if (conv1.dim() != 3 || pos.dim() != 2)
    throw Error(path + ": encoder.conv1.weight / positional_embedding have unexpected ranks");
  WhisperEncoderConfig cfg;
  cfg.n_state = conv1.size(0);
  cfg.n_mels = conv1.size(1);
  cfg.n_ctx = pos.size(0);
  std::set<std::string> layers;
  for (const auto &kv : encoder)
    if (kv.first.rfind("blocks.", 0) == 0)
      layers.insert(kv.first.substr(7, kv.first.find('.', 7) - 7));
  cfg.n_layer = static_cast<int64_t>(layers.size());
  cfg.n_head = head_count(w, cfg.n_state);
  if (cfg.n_head <= 0 || cfg.n_state % cfg.n_head != 0)
    throw Error(path + ": " + std::to_string(cfg.n_state) + " channels do not split into " +
                std::to_string(cfg.n_head) + " heads");

  WhisperEncoder model(cfg);
  // Keys in messages are openai's names below "encoder.".
  load_state_dict(*model, encoder, path);
  model->eval();
  model->to(device);
  return model;
}

}  // namespace talker::nn
