"""`recipes/speed.py` (hf_vdd.speed): the quick path end to end, flags refused before any work, the doubled folder."""

import json

import pytest
import torch

from hf_vdd.speed import IMPLS, embedder_facts
from hf_vdd.speed_kernels import FORMATS, PRECISIONS
from hf_vdd.speed_memory import doubled_videofolder


def test_quick_writes_table_and_json(run_recipe, tmp_path):
    out = tmp_path / "speed"
    res = run_recipe("recipes/speed.py", "--quick", "--isolate", "false", "--output_dir", str(out))
    for name in IMPLS.values():
        assert f"| 2 classes, 48x48x4 | 1 | cpu | {name} |" in res.stdout
    payload = json.loads((out / "speed.json").read_text())
    assert [r["impl"] for r in payload["rows"]] == list(IMPLS)
    for row in payload["rows"]:
        assert {"config", "threads", "device", "impl", "median_s", "min_s", "max_s", "speedup", "peak_rss_mb",
                "seconds", "compute_device"} <= set(row)
        assert len(row["seconds"]) == 2 and min(row["seconds"]) > 0 and row["median_s"] > 0 and row["speedup"] > 0
        assert row["compute_device"] == "cpu" and row["peak_rss_mb"] > 0
    assert payload["rows"][0]["speedup"] == 1.0  # the reference against itself
    facts = payload["embedders"]["2x48x4"]
    assert facts["reference"]["parameters"] == facts["hf_vdd"]["parameters"]  # same widths, same parameters
    assert "| config | threads | device | impl |" in (out / "speed.md").read_text()
    # a re-run replaces its own folder; a folder it did not write is refused
    run_recipe("recipes/speed.py", "--quick", "--isolate", "false", "--impls", "reference", "--output_dir", str(out))
    assert len(json.loads((out / "speed.json").read_text())["rows"]) == 1


def test_kernels_mode_times_each_embedder_format_and_precision(run_recipe, tmp_path):
    out = tmp_path / "speed"
    run_recipe("recipes/speed.py", "--quick", "--isolate", "false", "--impls", "reference", "--output_dir", str(out))
    res = run_recipe("recipes/speed.py", "--kernels", "--quick", "--output_dir", str(out))
    payload = json.loads((out / "kernels.json").read_text())
    rows = payload["rows"]
    assert payload["environment"]["torch"] == torch.__version__ and payload["environment"]["cpu"]
    assert [(r["embedder"], r["format"], r["precision"]) for r in rows] == [
        (e, f, p) for e in ("reference", "hf_vdd") for f in FORMATS for p in PRECISIONS]
    facts = embedder_facts(2, 48, 4, [64, 128, 128])
    for r in rows:
        assert r["config"] == "2 classes, 48x48x4" and r["threads"] == 1 and r["batch"] == 8 and r["median_s"] > 0
        assert r["gmac"] == pytest.approx(8 * facts[r["embedder"]]["conv_macs_per_clip"] / 1e9)
        assert r["gflops"] == pytest.approx(2 * r["gmac"] / r["median_s"])
        assert r["speedup"] == pytest.approx(rows[0]["median_s"] / r["median_s"])
    assert rows[0]["speedup"] == 1.0  # the classic embedder, contiguous fp32, against itself
    assert "| 2 classes, 48x48x4 | 1 | cpu | hf_vdd | channels_last | bf16 |" in res.stdout
    assert (out / "speed.json").is_file() and (out / "kernels.md").is_file()  # the other mode's results are kept


def test_bad_flags_refused_before_work(run_recipe, tmp_path):
    out = tmp_path / "never"
    cases = [(["--configs", "5x32x8"], "too small for the reference ConvNet3D"),
             (["--configs", "5by64"], "<classes>x<frame size>x<frames>"),
             (["--impls", "reference", "fast"], "choose from"),
             (["--threads", "0"], "--threads must be >= 1"),
             (["--device", "gpu"], "invalid choice: 'gpu'"),
             (["--kernels", "--memory"], "two modes")]
    if not torch.cuda.is_available():
        cases.append((["--device", "cuda"], "torch.cuda.is_available() is False"))
    for flags, message in cases:
        res = run_recipe("recipes/speed.py", *flags, "--output_dir", str(out), check=False)
        assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr, (flags, res.stderr)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    res = run_recipe("recipes/speed.py", "--quick", "--output_dir", str(foreign), check=False)
    assert res.returncode == 2 and "did not write" in res.stderr and (foreign / "notes.txt").read_text() == "mine"
    assert not out.exists()


def test_doubled_videofolder_links_every_video_twice(tmp_path):
    source = tmp_path / "videos"
    for split, label, name in (("train", "a", "x.mp4"), ("train", "b", "y.mp4"), ("test", "a", "z.mp4")):
        (source / split / label).mkdir(parents=True, exist_ok=True)
        (source / split / label / name).write_bytes(name.encode())
    before = sorted(p.relative_to(source) for p in source.rglob("*"))
    assert doubled_videofolder(source, tmp_path / "double") == 6
    links = sorted(p.relative_to(tmp_path / "double" / "videos") for p in (tmp_path / "double").rglob("*.mp4"))
    assert [str(p) for p in links] == ["test/a/z-copy2.mp4", "test/a/z.mp4", "train/a/x-copy2.mp4", "train/a/x.mp4",
                                       "train/b/y-copy2.mp4", "train/b/y.mp4"]
    assert all((tmp_path / "double" / "videos" / p).is_symlink() for p in links)
    assert sorted(p.relative_to(source) for p in source.rglob("*")) == before  # the source is untouched


def test_embedders_match_vdsd_widths():
    facts = embedder_facts(5, 112, 16, [64, 128, 128])
    assert facts["reference"]["parameters"] == facts["hf_vdd"]["parameters"]
    assert facts["reference"]["embedding_dim"] == 128 * 4 * 2 * 2 and facts["hf_vdd"]["embedding_dim"] == 128


def test_kernel_rows_leave_the_thread_count_as_they_found_it():
    from hf_vdd.speed_kernels import kernel_rows

    before = torch.get_num_threads()
    rows = kernel_rows(2, 48, 4, [8, 16, 16], batch=2, threads=before + 1, device="cpu", iterations=1, warmup=0)
    assert torch.get_num_threads() == before and {r["threads"] for r in rows} == {before + 1}
