import copy
import json

import cv2
import numpy as np
import pytest
import torch
from datasets import Array4D, ClassLabel, Dataset, Features, load_dataset

from hf_vdd import ConvNet3D, TrainConfig, load_distilled, load_video_dataset, train_student
from hf_vdd.data.decoding import normalize
from hf_vdd.data.distilled import TensorVideoSet, region_tiles, tile_bounds
from hf_vdd.distillers import DISTILLERS, MotionSaliencyDetector, RealismDistiller, TransformersDetector, crops
from hf_vdd.distillers import realism as R
from hf_vdd.teacher import load_teacher
from hf_vdd.training import student_loss

NAMES = ["red", "green", "blue"]


def square_video(length=24, size=32, start=4, step=1, colour=(255, 255, 255), side=8, noise=0, seed=0):
    """A bright square moving right by `step` px/frame on a dark background: `(L, size, size, 3)` uint8."""
    rng = np.random.default_rng(seed)
    frames = np.full((length, size, size, 3), 20, np.uint8)
    for t in range(length):
        x = start + step * t
        frames[t, 10:10 + side, x:x + side] = colour
    if noise:
        frames = np.clip(frames + rng.normal(0, noise, frames.shape), 0, 255).astype(np.uint8)
    return frames


@pytest.fixture(scope="module")
def static_set():
    """3 classes × 5 videos of constant colour (nothing moves: the motion proposer finds nothing)."""
    videos, labels = [], []
    for c in range(3):
        for i in range(5):
            colour = np.zeros(3, np.uint8)
            colour[c] = 100 + 30 * i
            frames = np.broadcast_to(colour, (10 + 3 * i, 32, 32, 3)).copy()
            frames[:, :16] //= 2  # top half darker: tiles must keep the layout of the frame
            videos.append(frames)
            labels.append(c)
    ds = Dataset.from_dict({"video": videos, "label": labels}, features=Features(
        {"video": Array4D(shape=(None, 32, 32, 3), dtype="uint8"), "label": ClassLabel(names=NAMES)}))
    return load_video_dataset(ds, "train", num_frames=4, frame_size=32, interval=2)


@pytest.fixture(scope="module")
def toy_train(tiny_toy):
    return load_video_dataset(tiny_toy, "train", num_frames=4, frame_size=32)


def _random_teacher(tmp_path_factory, num_classes):
    folder = tmp_path_factory.mktemp(f"teacher{num_classes}") / "convnet3d"
    torch.manual_seed(0)
    ConvNet3D(num_classes=num_classes, widths=(8, 16, 16)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    return _random_teacher(tmp_path_factory, 4)


@pytest.fixture(scope="module")
def teacher3_dir(tmp_path_factory):
    return _random_teacher(tmp_path_factory, 3)


@pytest.fixture(scope="module")
def toy_out(toy_train, teacher_dir):
    return RealismDistiller(ipc=1, grid=2, teacher=str(teacher_dir), boxes_per_video=2, fast_tracker=True,
                            seed=0)(toy_train)


# ---- geometry ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("box,out", [((10, 5, 20, 6), (32, 32)), ((10, 5, 6, 20), (32, 32)),
                                     ((30, 20, 10, 10), (40, 20)), ((0, 0, 4, 30), (16, 32))])
def test_crop_window_covers_box_with_output_aspect(box, out):
    fw, fh = 80, 60
    x, y, w, h = R.crop_window(box, fw, fh, *out)
    bx, by, bw, bh = box
    assert 0 <= x and 0 <= y and x + w <= fw and y + h <= fh
    assert x <= bx and y <= by and x + w >= bx + bw and y + h >= by + bh  # covers the box
    assert abs(w / h - out[0] / out[1]) < 0.1  # the output aspect (W/H)
    assert min(w - bw, h - bh) <= 1  # the tight side: `w × wH/W` or `hW/H × h`
    if x > 0 and x + w < fw:
        assert abs((x + w / 2) - (bx + bw / 2)) <= 1  # centred on the box when the frame allows


def test_crop_window_larger_than_frame_is_shrunk():
    assert R.crop_window((0, 0, 48, 40), 48, 40, 32, 32) == (4, 0, 40, 40)  # whole frame → centred square


def test_tile_bounds_and_region_tiles():
    assert tile_bounds(32, 2) == [(0, 16), (16, 32)] and tile_bounds(10, 3) == [(0, 3), (3, 7), (7, 10)]
    x = torch.zeros(1, 2, 3, 8, 8)
    for m, ((y0, y1), (x0, x1)) in enumerate([(a, b) for a in tile_bounds(8, 2) for b in tile_bounds(8, 2)]):
        x[..., y0:y1, x0:x1] = m
    tiles = region_tiles(x, 2)
    assert tiles.shape == (1, 4, 2, 3, 8, 8)
    assert all(torch.allclose(tiles[0, m], torch.full((2, 3, 8, 8), float(m))) for m in range(4))
    picked = region_tiles(x, 2, torch.tensor([[3, 1]]))
    assert picked.shape == (1, 2, 2, 3, 8, 8) and picked[0, 0].mean() == 3 and picked[0, 1].mean() == 1


# ---- detection and tracking --------------------------------------------------------------------------------
def test_motion_detector_finds_the_moving_object_and_nothing_when_static():
    frames = square_video(noise=3)
    boxes = MotionSaliencyDetector()(frames)
    assert boxes
    x, y, w, h = boxes[0]
    assert x <= 5 and x + w >= 12 + 8 and y <= 10 and y + h >= 18 and w * h < 0.6 * 32 * 32  # square's path
    assert MotionSaliencyDetector()(np.repeat(frames[:1], 10, 0)) == []


def test_csrt_follows_a_moving_square():
    frames = square_video(length=20, size=64, start=4, step=2)
    path = R.track(frames, (4, 10, 8, 8))
    assert path is not None and len(path) == 20
    x, y, w, h = path[-1]
    assert abs(x + w / 2 - (4 + 2 * 19 + 4)) <= 3 and abs(y + h / 2 - 14) <= 3


def test_tracker_errors_are_lost_tracks(monkeypatch):
    class Broken:
        def init(self, frame, box):
            pass

        def update(self, frame):
            raise cv2.error("(-215:Assertion failed) !ssize.empty() in function 'resize'")

    monkeypatch.setattr(crops, "_csrt", lambda fast=False: Broken())
    assert R.track(square_video(length=5), (4, 10, 8, 8)) is None


@pytest.fixture(scope="module")
def tiny_detector(tmp_path_factory):
    """A randomly initialised YOLOS detector built from a config and saved locally (no download)."""
    from transformers import YolosConfig, YolosForObjectDetection, YolosImageProcessor

    folder = tmp_path_factory.mktemp("detector")
    torch.manual_seed(0)
    config = YolosConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                         image_size=[64, 64], patch_size=16, num_detection_tokens=5,
                         id2label={0: "person", 1: "ball"}, label2id={"person": 0, "ball": 1})
    YolosForObjectDetection(config).save_pretrained(folder)
    YolosImageProcessor(size={"shortest_edge": 64, "longest_edge": 64}).save_pretrained(folder)
    return str(folder)


def test_transformers_detector_boxes_and_label_filter(tiny_detector):
    frames = np.random.default_rng(0).integers(0, 255, (3, 40, 48, 3), dtype=np.uint8)
    boxes = TransformersDetector(tiny_detector, threshold=0.0)(frames)
    assert boxes and all(0 <= x and 0 <= y and x + w <= 48 + 1e-3 and y + h <= 40 + 1e-3 for x, y, w, h in boxes)
    det = TransformersDetector(tiny_detector, labels=["ball"], threshold=0.0)
    assert det.keep == {1}
    assert TransformersDetector(tiny_detector, labels=["ball"], threshold=1.01)(frames) == []
    with pytest.raises(ValueError, match="has no class \\['cat'\\]"):
        TransformersDetector(tiny_detector, labels=["cat"])


def test_unloadable_detector_is_a_clear_error(tmp_path, toy_train, teacher_dir):
    with pytest.raises(ValueError, match="Could not load the object detector 'no-such-org/no-such-detector'.*local"):
        TransformersDetector("no-such-org/no-such-detector")
    with pytest.raises(ValueError, match=str(tmp_path / "empty")):
        RealismDistiller(ipc=1, detector=str(tmp_path / "empty"), teacher=str(teacher_dir))(toy_train)


def test_distil_with_a_transformers_detector(toy_train, teacher_dir, tiny_detector):
    out = RealismDistiller(ipc=1, grid=1, detector=tiny_detector, detector_threshold=0.0, teacher=str(teacher_dir),
                           candidates_per_class=2, fast_tracker=True)(toy_train)
    assert out.videos.shape == (4, 4, 3, 32, 32) and out.stats["fallback_no_detection"] == 0


# ---- the distiller -----------------------------------------------------------------------------------------
def test_mosaics_shapes_soft_labels_and_seed(toy_out, toy_train, teacher_dir):
    out = toy_out
    assert "realism" in DISTILLERS
    assert out.videos.shape == (4, 4, 3, 32, 32) and out.videos.dtype == torch.uint8
    assert out.labels.tolist() == [0, 1, 2, 3] and out.soft_labels.shape == (4, 4, 4)
    assert torch.allclose(out.soft_labels.sum(-1), torch.ones(4, 4), atol=1e-5)
    # every tile comes from a different training video of the mosaic's class
    for k, sources in enumerate(out.stats["tile_source_index"]):
        assert len(set(sources)) == 4 and set(toy_train.labels[sources]) == {k}
    # the soft label of a tile is the teacher's softmax of exactly that tile
    teacher = load_teacher(str(teacher_dir), toy_train)
    tile = out.videos[:, :, :, 16:, :16].float() / 255
    assert torch.allclose(teacher.probs(tile), out.soft_labels[:, 2], atol=1e-5)
    assert out.stats["videos"] == len(toy_train) == out.stats["candidate_clips"]
    assert out.stats["teacher"] == {"source": str(teacher_dir), "head": "checkpoint", "probe": None}
    again = RealismDistiller(ipc=1, grid=2, teacher=str(teacher_dir), boxes_per_video=2, fast_tracker=True,
                             seed=0)(toy_train)
    assert torch.equal(again.videos, out.videos) and again.stats["tile_source_index"] == out.stats["tile_source_index"]


def test_candidate_cache_reuses_tracking_across_ipcs_with_the_fresh_result(toy_train, teacher_dir, monkeypatch):
    """The benchmark's IPC 1 then IPC 2: the second call tracks nothing and gives what a fresh IPC 2 call gives; a
    changed setting (not ipc or top_k) tracks again."""
    make = lambda **kw: RealismDistiller(**({"grid": 2, "teacher": str(teacher_dir), "boxes_per_video": 2,  # noqa: E731
                                             "fast_tracker": True, "seed": 0} | kw))
    fresh = make(ipc=2)(toy_train)
    calls = []
    real_track = R.track
    monkeypatch.setattr(R, "track", lambda *a, **k: calls.append(1) or real_track(*a, **k))
    cache = {}
    one = make(ipc=1)(toy_train, candidate_cache=cache)
    tracked = len(calls)
    assert tracked > 0 and len(cache) == 1 and "candidates_reused" not in one.stats
    two = make(ipc=2)(toy_train, candidate_cache=cache)
    assert len(calls) == tracked and two.stats["candidates_reused"] is True  # nothing tracked again
    assert torch.equal(two.videos, fresh.videos) and torch.equal(two.soft_labels, fresh.soft_labels)
    assert two.stats["tile_source_index"] == fresh.stats["tile_source_index"]
    assert two.stats["track_score_seconds"] == one.stats["track_score_seconds"]  # the reused work's cost
    assert two.stats["resumed_seconds"] == one.stats["track_score_seconds"]  # what the benchmark adds to the cell
    make(ipc=1, crop="track")(toy_train, candidate_cache=cache)  # another crop: other candidates
    assert len(calls) > tracked and len(cache) == 1


def test_tiles_match_source_crops_and_fallback_is_counted(static_set, teacher3_dir):
    out = RealismDistiller(ipc=1, grid=2, teacher=str(teacher3_dir))(static_set)
    assert out.stats["fallback_no_detection"] == len(static_set) == 15 and out.stats["fallback_lost_track"] == 0
    for row, sources in enumerate(out.stats["tile_source_index"]):
        for m, src in enumerate(sources):
            frame = static_set.decode(src)[0]
            expected = cv2.resize(frame, (16, 16), interpolation=cv2.INTER_AREA)  # whole-frame crop, scaled to S/N
            (y0, y1), (x0, x1) = tile_bounds(32, 2)[m // 2], tile_bounds(32, 2)[m % 2]
            tile = out.videos[row, :, :, y0:y1, x0:x1].permute(0, 2, 3, 1).numpy()
            assert np.array_equal(tile, np.broadcast_to(expected, tile.shape))


def test_top_scores_are_selected(static_set, teacher3_dir):
    out = RealismDistiller(ipc=1, grid=1, teacher=str(teacher3_dir), score="top_confidence")(static_set)
    teacher = load_teacher(str(teacher3_dir), static_set)
    for k, (src,) in enumerate(out.stats["tile_source_index"]):
        idx = np.flatnonzero(static_set.labels == k)
        clips = torch.stack([torch.as_tensor(cv2.resize(static_set.decode(i)[0], (32, 32))) for i in idx])
        scores = teacher.probs(clips[:, None].permute(0, 1, 4, 2, 3).float() / 255).max(1).values
        assert src == idx[int(scores.argmax())]


def test_lost_tracks_fall_back_and_are_counted(toy_train, teacher_dir, monkeypatch):
    monkeypatch.setattr(R, "track", lambda frames, box, fast=False: None)
    out = RealismDistiller(ipc=1, grid=1, teacher=str(teacher_dir), boxes_per_video=1)(toy_train)
    assert out.stats["fallback_lost_track"] + out.stats["fallback_no_detection"] == len(toy_train)
    assert out.stats["fallback_lost_track"] > 0


def test_trajectory_crop_keeps_translation_that_the_tracking_crop_removes(teacher3_dir):
    colours = [(255, 60, 60), (60, 255, 60), (60, 60, 255)]
    videos = [square_video(length=24, size=64, start=4, step=2, colour=c, side=10, noise=2, seed=i)
              for i, c in enumerate(colours)]
    ds = Dataset.from_dict({"video": videos, "label": [0, 1, 2]}, features=Features(
        {"video": Array4D(shape=(None, 64, 64, 3), dtype="uint8"), "label": ClassLabel(names=NAMES)}))
    data = load_video_dataset(ds, "train", num_frames=4, frame_size=64, interval=4)

    def shift(crop):
        out = RealismDistiller(ipc=1, grid=1, teacher=str(teacher3_dir), crop=crop)(data)
        assert out.stats["fallback_no_detection"] == out.stats["fallback_lost_track"] == 0
        bright = out.videos.float().amax(2) > 150  # (M, T, H, W)
        xs = torch.arange(64.0)
        centre = (bright.float() * xs).sum((2, 3)) / bright.float().sum((2, 3))
        return (centre[:, -1] - centre[:, 0]).abs().min().item()

    assert shift("track") < 6 < 15 < shift("trajectory")  # the square moves 24 px in the 13 tracked frames


def test_speed_normalisation_speeds_up_the_longer_clips_of_a_mosaic(teacher3_dir):
    """Sec. 5.1 step 4: a 48-frame crop tiled with 16-frame ones is resampled to 16 frames, so its tile shows its
    whole motion (about 3x the displacement of its own centred window at the student's interval)."""
    videos, labels = [], []
    for c, colour in enumerate([(255, 60, 60), (60, 255, 60), (60, 60, 255)]):
        for j, length in enumerate((16, 16, 16, 48)):
            videos.append(square_video(length=length, size=64, start=4, step=1, colour=colour, side=8, noise=2,
                                       seed=4 * c + j))
            labels.append(c)
    ds = Dataset.from_dict({"video": videos, "label": labels}, features=Features(
        {"video": Array4D(shape=(None, 64, 64, 3), dtype="uint8"), "label": ClassLabel(names=NAMES)}))
    data = load_video_dataset(ds, "train", num_frames=4, frame_size=64, interval=4)

    def long_tile_shift(normalise):
        out = RealismDistiller(ipc=1, grid=2, teacher=str(teacher3_dir), speed_normalise=normalise)(data)
        shifts = []
        for row, sources in enumerate(out.stats["tile_source_index"]):
            m = [i % 4 for i in sources].index(3)  # the tile of the class's 48-frame video
            (y0, y1), (x0, x1) = tile_bounds(64, 2)[m // 2], tile_bounds(64, 2)[m % 2]
            bright = out.videos[row, :, :, y0:y1, x0:x1].float().amax(1) > 150  # (T, h, w)
            xs = torch.arange(float(x1 - x0))
            centre = (bright.float() * xs).sum((1, 2)) / bright.float().sum((1, 2)).clamp(min=1)
            shifts.append((centre[-1] - centre[0]).item())
        return min(shifts)

    fast, own = long_tile_shift(True), long_tile_shift(False)
    assert fast > 2 * own > 0  # the normalised tile covers frames ~3..39 of the crop, its own window 18..30


def test_clear_errors(toy_train, teacher_dir):
    with pytest.raises(ValueError, match="grid 3×3 at ipc 1 needs 9 clips per class.*lower --grid"):
        RealismDistiller(ipc=1, grid=3, teacher=str(teacher_dir))(toy_train)
    with pytest.raises(ValueError, match=r"score must be one of \['own_class', 'top_confidence'\]"):
        RealismDistiller(score="loss", teacher=str(teacher_dir))(toy_train)
    with pytest.raises(ValueError, match=r"crop must be one of \['track', 'trajectory'\]"):
        RealismDistiller(crop="union", teacher=str(teacher_dir))(toy_train)
    with pytest.raises(ValueError, match="top_k=3 is smaller than ipc·grid² = 4"):
        RealismDistiller(top_k=3, teacher=str(teacher_dir))(toy_train)


# ---- format, card, storage ---------------------------------------------------------------------------------
def test_save_load_card_and_storage(toy_out, tmp_path):
    folder = toy_out.save(tmp_path / "toy-ipc1-realism")
    ds = load_dataset(str(folder), split="train")
    assert len(ds) == 4 and ds.features["video"].shape == (None, 3, 32, 32)
    assert np.asarray(ds[0]["soft_label"]).shape == (4, 4)
    back = load_distilled(folder)
    assert back.soft_labels.shape == (4, 4, 4) and torch.equal(torch.stack(back.videos), toy_out.videos)
    card = (folder / "README.md").read_text()
    assert "## Storage" in card and "DM (float16 pixels, same IPC)" in card
    storage = toy_out.stats["storage_bytes"]
    assert storage["DM (float16 pixels, same IPC)"] == 2 * storage["Random / coresets (uint8 clips, same IPC)"] \
        == 2 * toy_out.storage_bytes() == 2 * 4 * 4 * 3 * 32 * 32
    assert json.loads((folder / "distillation.json").read_text())["stats"]["fallback_lost_track"] >= 0
    train = back.to_train_set(4)
    assert train[0][2].shape == (4, 4)  # region soft labels reach the trainer


# ---- Eq. 5 region-level training -------------------------------------------------------------------------
def test_region_loss_hard_flag_and_training(toy_out):
    torch.manual_seed(0)
    model = ConvNet3D(num_classes=4, widths=(8, 16, 16)).eval()
    data = toy_out.to_train_set(4)
    x = torch.stack([data[i][0] for i in range(4)])
    y, soft = toy_out.labels, toy_out.soft_labels
    one_hot = torch.nn.functional.one_hot(y, 4).float()[:, None].expand(4, 4, 4)
    soft_cfg, hard_cfg = TrainConfig(region_samples=0), TrainConfig(label_mode="hard", region_samples=0)
    assert torch.allclose(student_loss(model, x, y, one_hot, soft_cfg), student_loss(model, x, y, soft, hard_cfg))
    assert not torch.allclose(student_loss(model, x, y, soft, soft_cfg), student_loss(model, x, y, soft, hard_cfg))
    # by hand, Eq. 5: the mean over tiles of each tile against its own label (no whole-mosaic term) ...
    logp = torch.log_softmax(model(normalize(x)), -1)
    tiles = region_tiles(x, 2).flatten(0, 1)
    tile_logp = torch.log_softmax(model(normalize(tiles)), -1)
    eq5 = -(soft.reshape(16, 4) * tile_logp).sum(-1).mean()
    assert torch.allclose(student_loss(model, x, y, soft, soft_cfg).mean(), eq5, atol=1e-5)
    # ... plus, with mosaic_loss, the whole mosaic against the mean of its region labels
    both = TrainConfig(region_samples=0, mosaic_loss=True)
    assert torch.allclose(student_loss(model, x, y, soft, both).mean(), eq5 - (soft.mean(1) * logp).sum(-1).mean(),
                          atol=1e-5)
    # the default samples one tile per mosaic: one forward per mosaic, like any other set
    calls = []
    handle = model.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    sampled = student_loss(model, x, y, soft, TrainConfig(), seeds=torch.arange(4))
    handle.remove()
    assert calls == [4] and sampled.shape == (4,)
    per_tile = -(soft.reshape(4, 4, 4) * tile_logp.view(4, 4, 4)).sum(-1)  # (mosaic, tile)
    assert all(any(torch.isclose(v, per_tile[i], atol=1e-5)) for i, v in enumerate(sampled))
    with pytest.raises(ValueError, match="label_mode must be"):
        student_loss(model, x, y, soft, TrainConfig(label_mode="both"))
    # training on the mosaics with region labels lowers the region loss (and works with sampled tiles)
    quick = dict(steps=30, batch_size=4, lr=0.05, show_progress=False, max_grad_norm=0)
    fresh = ConvNet3D(num_classes=4, widths=(8, 16, 16))
    with torch.no_grad():
        before = student_loss(copy.deepcopy(fresh).eval(), x, y, soft, soft_cfg).mean().item()
    trained = train_student(fresh, TensorVideoSet(x, y, soft), TrainConfig(**quick), seed=0)  # 1 tile per step
    trained.eval()
    with torch.no_grad():
        assert student_loss(trained, x, y, soft, soft_cfg).mean().item() < before
    train_student(ConvNet3D(num_classes=4, widths=(8, 16, 16)), TensorVideoSet(x, y, soft),
                  TrainConfig(**quick | {"steps": 2, "region_samples": 1, "label_mode": "hard"}), seed=0)


# ---- recipe ------------------------------------------------------------------------------------------------
def test_recipe_writes_a_loadable_folder(tmp_path, video_folder, teacher_dir, run_recipe):
    out_dir = tmp_path / "vf-ipc1-realism"
    cmd = ["recipes/realism.py", "--dataset", str(video_folder), "--frame_size", "32", "--num_frames",
           "4", "--ipc", "1", "--grid", "1", "--teacher", str(teacher_dir), "--output_dir", str(out_dir),
           "--eval_runs", "1", "--eval_steps", "2", "--label_mode", "hard"]
    res = run_recipe(*cmd)
    assert "mosaics in" in res.stdout and "wrote" in res.stdout
    ds = load_dataset(str(out_dir), split="train")
    assert len(ds) == 4 and ds.features["video"].shape == (None, 3, 32, 32)
    meta = json.loads((out_dir / "distillation.json").read_text())
    assert meta["eval_results"]["convnet3d"]["config"]["label_mode"] == "hard"
    bad = run_recipe(*cmd[:-6], "--grid", "2", "--output_dir", str(tmp_path / "never"), check=False)
    assert bad.returncode == 2 and "lower --grid or --ipc" in bad.stderr and not (tmp_path / "never").exists()
