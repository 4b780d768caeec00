import json

import pytest
import torch

from hf_vdd import load_distilled, load_video_dataset
from hf_vdd.distillers import DAViDConfig, DAViDDistiller, DMConfig, DMDistiller, temporal_partition
from hf_vdd.models import ConvNet3D, VideoMAEStudent
from hf_vdd.teacher import Teacher
from tests.helpers import ONE_THREAD

SMALL = dict(embed_widths=[8, 16, 16], batch_real=4, log_every=1)


@pytest.fixture(scope="module")
def train_set(tiny_toy):
    return load_video_dataset(tiny_toy, "train", num_frames=8, frame_size=32).preload(show_progress=False)


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    return Teacher(ConvNet3D(num_classes=4, widths=(8, 16, 16)), num_frames=8, frame_size=32, source="random")


def test_temporal_partition():
    x = torch.arange(8.0).view(1, 8, 1, 1, 1).expand(2, 8, 3, 4, 4)
    assert temporal_partition(x, 2, 8)[0, :, 0, 0, 0].tolist() == [0, 0, 0, 0, 4, 4, 4, 4]
    assert temporal_partition(x, 8, 8).equal(x)
    stored = torch.arange(2.0).view(1, 2, 1, 1, 1).expand(1, 2, 3, 4, 4)  # already A frames: only expanded
    assert temporal_partition(stored, 2, 8)[0, :, 0, 0, 0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_take_action_epsilon_greedy():
    q = torch.tensor([[0.1, 0.7, 0.2]])
    take = DAViDDistiller.take_action
    assert {take(q, 0, torch.Generator().manual_seed(s), 0.0) for s in range(20)} == {1}  # greedy
    assert {take(q, 0, torch.Generator().manual_seed(s), 1.0) for s in range(60)} == {0, 1, 2}  # uniform


def test_epsilon_decays_linearly_and_grid_is_greedy():
    d = DAViDDistiller(DAViDConfig(policy="qlearning"))
    assert d.num_policy_steps(5) == 5  # 5 x beta 0.02 = 10 % of the final DM
    assert [d.epsilon(s, 5) for s in range(5)] == pytest.approx([1.0, 0.775, 0.55, 0.325, 0.1])
    grid = DAViDDistiller(DAViDConfig())  # the default search (the module docstring says why)
    assert grid.config.policy == "grid" and grid.num_policy_steps(4) == 4 and grid.epsilon(0, 4) == 0.0


def test_q_update_is_eq2():
    d = DAViDDistiller(DAViDConfig(policy="qlearning"))  # alpha 0.1, gamma 0.5; the next state is the action taken
    q = torch.zeros(3, 3)
    q[1] = torch.tensor([0.2, 0.6, 0.4])
    assert d.q_update(q, 0, 1, reward=0.5) == 1
    assert q[0, 1].item() == pytest.approx(0.1 * (0.5 + 0.5 * 0.6 - 0.0))  # 0.08
    assert q[1, 1].item() == pytest.approx(0.6)
    grid = DAViDDistiller(DAViDConfig())  # one state: S' = S
    q = torch.full((1, 3), 2.0)
    assert grid.q_update(q, 0, 2, reward=0.5) == 0
    assert q[0].tolist() == pytest.approx([2.0, 2.0, 2.0 + 0.1 * (0.5 + 0.5 * 2.0 - 2.0)])
    with pytest.raises(FloatingPointError, match="teacher reward is nan"):  # a diverged teacher, said plainly
        grid.q_update(q, 0, 1, reward=float("nan"))
    assert torch.isfinite(q).all()


def test_best_action_reads_visited_cells():
    q = torch.tensor([[0.0, 0.3, 0.0], [0.1, 0.0, 0.05], [0.0, 0.0, 0.0]])
    visits = torch.tensor([[0, 1, 0], [1, 0, 2], [0, 0, 0]])
    assert DAViDDistiller.best_action(q, visits, 1) == 0  # visited row: its argmax
    q[1, 2] = -0.5  # a visited negative value still beats an unvisited cell
    assert DAViDDistiller.best_action(q, visits, 0) == 1
    # row 2 never visited: each action's mean over its visited cells -> [0.1, 0.3, -0.5]
    assert DAViDDistiller.best_action(q, visits, 2) == 1
    # the rotate-cw case of the toy-actions benchmark: from S_T only a poor action was tried, a better one elsewhere
    q, visits = torch.tensor([[0.0, 0.04], [0.012, 0.0]]), torch.tensor([[0, 1], [1, 0]])
    assert DAViDDistiller.best_action(q, visits, 1) == 0  # the paper's argmax_a Q(S_T, a): the one visited action
    assert DAViDDistiller.best_action(q, visits, 1, pooled=True) == 1
    with pytest.raises(ValueError, match="final_action must be 'state' or 'pooled', got 'best'"):
        DAViDConfig(final_action="best")


def _fake_teacher_reward(monkeypatch):
    """Reward 0.9 at 2 frames for classes 0-1 and at 8 frames for classes 2-3 (static vs motion), else 0.2."""
    best = {0: 2, 1: 2, 2: 8, 3: 8}
    real = {}

    def fake_reward(self, teacher, syn, resolution, num_frames, real_mean):
        c = next(k for k, v in real.items() if v is real_mean)
        return 0.9 if resolution == best[c] else 0.2

    orig = DAViDDistiller._real_features

    def remember(self, *args):
        real.update(orig(self, *args))
        return real

    monkeypatch.setattr(DAViDDistiller, "reward", fake_reward)
    monkeypatch.setattr(DAViDDistiller, "_real_features", remember)
    return best


def test_grid_tries_every_resolution_and_picks_the_most_rewarded(train_set, teacher, monkeypatch):
    best = _fake_teacher_reward(monkeypatch)
    d = DAViDDistiller(DAViDConfig(ipc=1, iterations=5, beta=0.2, policy="grid", **SMALL), teacher=teacher)
    out = d(train_set)
    assert d.chosen == best
    assert out.stats["resolutions_per_class"] == {"square": 2, "disc": 2, "slide-right": 8, "slide-left": 8}
    assert len(out.stats["rewards"]) == 4 and out.stats["early_iterations"] == 1  # one step per resolution 1,2,4,8
    tried = [set(r["resolution"].values()) for r in out.stats["rewards"]]
    assert set().union(*tried) == {1, 2, 4, 8}  # optimistic Q-values: every resolution was tried
    assert all(len(t) == 1 for t in d.q_tables.values())  # one state


def test_qlearning_continues_v_syn_and_replays_eq2(train_set, teacher, monkeypatch):
    _fake_teacher_reward(monkeypatch)
    seen = []  # (first-class input frame 0, output frame 0) of every DM call: policy steps, then final iterations
    orig = DAViDDistiller._run_dm

    def spy(self, train_set, sampler, syn, *args, **kwargs):
        before = syn[0].detach()[:, 0].clone()
        loss = orig(self, train_set, sampler, syn, *args, **kwargs)
        seen.append((before, syn[0].detach()[:, 0].clone()))
        return loss

    monkeypatch.setattr(DAViDDistiller, "_run_dm", spy)
    cfg = DAViDConfig(ipc=1, iterations=3, beta=0.34, policy="qlearning", policy_steps=8, epsilon_end=0.0, **SMALL)
    d = DAViDDistiller(cfg, teacher=teacher)
    out = d(train_set)
    log, acts = out.stats["rewards"], out.stats["actions"]
    assert [r["epsilon"] for r in log] == pytest.approx([1 - s / 7 for s in range(8)], abs=1e-5)
    # V_syn persists: frame 0 is in every P(V, A), so each step (and the final DM) starts where the last one ended
    assert all(torch.equal(seen[i + 1][0], seen[i][1]) for i in range(8))
    assert not torch.equal(seen[0][0], seen[0][1])
    for c in range(4):
        assert sum(1 for row in d.visits[c] if sum(row) > 0) > 1  # more than one state visited
        # replay Eq. 2 from the log: same table; the last step (epsilon 0) took a greedy action of its row
        q, s = torch.zeros(len(acts), len(acts)), len(acts) - 1
        for r in log:
            assert acts[s] == r["state"][str(c)]
            a = acts.index(r["resolution"][str(c)])
            if r["epsilon"] == 0:
                assert q[s, a] == q[s].max()
            q[s, a] += 0.1 * (r["reward"][str(c)] + 0.5 * q[a].max() - q[s, a])
            s = a
        assert torch.allclose(q, torch.tensor(d.q_tables[c]), atol=1e-6)
        assert d.chosen[c] == acts[DAViDDistiller.best_action(q, torch.tensor(d.visits[c]), s)]


def test_output_storage_card_and_round_trips(train_set, teacher, tmp_path):
    cfg = DAViDConfig(ipc=2, iterations=4, beta=0.25, **SMALL)
    d = DAViDDistiller(cfg, teacher=teacher)
    out = d(train_set)
    frames = {c: out.videos[2 * c].shape[0] for c in range(4)}
    assert frames == d.chosen and all(v.shape[1:] == (3, 32, 32) for v in out.videos)
    dm = DMDistiller(DMConfig(ipc=2, iterations=1, **SMALL))(train_set)
    assert out.storage_bytes() == dm.storage_bytes() * sum(frames.values()) / (4 * 8)
    back = load_distilled(out.save(tmp_path / "set"))
    assert [v.shape[0] for v in back.videos] == [v.shape[0] for v in out.videos]
    assert back.expanded_videos(8).shape == (8, 8, 3, 32, 32)
    card = (tmp_path / "set" / "README.md").read_text()
    assert "Temporal resolution per class" in card and "| slide-left |" in card
    assert "Chosen by `grid`: hf_vdd's default search" in card and "`--policy qlearning`" in card  # the departure
    assert out.stats["teacher"]["source"] == "random" and "## Teacher" in card  # the card says which teacher
    d.save_pretrained(tmp_path / "distiller")
    assert "| slide-left |" in (tmp_path / "distiller" / "README.md").read_text()
    policy = json.loads((tmp_path / "distiller" / "policy.json").read_text())
    assert policy["resolutions"] == {n: d.chosen[c] for c, n in enumerate(train_set.class_names)}
    assert policy["policy"] == "grid" and sorted(r["resolution"]["0"] for r in policy["rewards"]) == [1, 2, 4, 8]
    again = DAViDDistiller.from_pretrained(str(tmp_path / "distiller"))
    assert again.chosen == d.chosen and again.config.ipc == 2 and again.q_tables == d.q_tables
    assert again.visits == d.visits and d.visits[0] == [[1, 1, 1, 1]]  # grid: one state, each of |A| once


@pytest.mark.parametrize("policy", ["qlearning", "grid"])
def test_checkpoint_resume_in_both_phases(train_set, teacher, tmp_path, policy):
    cfg = dict(ipc=1, iterations=4, beta=0.25, checkpointing_steps=2, checkpoints_total_limit=0, policy=policy,
               checkpoint_dir=str(tmp_path / "ck"), **SMALL)
    straight = DAViDDistiller(DAViDConfig(**cfg), teacher=teacher)(train_set)
    names = sorted(p.name for p in (tmp_path / "ck").iterdir())
    assert "checkpoint-2" in names and "checkpoint-1000002" in names  # policy step 2, final iteration 2
    for ckpt in ("checkpoint-2", "checkpoint-1000002"):
        resumed = DAViDDistiller(DAViDConfig(**(cfg | {"resume_from_checkpoint": str(tmp_path / "ck" / ckpt)})),
                                 teacher=teacher)(train_set)
        assert resumed.stats["resolutions_per_class"] == straight.stats["resolutions_per_class"]
        assert resumed.stats["q_tables"] == straight.stats["q_tables"]
        assert resumed.stats["rewards"] == straight.stats["rewards"]
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(resumed.videos, straight.videos))
        curves = [[v for _, v in x.stats["loss_curve"]] for x in (resumed, straight)]
        assert curves[0] == pytest.approx(curves[1])
        # the whole run's search time and teacher, also when resumed after the search (checkpoint-1000002)
        assert resumed.stats["policy_seconds"] > 0 and resumed.stats["policy_fraction"] > 0
        assert resumed.stats["teacher"] == straight.stats["teacher"] == teacher.info()


def test_full_resolution_everywhere_is_dm(train_set):
    # same clips, same iterations, same SGD: DAViD differs from DM only by the per-class resolution
    david = DAViDDistiller(DAViDConfig(ipc=2, iterations=3, fixed_resolution=8, **SMALL))(train_set)
    dm = DMDistiller(DMConfig(ipc=2, iterations=3, **SMALL))(train_set)
    assert torch.allclose(torch.stack(david.videos), dm.videos, atol=1e-5)


def test_fixed_resolution_and_errors(train_set, teacher):
    out = DAViDDistiller(DAViDConfig(ipc=1, iterations=2, fixed_resolution=4, **SMALL))(train_set)
    assert {v.shape[0] for v in out.videos} == {4} and out.stats["policy_seconds"] == 0
    with pytest.raises(ValueError, match="fixed_resolution 3 is not one of"):
        DAViDDistiller(DAViDConfig(ipc=1, fixed_resolution=3))(train_set)
    with pytest.raises(ValueError, match="policy='shared' is now scope='shared'"):
        DAViDConfig(policy="shared")
    with pytest.raises(ValueError, match="policy must be 'qlearning' or 'grid', got 'global'"):
        DAViDConfig(policy="global")
    with pytest.raises(ValueError, match="scope must be one of"):
        DAViDConfig(scope="global")
    with pytest.raises(ValueError, match="beta must be"):
        DAViDConfig(beta=0)
    with pytest.raises(ValueError, match=r"epsilon_end must be in \[0, 1\], got 1.5"):
        DAViDConfig(epsilon_end=1.5)
    with pytest.raises(ValueError, match="policy_steps must be"):
        DAViDConfig(policy_steps=0)
    shared = DAViDDistiller(DAViDConfig(ipc=1, iterations=4, beta=0.25, scope="shared", policy="qlearning", **SMALL),
                            teacher=teacher)
    out = shared(train_set)
    assert len(set(out.stats["resolutions_per_class"].values())) == 1
    assert set(out.stats["rewards"][0]["state"]) == {"shared"}


@pytest.mark.slow
def test_recipe_two_processes_equal_one(tmp_path, run_recipe, two_processes):
    run_recipe(*two_processes.common["david"], "--output_dir", str(tmp_path / "one"), env=ONE_THREAD)
    one, two = load_distilled(tmp_path / "one"), load_distilled(two_processes.path("david", "two"))
    meta = json.loads(two_processes.path("david", "two", "distillation.json").read_text())
    assert meta["stats"]["num_processes"] == 2
    assert one.stats["resolutions_per_class"] == two.stats["resolutions_per_class"]
    assert all(torch.allclose(a, b, atol=1e-2) for a, b in zip(one.videos, two.videos))
    assert (tmp_path / "one.distiller" / "policy.json").is_file()


def test_videomae_teacher_over_other_labels_is_probed_and_carded(train_set, tmp_path):
    torch.manual_seed(0)
    VideoMAEStudent.from_config(3, 8, 32, id2label={0: "a", 1: "b", 2: "c"}, label2id={"a": 0, "b": 1, "c": 2}
                                ).model.save_pretrained(tmp_path / "mae")
    cfg = dict(ipc=1, iterations=4, beta=0.25, teacher=str(tmp_path / "mae"), **SMALL)
    out = DAViDDistiller(DAViDConfig(**cfg))(train_set)
    probe = out.stats["teacher"]["probe"]
    assert probe["num_train"] == 32 and probe["num_held_out"] == 4 and probe["train_accuracy"] > 0.9
    out.save(tmp_path / "set")
    assert "a linear probe" in (tmp_path / "set" / "README.md").read_text()
    with pytest.raises(ValueError, match="teacher_head='probe'"):
        DAViDDistiller(DAViDConfig(**cfg, teacher_head="error"))(train_set)
    # `teacher=<folder>` as a keyword is the config's teacher, as for every other setting (it was taken for a
    # loaded Teacher and failed with an AttributeError once the search began)
    cfg.pop("teacher")
    assert DAViDDistiller(**cfg, teacher=tmp_path / "mae").config.teacher == str(tmp_path / "mae")
