"""Shared fixtures: tiny seeded data built locally (tests never reach the Hub)."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch.overrides import TorchFunctionMode  # noqa: E402
from torch.utils._pytree import tree_leaves  # noqa: E402

from hf_vdd.data import toy_actions  # noqa: E402
from hf_vdd.utils import keep_freed_memory, shared_data_dir  # noqa: E402
from tests.helpers import REPO, RecipeResult, TwoProcessRuns, write_video  # noqa: E402

keep_freed_memory()  # the allocator settings every recipe runs with (the in-process recipe tests set them anyway)


@pytest.fixture(scope="session")
def tiny_toy():
    """4 toy-actions classes (square, disc, slide-right, slide-left), 8 train / 4 test per class."""
    return toy_actions(num_classes=4, train_per_class=8, test_per_class=4, min_frames=8, max_frames=20, seed=1)


@pytest.fixture(scope="session")
def video_folder(tmp_path_factory, tiny_toy):
    """A videofolder tree `split/label/file.mp4` (48x40 mp4s, the first with an audio stream)."""
    root = tmp_path_factory.mktemp("videofolder")
    names = tiny_toy["train"].features["label"].names
    for split, per in (("train", 3), ("test", 2)):
        ds = tiny_toy[split].with_format("numpy")
        count = {}
        for row in ds:
            label = names[int(row["label"])]
            if count.get(label, 0) >= per:
                continue
            count[label] = count.get(label, 0) + 1
            frames = np.asarray(row["video"], np.uint8)
            frames = np.repeat(np.repeat(frames, 2, axis=1), 2, axis=2)[:, :40, :48]  # 40x48, non-square
            write_video(root / split / label / f"{label}_{count[label]}.mp4", frames,
                        with_audio=split == "train" and count[label] == 1)
    return root


@pytest.fixture(scope="session")
def shared_data():
    folder = shared_data_dir()
    if not folder.is_dir():
        pytest.skip(f"shared real footage not found at {folder}; set HF_VDD_SHARED_DATA")
    return folder


@pytest.fixture(scope="session")
def two_processes(tmp_path_factory):
    """The 2-process side of every 1-vs-2-process test (evaluate, DM, IDTD, DAViD, the Latte pool), run once by one
    `accelerate launch` on first use; each test runs its 1-process side itself and compares."""
    runs = TwoProcessRuns(tmp_path_factory.mktemp("two_processes"))
    runs.launch()
    return runs


@pytest.fixture
def run_recipe(monkeypatch, capsys):
    """Run a recipe in this process (imports are paid once): `run_recipe("recipes/x.py", *flags, env=..., check=...)`
    → `.returncode`, `.stdout`, `.stderr`."""
    import importlib.util
    import sys

    def _run(script, *args, env=None, check=True):
        spec = importlib.util.spec_from_file_location(f"recipe_{Path(script).stem}", REPO / script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for k, v in (env or {}).items():
            monkeypatch.setenv(k, v)
        monkeypatch.setattr(sys, "argv", [script, *args])
        capsys.readouterr()
        code = 0
        try:
            module.run_main(module.main)
        except SystemExit as exit_info:
            code = exit_info.code
        out, err = capsys.readouterr()
        if check and code:
            raise AssertionError(f"{script} exited {code}: {err[-2000:]}")
        return RecipeResult(code, out, err)

    return _run




@pytest.fixture
def meta_accelerator(monkeypatch):
    """An `Accelerator` whose device is `meta`, under `DeviceCheck`: a module or tensor left on the CPU next to
    device tensors raises, as it would next to CUDA tensors, so the suite catches it on any machine. Host transfers
    of meta tensors (`.cpu()`, `.item()`, `float()`, `.tolist()`, `.numpy()`, `.to("cpu")`) give ones (scalars) or
    zeros (arrays), so a whole run goes through; its numbers are meaningless, only devices are checked."""
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    monkeypatch.setattr(Accelerator, "device", property(lambda self: torch.device("meta")))
    with DeviceCheck() as check:
        accelerator.device_calls = check.calls  # Counter of (function name, device type) for tests to inspect
        yield accelerator


def _zeros(t):
    return torch.zeros(t.shape, dtype=t.dtype)


def _to_cpu_call(args, kwargs) -> bool:
    return any(str(a) == "cpu" for a in (*args[1:], *kwargs.values()) if isinstance(a, (str, torch.device)))


class DeviceCheck(TorchFunctionMode):
    """A `TorchFunctionMode` that refuses any torch call mixing CPU and meta tensors (not only those whose kernels
    check devices: a meta input through CPU conv weights does not raise by itself). Moving data (`to`, `copy_`)
    and indexing a device tensor with CPU indices are allowed, as on CUDA; 0-dim CPU tensors count as scalars.
    `.calls` counts `(function name, device type)`, so a test can also check that the heavy work (convolutions)
    ran on the device and not, consistently but wrongly, all on the CPU."""

    ALLOWED = {"to", "copy_", "type_as", "__getitem__", "__setitem__", "as_tensor", "tensor", "cpu", "new_tensor",
               "_has_compatible_shallow_copy_type"}  # (the last: `Module.to` swapping parameters)
    # host reads of meta tensors: scalars read as 1 (a length or count of 0 would empty tensors downstream), arrays
    # as zeros
    HOST = {"cpu": _zeros, "item": lambda t: torch.ones((), dtype=t.dtype).item(),
            "tolist": lambda t: _zeros(t).tolist(), "numpy": lambda t: _zeros(t).numpy(),
            "__float__": lambda t: 1.0, "__int__": lambda t: 1, "__index__": lambda t: 1, "__bool__": lambda t: False}

    def __init__(self):
        super().__init__()
        self.calls = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        first = args[0] if args else None
        if isinstance(first, torch.Tensor) and first.is_meta:
            if name in self.HOST:
                return self.HOST[name](first)
            if name == "to" and _to_cpu_call(args, kwargs):
                dtype = next((a for a in (*args[1:], *kwargs.values()) if isinstance(a, torch.dtype)), first.dtype)
                return torch.zeros(first.shape, dtype=dtype)
        if (name == "__getitem__" and isinstance(first, torch.Tensor) and not first.is_meta
                and isinstance(args[1], torch.Tensor) and args[1].is_meta and args[1].dim() == 0):
            return first[0]  # a CPU table read at a device scalar (schedulers), which CUDA allows
        if name not in self.ALLOWED:
            kinds = {t.device.type for t in tree_leaves((args, kwargs))
                     if isinstance(t, torch.Tensor) and (t.dim() > 0 or t.is_meta)}
            for kind in kinds:
                self.calls[name, kind] += 1
            if "meta" in kinds and "cpu" in kinds:
                raise RuntimeError(f"{getattr(func, '__qualname__', func)} mixes tensors on the cpu and the "
                                   f"accelerator device (meta): a tensor or module was left on the CPU")
        return func(*args, **kwargs)
