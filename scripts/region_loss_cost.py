"""Student training time on a mosaic set with region soft labels against the same videos with class labels only.

    OMP_NUM_THREADS=1 python scripts/region_loss_cost.py --steps 40

IPC 5 × 10 classes of 16×32×32 videos (random pixels: the cost depends on shapes only), ConvNet3D, batch 32. Rows:
class labels only; Eq. 5 with one sampled tile per mosaic (the default); every tile (`region_samples=0`); every tile
plus the whole-mosaic term (the loss before issue 17).
"""

import argparse
import time

import torch

from hf_vdd import ConvNet3D, TrainConfig
from hf_vdd.data.distilled import TensorVideoSet
from hf_vdd.training import train_student


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(50, 16, 3, 32, 32, generator=g)
    y = torch.arange(10).repeat_interleave(5)
    soft = torch.softmax(torch.randn(50, 4, 10, generator=g), -1)
    base = dict(steps=args.steps, batch_size=32, show_progress=False)
    rows = [("class labels", TensorVideoSet(x, y), {}),
            ("Eq. 5, 1 tile (default)", TensorVideoSet(x, y, soft), {}),
            ("Eq. 5, all 4 tiles", TensorVideoSet(x, y, soft), {"region_samples": 0}),
            ("all tiles + mosaic term (before)", TensorVideoSet(x, y, soft),
             {"region_samples": 0, "mosaic_loss": True})]
    ref = None
    for name, data, extra in rows:
        t0 = time.perf_counter()
        train_student(ConvNet3D(num_classes=10), data, TrainConfig(**base, **extra), seed=0)
        sec = time.perf_counter() - t0
        ref = ref or sec
        print(f"{name}: {sec:.1f} s ({sec / ref:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
