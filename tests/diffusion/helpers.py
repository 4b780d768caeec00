"""Helpers of the diffusion tests (the fixtures are in conftest.py)."""

import torch

CLASSES = ["square", "disc", "slide-right"]


def small_pool_config(**kw):
    from hf_vdd.diffusion import PoolConfig

    return PoolConfig(**({"videos_per_class": 8, "num_frames": 8, "frame_size": 32, "num_inference_steps": 3,
                          "guidance_scale": 1.0, "shard_size": 4} | kw))


def write_pool_from_clips(folder, train_set, generator: str, per_class: int = 8):
    """A pool in the generated-pool format made of real clips (classes clearly differ): for selector training."""
    import json

    import pyarrow.parquet as pq
    from datasets import Dataset

    from hf_vdd.diffusion.pool import pool_features

    cfg = small_pool_config(videos_per_class=per_class, shard_size=per_class).__dict__
    manifest = {"dataset": "real-clips", "generator": generator, "class_names": train_set.class_names, "config": cfg}
    (folder / "data").mkdir(parents=True)
    (folder / "pool.json").write_text(json.dumps(manifest))
    feats = pool_features(train_set.class_names, train_set.num_frames, train_set.frame_size)
    for c, idx in train_set.indices_per_class().items():
        idx = idx[:per_class]
        video = (train_set.stack(idx) * 255).round().to(torch.uint8).numpy()
        rows = {"video": video, "label": [c] * len(idx), "index": list(range(len(idx))), "seed": [0] * len(idx),
                "prompt": [""] * len(idx)}
        table = Dataset.from_dict(rows, features=feats).data.table
        pq.write_table(table, str(folder / "data" / f"c{c:04d}-s0000.parquet"))
    return folder
