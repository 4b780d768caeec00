from .builders import BUILDERS, BuiltDataset, build_dataset, save_prepared
from .decoding import (
    CorruptVideoError,
    TruncatedVideoError,
    decode_video,
    interleave_repeat,
    resize_crop,
    sample_indices,
)
from .loading import VideoClassificationSet, load_source, load_video_dataset
from .streaming import PrefetchingClassSampler
from .toy_actions import toy_action_class_names, toy_actions

__all__ = [
    "BUILDERS",
    "BuiltDataset",
    "CorruptVideoError",
    "PrefetchingClassSampler",
    "TruncatedVideoError",
    "VideoClassificationSet",
    "build_dataset",
    "decode_video",
    "interleave_repeat",
    "load_source",
    "load_video_dataset",
    "resize_crop",
    "sample_indices",
    "save_prepared",
    "toy_action_class_names",
    "toy_actions",
]
