"""`Distiller` base class and registry.

A distiller turns a real train split into a `DistillationOutput`, the distilled-set format documented in
`hf_vdd.data.distilled` (re-exported here with `load_distilled`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass

import numpy as np

from ..data.distilled import DistillationOutput, load_distilled
from ..utils import HfVddError
from ..version import __version__

__all__ = ["DISTILLERS", "DistillationOutput", "Distiller", "DistillerConfig", "get_distiller", "load_distilled",
           "register_distiller"]


# ---- distillers ---------------------------------------------------------------------------------------------
@dataclass
class DistillerConfig:
    """Fields every distiller has."""

    ipc: int = field(default=1, metadata={"help": "Instances (videos) per class in the distilled set."})
    seed: int = field(default=0, metadata={"help": "Seed for everything stochastic."})

    def __post_init__(self):
        """Refuse bad settings when the config is made (recipes: while parsing flags, before any work)."""
        for f in fields(self):
            value, choices = getattr(self, f.name), f.metadata.get("choices")
            if choices and value not in choices:
                raise HfVddError(f"{f.name} must be one of {list(choices)}, got {value!r}.")
        if self.ipc < 1:
            raise HfVddError(f"ipc must be >= 1, got {self.ipc}.")
        for name in ("iterations", "checkpointing_steps", "checkpoints_total_limit"):
            if getattr(self, name, 0) < 0:
                raise HfVddError(f"{name} must be >= 0, got {getattr(self, name)}.")

    def to_dict(self) -> dict:
        return asdict(self)


DISTILLERS: dict[str, type[Distiller]] = {}


def register_distiller(cls: type[Distiller]) -> type[Distiller]:
    """Class decorator: make a distiller available by `cls.name` to recipes and the benchmark."""
    DISTILLERS[cls.name] = cls
    return cls


def get_distiller(name: str) -> type[Distiller]:
    if name not in DISTILLERS:
        raise ValueError(f"Unknown method '{name}'; registered distillers: {sorted(DISTILLERS)}.")
    return DISTILLERS[name]


class Distiller:
    """A pipeline that turns a real train split into a `DistillationOutput`.

    Subclasses set `name` and `config_class`, and implement `__call__(train_set, accelerator=None)`.
    """

    name: str = "base"
    config_class: type = DistillerConfig

    def __init__(self, config=None, **kwargs):
        if config is None:
            config = self.config_class(**kwargs)
        elif kwargs:
            raise ValueError("Pass either a config or keyword arguments, not both.")
        if not is_dataclass(config):
            raise TypeError(f"config must be a {self.config_class.__name__}, got {type(config).__name__}.")
        if config.ipc <= 0:
            raise ValueError(f"ipc must be >= 1, got {config.ipc}.")
        self.config = config

    @classmethod
    def config_fields(cls) -> list[str]:
        return [f.name for f in fields(cls.config_class)]

    # config fields that may change when a run resumes from a checkpoint (they do not change its trajectory)
    resume_free_fields: tuple[str, ...] = ("iterations", "checkpointing_steps", "checkpoints_total_limit",
                                           "checkpoint_dir", "resume_from_checkpoint", "log_every", "eval_every",
                                           "periodic_eval_steps", "teacher_cache_dir")

    def run_fingerprint(self, train_set) -> dict:
        """What a checkpoint must match to be resumed: method, trajectory-relevant config, data fingerprint."""
        from .matching import data_fingerprint

        config = {k: v for k, v in self.config.to_dict().items() if k not in self.resume_free_fields}
        return {"method": self.name, "config": config, "data": data_fingerprint(train_set),
                "hf_vdd_version": __version__}

    def check(self, train_set) -> None:
        """Checks before any work (no video decoded): IPC against the class sizes and, when resuming, that the
        checkpoint was written by this run (same method, settings and data)."""
        self.check_ipc(train_set)
        resume = getattr(self.config, "resume_from_checkpoint", None)
        if resume:
            from .matching import find_checkpoint, verify_checkpoint

            verify_checkpoint(find_checkpoint(resume, self.config.checkpoint_dir), self.run_fingerprint(train_set))

    def check_ipc(self, train_set) -> None:
        counts = np.bincount(train_set.labels, minlength=train_set.num_classes)
        small = [(train_set.class_names[c], int(n)) for c, n in enumerate(counts) if n < self.config.ipc]
        if small:
            raise ValueError(f"ipc={self.config.ipc} is larger than the number of training videos of class(es) "
                             f"{small[:5]}; lower --ipc to at most {int(counts.min())}.")

    def __call__(self, train_set, accelerator=None) -> DistillationOutput:  # pragma: no cover - abstract
        raise NotImplementedError
