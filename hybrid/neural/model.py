"""VideoDenoiser: a UNet over a window of frames, conditioned on buffer channels.

Shapes: B clips, T frames per window, H x W pixels. Spatial layers see frames one by
one (T folded into the batch: (B*T, C, H, W)); temporal layers unfold T and mix
information across frames at every pixel, either with self-attention over T (each
pixel looks at its own location in every frame, with a sinusoidal frame-position
code) or with a 1-D convolution over T. Temporal layers sit at the lower
resolutions (``temporal_from_level``), where a pixel covers enough of the image that
moving surfaces stay within reach from frame to frame.

Inputs per frame, stacked as channels: the noisy frame (3), the condition (Cc), the
context frame (3: a clean frame already made, zeros where there is none) and the
context mask (1). Output: the prediction named by ``config.prediction_type``
(noise, v or the clean frame), (B, T, 3, H, W). The sampler ignores the prediction
at context frames (it already has them).

Residual branches end in zero-initialised layers, so a fresh model is an identity
on its skip paths and predicts 0: training starts from a stable point (the ADM /
diffusers recipe).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hybrid.neural.config import NeuralConfig


def sinusoidal_embedding(positions: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(N,) float positions (timesteps or frame indices) -> (N, dim) sin/cos features of geometric frequencies."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=positions.device) / half)
    args = positions.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def zero_init(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with the timestep embedding as a scale and shift after the second norm."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_init(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """x (N, in_ch, H, W), emb (N, emb_dim) -> (N, out_ch, H, W)."""
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class TemporalAttention(nn.Module):
    """Self-attention over the T frames of a window at each pixel, with a sinusoidal frame-position code."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = zero_init(nn.Linear(channels, channels))

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """x (B*T, C, H, W) with T = `frames` consecutive entries per clip -> the same shape."""
        bt, c, h, w = x.shape
        b = bt // frames
        tokens = x.reshape(b, frames, c, h * w).permute(0, 3, 1, 2).reshape(b * h * w, frames, c)
        pos = sinusoidal_embedding(torch.arange(frames, device=x.device), c).to(x.dtype)
        q, k, v = self.qkv(self.norm(tokens) + pos).chunk(3, dim=-1)
        split = lambda z: z.reshape(b * h * w, frames, self.heads, c // self.heads).transpose(1, 2)  # noqa: E731
        att = F.scaled_dot_product_attention(split(q), split(k), split(v))
        att = self.out(att.transpose(1, 2).reshape(b * h * w, frames, c))
        att = att.reshape(b, h * w, frames, c).permute(0, 2, 3, 1).reshape(bt, c, h, w)
        return x + att


class TemporalConv(nn.Module):
    """A 3-tap convolution over T at each pixel (zero padding at the window's ends)."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.conv = zero_init(nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0)))

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """x (B*T, C, H, W) -> the same shape."""
        bt, c, h, w = x.shape
        z = F.silu(self.norm(x)).reshape(bt // frames, frames, c, h, w).transpose(1, 2)  # (B, C, T, H, W)
        return x + self.conv(z).transpose(1, 2).reshape(bt, c, h, w)


class SpatialAttention(nn.Module):
    """Self-attention over the pixels of each frame: global context (e.g. where a shadow falls) at low resolution."""

    def __init__(self, channels: int, heads: int, groups: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = zero_init(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W) -> the same shape."""
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w).transpose(-1, -2).unbind(1)
        att = F.scaled_dot_product_attention(q, k, v)  # (N, heads, HW, C/heads)
        return x + self.out(att.transpose(-1, -2).reshape(n, c, h, w))


class Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Stage(nn.Module):
    """A ResBlock followed, at levels that have one, by a temporal layer."""

    def __init__(self, block: ResBlock, temporal: nn.Module | None) -> None:
        super().__init__()
        self.block, self.temporal = block, temporal

    def forward(self, x: torch.Tensor, emb: torch.Tensor, frames: int) -> torch.Tensor:
        x = self.block(x, emb)
        return self.temporal(x, frames) if self.temporal is not None else x


class VideoDenoiser(nn.Module):
    """The denoising network of the neural renderer, built from a NeuralConfig (see the module docstring)."""

    def __init__(self, config: NeuralConfig) -> None:
        super().__init__()
        self.config = config
        base, mults, groups = config.base_channels, config.channel_mults, config.groups
        emb_dim = 4 * base
        self.in_channels = 3 + config.condition_channels + 3 + 1

        self.time_mlp = nn.Sequential(nn.Linear(base, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.conv_in = nn.Conv2d(self.in_channels, base * mults[0], 3, padding=1)

        def stage(level: int, cin: int, cout: int) -> Stage:
            block = ResBlock(cin, cout, emb_dim, groups, config.dropout)
            return Stage(block, self._temporal(cout) if level >= config.temporal_from_level else None)

        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skip_channels = [base * mults[0]]
        ch = base * mults[0]
        for level, mult in enumerate(mults):
            stages = nn.ModuleList()
            for _ in range(config.res_blocks):
                stages.append(stage(level, ch, base * mult))
                ch = base * mult
                skip_channels.append(ch)
            self.down.append(stages)
            last = level == len(mults) - 1
            self.downsample.append(nn.Identity() if last else Downsample(ch))
            if not last:
                skip_channels.append(ch)

        deepest = len(mults) - 1
        self.mid1 = stage(deepest, ch, ch)
        self.mid_attention = SpatialAttention(ch, config.attention_heads, groups) if config.mid_attention else None
        self.mid2 = stage(deepest, ch, ch)

        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(len(mults))):
            stages = nn.ModuleList()
            for _ in range(config.res_blocks + 1):
                stages.append(stage(level, ch + skip_channels.pop(), base * mults[level]))
                ch = base * mults[level]
            self.up.append(stages)
            self.upsample.append(Upsample(ch) if level > 0 else nn.Identity())

        self.norm_out = nn.GroupNorm(groups, ch)
        self.conv_out = zero_init(nn.Conv2d(ch, 3, 3, padding=1))
        self._base = None
        if config.residual:
            from hybrid.neural.conditioning import condition_offsets

            self._base = condition_offsets(config.condition)["raster_beauty"]

    def _temporal(self, channels: int) -> nn.Module:
        if self.config.temporal == "attention":
            return TemporalAttention(channels, self.config.attention_heads)
        return TemporalConv(channels, self.config.groups)

    def forward(
        self,
        noisy: torch.Tensor,
        timesteps: torch.Tensor,
        cond: torch.Tensor,
        context: torch.Tensor,
        context_mask: torch.Tensor,
    ) -> torch.Tensor:
        """The prediction for every frame.

        noisy (B, T, 3, H, W); timesteps (B,) diffusion step per clip (int or float, or a
        scalar for all); cond (B, T, Cc, H, W); context (B, T, 3, H, W) clean frames where
        context_mask (B, T) bool is True; H and W multiples of ``config.factor``.
        Returns (B, T, 3, H, W).
        """
        b, t, _, h, w = noisy.shape
        f = self.config.factor
        if h % f or w % f:
            raise ValueError(f"frame size {h}x{w} must be a multiple of {f} for this model's {len(self.config.channel_mults)} levels")
        if cond.shape[2] != self.config.condition_channels:
            raise ValueError(
                f"the condition has {cond.shape[2]} channels but the model was built for "
                f"{self.config.condition_channels} ({', '.join(self.config.condition)})"
            )
        mask = context_mask.to(noisy.dtype)[:, :, None, None, None].expand(b, t, 1, h, w)
        x = torch.cat([noisy, cond.to(noisy.dtype), context.to(noisy.dtype) * mask, mask], dim=2)
        x = x.reshape(b * t, self.in_channels, h, w)

        timesteps = torch.as_tensor(timesteps, device=noisy.device).reshape(-1).expand(b)
        emb = self.time_mlp(sinusoidal_embedding(timesteps, self.config.base_channels).to(noisy.dtype))
        emb = emb.repeat_interleave(t, dim=0)  # one embedding per frame, frames of a clip adjacent

        h_ = self.conv_in(x)
        skips = [h_]
        for stages, down in zip(self.down, self.downsample):
            for s in stages:
                h_ = s(h_, emb, t)
                skips.append(h_)
            if not isinstance(down, nn.Identity):
                h_ = down(h_)
                skips.append(h_)
        h_ = self.mid1(h_, emb, t)
        if self.mid_attention is not None:
            h_ = self.mid_attention(h_)
        h_ = self.mid2(h_, emb, t)
        for stages, up in zip(self.up, self.upsample):
            for s in stages:
                h_ = s(torch.cat([h_, skips.pop()], dim=1), emb, t)
            h_ = up(h_)
        out = self.conv_out(F.silu(self.norm_out(h_))).reshape(b, t, 3, h, w)
        if self._base is not None:  # the raster frame plus the learned correction
            out = out + cond[:, :, self._base : self._base + 3].to(out.dtype)
        return out


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
