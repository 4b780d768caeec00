"""hf_vdd: video dataset distillation on the Hugging Face stack."""

__version__ = "0.1.0"

from .data import CorruptVideoError, VideoClassificationSet, load_video_dataset, toy_actions  # noqa: E402
from .distillers import (  # noqa: E402
    DISTILLERS,
    DistillationOutput,
    Distiller,
    Herding,
    KCenter,
    RandomSelection,
    get_distiller,
    load_distilled,
)
from .models import ConvNet3D, VideoMAEStudent, build_student  # noqa: E402
from .training import EvalReport, TrainConfig, evaluate_distilled, train_student  # noqa: E402

__all__ = [
    "DISTILLERS",
    "ConvNet3D",
    "CorruptVideoError",
    "DistillationOutput",
    "Distiller",
    "EvalReport",
    "Herding",
    "KCenter",
    "RandomSelection",
    "TrainConfig",
    "VideoClassificationSet",
    "VideoMAEStudent",
    "build_student",
    "evaluate_distilled",
    "get_distiller",
    "load_distilled",
    "load_video_dataset",
    "toy_actions",
    "train_student",
]
