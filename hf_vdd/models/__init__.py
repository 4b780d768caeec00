from __future__ import annotations

from torch import nn

from .convnet3d import ConvNet3D
from .videomae import VideoMAEStudent, tiny_videomae_config

STUDENTS = ("convnet3d", "videomae")


def build_student(name: str, num_classes: int, num_frames: int, frame_size: int,
                  pretrained: str | None = None) -> nn.Module:
    """Build a student by name: `convnet3d` (VDSD) or `videomae` (tiny config, or `pretrained` id/folder)."""
    if name == "convnet3d":
        if pretrained:
            return ConvNet3D.from_pretrained(pretrained)
        return ConvNet3D(num_classes=num_classes)
    if name == "videomae":
        if pretrained:
            return VideoMAEStudent.from_pretrained(pretrained, num_classes)
        return VideoMAEStudent.from_config(num_classes, num_frames, frame_size)
    raise ValueError(f"Unknown student '{name}'; choose one of {STUDENTS}.")


__all__ = ["STUDENTS", "ConvNet3D", "VideoMAEStudent", "build_student", "tiny_videomae_config"]
