import json
import re

import pytest
import torch

from hf_vdd import load_distilled, load_video_dataset
from hf_vdd.distillers import DMConfig, DMDistiller
from hf_vdd.distillers.matching import ClassSampler, augment, derived_generator, fresh_embedder, split_classes
from hf_vdd.utils import HfVddError
from tests.helpers import ONE_THREAD

SMALL = dict(embed_widths=[8, 16, 16], batch_real=4, log_every=1)


@pytest.fixture(scope="module")
def train_set(tiny_toy):
    return load_video_dataset(tiny_toy, "train", num_frames=4, frame_size=32).preload(show_progress=False)


def _avg_loss(d, train_set, syn, its=range(100, 106)):
    from hf_vdd.data.decoding import denormalize

    sampler = ClassSampler(train_set)
    total = 0.0
    for it in its:
        net = fresh_embedder(0, it, 4, SMALL["embed_widths"], embedding=d.config.embedding)
        losses = d.class_losses(net, sampler, it, {c: denormalize(s) for c, s in syn.items()})
        total += sum(v.item() for v in losses.values())
    return total / len(its)


def test_dm_reduces_matching_loss(train_set):
    cfg = DMConfig(ipc=1, iterations=40, init="noise", augment_strength=0.0, **SMALL)
    d = DMDistiller(cfg)
    before = _avg_loss(d, train_set, d.init_synthetic(train_set, range(4)))
    out = d(train_set)
    from hf_vdd.data.decoding import normalize

    after_syn = {c: normalize(out.videos[out.labels == c]) for c in range(4)}
    assert _avg_loss(d, train_set, after_syn) < 0.9 * before  # on embedders never seen during distillation
    assert out.videos.shape == (4, 4, 3, 32, 32) and out.videos.dtype == torch.float32
    assert len(out.stats["loss_curve"]) == 40 and out.stats["seconds_per_iteration"] > 0


def test_flatten_embedding_matches_the_whole_feature_map(train_set, tmp_path):
    """`embedding="flatten"` (the DM paper's and VDSD's) reduces its own matching loss and makes another set."""
    cfg = dict(ipc=1, iterations=40, init="noise", augment_strength=0.0, **SMALL)
    d = DMDistiller(DMConfig(**cfg, embedding="flatten", lr_img=1.0))  # its gradients are larger: lr 5 diverges
    assert d.config.embedding == "flatten"
    before = _avg_loss(d, train_set, d.init_synthetic(train_set, range(4)))
    out = d(train_set)
    from hf_vdd.data.decoding import normalize

    after_syn = {c: normalize(out.videos[out.labels == c]) for c in range(4)}
    assert _avg_loss(d, train_set, after_syn) < 0.97 * before  # measured 0.94 (pooled at lr 10: 0.86)
    assert out.config["embedding"] == "flatten"
    pooled = DMDistiller(DMConfig(**cfg, lr_img=1.0))(train_set)
    assert not torch.allclose(out.videos, pooled.videos)
    cards = {name: (s.save(tmp_path / name) / "README.md").read_text() for name, s in
             (("flatten", out), ("pooled", pooled))}
    assert "## Matching embedding" in cards["pooled"] and "## Matching embedding" not in cards["flatten"]
    with pytest.raises(HfVddError, match="embedding must be one of"):  # refused before any work
        DMConfig(**cfg, embedding="mean")


def test_same_seed_same_output_and_checkpoint_resume(train_set, tmp_path):
    cfg = dict(ipc=2, iterations=6, checkpoint_dir=str(tmp_path / "ck"), **SMALL)
    straight = DMDistiller(DMConfig(**cfg))(train_set)
    again = DMDistiller(DMConfig(**cfg))(train_set)
    assert torch.equal(straight.videos, again.videos)
    # "killed" after 3 iterations (checkpoint at 3), then resumed to 6
    DMDistiller(DMConfig(**(cfg | {"iterations": 3, "checkpointing_steps": 3})))(train_set)
    assert {p.name for p in (tmp_path / "ck" / "checkpoint-3").iterdir()} == {  # accelerator.save_state's files
        "custom_checkpoint_0.pkl", "random_states_0.pkl", "hf_vdd_run.json"}
    resumed = DMDistiller(DMConfig(**(cfg | {"resume_from_checkpoint": "latest"})))(train_set)
    assert torch.allclose(resumed.videos, straight.videos, atol=1e-6)
    assert [round(v, 6) for _, v in resumed.stats["loss_curve"]] == [round(v, 6) for _, v in
                                                                     straight.stats["loss_curve"]]
    # the timings continue the checkpoint's: 6 iterations timed, the first 3 in the "killed" run
    assert len(resumed.stats["iteration_seconds"]) == 6
    assert resumed.stats["distill_seconds"] >= sum(resumed.stats["iteration_seconds"])


def test_resume_refuses_another_run_and_old_checkpoints_are_pruned(train_set, tmp_path):
    cfg = dict(ipc=1, iterations=5, checkpointing_steps=1, checkpoints_total_limit=2,
               checkpoint_dir=str(tmp_path / "ck"), **SMALL)
    (tmp_path / "ck" / "checkpoint-0").mkdir(parents=True)  # a user's folders: never pruned nor replaced
    (tmp_path / "ck" / "checkpoint-0" / "notes.txt").write_text("mine")
    (tmp_path / "ck" / "checkpoints").mkdir()
    DMDistiller(DMConfig(**cfg))(train_set)
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["checkpoint-0", "checkpoint-4", "checkpoint-5",
                                                                  "checkpoints"]
    assert (tmp_path / "ck" / "checkpoint-0" / "notes.txt").read_text() == "mine"
    with pytest.raises(FileNotFoundError, match="hf_vdd_run.json not found"):
        DMDistiller(DMConfig(**(cfg | {"resume_from_checkpoint": str(tmp_path / "ck" / "checkpoint-0")}))).check(
            train_set)
    (tmp_path / "ck" / "checkpoint-0" / "state.pt").write_bytes(b"")  # an older hf_vdd's torch.save format
    with pytest.raises(ValueError, match="older hf_vdd .*accelerator.save_state"):
        DMDistiller(DMConfig(**(cfg | {"resume_from_checkpoint": str(tmp_path / "ck" / "checkpoint-0")}))).check(
            train_set)
    resume = cfg | {"resume_from_checkpoint": "latest", "iterations": 6}  # more iterations: same trajectory
    assert DMDistiller(DMConfig(**resume))(train_set).stats["loss_curve"][-1][0] == 5
    for change, key in (({"seed": 1}, "config.seed: 0 -> 1"), ({"lr_img": 1.0}, "config.lr_img: 10.0 -> 1.0"),
                        ({"ipc": 2}, "config.ipc: 1 -> 2")):
        distiller = DMDistiller(DMConfig(**(resume | change)))
        with pytest.raises(ValueError, match=f"belongs to another run.*{re.escape(key)}"):
            distiller.check(train_set)  # what recipes call before decoding
        with pytest.raises(ValueError, match="belongs to another run"):
            distiller(train_set)
    # a checkpoint of an hf_vdd from before a setting existed (`seed` here) resumes at that setting's default only
    run_file = sorted((tmp_path / "ck").glob("checkpoint-*/hf_vdd_run.json"))[-1]
    run = json.loads(run_file.read_text())
    del run["config"]["seed"], run["defaults"]
    run_file.write_text(json.dumps(run))
    DMDistiller(DMConfig(**resume)).check(train_set)
    with pytest.raises(ValueError, match=re.escape("config.seed: None -> 1")):
        DMDistiller(DMConfig(**(resume | {"seed": 1}))).check(train_set)
    other_data = train_set.subset(range(len(train_set) - 1))
    with pytest.raises(ValueError, match="data.num_videos: 32 -> 31"):
        DMDistiller(DMConfig(**resume)).check(other_data)
    with pytest.raises(FileNotFoundError, match="No checkpoint-<N> folder"):
        DMDistiller(DMConfig(**(resume | {"checkpoint_dir": str(tmp_path / "none")}))).check(train_set)


def test_periodic_evaluation(train_set, tiny_toy):
    test = load_video_dataset(tiny_toy, "test", num_frames=4, frame_size=32)
    cfg = DMConfig(ipc=1, iterations=4, eval_every=2, periodic_eval_steps=2, **SMALL)
    out = DMDistiller(cfg)(train_set, eval_set=test)
    assert [it for it, _ in out.stats["eval_curve"]] == [2, 4]
    assert all(0 <= acc <= 100 for _, acc in out.stats["eval_curve"])


def test_output_saves_as_float16(train_set, tmp_path):
    out = DMDistiller(DMConfig(ipc=1, iterations=1, **SMALL))(train_set)
    back = load_distilled(out.save(tmp_path / "dm"))
    assert torch.allclose(torch.stack(back.videos), out.videos, atol=2e-2)


def test_batched_losses_equal_per_class():
    from hf_vdd.distillers.matching import dm_loss, dm_losses

    net = fresh_embedder(0, 0, 3, [8, 16, 16])
    real = {c: torch.rand(3, 4, 3, 32, 32) for c in range(3)}
    syn = {c: torch.rand(2, 4, 3, 32, 32) for c in range(3)}
    seeds = {c: 10 + c for c in range(3)}
    for class_batch in (1, 2, 3):  # class by class, then 2 + 1 and all 3 classes sharing the embedder's forwards
        batched = dm_losses(net, real, syn, seeds, class_batch=class_batch)
        for c in range(3):
            assert torch.allclose(batched[c], dm_loss(net, real[c], syn[c], seed=10 + c), rtol=1e-4, atol=1e-6)
    syn = {c: x.clone().requires_grad_(True) for c, x in syn.items()}  # one backward: each class its own gradient
    grads = torch.autograd.grad(sum(dm_losses(net, real, syn, seeds, class_batch=3).values()), list(syn.values()))
    for c, grad in enumerate(grads):
        (alone,) = torch.autograd.grad(dm_loss(net, real[c], syn[c], seed=10 + c), [syn[c]])
        assert torch.allclose(grad, alone, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("make", ["dm", "david"])
def test_class_batch_gives_the_class_by_class_result(train_set, make):
    """`class_batch` classes share the embedder's forwards: the same synthetic videos up to float rounding, also
    through DAViD's Temporal Partitioning (`expand`)."""
    from hf_vdd.distillers import DAViDConfig, DAViDDistiller

    def run(class_batch):
        if make == "dm":
            return DMDistiller(DMConfig(ipc=2, iterations=3, class_batch=class_batch, **SMALL))(train_set)
        config = DAViDConfig(ipc=1, iterations=3, beta=0.5, policy="grid", class_batch=class_batch, **SMALL)
        return DAViDDistiller(config, teacher=_teacher())(train_set)

    one, three = run(1), run(3)  # 4 classes: chunks of 3 + 1
    for a, b in zip(one.videos, three.videos):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5)
    with pytest.raises(HfVddError, match="class_batch must be >= 1"):
        DMConfig(ipc=1, class_batch=0)


def _teacher():
    from hf_vdd.models import ConvNet3D
    from hf_vdd.teacher import Teacher

    torch.manual_seed(0)
    return Teacher(ConvNet3D(num_classes=4, widths=(8, 16, 16)), num_frames=4, frame_size=32, source="random")


def test_helpers():
    g1, g2 = derived_generator(1, 2, 3), derived_generator(1, 2, 3)
    x = torch.rand(2, 3, 3, 16, 16)
    assert torch.equal(augment(x, g1), augment(x, g2))
    assert split_classes(5, 2, 0) == [0, 1, 2] and split_classes(5, 2, 1) == [3, 4]
    with pytest.raises(ValueError, match="init must be"):
        DMDistiller(DMConfig(ipc=1, init="zeros")).init_synthetic(None, [0])


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path, run_recipe, two_processes):
    """Also: the 2-process run's `accelerator.save_state` checkpoint (the classes of both processes gathered, one
    random-state file per process) resumes in one process to the same set."""
    common, ck = two_processes.common["dm"], two_processes.path("dm", "ck")
    run_recipe(*common, "--output_dir", str(tmp_path / "one"), env=ONE_THREAD)
    one, two = load_distilled(tmp_path / "one"), load_distilled(two_processes.path("dm", "two"))
    assert {p.name for p in (ck / "checkpoint-2").iterdir()} == {
        "custom_checkpoint_0.pkl", "random_states_0.pkl", "random_states_1.pkl", "hf_vdd_run.json"}
    run_recipe(*common, "--output_dir", str(tmp_path / "resumed"), "--checkpoint_dir", str(ck),
               "--resume_from_checkpoint", "latest", env=ONE_THREAD)
    assert torch.allclose(torch.stack(load_distilled(tmp_path / "resumed").videos), torch.stack(two.videos),
                          atol=1e-2)
    assert json.loads(two_processes.path("dm", "two", "distillation.json").read_text())["stats"]["num_processes"] == 2
    assert torch.allclose(torch.stack(one.videos), torch.stack(two.videos), atol=1e-2)
    curve_one, curve_two = ([v for _, v in x.stats["loss_curve"]] for x in (one, two))
    assert len(curve_one) == 2 and curve_one == pytest.approx(curve_two, rel=1e-4)


def test_streamed_real_batches_give_the_preloaded_result(tiny_toy, train_set):
    """Without a preload, DataLoader workers decode each class's real batch ahead of the loop, in plan order; the
    distilled set is the preloaded run's, bit for bit."""
    from hf_vdd.distillers import IDTDConfig, IDTDDistiller

    streamed = load_video_dataset(tiny_toy, "train", num_frames=4, frame_size=32)
    streamed.sampler_options = {"num_workers": 2}
    for make in (lambda: DMDistiller(DMConfig(ipc=1, iterations=3, **SMALL)),
                 lambda: IDTDDistiller(IDTDConfig(ipc=1, iterations=2, **SMALL))):
        reference, out = make()(train_set), make()(streamed)
        assert torch.equal(out.videos, reference.videos)
        assert out.stats["real_batches"]["inline"] == 0 and out.stats["real_batches"]["restarts"] == 1
        assert out.stats["real_batches"]["prefetched"] == len(out.stats["iteration_seconds"]) * 4


def test_a_diverged_distillation_stops_with_the_fix_and_saves_nothing(train_set, run_recipe, tmp_path):
    """A learning rate that sends the pixels to NaN used to finish, save NaN videos and train students to chance."""
    with pytest.raises(HfVddError, match="DM: the loss is (nan|inf) at iteration [12]: the distillation diverged"
                                         ".*--lr_img"):
        DMDistiller(DMConfig(ipc=1, iterations=3, lr_img=1e30, **SMALL))(train_set)
    res = run_recipe("recipes/dm.py", "--ipc", "1", "--iterations", "3", "--lr_img", "1e30", "--frame_size", "16",
                     "--num_frames", "4", "--output_dir", str(tmp_path / "out"), check=False)
    assert res.returncode == 2 and "the distillation diverged" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()
