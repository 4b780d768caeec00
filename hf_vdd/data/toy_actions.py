"""toy-actions: a procedural, seeded video classification benchmark that needs motion to be solved.

Classes 0-4 are decided by **appearance** (the object's shape; a still frame suffices). Classes 5-9 share one
appearance (a "clock hand": a bar with a dot at its tip) and differ only in **motion**, so a single frame is
uninformative about them:

| label | name | kind | temporal redundancy |
|---|---|---|---|
| 0 | square | appearance | high (slow random drift) |
| 1 | disc | appearance | high |
| 2 | triangle | appearance | high |
| 3 | ring | appearance | high |
| 4 | cross | appearance | high |
| 5 | slide-right | motion | high (slow, ~14 px over the clip) |
| 6 | slide-left | motion | high |
| 7 | rotate-cw | motion | low (8-14 degrees per frame) |
| 8 | rotate-ccw | motion | low |
| 9 | bounce | motion | low (vertical oscillation, period 6-10 frames) |

Every clip has its own length (16-48 frames by default), a dark gradient background, static clutter dots,
Gaussian noise and random object colour, size and position. Positions and angles are distributed
symmetrically so that no single frame gives away a motion class.
"""

from __future__ import annotations

import numpy as np
from datasets import Array4D, ClassLabel, Dataset, DatasetDict, Features

APPEARANCE_CLASSES = ["square", "disc", "triangle", "ring", "cross"]
MOTION_CLASSES = ["slide-right", "slide-left", "rotate-cw", "rotate-ccw", "bounce"]


def toy_action_class_names(num_classes: int = 10) -> list[str]:
    if not 2 <= num_classes <= 10:
        raise ValueError(f"toy-actions has 2 to 10 classes, got num_classes={num_classes}.")
    n_app = (num_classes + 1) // 2
    return APPEARANCE_CLASSES[:n_app] + MOTION_CLASSES[: num_classes - n_app]


def _shape_mask(name: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    ax, ay = np.abs(dx), np.abs(dy)
    if name == "square":
        m = np.maximum(ax, ay) <= 0.85 * r
    elif name == "disc":
        m = np.hypot(dx, dy) <= r
    elif name == "triangle":
        m = (dy >= -r) & (dy <= 0.8 * r) & (ax <= (dy + r) * 0.55)
    elif name == "ring":
        m = np.abs(np.hypot(dx, dy) - 0.75 * r) <= 0.25 * r
    elif name == "cross":
        m = ((ax <= 0.3 * r) & (ay <= r)) | ((ay <= 0.3 * r) & (ax <= r))
    else:  # pragma: no cover - guarded by the class list
        raise ValueError(name)
    return m.astype(np.float32)


def _hand_mask(xx, yy, px, py, angle, length, thick) -> np.ndarray:
    bx, by = px + length * np.cos(angle), py + length * np.sin(angle)
    vx, vy = bx - px, by - py
    t = np.clip(((xx - px) * vx + (yy - py) * vy) / (vx * vx + vy * vy), 0, 1)
    dist = np.hypot(xx - (px + t * vx), yy - (py + t * vy))
    bar = np.clip(thick / 2 - dist + 0.5, 0, 1)
    tip = np.clip(thick - np.hypot(xx - bx, yy - by) + 0.5, 0, 1)
    return np.maximum(bar, tip)


def _render_clip(name: str, rng: np.random.Generator, length: int, size: int) -> np.ndarray:
    s = size / 32.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    # background: dark gradient + static clutter dots
    base = rng.uniform(0.0, 0.25, 3)
    grad = rng.uniform(-0.1, 0.1, 3)
    direction = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(direction) * xx + np.sin(direction) * yy) / size
    bg = base[None, None, :] + ramp[..., None] * grad[None, None, :]
    for _ in range(rng.integers(2, 5)):
        cx, cy = rng.uniform(0, size, 2)
        dot = np.clip(1.2 * s - np.hypot(xx - cx, yy - cy) + 0.5, 0, 1)
        bg = bg * (1 - dot[..., None]) + dot[..., None] * rng.uniform(0.2, 0.7, 3)
    colour = rng.uniform(0.45, 1.0, 3)
    t = np.arange(length, dtype=np.float32)
    frames = np.empty((length, size, size, 3), np.float32)
    if name in APPEARANCE_CLASSES:
        r = rng.uniform(5.0, 8.0) * s
        c0 = rng.uniform(11 * s, size - 11 * s, 2)
        speed = rng.uniform(0.0, 4.0 * s) / length
        heading = rng.uniform(0, 2 * np.pi)
        cxs = c0[0] + np.cos(heading) * speed * (t - length / 2)
        cys = c0[1] + np.sin(heading) * speed * (t - length / 2)
        for i in range(length):
            m = _shape_mask(name, xx - cxs[i], yy - cys[i], r)
            frames[i] = bg * (1 - m[..., None]) + m[..., None] * colour
        return frames
    length_hand = rng.uniform(6.0, 9.0) * s
    thick = 2.0 * s
    angle0 = rng.uniform(0, 2 * np.pi)
    mid = rng.uniform(10 * s, size - 10 * s, 2)
    px, py = np.full(length, mid[0]), np.full(length, mid[1])
    angles = np.full(length, angle0)
    if name in ("slide-right", "slide-left"):
        travel = rng.uniform(12.0, 16.0) * s
        sign = 1.0 if name == "slide-right" else -1.0
        px = mid[0] + sign * travel * (t / max(length - 1, 1) - 0.5)
    elif name in ("rotate-cw", "rotate-ccw"):
        omega = np.deg2rad(rng.uniform(8.0, 14.0))
        angles = angle0 + (1.0 if name == "rotate-cw" else -1.0) * omega * t
    elif name == "bounce":
        amp, period, phase = rng.uniform(5.0, 7.0) * s, rng.uniform(6.0, 10.0), rng.uniform(0, 2 * np.pi)
        py = mid[1] + amp * np.sin(2 * np.pi * t / period + phase)
    for i in range(length):
        m = _hand_mask(xx, yy, px[i], py[i], angles[i], length_hand, thick)
        frames[i] = bg * (1 - m[..., None]) + m[..., None] * colour
    return frames


def toy_actions(num_classes: int = 10, train_per_class: int = 40, test_per_class: int = 20,
                min_frames: int = 16, max_frames: int = 48, frame_size: int = 32, seed: int = 0) -> DatasetDict:
    """Generate toy-actions as a `DatasetDict` with `train` and `test` splits.

    Columns: `video` — `Array4D((None, frame_size, frame_size, 3), uint8)`, `(T, H, W, C)` with T varying in
    `[min_frames, max_frames]`; `label` — `ClassLabel` (see the module docstring for which class is which).
    Deterministic for a given seed; about 1-2 s for the default size.
    """
    names = toy_action_class_names(num_classes)
    if frame_size < 16:
        raise ValueError(f"toy-actions needs frame_size >= 16, got {frame_size}.")
    if not 1 <= min_frames <= max_frames:
        raise ValueError(f"Need 1 <= min_frames <= max_frames, got {min_frames}, {max_frames}.")
    features = Features({"video": Array4D(shape=(None, frame_size, frame_size, 3), dtype="uint8"),
                         "label": ClassLabel(names=names)})
    splits = {}
    for split_id, (split, per_class) in enumerate((("train", train_per_class), ("test", test_per_class))):
        rng = np.random.default_rng([seed, split_id])
        videos, labels = [], []
        for i in range(per_class * len(names)):
            label = i % len(names)
            length = int(rng.integers(min_frames, max_frames + 1))
            clip = _render_clip(names[label], rng, length, frame_size)
            clip += rng.normal(0, 0.03, clip.shape).astype(np.float32)
            videos.append((np.clip(clip, 0, 1) * 255).round().astype(np.uint8))
            labels.append(label)
        splits[split] = Dataset.from_dict({"video": videos, "label": labels}, features=features)
    return DatasetDict(splits)
