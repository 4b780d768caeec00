"""VideoMAE as an hf_vdd student: `(N, T, C, H, W)` in, logits out, built from a config or `from_pretrained`."""

from __future__ import annotations

import torch
from torch import nn
from transformers import VideoMAEConfig, VideoMAEForVideoClassification

from ..utils import get_logger

logger = get_logger(__name__)


def tiny_videomae_config(num_classes: int, num_frames: int, frame_size: int, **overrides) -> VideoMAEConfig:
    """A small VideoMAE config that trains on CPU (patch 8, tubelet 2, 2 layers of width 96)."""
    patch = 8 if frame_size % 8 == 0 else (4 if frame_size % 4 == 0 else 1)
    kwargs = dict(image_size=frame_size, patch_size=patch, num_frames=num_frames,
                  tubelet_size=2 if num_frames % 2 == 0 else 1, hidden_size=96, num_hidden_layers=2,
                  num_attention_heads=4, intermediate_size=192, num_labels=num_classes, use_mean_pooling=True)
    kwargs.update(overrides)
    return VideoMAEConfig(**kwargs)


class VideoMAEStudent(nn.Module):
    """Wraps `VideoMAEForVideoClassification` with the ConvNet3D interface (`forward` → logits, `embed`)."""

    def __init__(self, model: VideoMAEForVideoClassification):
        super().__init__()
        self.model = model
        self.num_classes = model.config.num_labels
        self.head_loaded = True  # False: the classifier was newly initialised (see `from_pretrained`)

    @classmethod
    def from_config(cls, num_classes: int, num_frames: int, frame_size: int, **overrides) -> VideoMAEStudent:
        return cls(VideoMAEForVideoClassification(tiny_videomae_config(num_classes, num_frames, frame_size,
                                                                        **overrides)))

    @classmethod
    def from_pretrained(cls, id_or_dir: str, num_classes: int | None = None) -> VideoMAEStudent:
        """A pretrained VideoMAE classifier.

        With `num_classes` (a student to train): a checkpoint head of another size is replaced by a new one of
        `num_classes` outputs, which the student's training fits (logged). With `num_classes=None` the checkpoint's
        head is kept as it is, and `head_loaded` says whether the checkpoint held one (a backbone-only checkpoint
        gets a new, untrained head: teachers check it, see `hf_vdd.teacher`)."""
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the head decision is reported below, in hf_vdd's words
        try:
            kwargs = {} if num_classes is None else {"num_labels": num_classes, "ignore_mismatched_sizes": True}
            model, info = VideoMAEForVideoClassification.from_pretrained(id_or_dir, output_loading_info=True,
                                                                         **kwargs)
        except OSError as err:
            raise ValueError(f"Could not load VideoMAE '{id_or_dir}': {str(err).splitlines()[0]}. Pass a local "
                             f"folder written by save_pretrained, or a Hub id on a connected machine.") from err
        finally:
            hf_logging.set_verbosity(verbosity)
        new = [k for k in (*info["missing_keys"], *(m[0] if isinstance(m, tuple) else m
                                                     for m in info["mismatched_keys"])) if k.startswith("classifier")]
        student = cls(model)
        student.head_loaded = not new
        if new and num_classes is not None:
            logger.info(f"VideoMAE '{id_or_dir}': new {num_classes}-class head (the checkpoint has none of that "
                        f"size); the student's training fits it.")
        return student

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.model.config
        if x.ndim != 5 or x.shape[1] != cfg.num_frames or x.shape[-1] != cfg.image_size:
            raise ValueError(f"VideoMAE student expects (N, {cfg.num_frames}, 3, {cfg.image_size}, "
                             f"{cfg.image_size}) videos, got {tuple(x.shape)}; match --num_frames/--frame_size.")
        return x

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.model.videomae(pixel_values=self._check(x)).last_hidden_state
        return self.model.fc_norm(hidden.mean(1)) if self.model.fc_norm is not None else hidden[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=self._check(x)).logits
