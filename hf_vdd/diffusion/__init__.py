"""Diffusion + selection: a Latte generation pool (`pool`), Latte fine-tuning (`latte_train`), the selectors that pick
the distilled set from a pool (`selectors`: TAC-DT, VST-UNet, MAE-Score, pool Random) and the pipeline that
`recipes/diffusion_select.py` runs (`select`)."""

from .latte_train import LatteFinetuneConfig, finetune_latte
from .pool import PoolConfig, VideoPool, generate_pool, load_latte, load_pool, tiny_latte_pipeline
from .selectors import (
    MAEScoreSelector,
    PoolRandomSelection,
    SelectorConfig,
    TACDTConfig,
    TACDTSelector,
    VSTUNetConfig,
    VSTUNetSelector,
)

__all__ = ["LatteFinetuneConfig", "MAEScoreSelector", "PoolConfig", "PoolRandomSelection", "SelectorConfig",
           "TACDTConfig", "TACDTSelector", "VSTUNetConfig", "VSTUNetSelector", "VideoPool", "finetune_latte",
           "generate_pool", "load_latte", "load_pool", "tiny_latte_pipeline"]
