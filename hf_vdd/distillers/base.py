"""`Distiller` base class and registry.

A distiller turns a real train split into a `DistillationOutput`, the distilled-set format documented in
`hf_vdd.data.distilled` (re-exported here with `load_distilled`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path

import numpy as np
from huggingface_hub import ModelCard, ModelHubMixin

from ..config_fields import check_fields, config_defaults
from ..data.distilled import DistillationOutput, load_distilled
from ..hub import render_distiller_card, resolve_folder, template_path, with_temp_folder
from ..utils import HfVddError, atomic_folder
from ..version import __version__

DISTILLER_FILE = "distiller.json"  # written by `Distiller.save_pretrained` only: the marker of its folders
DISTILLER_CARD_TEMPLATE = Path(template_path("distiller_card.md")).read_text()

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
        check_fields(self)  # choices, and ranges (`config_fields.RANGES`: ipc >= 1, iterations >= 0, ...)

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


class Distiller(ModelHubMixin, library_name="hf_vdd", tags=["hf_vdd", "dataset-distillation"],
                repo_url="https://github.com/hf-vdd/hf_vdd", model_card_template=DISTILLER_CARD_TEMPLATE):
    """A pipeline that turns a real train split into a `DistillationOutput`.

    Subclasses set `name` and `config_class`, and implement `__call__(train_set, accelerator=None)`; those with
    learned state (IDTD's generator, DAViD's policy, VST-UNet) implement `save_parts`/`load_parts`.

    A `huggingface_hub.ModelHubMixin`: `save_pretrained(dir)` writes `config.json` (the config dataclass),
    `distiller.json` (method, source, classes, video shape: hf_vdd's marker), the learned parts and a card, atomically;
    `from_pretrained(dir or Hub id)` and `push_to_hub(repo_id)` read and upload that folder.
    """

    name: str = "base"
    config_class: type = DistillerConfig
    parts: str = "settings only (no learned state)"  # what `save_parts` writes, for the card

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
        self._hub_mixin_config = config  # `config.json` is the whole dataclass, whatever was passed
        self.source, self.class_names, self.video_shape = "unknown", None, (0, 0)

    def remember(self, train_set) -> None:
        """Record what was distilled (for `distiller.json` and the card)."""
        self.source, self.class_names = train_set.name.split(":")[0], list(train_set.class_names)
        self.video_shape = (train_set.num_frames, train_set.frame_size)

    # ---- the Hub (ModelHubMixin) ----------------------------------------------------------------------------
    def save_parts(self, folder: Path) -> None:
        """Write the learned state into `folder` (subclasses with learned state)."""

    def load_parts(self, folder: Path) -> None:
        """Read what `save_parts` wrote (subclasses with learned state)."""

    def _save_pretrained(self, save_directory: Path) -> None:
        facts = {"method": self.name, "class": type(self).__name__, "source": self.source,
                 "class_names": self.class_names, "num_frames": self.video_shape[0],
                 "frame_size": self.video_shape[1], "hf_vdd_version": __version__}
        (save_directory / DISTILLER_FILE).write_text(json.dumps(facts, indent=2))
        self.save_parts(save_directory)

    def save_pretrained(self, save_directory: str | os.PathLike, *, repo_id: str | None = None, **kwargs) -> Path:
        """Write the folder atomically (an earlier `save_pretrained` folder is replaced, nothing else)."""
        repo_id = repo_id or f"<org>/{Path(save_directory).name}"
        with atomic_folder(save_directory, marker=DISTILLER_FILE) as tmp:
            super().save_pretrained(tmp, model_card_kwargs={"repo_id": repo_id}, **kwargs)
        return Path(save_directory)

    def generate_model_card(self, repo_id: str = "<org>/<repo>", **kwargs) -> ModelCard:
        return render_distiller_card(self.name, type(self).__name__, self.source, self.config.ipc,
                                     *self.video_shape, self.parts, json.dumps(asdict(self.config), indent=2),
                                     repo_id)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        """A distiller saved by `save_pretrained`: a local folder or a Hub model id."""
        folder = resolve_folder(pretrained_model_name_or_path, cls.__name__)
        if not (folder / DISTILLER_FILE).is_file() or not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder} has no {DISTILLER_FILE}/config.json: it was not written by "
                                    f"{cls.__name__}.save_pretrained.")
        facts = json.loads((folder / DISTILLER_FILE).read_text())
        if cls.name != "base" and facts.get("method") != cls.name:
            raise HfVddError(f"{folder} holds a '{facts.get('method')}' distiller, not '{cls.name}': load it with "
                             f"hf_vdd.get_distiller('{facts.get('method')}').from_pretrained(...).")
        known = {f.name for f in fields(cls.config_class)}
        config = cls.config_class(**{k: v for k, v in json.loads((folder / "config.json").read_text()).items()
                                     if k in known})
        distiller = cls(config, **kwargs)
        distiller.source, distiller.class_names = facts["source"], facts["class_names"]
        distiller.video_shape = (facts["num_frames"], facts["frame_size"])
        distiller.load_parts(folder)
        return distiller

    def push_to_hub(self, repo_id: str, token: str | None = None, private: bool | None = None, **kwargs) -> str:
        """Upload the `save_pretrained` folder to a Hub model repo (clear error when offline/unauthenticated)."""
        return with_temp_folder(lambda folder: self.save_pretrained(folder, repo_id=repo_id), repo_id,
                                repo_type="model", token=token, private=private)

    @classmethod
    def config_fields(cls) -> list[str]:
        return [f.name for f in fields(cls.config_class)]

    # config fields that say where work is kept or how it is logged, never what is computed (also left out of a
    # benchmark cell's settings key)
    bookkeeping_fields: tuple[str, ...] = ("checkpointing_steps", "checkpoints_total_limit", "checkpoint_dir",
                                           "resume_from_checkpoint", "log_every", "teacher_cache", "teacher_cache_dir")
    # config fields that may change when a run resumes from a checkpoint (they do not change its trajectory)
    resume_free_fields: tuple[str, ...] = bookkeeping_fields + ("iterations", "eval_every", "periodic_eval_steps",
                                                                "teacher_head")

    def run_fingerprint(self, train_set) -> dict:
        """What a checkpoint must match to be resumed: method, trajectory-relevant config, data fingerprint."""
        from .matching import data_fingerprint

        config = {k: v for k, v in self.config.to_dict().items() if k not in self.resume_free_fields}
        return {"method": self.name, "config": config, "data": data_fingerprint(train_set),
                "defaults": config_defaults(self.config), "hf_vdd_version": __version__}

    def check(self, train_set) -> None:
        """Checks before any work (no video decoded): IPC against the class sizes and, when resuming, that the
        checkpoint was written by this run (same method, settings and data)."""
        self.check_ipc(train_set)
        resume = getattr(self.config, "resume_from_checkpoint", None)
        if resume:
            from ..checkpoints import resolve_checkpoint

            resolve_checkpoint(resume, self.config.checkpoint_dir, self.run_fingerprint(train_set))

    def check_ipc(self, train_set) -> None:
        if not all(hasattr(train_set, a) for a in ("labels", "class_names", "num_frames", "frame_size")):
            raise TypeError(f"{type(self).__name__} distils a VideoClassificationSet, got {type(train_set).__name__}: "
                            f"pass hf_vdd.load_video_dataset(<source>, 'train', num_frames=..., frame_size=...).")
        counts = np.bincount(train_set.labels, minlength=train_set.num_classes)
        small = [(train_set.class_names[c], int(n)) for c, n in enumerate(counts) if n < self.config.ipc]
        if small:
            raise ValueError(f"ipc={self.config.ipc} is larger than the number of training videos of class(es) "
                             f"{small[:5]}; lower --ipc to at most {int(counts.min())}.")

    def __call__(self, train_set, accelerator=None) -> DistillationOutput:  # pragma: no cover - abstract
        raise NotImplementedError
