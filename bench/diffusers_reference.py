# SPDX-License-Identifier: LGPL-2.1-or-later
"""diffusers' eager forward passes for MuseTalk's two models, in plain PyTorch.

Used by diffusers_ratio.py when the diffusers package itself is not installed
(Debian has no package for it and the build machines have no PyPI). It runs
the same operations in the same order as diffusers 0.21 on torch 1.13
(AttnProcessor: baddbmm + softmax + bmm; UNet feature maps contiguous NCHW;
the VAE decoder channels-last after its mid-block attention), with diffusers'
parameter names, so diffusers' state dicts load into it unchanged. It is
checked against ../shared/golden (vectors written by diffusers itself) before
anything is timed: `python3 bench/diffusers_reference.py` prints the check.
"""
import json
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class ResnetBlock2D(nn.Module):
    def __init__(self, cin, cout, temb, groups, eps, scale=1.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout) if temb else None
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None
        self.scale = scale

    def forward(self, x, temb=None):
        h = self.conv1(F.silu(self.norm1(x)))
        if temb is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return (x + h) / self.scale


class Attention(nn.Module):
    def __init__(self, dim, ctx_dim, heads, head_dim, bias, groups=None, eps=1e-6,
                 upcast_softmax=False):
        super().__init__()
        inner = heads * head_dim
        self.heads, self.scale, self.upcast = heads, head_dim ** -0.5, upcast_softmax
        self.group_norm = nn.GroupNorm(groups, dim, eps=eps) if groups else None
        self.to_q = nn.Linear(dim, inner, bias=bias)
        self.to_k = nn.Linear(ctx_dim, inner, bias=bias)
        self.to_v = nn.Linear(ctx_dim, inner, bias=bias)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim), nn.Dropout(0.0)])

    def split(self, t):
        b, n, c = t.shape
        return t.reshape(b, n, self.heads, c // self.heads).permute(0, 2, 1, 3).reshape(
            b * self.heads, n, c // self.heads)

    def forward(self, x, ctx=None):
        residual, spatial = x, x.ndim == 4
        if spatial:
            b, c, hh, ww = x.shape
            x = x.view(b, c, hh * ww).transpose(1, 2)
        if self.group_norm is not None:
            x = self.group_norm(x.transpose(1, 2)).transpose(1, 2)
        ctx = x if ctx is None else ctx
        q, k, v = self.split(self.to_q(x)), self.split(self.to_k(ctx)), self.split(self.to_v(ctx))
        empty = torch.empty(q.shape[0], q.shape[1], k.shape[1], dtype=q.dtype, device=q.device)
        scores = torch.baddbmm(empty, q, k.transpose(-1, -2), beta=0, alpha=self.scale)
        if self.upcast:  # upcast_softmax
            scores = scores.float()
        probs = scores.softmax(dim=-1).to(v.dtype)
        out = torch.bmm(probs, v)
        bh, n, d = out.shape
        out = out.reshape(bh // self.heads, self.heads, n, d).permute(0, 2, 1, 3).reshape(
            bh // self.heads, n, d * self.heads)
        out = self.to_out[1](self.to_out[0](out))
        if spatial:
            out = out.transpose(-1, -2).reshape(b, c, hh, ww) + residual
        return out


class GEGLU(nn.Module):
    def __init__(self, dim, inner):
        super().__init__()
        self.proj = nn.Linear(dim, inner * 2)

    def forward(self, x):
        h, gate = self.proj(x).chunk(2, dim=-1)
        return h * F.gelu(gate)


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim, heads, head_dim, ctx_dim):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(dim) for _ in range(3))
        self.attn1 = Attention(dim, dim, heads, head_dim, False)
        self.attn2 = Attention(dim, ctx_dim, heads, head_dim, False)
        self.ff = nn.Module()
        self.ff.net = nn.ModuleList([GEGLU(dim, 4 * dim), nn.Dropout(0.0), nn.Linear(4 * dim, dim)])

    def forward(self, x, ctx):
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), ctx) + x
        h = self.norm3(x)
        for layer in self.ff.net:
            h = layer(h)
        return h + x


class Transformer2DModel(nn.Module):
    def __init__(self, ch, heads, ctx_dim, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch, eps=1e-6)
        self.proj_in = nn.Conv2d(ch, ch, 1)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(ch, heads, ch // heads,
                                                                       ctx_dim)])
        self.proj_out = nn.Conv2d(ch, ch, 1)

    def forward(self, x, ctx):
        b, c, hh, ww = x.shape
        h = self.proj_in(self.norm(x)).permute(0, 2, 3, 1).reshape(b, hh * ww, c)
        for block in self.transformer_blocks:
            h = block(h, ctx)
        h = h.reshape(b, hh, ww, c).permute(0, 3, 1, 2).contiguous()
        return self.proj_out(h) + x


class Downsample2D(nn.Module):
    def __init__(self, ch, padding=1):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=padding)

    def forward(self, x):
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample2D(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        if x.shape[0] >= 64:
            x = x.contiguous()
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Block(nn.Module):
    """Cross-attention or plain down/up block (diffusers' names: resnets, attentions, ...)."""

    def __init__(self, resnets, attentions, sampler_name, sampler):
        super().__init__()
        self.resnets = nn.ModuleList(resnets)
        if attentions:
            self.attentions = nn.ModuleList(attentions)
        if sampler is not None:
            setattr(self, sampler_name, nn.ModuleList([sampler]))
        self.sampler_name = sampler_name if sampler is not None else None


class UNet2DConditionModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        ch, g, eps = c["block_out_channels"], c["norm_num_groups"], c["norm_eps"]
        heads = c["attention_head_dim"]  # diffusers passes it as the head count
        heads = heads if isinstance(heads, list) else [heads] * len(ch)
        n, layers, ctx, temb = len(ch), c["layers_per_block"], c["cross_attention_dim"], ch[0] * 4
        self.base = ch[0]
        self.conv_in = nn.Conv2d(c["in_channels"], ch[0], 3, padding=1)
        self.time_embedding = nn.Module()
        self.time_embedding.linear_1 = nn.Linear(ch[0], temb)
        self.time_embedding.linear_2 = nn.Linear(temb, temb)
        self.down_blocks = nn.ModuleList()
        out = ch[0]
        for i, kind in enumerate(c["down_block_types"]):
            cin, out = out, ch[i]
            cross = kind == "CrossAttnDownBlock2D"
            self.down_blocks.append(Block(
                [ResnetBlock2D(cin if j == 0 else out, out, temb, g, eps) for j in range(layers)],
                [Transformer2DModel(out, heads[i], ctx, g) for _ in range(layers)] if cross else None,
                "downsamplers", Downsample2D(out, c["downsample_padding"]) if i < n - 1 else None))
        self.mid_block = Block([ResnetBlock2D(ch[-1], ch[-1], temb, g, eps, c["mid_block_scale_factor"])
                                for _ in range(2)], [Transformer2DModel(ch[-1], heads[-1], ctx, g)],
                               None, None)
        self.up_blocks = nn.ModuleList()
        rev, rheads, prev = list(reversed(ch)), list(reversed(heads)), ch[-1]
        for i, kind in enumerate(c["up_block_types"]):
            out, cin = rev[i], rev[min(i + 1, n - 1)]
            cross = kind == "CrossAttnUpBlock2D"
            resnets = [ResnetBlock2D((prev if j == 0 else out) + (cin if j == layers else out), out,
                                     temb, g, eps) for j in range(layers + 1)]
            self.up_blocks.append(Block(
                resnets, [Transformer2DModel(out, rheads[i], ctx, g) for _ in range(layers + 1)]
                if cross else None, "upsamplers", Upsample2D(out) if i < n - 1 else None))
            prev = out
        self.conv_norm_out = nn.GroupNorm(g, ch[0], eps=eps)
        self.conv_out = nn.Conv2d(ch[0], c["out_channels"], 3, padding=1)

    def forward(self, x, timesteps, ctx):
        half = self.base // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
        t = timesteps.expand(x.shape[0])[:, None].float() * freqs[None]
        t = torch.cat([torch.cos(t), torch.sin(t)], dim=-1).to(x.dtype)  # flip_sin_to_cos
        temb = self.time_embedding.linear_2(F.silu(self.time_embedding.linear_1(t)))
        x = self.conv_in(x)
        skips = [x]
        for block in self.down_blocks:
            for j, resnet in enumerate(block.resnets):
                x = resnet(x, temb)
                if hasattr(block, "attentions"):
                    x = block.attentions[j](x, ctx)
                skips.append(x)
            if block.sampler_name:
                x = block.downsamplers[0](x)
                skips.append(x)
        x = self.mid_block.resnets[0](x, temb)
        x = self.mid_block.attentions[0](x, ctx)
        x = self.mid_block.resnets[1](x, temb)
        for block in self.up_blocks:
            for j, resnet in enumerate(block.resnets):
                x = resnet(torch.cat([x, skips.pop()], dim=1), temb)
                if hasattr(block, "attentions"):
                    x = block.attentions[j](x, ctx)
            if block.sampler_name:
                x = block.upsamplers[0](x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class VAEDecoder(nn.Module):
    """AutoencoderKL's post_quant_conv + decoder (diffusers' names under decoder.)."""

    def __init__(self, c):
        super().__init__()
        ch, g, layers = c["block_out_channels"], c["norm_num_groups"], c["layers_per_block"]
        self.post_quant_conv = nn.Conv2d(c["latent_channels"], c["latent_channels"], 1)
        d = self.decoder = nn.Module()
        d.conv_in = nn.Conv2d(c["latent_channels"], ch[-1], 3, padding=1)
        d.mid_block = Block([ResnetBlock2D(ch[-1], ch[-1], 0, g, 1e-6) for _ in range(2)],
                            [Attention(ch[-1], ch[-1], 1, ch[-1], True, g, 1e-6, True)], None, None)
        d.up_blocks = nn.ModuleList()
        rev, prev = list(reversed(ch)), ch[-1]
        for i in range(len(ch)):
            d.up_blocks.append(Block(
                [ResnetBlock2D(prev if j == 0 else rev[i], rev[i], 0, g, 1e-6)
                 for j in range(layers + 1)], None, "upsamplers",
                Upsample2D(rev[i]) if i < len(ch) - 1 else None))
            prev = rev[i]
        d.conv_norm_out = nn.GroupNorm(g, ch[0], eps=1e-6)
        d.conv_out = nn.Conv2d(ch[0], c["out_channels"], 3, padding=1)

    def forward(self, z):
        d = self.decoder
        x = d.conv_in(self.post_quant_conv(z))
        x = d.mid_block.resnets[0](x)
        x = d.mid_block.attentions[0](x)
        x = d.mid_block.resnets[1](x)
        for block in d.up_blocks:
            for resnet in block.resnets:
                x = resnet(x)
            if block.sampler_name:
                x = block.upsamplers[0](x)
        return d.conv_out(F.silu(d.conv_norm_out(x)))


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    kinds = {"F32": torch.float32, "I64": torch.int64, "U8": torch.uint8}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[begin:end]), dtype=kinds[info["dtype"]]).reshape(
            info["shape"])
    return out


def check_against_golden(golden):
    """diffusers' own outputs (../shared/golden) from this transcription, within the manifests'
    tolerances; returns the worst differences."""
    torch.set_num_threads(1)
    with open(os.path.join(golden, "unet_small/config.json")) as f:
        unet = UNet2DConditionModel(json.load(f)).eval()
    unet.load_state_dict(torch.load(os.path.join(golden, "unet_small/unet.pth"), map_location="cpu"))
    inp = load_safetensors(os.path.join(golden, "unet_small/inputs.safetensors"))
    exp = load_safetensors(os.path.join(golden, "unet_small/expected.safetensors"))
    with torch.inference_mode():
        out = unet(inp["latent_model_input"], inp["timesteps"], exp["audio_feature_pe"])
    unet_diff = (out - exp["unet_out_pe_audio"]).abs().max().item()

    with open(os.path.join(golden, "vae_small/config.json")) as f:
        vae = VAEDecoder(json.load(f)).eval()
    state = torch.load(os.path.join(golden, "vae_small/diffusion_pytorch_model.bin"), map_location="cpu")
    vae.load_state_dict({k: v for k, v in state.items()
                         if k.startswith("decoder.") or k.startswith("post_quant_conv.")})
    vexp = load_safetensors(os.path.join(golden, "vae_small/expected.safetensors"))
    with torch.inference_mode():
        decoded = vae(vexp["decoder_input_latents"] * (1 / 0.18215))
    vae_diff = (decoded - vexp["decoded"]).abs().max().item()
    return unet_diff, vae_diff


if __name__ == "__main__":
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    golden = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "..", "shared", "golden")
    u, v = check_against_golden(golden)
    # The manifests' tolerances: unet_out_pe_audio 1e-4, decoded 1e-3.
    print(f"UNet vs diffusers' golden output: max |diff| {u:.3g} (tolerance 1e-4)")
    print(f"VAE decoder vs diffusers' golden output: max |diff| {v:.3g} (tolerance 1e-3)")
    sys.exit(0 if u <= 1e-4 and v <= 1e-3 else 1)
