from __future__ import annotations

from torch import nn

from ..config_fields import check_values
from .convnet3d import ConvNet3D

STUDENTS = ("convnet3d", "videomae")


def build_student(name: str, num_classes: int, num_frames: int, frame_size: int,
                  pretrained: str | None = None) -> nn.Module:
    """Build a student by name: `convnet3d` (VDSD) or `videomae` (tiny config, or `pretrained` id/folder)."""
    check_values(num_classes=num_classes, num_frames=num_frames, frame_size=frame_size)  # integers >= 1 (RANGES)
    if name == "convnet3d":
        if pretrained:
            return ConvNet3D.from_pretrained(pretrained)
        return ConvNet3D(num_classes=num_classes)
    if name == "videomae":
        from .videomae import VideoMAEStudent

        if pretrained:
            return VideoMAEStudent.from_pretrained(pretrained, num_classes)
        return VideoMAEStudent.from_config(num_classes, num_frames, frame_size)
    raise ValueError(f"Unknown student '{name}'; choose one of {STUDENTS}.")


def __getattr__(name: str):
    """`VideoMAEStudent` and `tiny_videomae_config` load transformers' modelling code on first use, not when
    hf_vdd is imported (it costs about 2 s of every recipe's start-up otherwise)."""
    if name in ("VideoMAEStudent", "tiny_videomae_config"):
        from . import videomae

        return getattr(videomae, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["STUDENTS", "ConvNet3D", "VideoMAEStudent", "build_student", "tiny_videomae_config"]
