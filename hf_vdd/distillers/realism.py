"""Realism & diversity distiller (Jiang et al., "Video Dataset Distillation: Enhancing Diversity and Realism",
Sec. 4.3-5.1, Eq. 5): detect, track, crop, score, N×N mosaic, region-level soft labels.

A non-optimising pipeline over real training videos; the source is only used for inference::

    video i ──► detect on frame 0 ──► ≤ 3 boxes (seeded) ──► CSRT track ──► aspect-preserving crop, scale to S/N
            ──► teacher score (p(own class) or top confidence) ──► best box per video
    class c ──► top-K clips ──► ipc·N² of them, sorted by length ──► groups of N² ──► speed-normalise ──► mosaic
            ──► per-tile teacher softmax = region-level soft labels `(R, K)`, R = N²

Every mosaic is a uint8 `(T, 3, S, S)` video (S = the student's frame size, tiles `S/N`); `soft_labels` is
`(ipc·K, N², K)`. Students use them through the shared trainer (`TrainConfig(label_mode="soft"|"hard")`).
Videos with no detection, and tracks that are lost, fall back to the whole-frame crop (counted in `stats`).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from ..data.decoding import sample_indices
from ..data.distilled import tile_bounds
from ..data.loading import VideoClassificationSet
from ..training import TrainConfig
from ..utils import precision_key, progress
from .base import DistillationOutput, Distiller, DistillerConfig, register_distiller
from .crops import (  # noqa: F401 - re-exported: realism's public names
    Box,
    MotionSaliencyDetector,
    TransformersDetector,
    crop_resize,
    crop_window,
    load_detector,
    speed_normalise,
    tile_mosaic,
    track,
    trajectory_box,
)


@dataclass
class RealismConfig(DistillerConfig):
    """IPC = mosaics per class; each mosaic holds `grid`² real clips."""

    grid: int = field(default=2, metadata={"help": "Mosaic side N: each mosaic tiles N×N clips (paper: N×N, W/N)."})
    top_k: int | None = field(default=None, metadata={
        "help": "Top-scoring clips kept per class (TOP_K); ipc·grid² of them fill the mosaics. Default ipc·grid²."})
    detector: str = field(default="motion", metadata={
        "help": "'motion' (training-free frame differencing + connected components) or a transformers "
                "object-detection model id / folder (the paper uses YOLOv5)."})
    detector_labels: list[str] | None = field(default=None, metadata={
        "help": "Keep only detections with these class names (transformers detectors); default: all."})
    detector_threshold: float = field(default=0.3, metadata={"help": "Score threshold of transformers detections."})
    boxes_per_video: int = field(default=3, metadata={"help": "Boxes chosen at random among the detections (3)."})
    one_per_video: bool = field(default=True, metadata={
        "help": "Keep each video's most realistic crop only (σ_{i,*} of Sec. 4.3); off = every box competes."})
    score: str = field(default="own_class", metadata={
        "choices": ("own_class", "top_confidence"),
        "help": "own_class: teacher probability of the video's class (realism -loss); top_confidence: max prob."})
    teacher: str | None = field(default=None, metadata={
        "help": "Teacher folder/Hub id (saved ConvNet3D or VideoMAE classifier); default: train a ConvNet3D "
                "on the source with the shared trainer and cache it."})
    teacher_head: str = field(default="probe", metadata={
        "choices": ("probe", "error"),
        "help": "A VideoMAE --teacher whose labels are not the data's classes: 'probe' fits a linear probe on its "
                "frozen features of the real train split (accuracy in the card), 'error' stops."})
    teacher_steps: int = field(default=500, metadata={"help": "Training steps of the default ConvNet3D teacher."})
    teacher_cache: str | None = field(default=None, metadata={"help": "Teacher cache folder (default ~/.cache)."})
    track_frames: int | None = field(default=None, metadata={
        "help": "Frames tracked per video (centred window of consecutive frames); default: the whole video, as "
                "Sec. 5.1 tracks every frame, so the crops keep their own lengths for the speed normalisation."})
    speed_normalise: bool = field(default=True, metadata={
        "help": "Sec. 5.1 step 4: within a mosaic, the clips with more frames are sped up (evenly resampled) to "
                "the shortest clip's length before the student's frames are sampled, so every tile shows its whole "
                "crop at one speed; false: each tile is its own clip's centred window at the student's interval."})
    candidates_per_class: int | None = field(default=None, metadata={
        "help": "Random uniform pre-selection V'_c of videos per class before tracking (Sec. 4.3); default all."})
    crop: str = field(default="trajectory", metadata={
        "choices": ("track", "trajectory"),
        "help": "trajectory (default): one fixed window covering the tracked box in all frames (keeps translation, "
                "e.g. toy-actions' slide classes; best in the README's comparison); track: Sec. 5.1's crop, "
                "re-centred on the tracked box in every frame (a camera that follows the object: motion relative to "
                "the frame is removed)."})
    motion_frames: int = field(default=8, metadata={"help": "Frame differences used by the motion proposer."})
    fast_tracker: bool = field(default=False, metadata={
        "help": "CSRT with 9 scales and no segmentation (about 2x faster); default: OpenCV's CSRT defaults."})


# ---- the distiller ------------------------------------------------------------------------------------------
@register_distiller
class RealismDistiller(Distiller):
    """Realism & diversity distillation: mosaics of the most realistic tracked crops with region soft labels."""

    name = "realism"
    config_class = RealismConfig
    reuses_candidates = True  # `__call__` takes `candidate_cache` (the benchmark passes one per dataset)

    def check(self, train_set: VideoClassificationSet) -> None:
        """Settings against the data, before any video is decoded."""
        c = self.config
        if c.grid < 1:
            raise ValueError(f"grid must be >= 1, got {c.grid}.")
        need = c.ipc * c.grid ** 2
        if c.top_k is not None and c.top_k < need:
            raise ValueError(f"top_k={c.top_k} is smaller than ipc·grid² = {need} clips needed per class.")
        if c.boxes_per_video < 1:
            raise ValueError(f"boxes_per_video must be >= 1, got {c.boxes_per_video}.")
        if train_set.frame_size < c.grid:
            raise ValueError(f"grid {c.grid} is larger than the frame size {train_set.frame_size}.")
        per_clip = 1 if c.one_per_video else c.boxes_per_video
        counts = np.bincount(train_set.labels, minlength=train_set.num_classes)
        if c.candidates_per_class:
            counts = np.minimum(counts, c.candidates_per_class)
        small = [(train_set.class_names[k], int(n) * per_clip) for k, n in enumerate(counts) if n * per_clip < need]
        if small:
            raise ValueError(f"grid {c.grid}×{c.grid} at ipc {c.ipc} needs {need} clips per class, but class(es) "
                             f"{small[:5]} have fewer candidate clips; lower --grid or --ipc"
                             + (", or pass --one_per_video false." if c.one_per_video else "."))

    def candidate_key(self, train_set: VideoClassificationSet, teacher, accelerator=None) -> str:
        """What the scored candidates depend on: every setting but `ipc` and `top_k`, the data, the teacher's weights
        and the precision. Equal keys give equal candidates (and the same random state after them)."""
        config = {k: v for k, v in self.config.to_dict().items() if k not in ("ipc", "top_k")}
        h = hashlib.sha256(json.dumps([config, train_set.name, len(train_set), train_set.num_frames,
                                       train_set.frame_size, train_set.interval, precision_key(accelerator)],
                                      sort_keys=True, default=str).encode())
        h.update(np.asarray(train_set.row_indices, np.int64).tobytes())
        h.update(np.asarray(train_set.labels, np.int64).tobytes())
        for name, value in teacher.state_dict().items():
            h.update(name.encode())
            h.update(value.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()

    def __call__(self, train_set: VideoClassificationSet, accelerator=None, teacher=None,
                 candidate_cache: dict | None = None) -> DistillationOutput:
        """Distil `train_set` into `ipc` mosaics per class.

        Args:
            train_set: the real train split; `frame_size` S and `num_frames` T define the mosaics `(T, 3, S, S)`.
            teacher: an already loaded `hf_vdd.teacher.Teacher` (default: `load_teacher(config.teacher, ...)`).
            candidate_cache: a dict the caller keeps between calls (the benchmark: one per dataset) to reuse the
                detected, tracked and scored candidates of an earlier call whose settings differ only in `ipc` or
                `top_k` (`candidate_key`); the result is the one a fresh call gives, and `stats` records
                `candidates_reused` and the original `track_score_seconds`. It holds the last pool only.

        Returns a `DistillationOutput` with uint8 mosaics and per-region soft labels `(ipc·K, grid², K)`.
        """
        from ..teacher import load_teacher

        c = self.config
        self.check(train_set)
        show = accelerator is None or accelerator.is_local_main_process
        rng = np.random.default_rng(c.seed)
        timings, start = {}, time.perf_counter()
        size, n, t_out, interval = train_set.frame_size, c.grid, train_set.num_frames, train_set.interval
        bounds = tile_bounds(size, n)

        # 1. the teacher (the detector: only when step 2 runs)
        if teacher is None:
            torch.manual_seed(c.seed)
            teacher_config = TrainConfig(steps=c.teacher_steps, batch_size=32, seed=c.seed)
            teacher = load_teacher(c.teacher, train_set, teacher_config, c.teacher_cache, accelerator=accelerator,
                                   show_progress=show, teacher_head=c.teacher_head)
        teacher = teacher.on(accelerator)
        timings["teacher_seconds"] = time.perf_counter() - start

        key = self.candidate_key(train_set, teacher, accelerator) if candidate_cache is not None else None
        if key is not None and key in candidate_cache:  # 2'. an earlier call's candidates: the same draws follow
            pool, stats, state, timings["track_score_seconds"] = candidate_cache[key]
            rng.bit_generator.state = state
            # `resumed_seconds`: earlier work this result includes (the benchmark adds it to the cell's time)
            stats = dict(stats, candidates_reused=True, resumed_seconds=timings["track_score_seconds"])
        else:
            device = accelerator.device if accelerator is not None else None
            detector = load_detector(c.detector, c.detector_labels, c.detector_threshold, c.motion_frames, device)
            t0 = time.perf_counter()
            pool, stats = self._candidates(train_set, teacher, detector, rng, bounds, show)
            timings["track_score_seconds"] = time.perf_counter() - t0
            if key is not None:
                candidate_cache.clear()
                candidate_cache[key] = (pool, dict(stats), rng.bit_generator.state, timings["track_score_seconds"])

        # 3. per class: top-K, ipc·N² of them sorted by length, groups of N² → speed-normalised mosaics
        need = c.ipc * n * n
        mosaics, labels, tile_sources, tile_scores = [], [], [], []
        for k in range(train_set.num_classes):
            ranked = sorted(pool[k], key=lambda e: (-e["score"], e["video"]))[:c.top_k or need]
            if len(ranked) < need:
                raise ValueError(f"Class '{train_set.class_names[k]}' has {len(ranked)} clips, fewer than ipc·grid² "
                                 f"= {need}; lower --grid or --ipc.")
            if len(ranked) > need:  # Sec. 4.4: random selection from the top-K set
                ranked = [ranked[j] for j in sorted(rng.choice(len(ranked), need, replace=False))]
            ranked.sort(key=lambda e: (len(e["clip"]), -e["score"]))
            for g in range(c.ipc):
                group = ranked[g * n * n:(g + 1) * n * n]
                length = min(len(e["clip"]) for e in group)
                tiles = []
                for m, e in enumerate(group):
                    clip = speed_normalise(e["clip"], length) if c.speed_normalise else e["clip"]
                    idx = sample_indices(len(clip), t_out, interval, train=False)
                    tiles.append(self._fit_tile(clip[idx], bounds, m, n))
                mosaics.append(tile_mosaic(tiles, n, size))
                labels.append(k)
                tile_sources.append([int(train_set.row_indices[e["video"]]) for e in group])
                tile_scores.append([round(float(e["score"]), 4) for e in group])

        # 4. region-level soft labels: teacher softmax of every tile, exactly as stored in the mosaic
        videos_t = torch.as_tensor(np.stack(mosaics)).permute(0, 1, 4, 2, 3).contiguous()  # (M, T, 3, S, S)
        regions = []
        for m in range(n * n):
            (y0, y1), (x0, x1) = bounds[m // n], bounds[m % n]
            regions.append(teacher.probs(videos_t[:, :, :, y0:y1, x0:x1].float() / 255.0))
        soft = torch.stack(regions, 1)  # (M, R, K)
        timings["distill_seconds"] = time.perf_counter() - start
        ipc_rows = len(labels)
        storage = {
            "this set (uint8 mosaics + float32 region labels)": int(videos_t.numel() + soft.numel() * 4),
            "Random / coresets (uint8 clips, same IPC)": int(videos_t.numel()),
            "DM (float16 pixels, same IPC)": int(videos_t.numel() * 2),
            f"Random with as many clips (ipc·{n * n} per class, uint8)": int(videos_t.numel() * n * n),
        }
        return DistillationOutput(
            videos=videos_t, labels=torch.as_tensor(labels), class_names=train_set.class_names, method=self.name,
            ipc=c.ipc, source=train_set.name.split(":")[0], frame_size=size, num_frames=t_out, seed=c.seed,
            soft_labels=soft, config=c.to_dict() | {"teacher_source": getattr(teacher, "source", None)},
            stats=stats | timings | {"teacher": teacher.info() if hasattr(teacher, "info") else None,
                                     "mosaics": ipc_rows, "storage_bytes": storage, "tile_source_index": tile_sources,
                                     "tile_scores": tile_scores})

    def _candidates(self, train_set: VideoClassificationSet, teacher, detector, rng, bounds,
                    show: bool) -> tuple[dict[int, list[dict]], dict]:
        """Step 2, per video: detect on the first frame, choose boxes, track, crop (to a tile of `bounds`), score.
        Returns each class's candidates `{"video", "clip", "score"}` and the counts."""
        c = self.config
        t_out, interval = train_set.num_frames, train_set.interval
        tile_h, tile_w = bounds[0][1] - bounds[0][0], bounds[0][1] - bounds[0][0]
        stats = {"videos": 0, "candidate_clips": 0, "fallback_no_detection": 0, "fallback_lost_track": 0}
        pool: dict[int, list[dict]] = {k: [] for k in range(train_set.num_classes)}
        videos = []
        for k, idx in train_set.indices_per_class().items():
            if c.candidates_per_class and len(idx) > c.candidates_per_class:
                idx = np.sort(rng.choice(idx, c.candidates_per_class, replace=False))
            videos += [(k, int(i)) for i in idx]
        for k, i in progress(videos, desc="realism: detect/track/score", disable=not show, leave=False):
            frames = train_set.decode(i)
            if frames.shape[-1] == 1:
                frames = np.repeat(frames, 3, axis=-1)
            if c.track_frames:
                first = max(0, (len(frames) - c.track_frames) // 2)
                frames = frames[first:first + c.track_frames]
            fh, fw = frames.shape[1:3]
            boxes = detector(frames)
            whole = (0.0, 0.0, float(fw), float(fh))
            if not boxes:
                stats["fallback_no_detection"] += 1
                chosen = [whole]
            else:
                pick = rng.choice(len(boxes), min(c.boxes_per_video, len(boxes)), replace=False)
                chosen = [boxes[j] for j in sorted(pick)]
            clips = []
            for box in chosen:
                path = track(frames, box, c.fast_tracker) if box != whole else None
                if box != whole and path is None:
                    stats["fallback_lost_track"] += 1
                path = path or [whole] * len(frames)
                if c.crop == "trajectory":
                    path = [trajectory_box(path)] * len(frames)
                clips.append(np.stack([crop_resize(f, crop_window(b, fw, fh, tile_w, tile_h), tile_w, tile_h)
                                       for f, b in zip(frames, path)]))
            # scored as the student samples a clip: its centred window at the data's interval
            seen = np.stack(clips)[:, sample_indices(len(frames), t_out, interval, train=False)]
            probs = teacher.probs(torch.as_tensor(seen).permute(0, 1, 4, 2, 3).float() / 255.0)
            scores = (probs[:, k] if c.score == "own_class" else probs.max(1).values).tolist()
            cands = [{"video": i, "clip": clip, "score": s} for clip, s in zip(clips, scores)]
            if c.one_per_video:
                cands = [max(cands, key=lambda e: e["score"])]
            pool[k] += cands
            stats["videos"] += 1
            stats["candidate_clips"] += len(cands)
        return pool, stats

    @staticmethod
    def _fit_tile(clip: np.ndarray, bounds, m: int, n: int) -> np.ndarray:
        """Resize a `(T, h, w, 3)` tile to the exact pixel size of grid cell `m` (cells differ by <= 1 pixel)."""
        (y0, y1), (x0, x1) = bounds[m // n], bounds[m % n]
        if clip.shape[1:3] == (y1 - y0, x1 - x0):
            return clip
        return np.stack([cv2.resize(f, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR) for f in clip])
