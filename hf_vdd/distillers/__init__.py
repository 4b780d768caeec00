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
from .david import DAViDConfig, DAViDDistiller, temporal_partition  # noqa: E402

__all__ += ["DAViDConfig", "DAViDDistiller", "temporal_partition"]
from .diffusion import PoolConfig, VideoPool, generate_pool, load_latte, load_pool, tiny_latte_pipeline  # noqa: E402
from .latte_train import LatteFinetuneConfig, finetune_latte  # noqa: E402
from .selectors import (  # noqa: E402
    MAEScoreSelector,
    PoolRandomSelection,
    SelectorConfig,
    TACDTConfig,
    TACDTSelector,
    VSTUNetConfig,
    VSTUNetSelector,
)

__all__ += ["LatteFinetuneConfig", "MAEScoreSelector", "PoolConfig", "PoolRandomSelection", "SelectorConfig",
            "TACDTConfig", "TACDTSelector", "VSTUNetConfig", "VSTUNetSelector", "VideoPool", "finetune_latte",
            "generate_pool", "load_latte", "load_pool", "tiny_latte_pipeline"]
from .realism import MotionSaliencyDetector, RealismConfig, RealismDistiller, TransformersDetector  # noqa: E402

__all__ += ["MotionSaliencyDetector", "RealismConfig", "RealismDistiller", "TransformersDetector"]
