from .base import (
    DISTILLERS,
    DistillationOutput,
    Distiller,
    DistillerConfig,
    get_distiller,
    load_distilled,
    register_distiller,
)
from .coreset import CoresetConfig, Herding, KCenter, RandomSelection

__all__ = [
    "DISTILLERS",
    "CoresetConfig",
    "DistillationOutput",
    "Distiller",
    "DistillerConfig",
    "Herding",
    "KCenter",
    "RandomSelection",
    "get_distiller",
    "load_distilled",
    "register_distiller",
]
from .dm import DMConfig, DMDistiller  # noqa: E402

__all__ += ["DMConfig", "DMDistiller"]
from .idtd import IDTDConfig, IDTDDistiller, IDTDGenerator  # noqa: E402

__all__ += ["IDTDConfig", "IDTDDistiller", "IDTDGenerator"]
from .realism import MotionSaliencyDetector, RealismConfig, RealismDistiller, TransformersDetector  # noqa: E402

__all__ += ["MotionSaliencyDetector", "RealismConfig", "RealismDistiller", "TransformersDetector"]
