"""ConvNet3D: the VDSD student, made to work for any frame size >= 32 and any clip length T >= 4."""

from __future__ import annotations

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from ..utils import seeded_dropout


class ConvNet3D(nn.Module, PyTorchModelHubMixin, library_name="hf_vdd", tags=["video-classification", "hf_vdd"]):
    """Three 3-D conv blocks (widths 64/128/128, kernel (3, 7, 7), stride (1, 2, 2), ReLU, no normalisation),
    spatial max-pooling after the first two, He initialisation, global spatial max, dropout, a 1x1x1 conv head
    and max over time.

    Input: `(N, T, C, H, W)` float in normalised space (see `hf_vdd.training.normalize`).
    Output of `forward`: `(N, num_classes)` logits; `embed` gives the features matching losses compare, as the
    attribute `embedding` says: `"pooled"` (default) `(N, widths[-1])`, a spatial max and temporal mean;
    `"flatten"` the whole last feature map flattened, `(N, widths[-1] * T * H' * W')`, which keeps where and when a
    feature fired (the DM paper's and VDSD's `embed`).
    """

    EMBEDDINGS = ("pooled", "flatten")

    def __init__(self, num_classes: int = 10, in_channels: int = 3, widths: tuple[int, ...] = (64, 128, 128),
                 kernel_size: tuple[int, int, int] = (3, 7, 7), dropout: float = 0.5):
        super().__init__()
        self.num_classes = num_classes
        layers, c = [], in_channels
        pad = tuple(k // 2 for k in kernel_size)
        for i, w in enumerate(widths):
            layers += [nn.Conv3d(c, w, kernel_size, stride=(1, 2, 2), padding=pad), nn.ReLU(inplace=True)]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool3d((1, 2, 2), ceil_mode=True))
            c = w
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Conv3d(c, num_classes, kernel_size=1)
        self.embed_dim = c
        self.embedding = "pooled"  # not a constructor argument: the saved config of a student stays as it was
        for m in self.modules():  # He init: without normalisation layers the default init makes learning slow
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"ConvNet3D expects (N, T, C, H, W) videos, got shape {tuple(x.shape)}.")
        return x.transpose(1, 2)  # (N, C, T, H, W)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """`self.features(x)`, except that under CPU bf16 autocast a convolution whose padding reaches past its
        whole input (the 3rd block at 32x32 frames: a 2x2 map, padding 3) runs in fp32. oneDNN's bf16 weight
        gradient is wrong there (relative error 0.5-6 against fp32, sometimes inf or a heap corruption; torch
        2.13.0+cpu), which made bf16 students diverge to NaN in 2 steps. Elsewhere: the plain Sequential."""
        if x.device.type != "cpu" or not torch.is_autocast_enabled("cpu"):
            return self.features(x)
        for layer in self.features:
            if isinstance(layer, nn.Conv3d) and any(p >= n for p, n in zip(layer.padding, x.shape[2:])):
                with torch.autocast("cpu", enabled=False):
                    x = layer(x.float())
            else:
                x = layer(x)
        return x

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """`(N, T, C, H, W)` → `(N, D, T, 1, 1)` (global spatial max)."""
        return torch.amax(self._features(self._check(x)), dim=(3, 4), keepdim=True)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """`(N, T, C, H, W)` → `(N, D)`: with `embedding="pooled"` a spatial max and temporal mean (D = widths[-1],
        smooth in every frame); with `"flatten"` the last feature map flattened (D = widths[-1] · T · H' · W')."""
        if self.embedding == "flatten":
            return self._features(self._check(x)).flatten(1)
        if self.embedding != "pooled":
            raise ValueError(f"embedding must be one of {self.EMBEDDINGS}, got '{self.embedding}'.")
        return self.feature_map(x).flatten(2).mean(dim=2)

    def forward(self, x: torch.Tensor, sample_seeds: torch.Tensor | None = None) -> torch.Tensor:
        """Logits `(N, num_classes)`. With `sample_seeds` `(N,)` (training), row n's dropout mask depends on
        `sample_seeds[n]` only, so data-parallel training equals one process (see `hf_vdd.utils.seeded_dropout`)."""
        features = self.feature_map(x)
        if self.training and sample_seeds is not None:
            features = seeded_dropout(features, self.dropout.p, sample_seeds)
        else:
            features = self.dropout(features)
        logits = self.head(features)  # (N, K, T, 1, 1)
        return logits.flatten(2).amax(dim=2)
