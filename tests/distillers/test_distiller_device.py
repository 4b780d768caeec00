"""Every distiller follows `accelerator.device`: one short run of each on the `meta` device (see the
`meta_accelerator` fixture) fails if an embedder, teacher, real batch or synthetic tensor stays on the CPU."""

import pytest
import torch

from hf_vdd.data.loading import load_video_dataset
from hf_vdd.distillers import (
    DAViDConfig,
    DAViDDistiller,
    DMConfig,
    DMDistiller,
    Herding,
    IDTDConfig,
    IDTDDistiller,
    RealismDistiller,
)
from hf_vdd.models import ConvNet3D
from hf_vdd.teacher import Teacher

SMALL = dict(embed_widths=[8, 16, 16])


@pytest.fixture(scope="module")
def train_set(tiny_toy):
    return load_video_dataset(tiny_toy, "train", num_frames=4, frame_size=32).preload(show_progress=False)


def _teacher():
    torch.manual_seed(0)
    return Teacher(ConvNet3D(num_classes=4, widths=(8, 16, 16)), num_frames=4, frame_size=32, source="random")


def on_device_only(accelerator, op: str = "conv3d") -> bool:
    """`op` ran, and only on the accelerator's device."""
    calls = accelerator.device_calls
    return calls[op, "meta"] > 0 and calls[op, "cpu"] == 0


@pytest.mark.parametrize("make", [
    lambda: DMDistiller(DMConfig(ipc=1, iterations=2, **SMALL)),
    lambda: DMDistiller(DMConfig(ipc=1, iterations=2, init="noise", augment_strength=0, **SMALL)),
    lambda: DMDistiller(DMConfig(ipc=1, iterations=2, class_batch=4, **SMALL)),
    lambda: IDTDDistiller(IDTDConfig(ipc=1, iterations=2, **SMALL)),
    lambda: IDTDDistiller(IDTDConfig(ipc=1, iterations=2, pool_optimizer="sgd", **SMALL)),
    lambda: DAViDDistiller(DAViDConfig(ipc=1, iterations=2, beta=0.5, **SMALL), teacher=_teacher()),
], ids=["dm", "dm-noise", "dm-class-batch", "idtd", "idtd-sgd-pool", "david"])
def test_optimising_distillers_run_on_the_accelerator_device(make, train_set, meta_accelerator):
    out = make()(train_set, accelerator=meta_accelerator)
    assert on_device_only(meta_accelerator)
    assert out.videos[0].device.type == "cpu" and len(out.labels) == 4  # gathered back to the CPU


def test_realism_and_herding_run_on_the_accelerator_device(train_set, meta_accelerator):
    teacher = _teacher()
    out = RealismDistiller(ipc=1, grid=2, boxes_per_video=1, fast_tracker=True, candidates_per_class=4)(
        train_set, accelerator=meta_accelerator, teacher=teacher)
    assert next(teacher.parameters()).device.type == "meta" and len(out.labels) == 4
    assert on_device_only(meta_accelerator)
    meta_accelerator.device_calls.clear()
    assert len(Herding(ipc=1)(train_set, accelerator=meta_accelerator).labels) == 4
    assert on_device_only(meta_accelerator)


def test_the_device_check_catches_a_tensor_left_on_the_cpu(train_set, meta_accelerator, monkeypatch):
    """The guard itself: an embedder built on the CPU (as before this was fixed) makes the meta run fail, and a
    run done wholly on the CPU is seen as such."""
    from hf_vdd.distillers.engine import ClassParallelEngine
    from hf_vdd.distillers.matching import fresh_embedder

    with monkeypatch.context() as patch, pytest.raises(RuntimeError, match="left on the CPU"):
        patch.setattr(ClassParallelEngine, "embedder", lambda self, *a: fresh_embedder(*a))
        DMDistiller(DMConfig(ipc=1, iterations=1, **SMALL))(train_set, accelerator=meta_accelerator)
    meta_accelerator.device_calls.clear()
    DMDistiller(DMConfig(ipc=1, iterations=1, **SMALL))(train_set)  # no accelerator: the CPU
    assert meta_accelerator.device_calls["conv3d", "cpu"] > 0 and not on_device_only(meta_accelerator)


def test_bf16_autocasts_the_embedder_and_keeps_pixels_fp32(train_set, monkeypatch, tmp_path):
    """`mixed_precision="bf16"`: the embedder's forwards run in bf16, the synthetic pixels stay fp32 and end close
    to (not equal to) the fp32 run's; without mixed precision the run is the accelerator-free one, bit for bit."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    from hf_vdd.models import ConvNet3D

    dtypes, embed = [], ConvNet3D.embed

    def embed_and_record(self, x):  # the dtype of the first conv's output (the 3rd runs in fp32 at 32x32)
        hook = self.features[0].register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
        try:
            return embed(self, x)
        finally:
            hook.remove()

    monkeypatch.setattr(ConvNet3D, "embed", embed_and_record)
    cfg = DMConfig(ipc=1, iterations=3, **SMALL)
    reference = DMDistiller(cfg)(train_set)
    try:
        AcceleratorState._reset_state(reset_partial_state=True)
        fp32 = DMDistiller(cfg)(train_set, accelerator=Accelerator(cpu=True, mixed_precision="no"))
        AcceleratorState._reset_state(reset_partial_state=True)
        dtypes.clear()
        bf16 = DMDistiller(cfg)(train_set, accelerator=Accelerator(cpu=True, mixed_precision="bf16"))
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    assert torch.equal(fp32.videos, reference.videos)
    assert set(dtypes) == {torch.bfloat16} and bf16.videos.dtype == torch.float32
    gap = (bf16.videos - reference.videos).abs()
    assert 0 < gap.max() and gap.mean() < 0.05
    assert bf16.stats["mixed_precision"] == "bf16" and "mixed_precision" not in fp32.stats  # the cards say so
    cards = {name: (out.save(tmp_path / name) / "README.md").read_text() for name, out in (("fp32", fp32),
                                                                                           ("bf16", bf16))}
    assert "## Mixed precision" in cards["bf16"] and "## Mixed precision" not in cards["fp32"]


def test_compiled_embedder_matches_eager_and_falls_back_with_a_warning(train_set, monkeypatch, caplog):
    """With a dynamo backend (`--compile`) DM keeps one embedder, compiled once, and gives the eager result; a
    backend that fails (no compiler) logs a warning and the run goes on eagerly."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    cfg = DMConfig(ipc=1, iterations=2, **SMALL)
    eager = DMDistiller(cfg)(train_set)
    compiled_calls = []
    real_compile = torch.compile

    def compile_and_count(fn, backend):
        compiled_calls.append(backend)
        return real_compile(fn, backend=backend)

    try:
        AcceleratorState._reset_state(reset_partial_state=True)
        accelerator = Accelerator(cpu=True, dynamo_backend="eager")
        monkeypatch.setattr(torch, "compile", compile_and_count)
        compiled = DMDistiller(cfg)(train_set, accelerator=accelerator)
        assert compiled_calls == ["eager"] and torch.equal(compiled.videos, eager.videos)

        def broken(fn, backend):
            def fail(*args, **kwargs):
                raise RuntimeError("InductorError: no C++ compiler")
            return fail

        monkeypatch.setattr(torch, "compile", broken)
        with caplog.at_level("WARNING"):
            fallback = DMDistiller(cfg)(train_set, accelerator=accelerator)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    assert torch.equal(fallback.videos, eager.videos)
    assert "torch.compile (backend eager) failed, running eagerly: InductorError" in caplog.text


def test_channels_last_embedder_is_close_to_the_default(train_set):
    """`channels_last=True` runs the embedder in channels_last_3d (oneDNN's fast path): the same run up to float
    rounding."""
    from hf_vdd.distillers.engine import ClassParallelEngine

    cfg = dict(ipc=1, iterations=2, **SMALL)
    engine = ClassParallelEngine(DMDistiller(DMConfig(**cfg, channels_last=True)), train_set)
    assert engine.embedder(0, 0, 4, [8, 16, 16]).features[0].weight.is_contiguous(
        memory_format=torch.channels_last_3d)
    default = DMDistiller(DMConfig(**cfg))(train_set)
    fast = DMDistiller(DMConfig(**cfg, channels_last=True))(train_set)
    assert torch.allclose(fast.videos, default.videos, atol=1e-4)
