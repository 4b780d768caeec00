"""PrefetchingClassSampler hands out exactly ClassSampler's batches (tensors and generator states), in or out of
plan order, with or without workers, on the device asked for (gathered as uint8, converted there); DataArgs exposes
its flags."""

import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Value

from hf_vdd import CorruptVideoError, load_video_dataset
from hf_vdd.cli import DataArgs, parse_args
from hf_vdd.data.streaming import PrefetchingClassSampler, to_float
from hf_vdd.distillers.matching import ClassSampler

SEED, N = 7, 2


@pytest.fixture(scope="module")
def train_set(video_folder):
    return load_video_dataset(str(video_folder), "train", num_frames=4, frame_size=32)


def _assert_same(sampler, reference, it, c, n=N, seed=SEED):
    x, g = sampler.batch(seed, it, c, n)
    x_ref, g_ref = reference.batch(seed, it, c, n)
    assert torch.equal(x, x_ref) and x.shape == (min(n, 3), 4, 3, 32, 32)
    assert torch.equal(g.get_state(), g_ref.get_state())
    assert torch.equal(torch.rand(3, generator=g), torch.rand(3, generator=g_ref))  # the caller's next draws


@pytest.mark.parametrize("num_workers", [0, 2])
def test_prefetched_batches_equal_class_sampler_batches(train_set, num_workers):
    reference = ClassSampler(train_set)
    keys = [(it, c) for it in range(3) for c in range(train_set.num_classes)]
    with PrefetchingClassSampler(train_set, SEED, keys, n=N, num_workers=num_workers, prefetch_factor=1) as sampler:
        assert {c: v.tolist() for c, v in sampler.by_class.items()} == \
               {c: v.tolist() for c, v in reference.by_class.items()}
        requests = [(it, c, N) for it, c in keys]
        requests[1], requests[2] = requests[2], requests[1]  # served from the batches fetched ahead
        requests.insert(5, (0, 0, N))  # already handed out: computed inline
        requests.insert(7, (1, 3, 3))  # another n: computed inline
        requests.append((9, 0, N))  # not in the plan
        for it, c, n in requests:
            _assert_same(sampler, reference, it, c, n=n)
        assert sampler.stats["prefetched"] == (len(keys) if num_workers else 0)
        assert sampler.stats["inline"] == (3 if num_workers else len(requests))
        assert sampler.stats["restarts"] == (1 if num_workers else 0)


def test_resumed_plan_skips_ahead_and_workers_stop(train_set):
    reference = ClassSampler(train_set)
    keys = [(it, c) for it in range(6) for c in range(train_set.num_classes)]
    sampler = PrefetchingClassSampler(train_set, SEED, keys, n=N, num_workers=2, prefetch_factor=1).start()
    workers = sampler._iterator._workers
    for c in range(train_set.num_classes):  # a run resumed at iteration 4 of a plan that starts at 0
        _assert_same(sampler, reference, 4, c)
    assert sampler.stats == {"prefetched": 4, "inline": 0, "restarts": 2}
    assert not any(w.is_alive() for w in workers)  # the first workers were stopped
    workers = sampler._iterator._workers
    sampler.close()
    assert not any(w.is_alive() for w in workers)
    _assert_same(sampler, reference, 5, 0)  # after close: inline
    assert sampler.stats["inline"] == 1


def test_worker_errors_are_raised_as_themselves(video_folder, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video" * 10)
    good = str(next(video_folder.glob("train/*/*.mp4")))
    ds = load_video_dataset(Dataset.from_dict({"video": [good, str(bad)], "label": [0, 0]}, features=Features(
        {"video": Value("string"), "label": ClassLabel(names=["a"])})), num_frames=4, frame_size=32)
    with PrefetchingClassSampler(ds, SEED, [(0, 0)], n=2, num_workers=1) as sampler:
        with pytest.raises(CorruptVideoError, match="broken.mp4"):
            sampler.batch(SEED, 0, 0, 2)


def test_preloaded_sets_are_sampled_inline(train_set):
    preloaded = train_set.subset(range(len(train_set))).preload(show_progress=False)
    sampler = PrefetchingClassSampler(preloaded, SEED, [(0, 0)], n=N, num_workers=2)
    assert sampler.num_workers == 0
    _assert_same(sampler, ClassSampler(train_set), 0, 0)


@pytest.mark.parametrize("preload", [False, True])
def test_uint8_batches_are_the_float_batches_before_conversion(train_set, preload):
    data = train_set.subset(range(len(train_set)))
    data = data.preload(show_progress=False) if preload else data
    pick = [0, 3, 1]
    g, g_ref = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    raw = data.stack_uint8(pick, train=True, generator=g)
    clips = torch.stack([data.clip(i, train=True, generator=g_ref) for i in pick])  # clip by clip, as before
    assert raw.dtype == torch.uint8 and raw.shape == (3, 4, 3, 32, 32)
    assert torch.equal(raw.float() / 255, clips) and torch.equal(to_float(raw), clips)
    assert torch.equal(g.get_state(), g_ref.get_state())  # the same draws
    assert torch.equal(data.stack(pick), torch.stack([data.clip(i, train=False) for i in pick]))


@pytest.mark.parametrize("num_workers", [0, 1])
def test_batches_come_on_the_sampler_device(train_set, num_workers):
    keys = [(0, 0), (0, 1)]
    with PrefetchingClassSampler(train_set, SEED, keys, n=N, num_workers=num_workers, device="meta") as sampler:
        for it, c in keys + [(3, 0)]:  # planned (prefetched by the worker) and inline
            x, _ = sampler.batch(SEED, it, c, N)
            assert x.device.type == "meta" and x.dtype == torch.float32 and x.shape == (N, 4, 3, 32, 32)
    x, _ = ClassSampler(train_set, device="meta").batch(SEED, 0, 0, N)
    assert x.device.type == "meta" and x.dtype == torch.float32


def test_data_args_stream_flags(video_folder):
    (data,) = parse_args(DataArgs, argv=[])
    assert (data.dataloader_num_workers, data.cache_size, data.preload) == (2, 0, False)
    assert data.sampler_options() == {"num_workers": 2, "prefetch_factor": 2}
    (data,) = parse_args(DataArgs, argv=["--dataset", str(video_folder), "--dataloader_num_workers", "0",
                                         "--cache_size", "3", "--preload", "--frame_size", "32"])
    assert (data.dataloader_num_workers, data.cache_size, data.preload) == (0, 3, True)
    assert data.sampler_options()["num_workers"] == 0 and data.load("train").cache_size == 3
    with pytest.raises(ValueError, match="num_workers"):
        PrefetchingClassSampler(data.load("train"), 0, [], n=1, num_workers=-1)
