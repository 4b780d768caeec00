"""Prepare one of the papers' datasets from its official download as a Hub-ready dataset folder.

    python recipes/prepare_dataset.py --name miniucf --root /data/UCF101 --output_dir data/miniucf
    python recipes/prepare_dataset.py --name ucf101 --root /data/UCF101 --split 2 --output_dir data/ucf101-split2
    python recipes/prepare_dataset.py --name hmdb51 --root /data/HMDB51 --split 1 --output_dir data/hmdb51-split1
    python recipes/prepare_dataset.py --name kinetics400 --root /data/kinetics400 --allow_partial \
        --output_dir data/kinetics400
    python recipes/prepare_dataset.py --name ssv2 --root /data/ssv2 --output_dir data/ssv2
    python recipes/prepare_dataset.py --name miniucf --root /data/UCF101 --output_dir data/miniucf --overwrite \
        --push_to_hub --hub_repo_id <org>/miniucf

`--root` holds the official download (see `hf_vdd/data/builders/`). The output folder holds `README.md` (card),
`prepared_dataset.json` and `data/{train,test}-*.parquet` with the videos embedded (`--no_embed`: absolute paths);
load it with `hf_vdd.load_video_dataset(<output_dir>, "train")`.
"""

from dataclasses import dataclass, field

from hf_vdd.cli import parse_args, run_main
from hf_vdd.data import BUILDERS, build_dataset, save_prepared
from hf_vdd.data.builders.writer import MARKER_FILE
from hf_vdd.hub import check_push_settings, push_folder
from hf_vdd.utils import check_output_dir


@dataclass
class PrepareArgs:
    name: str | None = field(default=None, metadata={"help": f"Dataset: {' | '.join(BUILDERS)}."})
    root: str | None = field(default=None, metadata={"help": "Folder holding the official download."})
    output_dir: str | None = field(default=None, metadata={"help": "Folder to write (README.md + data/*.parquet)."})
    split: int = field(default=1, metadata={"help": "Official split number (UCF101, HMDB51: 1-3; others: 1)."})
    allow_partial: bool = field(default=False, metadata={"help": "Build from the clips that exist; list the rest."})
    license: str | None = field(default=None, metadata={"help": "Licence id for the card (default: the dataset's)."})
    no_embed: bool = field(default=False, metadata={"help": "Store absolute video paths instead of the bytes."})
    overwrite: bool = field(default=False, metadata={"help": "Replace an output_dir written by this recipe."})
    push_to_hub: bool = field(default=False, metadata={"help": "Upload the folder as a Hub dataset repo."})
    hub_repo_id: str | None = field(default=None, metadata={"help": "Hub dataset repo id (org/name)."})


def validate(args: PrepareArgs) -> None:
    for flag in ("name", "root", "output_dir"):
        if not getattr(args, flag):
            raise ValueError(f"--{flag} is required.")
    if args.name not in BUILDERS:
        raise ValueError(f"--name must be one of {', '.join(BUILDERS)}, got '{args.name}'.")
    if args.push_to_hub and args.no_embed:
        raise ValueError("--push_to_hub with --no_embed would upload paths of this machine, not videos: drop one.")
    check_push_settings(args.push_to_hub, args.hub_repo_id)
    check_output_dir(args.output_dir, overwrite=args.overwrite, marker=MARKER_FILE, protect=[args.root])


def main():
    (args,) = parse_args(PrepareArgs, runtime=False)  # no model runs here
    validate(args)
    built = build_dataset(args.name, args.root, split=args.split, allow_partial=args.allow_partial)
    for split, n in built.counts().items():
        print(f"{built.source.pretty_name} split {built.split} {split}: {n} clips, "
              f"{sum(v > 0 for v in built.class_counts()[split].values())}/{len(built.class_names)} classes")
    if built.is_partial:
        missing = built.missing
        print(f"partial: {len(missing['classes'])} classes without clip, {len(missing['train'])} train and "
              f"{len(missing['test'])} test clips missing (listed in the card and prepared_dataset.json)")
    folder = save_prepared(built, args.output_dir, embed=not args.no_embed, overwrite=args.overwrite,
                           license=args.license, repo_id=args.hub_repo_id)
    print(f"wrote {folder} (load with hf_vdd.load_video_dataset('{folder}', 'train'))")
    if args.push_to_hub:
        print(f"pushed: {push_folder(folder, args.hub_repo_id, repo_type='dataset')}")


if __name__ == "__main__":
    run_main(main)
