"""UCF101 (splits 1-3) and MiniUCF (50 UCF101 classes, split 1) from the official download.

Reads, under `root`:

```
root/
  UCF-101/<Class>/v_<Class>_gXX_cYY.avi          # the videos (or, VDSD's frames: jpegs_112/v_<Class>_gXX_cYY/*.jpg)
  ucfTrainTestlist/classInd.txt                  # "1 ApplyEyeMakeup": class order
  ucfTrainTestlist/trainlist0{1,2,3}.txt         # "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
  ucfTrainTestlist/testlist0{1,2,3}.txt          # "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"
```
"""

from __future__ import annotations

from pathlib import Path

from .common import (
    BuiltDataset,
    Clip,
    DatasetSource,
    assemble,
    check_split_number,
    find_first,
    read_lines,
    require_dir,
)

MINIUCF_CLASSES = (
    "ApplyEyeMakeup BalanceBeam BandMarching BaseballPitch Basketball BasketballDunk Biking Billiards BlowingCandles "
    "Bowling BreastStroke CleanAndJerk CliffDiving CricketShot Diving FloorGymnastics FrisbeeCatch GolfSwing "
    "HammerThrow HighJump HorseRace HorseRiding HulaHoop IceDancing JumpingJack Knitting MilitaryParade Mixing "
    "ParallelBars PlayingPiano PlayingViolin PoleVault PommelHorse Punch Rafting Rowing SkateBoarding Skiing Skijet "
    "SkyDiving SoccerPenalty StillRings SumoWrestling Surfing Swing TennisSwing TrampolineJumping UnevenBars "
    "VolleyballSpiking WritingOnBoard"
).split()

_LAYOUT = ("UCF-101/<Class>/<clip>.avi (or jpegs_112/<clip>/ frame folders) and ucfTrainTestlist/{classInd.txt, "
           "trainlist0N.txt, testlist0N.txt}")
_LICENSE_NOTE = ("UCF101 is published by the UCF Center for Research in Computer Vision without an explicit licence; "
                 "see https://www.crcv.ucf.edu/data/UCF101.php before redistributing.")
UCF101 = DatasetSource("ucf101", "UCF101", "https://www.crcv.ucf.edu/data/UCF101.php", "unknown", _LICENSE_NOTE,
                       _LAYOUT)
MINIUCF = DatasetSource("miniucf", "MiniUCF", "https://www.crcv.ucf.edu/data/UCF101.php", "unknown",
                        _LICENSE_NOTE + " MiniUCF is the 50-class subset of UCF101 split 1 used by video dataset "
                        "distillation papers (Wang et al., CVPR 2024).", _LAYOUT)


def _read_class_index(path: Path) -> list[str]:
    names = []
    for n, line in enumerate(read_lines(path), 1):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) != n:
            raise ValueError(f"{path}, line {n}: expected '{n} <ClassName>', got '{line}'. Re-extract "
                             f"ucfTrainTestlist from UCF101TrainTestSplits-RecognitionTask.zip.")
        names.append(parts[1])
    if not names:
        raise ValueError(f"{path} lists no class. Re-extract ucfTrainTestlist.")
    return names


def _read_list(path: Path, class_index: dict[str, int], videos: Path, frames: Path, labelled: bool) -> list[Clip]:
    clips = []
    for n, line in enumerate(read_lines(path), 1):
        parts = line.split()
        expected = "<Class>/<clip>.avi <label>" if labelled else "<Class>/<clip>.avi"
        if len(parts) != (2 if labelled else 1) or parts[0].count("/") != 1:
            raise ValueError(f"{path}, line {n}: expected '{expected}', got '{line}'. Re-extract ucfTrainTestlist.")
        rel = parts[0]
        label, file_name = rel.split("/")
        if label not in class_index:
            raise ValueError(f"{path}, line {n}: class '{label}' is not in classInd.txt. Re-extract ucfTrainTestlist.")
        if labelled and (not parts[1].isdigit() or int(parts[1]) != class_index[label] + 1):
            raise ValueError(f"{path}, line {n}: label {parts[1]} does not match classInd.txt ({label} is "
                             f"{class_index[label] + 1}). Re-extract ucfTrainTestlist.")
        stem = Path(file_name).stem
        clips.append(Clip(clip_id=stem, label=label, candidates=(videos / rel,), frames=frames / stem))
    return clips


def _ucf_build(source: DatasetSource, root: str | Path, split: int, allow_partial: bool,
               restrict_to: list[str] | None) -> BuiltDataset:
    root = require_dir(Path(root).expanduser(), f"{source.pretty_name} root", "Pass --root <folder holding UCF-101/ "
                       "and ucfTrainTestlist/>.")
    zip_name = "UCF101TrainTestSplits-RecognitionTask"
    lists = find_first([root / "ucfTrainTestlist", root / zip_name / "ucfTrainTestlist"], "UCF101 split folder",
                       f"Unzip {zip_name}.zip into --root.", want_dir=True)
    files = {name: lists / name for name in ("classInd.txt", f"trainlist0{split}.txt", f"testlist0{split}.txt")}
    absent = [str(p) for p in files.values() if not p.is_file()]
    if absent:
        raise FileNotFoundError(f"UCF101 split files not found: {', '.join(absent)}. Unzip "
                                f"UCF101TrainTestSplits-RecognitionTask.zip into --root.")
    videos, frames = root / "UCF-101", root / "jpegs_112"
    if not videos.is_dir() and not frames.is_dir():
        raise FileNotFoundError(f"Neither {videos} nor {frames} exists: extract UCF101.rar into --root (it creates "
                                f"UCF-101/), or put VDSD's jpegs_112/ frame folders there.")
    official = _read_class_index(files["classInd.txt"])
    class_index = {name: i for i, name in enumerate(official)}
    clips = {"train": _read_list(files[f"trainlist0{split}.txt"], class_index, videos, frames, labelled=True),
             "test": _read_list(files[f"testlist0{split}.txt"], class_index, videos, frames, labelled=False)}
    class_names = official
    if restrict_to is not None:
        class_names = list(restrict_to)
        keep = set(class_names)
        clips = {s: [c for c in cs if c.label in keep] for s, cs in clips.items()}
    return assemble(source, root, split, class_names, clips, allow_partial)


def build_ucf101(root: str | Path, split: int = 1, allow_partial: bool = False) -> BuiltDataset:
    """UCF101 with official split `split` (1, 2 or 3): 101 classes in classInd.txt order.

    Reads `root/ucfTrainTestlist/` and checks that each listed clip exists as `root/UCF-101/<Class>/<clip>.avi`
    (else as a frame folder `root/jpegs_112/<clip>/`). Nothing is decoded. Split 1 has 9,537 train / 3,783 test
    clips. Missing clips raise `FileNotFoundError` unless `allow_partial=True`.
    """
    check_split_number("UCF101", split, (1, 2, 3))
    return _ucf_build(UCF101, root, split, allow_partial, restrict_to=None)


def build_miniucf(root: str | Path, split: int = 1, allow_partial: bool = False) -> BuiltDataset:
    """MiniUCF: the 50 `MINIUCF_CLASSES` of UCF101, split 1 (4,662 train / 1,861 test clips in the full release).

    Reads the UCF101 download exactly as `build_ucf101` does; labels follow the alphabetical `MINIUCF_CLASSES`
    (UCF101's classInd order restricted to them).
    """
    check_split_number("MiniUCF", split, (1,))
    return _ucf_build(MINIUCF, root, split, allow_partial, restrict_to=MINIUCF_CLASSES)
