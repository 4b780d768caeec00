"""What a dataclass config's fields declare, read in one place: the `choices` metadata and the numeric ranges every
config (distillers, student training, Latte fine-tuning and generation, recipe flags) is checked against, and the
defaults a checkpoint's run record carries."""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import os
from dataclasses import MISSING, fields

from .utils import HfVddError

# The allowed values of numeric fields, by field name (the same name means the same thing in every config);
# `None` is always allowed. A field's own `range` metadata overrides its entry. Written as intervals.
_COUNTS = ("ipc", "vpc", "selection_runs", "full_steps", "batch_size", "batch_real", "epochs", "steps", "runs",
           "log_every", "periodic_eval_steps", "num_selectors", "min_segment_frames", "fixed_resolution", "grid",
           "top_k", "boxes_per_video", "track_frames", "candidates_per_class", "motion_frames", "pca_components",
           "base_channels", "embed_dim", "channels", "hidden", "real_per_class", "kmeans_clusters",
           "grad_shards", "shard_size", "num_inference_steps", "videos_per_class", "videos_per_class_pool",
           "vst_epochs", "default_finetune_steps", "default_vae_steps", "default_encoder_steps", "num_frames",
           "frame_size", "interval", "class_batch", "policy_steps", "num_classes")
_NON_NEGATIVE = ("seed", "iterations", "checkpointing_steps", "checkpoints_total_limit", "eval_every", "teacher_steps",
                 "augment_strength", "alpha1", "alpha2", "lambda_div", "lambda_rep", "weight_decay", "max_grad_norm",
                 "soft_label_weight", "early_stopping_patience", "region_samples", "vae_steps", "vae_decoder_steps",
                 "kl_weight", "guidance_scale", "dataloader_num_workers", "cache_size")
_RATES = ("lr", "lr_img", "pool_lr", "module_lr", "vae_lr")  # 0 is allowed: frozen, a diagnostic
RANGES: dict[str, str] = {**dict.fromkeys(_COUNTS, "[1, inf)"), **dict.fromkeys(_NON_NEGATIVE, "[0, inf)"),
                          **dict.fromkeys(_RATES, "[0, inf)"), "birch_threshold": "(0, inf)",
                          **dict.fromkeys(("momentum", "pool_momentum", "ema_decay"), "[0, 1)"),
                          **dict.fromkeys(("gamma", "detector_threshold", "temporal_augmentation", "caption_dropout",
                                           "epsilon_start", "epsilon_end"),
                                          "[0, 1]"),
                          **dict.fromkeys(("q_lr", "sta_min_fraction", "beta"), "(0, 1]"),
                          "birch_branching_factor": "[2, inf)"}


def _within(value, interval: str) -> bool:
    low, high = (float(v) for v in interval[1:-1].split(","))
    return (low <= value if interval[0] == "[" else low < value) and (value <= high if interval[-1] == "]" else
                                                                      value < high)


def _phrase(interval: str) -> str:
    """`[1, inf)` → `>= 1`, `(0, inf)` → `> 0`, a bounded interval as written."""
    return f"{'>=' if interval[0] == '[' else '>'} {interval[1:].split(',')[0]}" if interval.endswith("inf)") else \
        f"in {interval}"


_KINDS = {  # a declared scalar type → what its values may be, and the phrase for the message
    "int": (lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool), "an integer"),
    "float": (lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool), "a number"),
    "bool": (lambda v: isinstance(v, numbers.Integral) and v in (0, 1), "true or false"),  # bool is Integral
    "str": (lambda v: isinstance(v, (str, os.PathLike)), "a string"),
}


@functools.cache
def _declared(cls: type, name: str) -> str:
    """Field `name`'s annotation as written (`int | None`), from the class itself: `HfArgumentParser` rewrites a
    parsed dataclass's `Field.type` (`int | None` becomes `int`), so `f.type` may no longer say `None` is allowed."""
    annotation = next((inspect.get_annotations(k)[name] for k in cls.__mro__
                       if name in inspect.get_annotations(k)), "")
    if isinstance(annotation, type):
        return annotation.__name__
    text = str(annotation).replace(" ", "").replace("typing.", "")
    return f"{text[9:-1]}|None" if text.startswith("Optional[") else text


def _check_value(name: str, value, declared: str, interval: str | None, prefix: str, choices=None) -> None:
    """Refuse `value` unless it is of the `declared` kind (`int`, `float`, `bool`, `str`, optionally `| None`, or a
    `list[...]` of them; other types are not checked), among `choices`, and each of its numbers in `interval`
    (`RANGES` notation; NaN never passes): `HfVddError` naming `prefix` + `name`, the value and what is allowed."""
    optional = declared.endswith("|None")
    declared = declared.removesuffix("|None")
    many = declared.startswith("list[") and declared.endswith("]")
    kind = _KINDS.get(declared[5:-1] if many else declared)
    if kind is not None and not (value is None and optional):
        ok, phrase = kind
        if many and not (isinstance(value, (list, tuple)) and all(ok(v) for v in value)):
            raise HfVddError(f"{prefix}{name} must be a list of {phrase.removeprefix('a ').removeprefix('an ')}s, "
                             f"got {value!r}.")
        if not many and not ok(value):
            raise HfVddError(f"{prefix}{name} must be {phrase}, got {value!r} ({type(value).__name__}).")
    if choices and value not in choices:
        raise HfVddError(f"{prefix}{name} must be one of {list(choices)}, got {value!r}.")
    for number in value if isinstance(value, (list, tuple)) else [value]:  # a list flag: each of its numbers
        if interval and isinstance(number, (int, float)) and not isinstance(number, bool):
            if math.isnan(number) or not _within(number, interval):
                finite = "finite and " if math.isinf(number) and interval.endswith("inf)") else ""
                raise HfVddError(f"{prefix}{name} must be {finite}{_phrase(interval)}, got {value!r}.")


def check_fields(config, prefix: str = "") -> None:
    """Refuse a dataclass field whose value is not of its declared kind (`int`, `float`, `bool`, `str`, a list of
    them), not among its `choices` metadata, or a number outside its range (`range` metadata, else `RANGES` by name;
    each number of a list; NaN never passes): `HfVddError` naming `prefix` + the field (`--` for recipe flags), the
    value and what is allowed."""
    for f in fields(config):
        _check_value(f.name, getattr(config, f.name), _declared(type(config), f.name),
                     f.metadata.get("range", RANGES.get(f.name)), prefix, f.metadata.get("choices"))


def check_values(declared: str = "int", **values) -> None:
    """`check_fields` for a function's keyword arguments (no dataclass): each value of the `declared` kind and in
    its `RANGES` interval, by name (`check_values(num_frames=8, frame_size=0)` → "frame_size must be >= 1")."""
    for name, value in values.items():
        _check_value(name, value, declared, RANGES.get(name), "")


def config_defaults(config) -> dict:
    """The defaults of dataclass `config`'s fields, for a run's `defaults`: a setting added to hf_vdd after a
    checkpoint was written is missing from it, and the run that wrote it behaved as that setting's default (new
    settings default to the old behaviour), so at its default it does not stop the resume."""
    return {f.name: f.default if f.default is not MISSING else f.default_factory() for f in fields(config)
            if f.default is not MISSING or f.default_factory is not MISSING}
