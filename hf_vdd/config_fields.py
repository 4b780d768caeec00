"""What a dataclass config's fields declare, read in one place: the `choices` metadata every config (distillers,
Latte fine-tuning, recipe flags) is checked against, and the defaults a checkpoint's run record carries."""

from __future__ import annotations

from dataclasses import MISSING, fields

from .utils import HfVddError


def check_choices(config, prefix: str = "") -> None:
    """Refuse a dataclass field whose value is not among its `choices` metadata (`HfVddError` naming `prefix` + the
    field: `--` for recipe flags)."""
    for f in fields(config):
        choices, value = f.metadata.get("choices"), getattr(config, f.name)
        if choices and value not in choices:
            raise HfVddError(f"{prefix}{f.name} must be one of {list(choices)}, got {value!r}.")


def config_defaults(config) -> dict:
    """The defaults of dataclass `config`'s fields, for a run's `defaults`: a setting added to hf_vdd after a
    checkpoint was written is missing from it, and the run that wrote it behaved as that setting's default (new
    settings default to the old behaviour), so at its default it does not stop the resume."""
    return {f.name: f.default if f.default is not MISSING else f.default_factory() for f in fields(config)
            if f.default is not MISSING or f.default_factory is not MISSING}
