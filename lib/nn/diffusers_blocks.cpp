// SPDX-License-Identifier: LGPL-2.1-or-later
#include "lib/nn/diffusers_blocks.h"

namespace talker::nn {

namespace F = torch::nn::functional;

namespace {
// ATen's linear, not the C++ frontend's F::linear (what Linear::forward
// calls): for 3-D input ATen folds the batch into one GEMM with the bias
// fused (addmm), as PyTorch from Python does, where F::linear runs matmul and
// adds the bias in a second pass over the output (measured: the full UNet at
// batch 4 spent ~1 s more in its linear layers).
torch::Tensor linear(const torch::nn::LinearImpl &layer, const torch::Tensor &x) {
  return at::linear(x, layer.weight, layer.bias);
}
}  // namespace
using torch::nn::Conv2dOptions;
using torch::nn::GroupNormOptions;
using torch::nn::LinearOptions;

ResnetBlock2DImpl::ResnetBlock2DImpl(int64_t in, int64_t out, int64_t temb_channels, int64_t groups,
                                     double eps, double scale)
    : output_scale_factor(scale) {
  norm1 = register_module("norm1", torch::nn::GroupNorm(GroupNormOptions(groups, in).eps(eps)));
  conv1 = register_module("conv1", torch::nn::Conv2d(Conv2dOptions(in, out, 3).padding(1)));
  if (temb_channels > 0)
    time_emb_proj = register_module("time_emb_proj", torch::nn::Linear(temb_channels, out));
  norm2 = register_module("norm2", torch::nn::GroupNorm(GroupNormOptions(groups, out).eps(eps)));
  conv2 = register_module("conv2", torch::nn::Conv2d(Conv2dOptions(out, out, 3).padding(1)));
  if (in != out)
    conv_shortcut = register_module("conv_shortcut", torch::nn::Conv2d(Conv2dOptions(in, out, 1)));
}

torch::Tensor ResnetBlock2DImpl::forward(const torch::Tensor &x, const torch::Tensor &temb) {
  // In place wherever the input is a temporary of this block: the same
  // values bit for bit (addition commutes), one activation-sized allocation
  // (fresh, page-faulted memory for large maps) less each time.
  auto h = conv1(silu_in_place(norm1(x)));
  if (time_emb_proj && temb.defined())
    h.add_(time_emb_proj(F::silu(temb)).unsqueeze(-1).unsqueeze(-1));
  h = conv2(silu_in_place(norm2(h)));
  h.add_(conv_shortcut ? conv_shortcut(x) : x);
  return output_scale_factor == 1.0 ? h : h.div_(output_scale_factor);
}

Downsample2DImpl::Downsample2DImpl(int64_t channels, int64_t padding_) : padding(padding_) {
  conv = register_module(
      "conv", torch::nn::Conv2d(Conv2dOptions(channels, channels, 3).stride(2).padding(padding)));
}

torch::Tensor Downsample2DImpl::forward(const torch::Tensor &x) {
  if (padding == 0)
    return conv(F::pad(x, F::PadFuncOptions({0, 1, 0, 1}).mode(torch::kConstant).value(0)));
  return conv(x);
}

Upsample2DImpl::Upsample2DImpl(int64_t channels) {
  conv =
      register_module("conv", torch::nn::Conv2d(Conv2dOptions(channels, channels, 3).padding(1)));
}

torch::Tensor Upsample2DImpl::forward(const torch::Tensor &x,
                                      std::optional<std::vector<int64_t>> size) {
  auto opts = F::InterpolateFuncOptions().mode(torch::kNearest);
  if (size)
    opts.size(*size);
  else
    opts.scale_factor(std::vector<double>{2.0, 2.0});
  // Channels-last input (the VAE decoder's, from its mid-block attention)
  // stays channels-last, where oneDNN's 3x3 convolutions are much faster.
  // Like diffusers, only batches of 64 or more are made contiguous: nearest
  // upsampling of those fails otherwise (pytorch#81665). bfloat16 on the CPU
  // goes back to NCHW too: libtorch 1.13's CPU kernels gave garbage faces
  // (PSNR 10 dB against float32's) with channels-last bfloat16 up-blocks.
  const bool nchw = x.size(0) >= 64 || (x.is_cpu() && x.scalar_type() != torch::kFloat);
  return conv(F::interpolate(nchw ? x.contiguous() : x, opts));
}

AttentionImpl::AttentionImpl(int64_t query_dim, int64_t context_dim, int64_t heads_,
                             int64_t head_dim_, bool qkv_bias, int64_t norm_groups, double norm_eps)
    : heads(heads_), head_dim(head_dim_), scale(1.0 / std::sqrt(double(head_dim_))) {
  const int64_t inner = heads * head_dim;
  if (norm_groups > 0)
    group_norm = register_module(
        "group_norm", torch::nn::GroupNorm(GroupNormOptions(norm_groups, query_dim).eps(norm_eps)));
  to_q = register_module("to_q", torch::nn::Linear(LinearOptions(query_dim, inner).bias(qkv_bias)));
  to_k =
      register_module("to_k", torch::nn::Linear(LinearOptions(context_dim, inner).bias(qkv_bias)));
  to_v =
      register_module("to_v", torch::nn::Linear(LinearOptions(context_dim, inner).bias(qkv_bias)));
  to_out = register_module("to_out", torch::nn::ModuleList(torch::nn::Linear(inner, query_dim),
                                                           torch::nn::Dropout(0.0)));
}

torch::Tensor AttentionImpl::attend(const torch::Tensor &tokens, const torch::Tensor &context) {
  const auto &ctx = context.defined() ? context : tokens;
  const int64_t B = tokens.size(0), N = tokens.size(1), M = ctx.size(1);
  // diffusers' AttnProcessor: heads folded into the batch, the scale applied
  // inside the GEMM (baddbmm's alpha) rather than in a pass over the scores.
  auto heads_first = [&](const torch::Tensor &t, int64_t len) {
    return t.view({B, len, heads, head_dim})
        .permute({0, 2, 1, 3})
        .reshape({B * heads, len, head_dim});
  };
  auto q = heads_first(linear(*to_q, tokens), N);
  auto k = heads_first(linear(*to_k, ctx), M);
  auto v = heads_first(linear(*to_v, ctx), M);
  auto scores = at::baddbmm(at::empty({B * heads, N, M}, q.options()), q, k.transpose(1, 2),
                            /*beta=*/0, /*alpha=*/scale);
  // The VAE's attention upcasts the softmax (upcast_softmax=True); for fp32 it is a no-op.
  auto probs = torch::softmax(scores.to(torch::kFloat), -1).to(q.scalar_type());
  auto out = at::bmm(probs, v)
                 .view({B, heads, N, head_dim})
                 .permute({0, 2, 1, 3})
                 .reshape({B, N, heads * head_dim});
  return linear(*to_out[0]->as<torch::nn::Linear>(), out);
}

torch::Tensor AttentionImpl::forward(const torch::Tensor &x, const torch::Tensor &context) {
  if (x.dim() == 3) return attend(x, context);
  // Feature map: normalise, attend over the H*W positions, add the residual.
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  auto h = group_norm ? group_norm(x) : x;
  h = h.view({B, C, H * W}).transpose(1, 2);
  h = attend(h, context);
  return h.transpose(1, 2).reshape({B, C, H, W}).add_(x);
}

GEGLUImpl::GEGLUImpl(int64_t dim_in, int64_t dim_out) {
  proj = register_module("proj", torch::nn::Linear(dim_in, dim_out * 2));
}

torch::Tensor GEGLUImpl::forward(const torch::Tensor &x) {
  auto parts = linear(*proj, x).chunk(2, -1);
  return F::gelu(parts[1]).mul_(parts[0]);
}

FeedForwardImpl::FeedForwardImpl(int64_t dim) {
  geglu = GEGLU(dim, 4 * dim);
  out = torch::nn::Linear(4 * dim, dim);
  net = register_module("net", torch::nn::ModuleList(geglu, torch::nn::Dropout(0.0), out));
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor &x) {
  return linear(*out, geglu(x));
}

BasicTransformerBlockImpl::BasicTransformerBlockImpl(int64_t dim, int64_t heads, int64_t head_dim,
                                                     int64_t context_dim) {
  auto ln = [&] { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-5)); };
  norm1 = register_module("norm1", ln());
  attn1 = register_module("attn1", Attention(dim, dim, heads, head_dim, false));
  norm2 = register_module("norm2", ln());
  attn2 = register_module("attn2", Attention(dim, context_dim, heads, head_dim, false));
  norm3 = register_module("norm3", ln());
  ff = register_module("ff", FeedForward(dim));
}

torch::Tensor BasicTransformerBlockImpl::forward(torch::Tensor x, const torch::Tensor &context) {
  x = attn1(norm1(x)).add_(x);
  x = attn2(norm2(x), context).add_(x);
  return ff(norm3(x)).add_(x);
}

Transformer2DModelImpl::Transformer2DModelImpl(int64_t channels, int64_t heads, int64_t context_dim,
                                               int64_t groups, int64_t layers) {
  norm =
      register_module("norm", torch::nn::GroupNorm(GroupNormOptions(groups, channels).eps(1e-6)));
  proj_in = register_module("proj_in", torch::nn::Conv2d(Conv2dOptions(channels, channels, 1)));
  transformer_blocks = register_module("transformer_blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < layers; ++i) {
    blocks.emplace_back(channels, heads, channels / heads, context_dim);
    transformer_blocks->push_back(blocks.back());
  }
  proj_out = register_module("proj_out", torch::nn::Conv2d(Conv2dOptions(channels, channels, 1)));
}

torch::Tensor Transformer2DModelImpl::forward(const torch::Tensor &x,
                                              const torch::Tensor &context) {
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  auto h = proj_in(norm(x));
  h = h.permute({0, 2, 3, 1}).reshape({B, H * W, C});
  for (auto &block : blocks) h = block(h, context);
  h = h.reshape({B, H, W, C}).permute({0, 3, 1, 2}).contiguous();
  return proj_out(h).add_(x);
}

}  // namespace talker::nn
