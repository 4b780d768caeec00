"""Where IDTD's temporal flicker comes from (session 21, issue 17): which parameters move the fused videos.

Runs IDTD on toy-actions (16x32x32, IPC 5) for a few iterations per setting, from the same initialisation, and
prints for the fused videos `v` the mean |frame t+1 - frame t| (real toy-actions clips: 0.038) and the RMS distance
to the initial videos; for the Feature Pools the RMS drift (normalised space); for the selectors' and the fusor's
weights the mean |W - W_init|.

    python scripts/idtd_flicker_check.py --iterations 40 adam='{}' sgd='{"pool_optimizer": "sgd"}' \
        sgd_m3='{"pool_optimizer": "sgd", "module_lr": 0.001}' adam_m0='{"module_lr": 0.0}'
"""

import json
import sys

import torch

from hf_vdd import load_video_dataset
from hf_vdd.distillers import IDTDConfig, IDTDDistiller


def drift(now, start) -> torch.Tensor:
    return torch.cat([(a - b).detach().flatten() for a, b in zip(now, start)])


def main(args: list[str]) -> None:
    iterations = 40
    if args[:1] == ["--iterations"]:
        iterations, args = int(args[1]), args[2:]
    if not args or any("=" not in a for a in args):
        raise SystemExit("usage: python scripts/idtd_flicker_check.py [--iterations N] NAME='{json IDTDConfig "
                         "overrides}' [NAME=...]")
    settings = {name: json.loads(text) for name, text in (a.split("=", 1) for a in args)}
    torch.set_num_threads(1)
    train = load_video_dataset("toy-actions", "train", num_frames=16, frame_size=32).preload(show_progress=False)
    start = IDTDDistiller(IDTDConfig(ipc=5, iterations=0))
    v0, g0 = start(train).videos, start.generator
    for name, overrides in settings.items():
        d = IDTDDistiller(IDTDConfig(ipc=5, iterations=iterations, **overrides))
        v, g = d(train).videos, d.generator
        print(f"{name} ({iterations} it): v frame diff {(v[:, 1:] - v[:, :-1]).abs().mean():.4f} (initial "
              f"{(v0[:, 1:] - v0[:, :-1]).abs().mean():.4f}); v RMS from initial {((v - v0) ** 2).mean().sqrt():.4f}; "
              f"pool RMS drift {drift(g.pool, g0.pool).pow(2).mean().sqrt():.4f}; selector |dW| "
              f"{drift(g.sel_weight, g0.sel_weight).abs().mean():.4f}; fusor |dW| "
              f"{drift(g.fusor_weight, g0.fusor_weight).abs().mean():.4f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
