"""The CUDA checks (`pytest -m cuda`, run by scripts/gpu_check.sh): every loop on a real GPU, in fp32 and bf16.

Skipped where `torch.cuda.is_available()` is False; `tests/distillers/test_distiller_device.py` guards the same
device placement on every machine with the `meta` device."""

import numpy as np
import pytest
import torch

from hf_vdd import TrainConfig, evaluate_distilled, load_video_dataset
from hf_vdd.distillers import DAViDConfig, DAViDDistiller, DMConfig, DMDistiller, IDTDConfig, IDTDDistiller
from hf_vdd.models import ConvNet3D
from hf_vdd.teacher import Teacher

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
SMALL = dict(embed_widths=[8, 16, 16])


@pytest.fixture
def gpu():
    """`gpu(precision)` → a fresh CUDA `Accelerator` with that mixed precision; peak memory counters reset."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    def make(precision: str = "no"):
        AcceleratorState._reset_state(reset_partial_state=True)
        torch.cuda.reset_peak_memory_stats()
        return Accelerator(mixed_precision=precision)

    yield make
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(scope="module")
def splits(tiny_toy):
    return (load_video_dataset(tiny_toy, "train", num_frames=4, frame_size=32).preload(show_progress=False),
            load_video_dataset(tiny_toy, "test", num_frames=4, frame_size=32))


def _teacher():
    torch.manual_seed(0)
    return Teacher(ConvNet3D(num_classes=4, widths=(8, 16, 16)), num_frames=4, frame_size=32, source="random")


DISTILLERS = {
    "dm": lambda: DMDistiller(DMConfig(ipc=1, iterations=3, **SMALL)),
    "dm-class-batch": lambda: DMDistiller(DMConfig(ipc=1, iterations=3, class_batch=4, **SMALL)),
    "idtd": lambda: IDTDDistiller(IDTDConfig(ipc=1, iterations=3, num_selectors=2, **SMALL)),
    "david": lambda: DAViDDistiller(DAViDConfig(ipc=1, iterations=3, beta=0.5, **SMALL), teacher=_teacher()),
}


@pytest.mark.parametrize("precision", ["no", "bf16"])
@pytest.mark.parametrize("method", list(DISTILLERS))
def test_distillers_run_on_the_gpu(method, precision, splits, gpu):
    accelerator = gpu(precision)
    assert accelerator.device.type == "cuda"
    out = DISTILLERS[method]()(splits[0], accelerator=accelerator)
    assert torch.cuda.max_memory_allocated() > 0  # the work was on the GPU ...
    videos = [out.videos] if isinstance(out.videos, torch.Tensor) else list(out.videos)  # DAViD: per-class lengths
    assert all(v.device.type == "cpu" and torch.isfinite(v.float()).all() for v in videos)  # back to be saved
    assert len(out.labels) == 4


def test_bf16_on_the_gpu_stays_close_to_fp32(splits, gpu):
    cfg = DMConfig(ipc=1, iterations=3, **SMALL)
    fp32 = DMDistiller(cfg)(splits[0], accelerator=gpu("no"))
    bf16 = DMDistiller(cfg)(splits[0], accelerator=gpu("bf16"))
    assert bf16.videos.dtype == torch.float32 and bf16.stats["mixed_precision"] == "bf16"
    gap = (bf16.videos - fp32.videos).abs()
    assert 0 < gap.max() and gap.mean() < 0.05


@pytest.mark.parametrize("precision", ["no", "bf16"])
def test_student_learns_on_the_gpu(precision, splits, gpu):
    train, test = splits
    rep = evaluate_distilled(train, test, TrainConfig(runs=1, steps=60, batch_size=16, show_progress=False),
                             accelerator=gpu(precision))
    assert torch.cuda.max_memory_allocated() > 0
    assert rep.top1["mean"] > 40  # 4 classes: chance is 25 %


def test_latte_pool_generates_on_the_gpu(tmp_path, gpu):
    from hf_vdd.diffusion import generate_pool, load_pool, tiny_latte_pipeline
    from tests.diffusion.helpers import small_pool_config

    names = ["square", "disc"]
    pipe = tiny_latte_pipeline(names, num_frames=8, frame_size=32, seed=0)
    generate_pool(pipe, names, tmp_path / "pool", small_pool_config(videos_per_class=2), dataset="tiny",
                  generator="tiny", accelerator=gpu("bf16"), show_progress=False)
    assert next(pipe.transformer.parameters()).device.type == "cuda" and torch.cuda.max_memory_allocated() > 0
    pool = load_pool(tmp_path / "pool", names)
    assert pool.videos.shape == (4, 8, 3, 32, 32) and pool.videos.dtype == torch.uint8
    assert np.unique(pool.videos.numpy()).size > 1  # not a constant image


def test_fresh_embedder_is_made_on_the_gpu_with_the_same_weights_every_time():
    from hf_vdd.distillers.matching import fresh_embedder

    cpu_state, cuda_state = torch.random.get_rng_state(), torch.cuda.get_rng_state()
    a, b = fresh_embedder(0, 3, 4, (8, 16, 16), "cuda"), fresh_embedder(0, 3, 4, (8, 16, 16), "cuda")
    other = fresh_embedder(0, 4, 4, (8, 16, 16), "cuda")
    assert all(p.device.type == "cuda" and not p.requires_grad for p in a.parameters())
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))  # every process: one net
    assert not torch.equal(a.features[0].weight, other.features[0].weight)  # a new net each iteration
    assert a.features[0].weight.std() > 0 and a.features[0].bias.abs().sum() == 0  # He init, zero bias
    assert torch.equal(torch.random.get_rng_state(), cpu_state) and torch.equal(torch.cuda.get_rng_state(),
                                                                                cuda_state)  # no global draw


@pytest.mark.parametrize("num_workers", [0, 1])
def test_real_batches_are_page_locked_uint8_converted_on_the_gpu(tiny_toy, num_workers):
    from hf_vdd.data.streaming import PrefetchingClassSampler
    from hf_vdd.distillers.matching import ClassSampler

    train = load_video_dataset(tiny_toy, "train", num_frames=4, frame_size=32)
    assert train.stack_uint8([0, 1], pin_memory=True).is_pinned()
    keys = [(0, 0), (0, 1)]
    with PrefetchingClassSampler(train, 3, keys, n=2, num_workers=num_workers, device="cuda") as sampler:
        for it, c in keys:
            x, g = sampler.batch(3, it, c, 2)
            x_cpu, g_cpu = ClassSampler(train).batch(3, it, c, 2)
            assert x.device.type == "cuda" and torch.equal(x.cpu(), x_cpu)  # the same values, converted there
            assert torch.equal(g.get_state(), g_cpu.get_state())


def test_kernels_mode_times_forwards_on_the_gpu():
    from hf_vdd.speed_kernels import kernel_rows

    rows = kernel_rows(2, 48, 4, [8, 16, 16], batch=4, threads=1, device="cuda", iterations=2, warmup=1)
    assert len(rows) == 8 and all(r["device"] == "cuda" and r["median_s"] > 0 and r["gflops"] > 0 for r in rows)
