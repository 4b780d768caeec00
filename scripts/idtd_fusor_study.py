"""How far IDTD's Temporal Fusor moves from the identity, per alpha2 (README "IDTD choices").

    OMP_NUM_THREADS=1 python scripts/idtd_fusor_study.py --iterations 30

toy-actions at 16×32×32, IPC 1: prints, per alpha2, the largest change of any fusor weight and bias and the first /
last loss. Adam normalises each parameter's step, so alpha2 (the fusor's only gradient source) sets its direction,
not its speed.
"""

import argparse
import json
import time

import torch

from hf_vdd import load_video_dataset
from hf_vdd.distillers import IDTDConfig, IDTDDistiller


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--alpha2", type=float, nargs="+", default=[1e-4, 1e-2, 1.0])
    args = parser.parse_args()
    torch.set_num_threads(1)
    train = load_video_dataset("toy-actions", "train", num_frames=16, frame_size=32).preload(show_progress=False)
    identity = torch.zeros(3, 3, 3)
    identity[:, :, 1] = torch.eye(3)
    for a2 in args.alpha2:
        t0 = time.perf_counter()
        distiller = IDTDDistiller(IDTDConfig(ipc=1, iterations=args.iterations, alpha2=a2, batch_real=16))
        curve = distiller(train).stats["loss_curve"]
        gen = distiller.generator
        with torch.no_grad():
            dw = max(float((w - identity).abs().max()) for w in gen.fusor_weight)
            db = max(float(b.abs().max()) for b in gen.fusor_bias)
        print(json.dumps({"alpha2": a2, "fusor_weight_max_change": round(dw, 4), "fusor_bias_max": round(db, 4),
                          "first_loss": round(curve[0][1], 4), "last_loss": round(curve[-1][1], 4),
                          "seconds": round(time.perf_counter() - t0, 1)}), flush=True)


if __name__ == "__main__":
    main()
