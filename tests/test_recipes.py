import json
import os
import subprocess
import sys

from datasets import load_dataset

from tests.helpers import REPO

ENV = os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def run(*args, check=True):
    return subprocess.run([sys.executable, *args], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600,
                          check=check)


def test_coreset_then_evaluate(tmp_path, run_recipe):
    out_dir = tmp_path / "toy-ipc1-herding"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("method: herding\nipc: 1\nseed: 3\n")
    res = run_recipe("recipes/coreset.py", "--config", str(cfg), "--output_dir", str(out_dir))
    assert "wrote" in res.stdout and str(out_dir) in res.stdout
    ds = load_dataset(str(out_dir), split="train")
    assert len(ds) == 10 and ds.features["video"].shape == (None, 3, 32, 32)
    report = tmp_path / "r.json"
    run_recipe("recipes/evaluate.py", "--dataset", "toy-actions", "--distilled", str(out_dir), "--runs", "2",
               "--steps", "3", "--output_json", str(report), "--show_progress", "false")
    rep = json.loads(report.read_text())
    assert set(rep) >= {"top1", "top5", "auc", "f1", "per_class", "runs", "train_seconds", "config"}
    assert len(rep["runs"]) == 2 and rep["config"]["distilled"] == str(out_dir)


def test_recipe_bad_input_exits_cleanly(tmp_path, run_recipe):
    out_dir = tmp_path / "never"
    res = run("recipes/coreset.py", "--ipc", "41", "--output_dir", str(out_dir), check=False)  # a real process
    assert res.returncode == 2 and "lower --ipc to at most 40" in res.stderr and "Traceback" not in res.stderr
    assert not out_dir.exists()
    res = run_recipe("recipes/evaluate.py", "--dataset", "no/such-dataset", "--runs", "1", check=False)
    assert res.returncode == 2 and "Unknown dataset 'no/such-dataset'" in res.stderr
    res = run_recipe("recipes/coreset.py", "--frame_size", "0", check=False)
    assert res.returncode == 2 and "--frame_size must be >= 1, got 0" in res.stderr  # while parsing the flags


def test_demo_quick(tmp_path, run_recipe):
    out_dir = tmp_path / "demo"
    res = run_recipe("recipes/demo.py", "--ipc", "1", "--runs", "1", "--steps", "2", "--full_steps", "2",
              "--output_dir", str(out_dir))
    assert "| herding IPC 1 | 10 |" in res.stdout and "| full real train split | 400 |" in res.stdout
    card = (out_dir / "README.md").read_text()
    assert "full data (upper bound)" in card and len(load_dataset(str(out_dir), split="train")) == 10


def test_every_recipe_parses_its_flags(monkeypatch, capsys):
    import importlib.util

    import pytest

    for script in sorted((REPO / "recipes").glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"recipe_{script.stem}", script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        monkeypatch.setattr(sys, "argv", [script.name, "--help"])
        with pytest.raises(SystemExit) as exit_info:
            module.main()
        assert exit_info.value.code == 0, script.name
        assert "--" in capsys.readouterr().out


def test_paper_configs_parse_with_their_recipes():
    import importlib.util

    from hf_vdd.cli import DataArgs, OutputArgs, parse_args
    from hf_vdd.distillers import DAViDConfig, DMConfig, IDTDConfig, RealismConfig

    configs = sorted((REPO / "recipes" / "configs").glob("*/*_ipc*.yaml"))
    assert len(configs) == 16  # dm, idtd, david, realism x miniucf, hmdb51 x IPC 1, 5
    for path in configs:
        method = path.parent.name
        spec = importlib.util.spec_from_file_location(f"recipe_{method}", REPO / "recipes" / f"{method}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        extra = {"dm": (), "idtd": (module.__dict__.get("IDTDArgs"),), "david": (module.__dict__.get("DAViDArgs"),),
                 "realism": (module.__dict__.get("RealismEvalArgs"),)}[method]
        config_class = {"dm": DMConfig, "idtd": IDTDConfig, "david": DAViDConfig, "realism": RealismConfig}[method]
        parsed = parse_args(DataArgs, OutputArgs, *extra, config_class, argv=["--config", str(path)])
        data, out, config = parsed[0], parsed[1], parsed[-1]
        assert (data.frame_size, data.num_frames, out.eval_runs, out.protocol) == (112, 16, 5, method if method != "dm"
                                                                                   else "vdsd")
        assert config.ipc == int(path.stem[-1])


def test_diffusion_paper_configs_parse_with_their_recipe():
    from hf_vdd.cli import DataArgs, OutputArgs, parse_args
    from hf_vdd.diffusion import DEFAULT_GUIDANCE_SCALE
    from hf_vdd.diffusion.select import DiffusionSelectArgs

    configs = sorted((REPO / "recipes" / "configs" / "diffusion").glob("*_vpc*.yaml"))
    assert len(configs) == 6  # miniucf, hmdb51 x VPC 1, 5, 10
    for path in configs:
        data, out, args = parse_args(DataArgs, OutputArgs, DiffusionSelectArgs, argv=["--config", str(path)])
        assert (data.frame_size, data.num_frames, out.eval_runs, out.protocol) == (256, 16, 1, "diffusion")
        assert (args.selection_runs, args.pool_frame_size, args.pool_num_frames) == (5, None, None)  # paper: 5 runs
        assert args.guidance_scale == DEFAULT_GUIDANCE_SCALE and "guidance_scale" not in path.read_text()
        assert (args.vpc, args.videos_per_class_pool, args.selector) == (int(path.stem.split("vpc")[1]), 100,
                                                                         "vstunet")
