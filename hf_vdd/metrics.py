"""The evaluation protocol's numbers: classification metrics of one student run, and their mean ± std over runs
(`EvalReport`); the class-list check shared by every evaluation (`class_order`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import f1_score, roc_auc_score

from .utils import HfVddError


def classification_metrics(probs: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    """top-1 / top-5 / macro AUC / macro F1 (percent) and per-class accuracy."""
    pred = probs.argmax(1)
    k = min(5, num_classes)
    topk = np.argsort(-probs, axis=1)[:, :k]
    per_class = [float((pred[labels == c] == c).mean() * 100) if (labels == c).any() else float("nan")
                 for c in range(num_classes)]
    try:
        auc = roc_auc_score(labels, probs, multi_class="ovr", average="macro", labels=list(range(num_classes))) * 100
    except ValueError:  # a class missing from the test labels
        auc = float("nan")
    return {"top1": float((pred == labels).mean() * 100), "top5": float((topk == labels[:, None]).any(1).mean() * 100),
            "auc": float(auc), "f1": float(f1_score(labels, pred, average="macro", labels=list(range(num_classes)),
                                                    zero_division=0) * 100), "per_class": per_class}


@dataclass
class EvalReport:
    """Mean ± std over runs; `to_dict()` gives the JSON written by `recipes/evaluate.py`."""

    top1: dict
    top5: dict
    auc: dict
    f1: dict
    per_class: list
    runs: list
    train_seconds: float
    config: dict

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return f"top-1 {self.top1['mean']:.1f} ± {self.top1['std']:.1f}"


def _mean_std(values) -> dict:
    values = np.asarray(values, dtype=np.float64)
    return {"mean": float(np.nanmean(values)), "std": float(np.nanstd(values))}


def class_order(train_names: list[str], test_names: list[str], what: str = "The training set") -> list[int] | None:
    """How training labels map to test labels: `None` when both lists are equal, `order[train_label] = test_label`
    when they hold the same names in another order; `HfVddError` naming the differences otherwise."""
    train_names, test_names = list(train_names), list(test_names)
    if train_names == test_names:
        return None
    if sorted(train_names) == sorted(test_names) and len(set(train_names)) == len(train_names):
        return [test_names.index(n) for n in train_names]
    missing, extra = [n for n in test_names if n not in train_names], [n for n in train_names if n not in test_names]
    parts = [f"{len(missing)} test classes are not in it ({missing[:5]})" if missing else "",
             f"{len(extra)} of its classes are not in the test split ({extra[:5]})" if extra else ""]
    raise HfVddError(f"{what} has {len(train_names)} classes and the test split {len(test_names)}: "
                     f"{' and '.join(p for p in parts if p) or 'names repeat'}. Evaluate on the dataset it was made "
                     f"from (--dataset), with the same class list.")


def summarize_runs(runs: list[dict], train_seconds: float, config: dict) -> EvalReport:
    """One `EvalReport` over student runs (`classification_metrics` records): top-1/top-5/AUC/F1 as mean ± std,
    per-class accuracy averaged."""
    per_class = np.nanmean(np.asarray([r["per_class"] for r in runs]), axis=0).tolist()
    return EvalReport(**{k: _mean_std([r[k] for r in runs]) for k in ("top1", "top5", "auc", "f1")},
                      per_class=per_class, runs=runs, train_seconds=train_seconds, config=config)
