"""hf_vdd: video dataset distillation on the Hugging Face stack."""

from .data import CorruptVideoError, VideoClassificationSet, load_video_dataset, toy_actions
from .data.distilled import DistillationOutput, TensorVideoSet, load_distilled
from .diffusion import (
    CSTASelector,
    DMMMDSelector,
    MAEScoreSelector,
    PoolRandomSelection,
    TACDTSelector,
    VSTUNetSelector,
)
from .distillers import (
    DISTILLERS,
    Distiller,
    Herding,
    KCenter,
    RandomSelection,
    get_distiller,
)
from .models import ConvNet3D, build_student
from .training import EvalReport, TrainConfig, evaluate_distilled, train_student
from .version import __version__


def __getattr__(name: str):
    if name == "VideoMAEStudent":  # transformers' modelling code loads on first use (hf_vdd.models)
        from .models.videomae import VideoMAEStudent

        return VideoMAEStudent
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DISTILLERS",
    "CSTASelector",
    "ConvNet3D",
    "CorruptVideoError",
    "DMMMDSelector",
    "DistillationOutput",
    "Distiller",
    "EvalReport",
    "Herding",
    "KCenter",
    "MAEScoreSelector",
    "PoolRandomSelection",
    "RandomSelection",
    "TACDTSelector",
    "TensorVideoSet",
    "TrainConfig",
    "VideoClassificationSet",
    "VSTUNetSelector",
    "VideoMAEStudent",
    "__version__",
    "build_student",
    "evaluate_distilled",
    "get_distiller",
    "load_distilled",
    "load_video_dataset",
    "toy_actions",
    "train_student",
]
