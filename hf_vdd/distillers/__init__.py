"""The distillation methods: coreset baselines, DM, IDTD, DAViD, realism (each registered by name in `DISTILLERS`).

The diffusion selectors (TAC-DT, VST-UNet, ...) register from `hf_vdd.diffusion`, which `import hf_vdd` loads."""

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
from .david import DAViDConfig, DAViDDistiller, temporal_partition
from .dm import DMConfig, DMDistiller
from .idtd import IDTDConfig, IDTDDistiller, IDTDGenerator
from .realism import MotionSaliencyDetector, RealismConfig, RealismDistiller, TransformersDetector

__all__ = ["DISTILLERS", "CoresetConfig", "DAViDConfig", "DAViDDistiller", "DMConfig", "DMDistiller",
           "DistillationOutput", "Distiller", "DistillerConfig", "Herding", "IDTDConfig", "IDTDDistiller",
           "IDTDGenerator", "KCenter", "MotionSaliencyDetector", "RandomSelection", "RealismConfig",
           "RealismDistiller", "TransformersDetector", "get_distiller", "load_distilled", "register_distiller",
           "temporal_partition"]
