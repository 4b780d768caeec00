"""Diffusion + selection: a Latte generation pool (`pool`), Latte fine-tuning (`latte_train`), the selectors that pick
the distilled set from a pool (`selectors`: TAC-DT, VST-UNet, MAE-Score, pool Random; `baselines`: the paper's CSTA
and DM-MMD) and the pipeline that `recipes/diffusion_select.py` runs (`select`)."""

from .baselines import CSTAConfig, CSTASelector, DMMMDConfig, DMMMDSelector
from .latte_train import LatteFinetuneConfig, finetune_latte
from .pool import (
    DEFAULT_GUIDANCE_SCALE,
    PoolConfig,
    VideoPool,
    fit_videos,
    generate_pool,
    load_latte,
    load_pool,
    tiny_latte_pipeline,
)
from .selectors import (
    MAEScoreSelector,
    PoolRandomSelection,
    SelectorConfig,
    TACDTConfig,
    TACDTSelector,
    VSTUNetConfig,
    VSTUNetSelector,
)

__all__ = ["CSTAConfig", "CSTASelector", "DEFAULT_GUIDANCE_SCALE", "DMMMDConfig", "DMMMDSelector",
           "LatteFinetuneConfig", "MAEScoreSelector", "PoolConfig", "PoolRandomSelection", "SelectorConfig",
           "TACDTConfig", "TACDTSelector", "VSTUNetConfig", "VSTUNetSelector", "VideoPool", "finetune_latte",
           "fit_videos", "generate_pool", "load_latte", "load_pool", "tiny_latte_pipeline"]
