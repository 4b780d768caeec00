"""How diverse a distilled set's Diverse Segments are, as IDTD's L_div measures it (session 20, issue 17).

For each saved set: split every video into 8 equal temporal segments (IDTD's K = 8 at 16 frames: 2-frame segments),
embed them with 5 fresh ConvNet3D embedders (as DM and IDTD sample one per iteration) and print the mean pairwise
cosine similarity of each video's segments (`hf_vdd.distillers.idtd.diversity_loss`; lower = more diverse).
Also (session 21): the mean |frame t+1 - frame t| of the videos (flicker; real toy-actions clips: 0.038) and, for a
toy-actions set, the RMS distance of each video to its nearest real train clip (how far the pixels moved off the
data; DM's real-initialised videos stay within 0.013).

    python scripts/idtd_diversity_check.py full=outputs/b/toy-actions-ipc5-idtd \
        nodiv=outputs/b/toy-actions-ipc5-idtd-LC
"""

import functools
import sys

import torch

from hf_vdd import load_distilled, load_video_dataset
from hf_vdd.data.decoding import normalize
from hf_vdd.distillers.idtd import diversity_loss
from hf_vdd.distillers.matching import fresh_embedder

SEGMENTS, NETS = 8, 5


def segment_similarity(v: torch.Tensor, num_classes: int) -> list[float]:
    """`v`: `(N, T, C, H, W)` float pixels."""
    n, t = v.shape[:2]
    segs = v.view(n * SEGMENTS, t // SEGMENTS, *v.shape[2:])
    out = []
    for it in range(NETS):
        net = fresh_embedder(123, it, num_classes)
        with torch.no_grad():
            out.append(float(diversity_loss(net.embed(normalize(segs)).float().view(n, SEGMENTS, -1))))
    return out


@functools.cache
def toy_clips(num_frames: int, frame_size: int) -> torch.Tensor:
    """Every toy-actions train clip, flattened (made once per shape, shared by the sets of that shape)."""
    real = load_video_dataset("toy-actions", "train", num_frames=num_frames, frame_size=frame_size)
    return real.stack(range(len(real)), train=False).flatten(1)


def movement(d, v: torch.Tensor) -> str:
    text = f"frame diff {(v[:, 1:] - v[:, :-1]).abs().mean():.4f}"
    if d.source == "toy-actions":
        clips = toy_clips(d.num_frames, d.frame_size)
        nearest = torch.cdist(v.flatten(1), clips).min(1).values / clips.shape[1] ** 0.5
        text += f", nearest real clip RMS {nearest.mean():.4f} (max {nearest.max():.4f})"
    return text


def main(args: list[str]) -> None:
    if not args or any("=" not in a for a in args):
        raise SystemExit("usage: python scripts/idtd_diversity_check.py NAME=DISTILLED_FOLDER [NAME=FOLDER ...]")
    torch.set_num_threads(1)
    for name, folder in (a.split("=", 1) for a in args):
        d = load_distilled(folder)
        if d.num_frames % SEGMENTS:
            raise SystemExit(f"error: {folder} has {d.num_frames}-frame videos, not a multiple of {SEGMENTS}.")
        v = d.expanded_videos()
        vals = segment_similarity(v, len(d.class_names))
        print(f"{name}: mean pairwise cosine of {SEGMENTS} segments {sum(vals) / len(vals):.4f} "
              f"(nets: {', '.join(f'{x:.4f}' for x in vals)}); {movement(d, v)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
