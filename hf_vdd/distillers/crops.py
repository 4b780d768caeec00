"""The realism pipeline's video operations (Sec. 4.3-5.1): detect objects on a frame, track them with CSRT, crop
aspect-preserving windows, normalise the crops' speed and tile N×N mosaics. `RealismDistiller` (realism.py) puts
them together; they are usable on their own on `(T, H, W, 3)` uint8 frames.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from ..data.distilled import tile_bounds
from ..utils import HfVddError

Box = tuple[float, float, float, float]  # x, y, w, h in pixels of the source frame


# ---- detection ----------------------------------------------------------------------------------------------
class MotionSaliencyDetector:
    """Training-free proposer: where the first frames change (blurred frame differences, thresholded at mean +
    2 std, dilated), one box per connected component, largest motion energy first."""

    def __init__(self, num_frames: int = 8, min_area: float = 0.01, max_boxes: int = 5):
        self.num_frames, self.min_area, self.max_boxes = num_frames, min_area, max_boxes

    def __call__(self, frames: np.ndarray) -> list[Box]:
        """`frames`: `(L, H, W, 3)` uint8, starting at the detection frame. Returns boxes `(x, y, w, h)`."""
        clip = frames[:self.num_frames + 1]
        if len(clip) < 2:
            return []
        h, w = clip.shape[1:3]
        k = max(3, (min(h, w) // 32) | 1)
        gray = np.stack([cv2.GaussianBlur(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (k, k), 0) for f in clip])
        energy = np.abs(np.diff(gray.astype(np.float32), axis=0)).mean(0)
        thr = max(energy.mean() + 2 * energy.std(), 4.0)  # 4 grey levels: below that it is noise
        mask = (energy > thr).astype(np.uint8)
        if not mask.any():
            return []
        mask = cv2.dilate(mask, np.ones((k, k), np.uint8))
        count, comp, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        boxes = []
        for c in range(1, count):
            x, y, bw, bh, area = stats[c]
            if area >= self.min_area * h * w:
                boxes.append((float(energy[comp == c].sum()), (float(x), float(y), float(bw), float(bh))))
        return [b for _, b in sorted(boxes, key=lambda e: -e[0])][:self.max_boxes]


class TransformersDetector:
    """Any transformers object-detection model (`AutoModelForObjectDetection` + `AutoImageProcessor`), run on the
    first frame, keeping detections above `threshold` whose class name is in `labels` (all when `labels` is None).
    """

    def __init__(self, id_or_dir: str, labels: list[str] | None = None, threshold: float = 0.3,
                 device: torch.device | str | None = None):
        from transformers import AutoImageProcessor, AutoModelForObjectDetection

        try:
            self.processor = AutoImageProcessor.from_pretrained(id_or_dir)
            self.model = AutoModelForObjectDetection.from_pretrained(id_or_dir).eval()
        except (OSError, ValueError, KeyError) as err:
            raise ValueError(f"Could not load the object detector '{id_or_dir}': "
                             f"{str(err).splitlines()[0][:200]}. Pass a local folder written by "
                             f"save_pretrained (model + image processor), a reachable Hub id, or --detector motion."
                             ) from err
        names = self.model.config.id2label
        if labels:
            unknown = sorted(set(labels) - set(names.values()))
            if unknown:
                raise ValueError(f"Detector '{id_or_dir}' has no class {unknown}; its classes include "
                                 f"{sorted(names.values())[:20]}.")
        self.keep = None if not labels else {i for i, n in names.items() if n in set(labels)}
        self.threshold = threshold
        self.device = torch.device(device or "cpu")
        self.model.to(self.device)

    @torch.no_grad()
    def __call__(self, frames: np.ndarray) -> list[Box]:
        h, w = frames.shape[1:3]
        inputs = self.processor(images=frames[0], return_tensors="pt").to(self.device)
        outputs = self.model(**inputs)
        result = self.processor.post_process_object_detection(outputs, threshold=self.threshold,
                                                              target_sizes=[(h, w)])[0]
        boxes = []
        for score, label, (x0, y0, x1, y1) in zip(result["scores"].tolist(), result["labels"].tolist(),
                                                  result["boxes"].tolist()):
            if self.keep is not None and label not in self.keep:
                continue
            x0, y0, x1, y1 = max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1)
            if x1 - x0 >= 1 and y1 - y0 >= 1:
                boxes.append((score, (x0, y0, x1 - x0, y1 - y0)))
        return [b for _, b in sorted(boxes, key=lambda e: -e[0])]


def load_detector(spec: str, labels: list[str] | None = None, threshold: float = 0.3, motion_frames: int = 8,
                  device: torch.device | str | None = None):
    """`"motion"` → `MotionSaliencyDetector` (OpenCV, CPU); anything else → `TransformersDetector(spec)` on
    `device`."""
    if spec == "motion":
        return MotionSaliencyDetector(num_frames=motion_frames)
    return TransformersDetector(spec, labels=labels, threshold=threshold, device=device)


# ---- tracking and cropping ----------------------------------------------------------------------------------
def crop_window(box: Box, frame_w: int, frame_h: int, out_w: int, out_h: int) -> tuple[int, int, int, int]:
    """Sec. 5.1's crop: a `w × wH/W` or `hW/H × h` window (whichever covers the `w × h` box) centred on the box,
    with the output aspect `W/H`; shrunk to fit the frame and shifted inside it. Returns integer `(x, y, w, h)`."""
    x, y, w, h = box
    w, h = max(w, 1.0), max(h, 1.0)
    cw, ch = (w, w * out_h / out_w) if w * out_h / out_w >= h else (h * out_w / out_h, h)
    s = min(1.0, frame_w / cw, frame_h / ch)
    cw, ch = max(1, int(round(cw * s))), max(1, int(round(ch * s)))
    cw, ch = min(cw, frame_w), min(ch, frame_h)
    x0 = int(round(min(max(x + w / 2 - cw / 2, 0), frame_w - cw)))
    y0 = int(round(min(max(y + h / 2 - ch / 2, 0), frame_h - ch)))
    return x0, y0, cw, ch


def crop_resize(frame: np.ndarray, window: tuple[int, int, int, int], out_w: int, out_h: int) -> np.ndarray:
    """Crop `(H, W, 3)` uint8 to `window` and scale it to `out_w × out_h` (linear; area when shrinking)."""
    x, y, w, h = window
    patch = frame[y:y + h, x:x + w]
    interp = cv2.INTER_AREA if (w > out_w or h > out_h) else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(patch), (out_w, out_h), interpolation=interp)


def _csrt(fast: bool = False):
    cls = getattr(cv2, "TrackerCSRT", None)
    if cls is None:
        if not hasattr(cv2, "TrackerCSRT_create"):
            raise HfVddError("OpenCV's CSRT tracker is missing: pip install opencv-contrib-python-headless.")
        return cv2.TrackerCSRT_create()
    params = cls.Params()
    if fast:
        params.number_of_scales, params.use_segmentation = 9, False
    return cls.create(params)


def track(frames: np.ndarray, box: Box, fast: bool = False) -> list[Box] | None:
    """Track `box` (on `frames[0]`) through `(L, H, W, 3)` uint8 frames with CSRT; `None` when the track is lost."""
    h, w = frames.shape[1:3]
    x, y, bw, bh = box
    x, y = int(min(max(x, 0), w - 2)), int(min(max(y, 0), h - 2))
    init = (x, y, max(2, min(int(round(bw)), w - x)), max(2, min(int(round(bh)), h - y)))
    tracker = _csrt(fast)
    try:
        tracker.init(cv2.cvtColor(frames[0], cv2.COLOR_RGB2BGR), init)
    except cv2.error:
        return None
    boxes = [tuple(float(v) for v in init)]
    for f in frames[1:]:
        try:
            ok, b = tracker.update(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        except cv2.error:  # CSRT asserts when its window degenerates (seen on 32x32 toy frames): a lost track
            return None
        if not ok or b[2] <= 0 or b[3] <= 0:
            return None
        boxes.append(tuple(float(v) for v in b))
    return boxes


def trajectory_box(path: list[Box]) -> Box:
    """The smallest box `(x, y, w, h)` holding every box of a track."""
    x0 = min(b[0] for b in path)
    y0 = min(b[1] for b in path)
    return x0, y0, max(b[0] + b[2] for b in path) - x0, max(b[1] + b[3] for b in path) - y0


def speed_normalise(clip: np.ndarray, length: int) -> np.ndarray:
    """Resample `(L, ...)` to `length` frames evenly in time (a longer clip is sped up)."""
    return clip[np.linspace(0, len(clip) - 1, length).round().astype(int)]


def tile_mosaic(clips: list[np.ndarray], grid: int, size: int) -> np.ndarray:
    """Tile `grid²` clips `(T, h_m, w_m, 3)` (row-major; sizes from `tile_bounds`) into `(T, size, size, 3)`."""
    bounds = tile_bounds(size, grid)
    out = np.zeros((len(clips[0]), size, size, 3), np.uint8)
    for m, clip in enumerate(clips):
        (y0, y1), (x0, x1) = bounds[m // grid], bounds[m % grid]
        out[:, y0:y1, x0:x1] = clip
    return out
