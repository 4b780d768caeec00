"""VST-UNet: a 4D spatio-temporal U-Net that scores every video of a class for selection (Sec. 3.1 of the paper).

Input: the VAE latents of all `N` videos of one class, `(N, T, C, h, w)`, treated as one 4D volume (videos × time ×
height × width). Each block is a 3D convolution over (time, h, w) inside every video followed by inter-video mixing:
a linear map of the mean over the `N` videos added back to every video, so the block is equivariant to the order of
the videos (the pool has no natural order; a convolution along the video axis would make selection order-dependent).
A 2-level U-Net (spatial down/up-sampling, skip connections) ends in global pooling over (T, h, w): the penultimate
features are the per-video embeddings `f` `(N, D)`; heads give selection probabilities `p` `(N,)` (sigmoid) and class
logits `(N, K)` for the cross-entropy term of Eq. 3.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn


class _Block4D(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = nn.Conv3d(c_in, c_out, 3, padding=1)
        self.conv2 = nn.Conv3d(c_out, c_out, 3, padding=1)
        self.norm1 = nn.GroupNorm(min(8, c_out), c_out)
        self.norm2 = nn.GroupNorm(min(8, c_out), c_out)
        self.mix = nn.Conv3d(c_out, c_out, 1)  # inter-video: from the class mean, added to every video
        self.skip = nn.Conv3d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, T, h, w)
        h = F.silu(self.norm1(self.conv1(x)))
        h = h + self.mix(h.mean(0, keepdim=True))
        h = F.silu(self.norm2(self.conv2(h)))
        return h + self.skip(x)


class VSTUNet(nn.Module, PyTorchModelHubMixin, library_name="hf_vdd",
              tags=["hf_vdd", "dataset-distillation", "video-selection", "vst-unet"]):
    """Per-video selection probabilities and embeddings from a class's latents.

    Args:
        in_channels: latent channels (4 for an AutoencoderKL).
        num_classes: classes of the pool (cross-entropy head).
        base_channels: width of the first level (doubled at each of the 2 lower levels).
        embed_dim: size of the embeddings `f`.
    """

    def __init__(self, in_channels: int = 4, num_classes: int = 10, base_channels: int = 16, embed_dim: int = 64):
        super().__init__()
        b = base_channels
        self.num_classes = num_classes
        self.enc1, self.enc2 = _Block4D(in_channels, b), _Block4D(b, 2 * b)
        self.mid = _Block4D(2 * b, 4 * b)
        self.dec2, self.dec1 = _Block4D(6 * b, 2 * b), _Block4D(3 * b, b)
        self.proj = nn.Linear(b, embed_dim)
        self.score_head = nn.Linear(embed_dim, 1)
        self.class_head = nn.Linear(embed_dim, num_classes)

    @staticmethod
    def _down(x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool3d(x, (1, 2, 2), ceil_mode=True) if min(x.shape[-2:]) > 1 else x

    @staticmethod
    def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=like.shape[-3:], mode="nearest")

    def forward(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`latents` `(N, T, C, h, w)` → probabilities `(N,)` in (0, 1), embeddings `(N, D)`, logits `(N, K)`."""
        if latents.ndim != 5:
            raise ValueError(f"VST-UNet expects the latents of one class (N, T, C, h, w), got {tuple(latents.shape)}.")
        x = latents.permute(0, 2, 1, 3, 4)  # (N, C, T, h, w)
        s1 = self.enc1(x)
        s2 = self.enc2(self._down(s1))
        m = self.mid(self._down(s2))
        d2 = self.dec2(torch.cat([self._up(m, s2), s2], 1))
        d1 = self.dec1(torch.cat([self._up(d2, s1), s1], 1))
        f = self.proj(d1.mean(dim=(2, 3, 4)))
        return torch.sigmoid(self.score_head(F.silu(f))).squeeze(-1), f, self.class_head(F.silu(f))


def selection_losses(probs: torch.Tensor, embeddings: torch.Tensor, k: int,
                     temperature: float = 0.25) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Diversity (Eq. 1) and representativeness (Eq. 2) of the top-`k` videos, differentiable in `probs`.

    Forward values are those of the hard top-`k` set `S`; gradients come from relaxations with bounded gradients:
    - `L_div`: mean pairwise cosine similarity of the selected embeddings (0 when `k = 1`); the mask enters through a
      straight-through estimator (`w = mask + p - sg(p)`), so raising an unselected video's probability is rewarded
      when it is dissimilar to the selected ones.
    - `L_rep`: `1 - exp(-mean_t min_{i in S} ||x_t - x_i||)`. Eq. 2 as printed is a reward (Zhou et al., 2018) to
      maximise; as a loss to minimise, `1 - reward` is used (minimising `exp(-d)` would push the selection away from
      the class). Its gradient is that of the soft assignment `q_ti = softmax_i(logit p_i - ||x_t - x_i|| / T)`,
      which moves probability towards videos that are close to many others.
    Embeddings are centred on the class mean and L2-normalised first: raw pooled features share a large class
    component (cosine ~1 for every pair), which leaves Eq. 1 without signal.

    Returns the selection mask `(N,)`, `L_div` and `L_rep`.
    """
    n = len(probs)
    picked = probs.topk(k).indices.sort().values  # integer indices, not a boolean mask: no data-dependent shape
    mask = torch.zeros_like(probs)
    mask[picked] = 1.0
    fn = F.normalize(embeddings - embeddings.mean(0, keepdim=True), dim=-1)
    if k > 1:
        w = mask + probs - probs.detach()
        cos = fn @ fn.T
        off = 1.0 - torch.eye(n, dtype=cos.dtype, device=cos.device)
        div = (w[:, None] * w[None, :] * cos * off).sum() / (k * (k - 1))
    else:
        div = probs.new_zeros(())
    dist = torch.cdist(fn, fn)  # (N, N), in [0, 2]
    hard = 1.0 - torch.exp(-dist[:, picked].min(1).values.mean())
    q = torch.softmax(torch.logit(probs.clamp(1e-6, 1 - 1e-6))[None, :] - dist / temperature, dim=1)
    soft = 1.0 - torch.exp(-(q * dist).sum(1).mean())
    rep = soft + (hard - soft).detach()
    return mask, div, rep
