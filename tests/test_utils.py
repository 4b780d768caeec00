"""Output folders are never destroyed: `check_output_dir`, `atomic_folder` (also when killed), `recover_interrupted`;
process-independent randomness."""

import os
import subprocess
import sys

import pytest
import torch

from hf_vdd.utils import (
    OutputExistsError,
    atomic_file,
    atomic_folder,
    check_output_dir,
    keep_freed_memory,
    recover_interrupted,
    sample_seeds,
    seeded_dropout,
)
from tests.helpers import REPO, snapshot


@pytest.fixture
def user_folder(tmp_path):
    """A folder of the user's own files (no hf_vdd marker)."""
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("my notes")
    (folder / "sub" / "data.bin").write_bytes(os.urandom(256))
    return folder


def test_check_output_dir_refuses_what_it_would_destroy(user_folder, tmp_path, monkeypatch):
    before = snapshot(user_folder)
    with pytest.raises(OutputExistsError, match="already exists and is not empty.*--overwrite"):
        check_output_dir(user_folder)
    with pytest.raises(OutputExistsError, match="did not write.*even with --overwrite"):
        check_output_dir(user_folder, overwrite=True)
    monkeypatch.chdir(user_folder)
    for target in (".", "..", str(tmp_path)):  # the working directory and its parents
        with pytest.raises(OutputExistsError, match="working directory"):
            check_output_dir(target, overwrite=True)
    monkeypatch.chdir(tmp_path)
    source = user_folder / "sub"  # the input dataset: itself, a folder inside it, a folder containing it
    for target in (source, source / "distilled", user_folder):
        with pytest.raises(OutputExistsError, match="input dataset folder"):
            check_output_dir(target, overwrite=True, protect=[source])
    with pytest.raises(OutputExistsError, match="is a file"):
        check_output_dir(user_folder / "notes.txt")
    with pytest.raises(OutputExistsError, match="which is a file"):
        check_output_dir(user_folder / "notes.txt" / "out")
    assert snapshot(user_folder) == before
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / "distillation.json").write_text("{}")
    assert check_output_dir(ours, overwrite=True) == ours.resolve()  # hf_vdd's own output may be replaced
    assert check_output_dir(tmp_path / "new" / "deeper") == (tmp_path / "new" / "deeper").resolve()
    assert not (tmp_path / "new").exists()  # checking writes nothing


def test_check_output_dir_unwritable(tmp_path):
    if os.path.isdir("/proc/self"):  # a folder nobody, root included, can create folders in
        with pytest.raises(OutputExistsError, match="cannot be written: creating a folder in /proc failed"):
            check_output_dir("/proc/hf_vdd-out")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root ignores permissions
            with pytest.raises(OutputExistsError, match="cannot be written"):
                check_output_dir(locked / "out")
    finally:
        locked.chmod(0o700)


def test_atomic_folder_replaces_only_its_own_and_keeps_the_old_on_error(user_folder, tmp_path):
    before = snapshot(user_folder)
    with pytest.raises(OutputExistsError, match="did not write"):
        with atomic_folder(user_folder, marker="distillation.json") as tmp:
            (tmp / "distillation.json").write_text("new")
    assert snapshot(user_folder) == before
    target = tmp_path / "set"
    with atomic_folder(target, marker="mark") as tmp:
        (tmp / "mark").write_text("v1")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_folder(target, marker="mark") as tmp:
            (tmp / "mark").write_text("v2")
            raise RuntimeError("boom")
    assert (target / "mark").read_text() == "v1"
    with atomic_folder(target, marker="mark") as tmp:
        (tmp / "mark").write_text("v3")
    assert (target / "mark").read_text() == "v3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "set"]  # no temporary folder left



def test_atomic_file_replaces_the_file_only_when_the_write_succeeds(tmp_path):
    target = tmp_path / "runs.json"
    with atomic_file(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_text("v1")
        assert not target.exists()  # nothing visible before the block ends
    assert target.read_text() == "v1"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_file(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "v1"
    assert [p.name for p in tmp_path.iterdir()] == ["runs.json"]  # the half-written file is gone

KILL = """
import os, shutil, signal, sys
from pathlib import Path
import hf_vdd.utils as u

target, mode = Path(sys.argv[1]), sys.argv[2]
die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
if mode == "between_renames":  # no atomic exchange: the old folder is moved away, then the new one moved in
    u._exchange = lambda a, b: False
    real, calls = os.replace, []
    def replace(a, b):
        real(a, b)
        calls.append(b)
        if len(calls) == 1:
            die()
    os.replace = replace
elif mode == "after_swap":  # the new folder is in place; the old one is being removed
    shutil.rmtree = die
with u.atomic_folder(target, marker="mark") as tmp:
    (tmp / "mark").write_text("new")
    (tmp / "big.bin").write_bytes(b"x" * 100000)
    if mode == "while_writing":
        die()
"""


@pytest.mark.parametrize("mode,expect", [("while_writing", "old"), ("between_renames", "old"),
                                         ("after_swap", "new")])
def test_kill_during_save_leaves_old_or_new_and_next_run_cleans(tmp_path, mode, expect):
    target = tmp_path / "out"
    target.mkdir()
    (target / "mark").write_text("old")
    old = snapshot(target)
    env = os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", KILL, str(target), mode], env=env, capture_output=True, timeout=120)
    assert res.returncode == -9, res.stderr.decode()[-2000:]
    leftovers = [p for p in tmp_path.iterdir() if p.name != "out"]
    assert leftovers, "the kill should leave a temporary or backup folder"
    if mode == "between_renames":
        assert not target.exists()  # the one window without a target: the next write restores the old folder
    recover_interrupted(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    if expect == "old":
        assert snapshot(target) == old
    else:
        assert (target / "mark").read_text() == "new"


def test_seeded_dropout_depends_on_the_sample_only():
    x = torch.ones(6, 4, 3)
    seeds = sample_seeds(0, 5, torch.arange(6))
    full = seeded_dropout(x, 0.5, seeds)
    halves = torch.cat([seeded_dropout(x[:3], 0.5, seeds[:3]), seeded_dropout(x[3:], 0.5, seeds[3:])])
    assert torch.equal(full, halves)  # two processes holding half a batch each draw the same masks
    assert set(full.unique().tolist()) == {0.0, 2.0} and 0.3 < (full == 0).float().mean() < 0.7
    assert not torch.equal(full, seeded_dropout(x, 0.5, sample_seeds(0, 6, torch.arange(6))))  # next step differs


def test_recovery_removes_only_its_own_leftovers(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    ours = [tmp_path / ".out.hf_vdd-tmp-999999999-abc", tmp_path / ".out.tmp-k3j_9x2a"]  # dead pid; old scheme
    users = [tmp_path / ".out.tmp-my-notes", tmp_path / ".out.old-backup", tmp_path / ".outcome"]
    for p in ours + users:
        p.mkdir()
        (p / "f").write_text("x")
    assert sorted(recover_interrupted(target)) == sorted(ours)
    assert all(p.is_dir() for p in users) and not any(p.exists() for p in ours)


def test_library_logs_on_the_main_process_only(monkeypatch, capsys):
    import hf_vdd.utils as U

    U.configure_logging("INFO")
    log = U.get_logger("hf_vdd.test")
    assert U._main_process()  # this process: no Accelerate state, or its main process
    log.info("from the main process")
    log.warning("a warning")
    monkeypatch.setattr(U, "_main_process", lambda: False)  # another rank under `accelerate launch`
    log.warning("from rank 1")
    out, err = capsys.readouterr()
    assert "from the main process" in out and "a warning" in err and "rank 1" not in out + err



_FAULTS = """
import resource, sys, torch
from hf_vdd.utils import keep_freed_memory
kept = keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
x = torch.ones(16 * 2**20); del x
start = faults()
for _ in range(10):
    x = torch.ones(16 * 2**20); del x  # 64 MB, allocated and freed as an iteration's activations are
print(kept, faults() - start)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_freed_memory_stops_refaulting_freed_tensors(monkeypatch):
    def run(**env):
        out = subprocess.run([sys.executable, "-c", _FAULTS], env={**os.environ, "OMP_NUM_THREADS": "1", **env},
                             capture_output=True, text=True, check=True).stdout.split()
        return out[0] == "True", int(out[1])

    kept, faults = run()
    system, system_faults = run(HF_VDD_MALLOC="system")
    assert kept and not system
    assert system_faults > 10 * 2**14 * 0.75 and faults < system_faults / 4  # each 64 MB faulted in again, or not
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000000")  # glibc's own variables are the user's: they win
    assert keep_freed_memory() is False
