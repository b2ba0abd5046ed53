"""A run never loses a result, and a flag no run can use stops before anything is written (issue 12, sections 2-3).

Most cases run `tests/tiny_train.py` (an entry point built only from `common/`) in this process; the ones every
method must honour run each discovered method's own `train.main` / `eval.main`; the crash and divergence cases run
the real `train.sh` in a subprocess. Each asserts exit code 2 and a message naming the flag or the file, and that
nothing already on disk changed.
"""
import dataclasses
import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from common.config import RunConfig, option, parse_config
from common.demo import REPO, discover_methods
from common.errors import ConfigError
from common.rundir import Run, out_dir_problem

_spec = importlib.util.spec_from_file_location("tiny_train", REPO / "tests" / "tiny_train.py")
tiny = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tiny)

METHODS = discover_methods()
IDS = [m.name for m in METHODS]


def call(main, capsys, *args):
    """An entry point's `main` in this process -> (exit code, stderr)."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def run_tiny(capsys, *args):
    return call(tiny.main, capsys, "--progress", "false", *args)


def snapshot(folder):
    """{relative path: bytes} of every file under `folder` (to show that a refusal touched nothing)."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.fixture
def trained(tmp_path, capsys):
    """A finished one-epoch tiny run: config.yaml, env.txt, metrics.json, checkpoints/last.pt."""
    out = tmp_path / "trained"
    assert run_tiny(capsys, "--out_dir", out, "--epochs", 1)[0] == 0
    return out


# ------------------------------------------------------------------------- section 2: flags no run can use


def test_out_dir_that_is_a_file_is_refused(tmp_path, capsys):
    results = tmp_path / "results.txt"
    results.write_text("keep me\n")
    for out in (results, results / "run"):
        code, err = run_tiny(capsys, "--out_dir", out)
        assert code == 2 and f"--out_dir {out}" in err and "is a file" in err, err
    assert results.read_text() == "keep me\n"


def test_a_device_that_is_not_there_is_refused_before_writing(tmp_path, capsys):
    missing = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"
    code, err = run_tiny(capsys, "--out_dir", tmp_path / "run", "--device", missing)
    assert code == 2 and f"--device {missing}" in err and ("--device cpu" in err or "numbered from 0" in err), err
    code, err = run_tiny(capsys, "--out_dir", tmp_path / "run", "--device", "tpu")
    assert code == 2 and "--device tpu: unknown device" in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flag,value,message", [
    ("--lr", "nan", "--lr nan: not a finite number"),
    ("--lr", "inf", "--lr inf: not a finite number"),
    ("--lr", "-0.1", "--lr -0.1: must be >= 0"),
    ("--dropout", "nan", "--dropout nan: not a finite number"),
    ("--batch_size", "0", "--batch_size 0: must be >= 1"),
    ("--batch_size", "-4", "--batch_size -4: must be >= 1"),
    ("--epochs", "-5", "--epochs -5: must be >= 0"),
])
def test_values_no_run_can_use_are_refused_naming_the_flag(tmp_path, capsys, flag, value, message):
    code, err = run_tiny(capsys, "--out_dir", tmp_path / "run", flag, value)
    assert code == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


def test_a_bad_value_in_a_config_file_names_the_file(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("epochs: -5\n")
    code, err = run_tiny(capsys, "--config", tmp_path / "bad.yaml", "--out_dir", tmp_path / "run")
    assert code == 2 and f"{tmp_path / 'bad.yaml'}: epochs -5: must be >= 0" in err, err


def test_non_finite_loss_before_the_first_save_says_no_checkpoint_was_written(tmp_path, capsys):
    code, err = run_tiny(capsys, "--out_dir", tmp_path / "run", "--nan_at_step", 3)  # 8 steps in epoch 1
    assert code == 2 and "loss is nan at step 3" in err and "no checkpoint was written yet" in err, err
    assert "last good checkpoint" not in err and not (tmp_path / "run" / "checkpoints" / "last.pt").exists()


def test_ipt_at_a_huge_learning_rate_stops_as_diverged(tmp_path):
    """--lr 1e9 sends the cross-entropy from 1.4 to ~1e9 and keeps it finite: it used to end at chance, exit 0."""
    proc = subprocess.run(["bash", str(REPO / "prompt_tuning" / "ipt" / "train.sh"), "--config", "configs/smoke.yaml",
                           "--out_dir", tmp_path / "run", "--lr", "1e9", "--progress", "false"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 2 and "error: the loss diverged" in proc.stderr, proc.stderr[-3000:]
    assert "more than 10x its start" in proc.stderr and not (tmp_path / "run" / "metrics.json").exists()


def test_consistent_teacher_at_a_huge_learning_rate_stops_instead_of_crashing(tmp_path):
    """--lr 1e9 makes the FAM-3D offsets NaN at iteration 1; torchvision's deform_conv2d then read out of bounds
    and the process died of SIGSEGV. Now the offsets are checked first and the usual non-finite message stops it."""
    proc = subprocess.run(["bash", str(REPO / "semi_supervised" / "consistent_teacher" / "train.sh"), "--config",
                           "configs/smoke.yaml", "--out_dir", tmp_path / "run", "--lr", "1e9", "--progress", "false"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "FAM-3D offset map is nan at step" in proc.stderr and "no checkpoint was written yet" in proc.stderr


# ------------------------------------------------------------------------- section 3: never lose a result


def test_training_into_an_existing_run_is_refused_and_changes_nothing(trained, capsys):
    before = snapshot(trained)
    code, err = run_tiny(capsys, "--out_dir", trained, "--epochs", 1, "--seed", 3)
    assert code == 2 and f"--out_dir {trained} already holds a run" in err, err
    assert "--resume to continue" in err and "--overwrite to replace" in err
    assert snapshot(trained) == before


def test_overwrite_replaces_the_run_and_leaves_nothing_of_it(trained, capsys):
    stale = trained / "checkpoints" / "repeat1" / "last.pt"  # what a run with more repeats would have left
    stale.parent.mkdir()
    torch.save({}, stale)
    assert run_tiny(capsys, "--out_dir", trained, "--epochs", 1, "--seed", 3, "--overwrite")[0] == 0
    assert yaml.safe_load((trained / "config.yaml").read_text())["seed"] == 3
    assert not stale.exists() and (trained / "checkpoints" / "last.pt").exists()
    assert (trained / "env.txt").read_text().count("git_commit:") == 1


@pytest.mark.parametrize("state", ["missing", "empty", "killed before the first save"])
def test_resume_without_a_checkpoint_is_refused(tmp_path, capsys, state):
    out = tmp_path / "run"
    if state != "missing":
        out.mkdir()
    if state == "killed before the first save":
        (out / "config.yaml").write_text("epochs: 4\n")
        (out / "checkpoints").mkdir()
    code, err = run_tiny(capsys, "--out_dir", out, "--resume")
    assert code == 2 and f"--resume: {out} holds no checkpoint" in err and "without --resume" in err, err
    assert not (out / "env.txt").exists()


def test_resume_with_changed_flags_is_refused_naming_them(tmp_path, capsys, monkeypatch):
    out, args = tmp_path / "run", ["--epochs", 2, "--seed", 4]
    real_save = tiny.save_checkpoint

    def save_then_die(path, state):  # killed right after the first epoch's checkpoint
        real_save(path, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(tiny, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_tiny(capsys, "--out_dir", out, *args)
    monkeypatch.undo()
    before = snapshot(out)
    code, err = run_tiny(capsys, "--out_dir", out, *args, "--resume", "--lr", 0.1, "--dropout", 0.5)
    assert code == 2 and "lr: 0.05 -> 0.1" in err and "dropout: 0.0 -> 0.5" in err and "seed" not in err, err
    assert snapshot(out) == before  # config.yaml still records the values the run used
    threads = torch.get_num_threads()
    try:  # a switch that does not change the numbers may differ, and is recorded
        assert run_tiny(capsys, "--out_dir", out, *args, "--resume", "--cpu_threads", 1)[0] == 0
    finally:
        torch.set_num_threads(threads)
    recorded = yaml.safe_load((out / "config.yaml").read_text())
    assert (recorded["lr"], recorded["cpu_threads"]) == (0.05, 1) and (out / "metrics.json").exists()
    assert (out / "env.txt").read_text().count("git_commit:") == 2  # the first environment is kept


def test_a_resumable_field_is_applied_and_recorded(tmp_path):
    @dataclasses.dataclass
    class Cfg(RunConfig):
        epochs: int = option(2, "training epochs", resumable=True)
        lr: float = option(0.1, "learning rate")

    out = tmp_path / "run"
    Run(Cfg(out_dir=str(out)), "tiny").close()
    torch.save({}, out / "checkpoints" / "last.pt")
    Run(Cfg(out_dir=str(out), epochs=6, resume=True), "tiny").close()
    assert yaml.safe_load((out / "config.yaml").read_text())["epochs"] == 6
    with pytest.raises(ConfigError, match=r"lr: 0.1 -> 0.2"):
        Run(Cfg(out_dir=str(out), epochs=6, lr=0.2, resume=True), "tiny")
    with pytest.raises(ConfigError, match="--resume continues the run in --out_dir and --overwrite replaces it"):
        Run(Cfg(out_dir=str(out), resume=True, overwrite=True), "tiny")


def test_evaluation_never_writes_into_a_training_run(trained, tmp_path):
    before = snapshot(trained)
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match=f"--out_dir {trained} is a training run .written by tiny.*new --out_dir"):
            Run(RunConfig(out_dir=str(trained), overwrite=overwrite), "tiny_eval")
    assert snapshot(trained) == before
    # an evaluation writes its own directory; a second one there needs --overwrite
    ev = tmp_path / "eval"
    run = Run(RunConfig(out_dir=str(ev)), "tiny_eval")
    run.write_metrics({"top1": 0.5})
    run.close()
    assert out_dir_problem(RunConfig(out_dir=str(ev)), "tiny_eval").endswith("pass --overwrite to replace it, or a "
                                                                              "new --out_dir")
    run = Run(RunConfig(out_dir=str(ev), overwrite=True), "tiny_eval")
    run.write_metrics({"top1": 0.75})
    run.close()
    assert (ev / "metrics.json").read_text().count("0.75") == 1
    # and a training run is never started in an evaluation's directory without --overwrite
    assert "already holds a run (metrics.json)" in out_dir_problem(RunConfig(out_dir=str(ev)), "tiny")


def test_a_relative_config_in_both_places_is_refused_naming_both(tmp_path, monkeypatch):
    @dataclasses.dataclass
    class Cfg(RunConfig):
        layers: int = option(2, "depth")

    method, cwd = tmp_path / "method", tmp_path / "cwd"
    for folder, layers in ((method, 7), (cwd, 3)):
        (folder / "configs").mkdir(parents=True)
        (folder / "configs" / "smoke.yaml").write_text(f"layers: {layers}\n")
    monkeypatch.chdir(cwd)
    with pytest.raises(ConfigError) as e:
        parse_config(Cfg, ["--config", "configs/smoke.yaml"], config_dir=method)
    for both in (cwd, method):
        assert str(both / "configs" / "smoke.yaml") in str(e.value)
    assert parse_config(Cfg, ["--config", str(cwd / "configs" / "smoke.yaml")], config_dir=method).layers == 3
    (cwd / "configs" / "smoke.yaml").write_text("layers: 7\n")  # the same file twice: nothing is ambiguous
    assert parse_config(Cfg, ["--config", "configs/smoke.yaml"], config_dir=method).layers == 7
    (cwd / "configs" / "smoke.yaml").unlink()  # only in the method folder: found there
    assert parse_config(Cfg, ["--config", "configs/smoke.yaml"], config_dir=method).layers == 7


# ------------------------------------------------------------------------- every method, through its own entry points


@pytest.mark.parametrize("method_dir", METHODS, ids=IDS)
def test_every_method_refuses_to_train_into_an_existing_run(method_dir, trained, capsys):
    before = snapshot(trained)
    code, err = call(importlib.import_module(f"{method_dir.name}.train").main, capsys, "--out_dir", trained)
    assert code == 2 and "already holds a run" in err and "--resume" in err and "--overwrite" in err, err
    assert snapshot(trained) == before


@pytest.mark.parametrize("method_dir", METHODS, ids=IDS)
def test_every_method_refuses_to_evaluate_into_a_training_run(method_dir, trained, tmp_path, capsys):
    stub = tmp_path / "stub.pt"  # never read past its config: the refusal comes first
    torch.save({"config": {}, "model": {}}, stub)
    before = snapshot(trained)
    code, err = call(importlib.import_module(f"{method_dir.name}.eval").main, capsys, "--checkpoint", stub,
                     "--out_dir", trained)
    assert code == 2 and f"--out_dir {trained} is a training run" in err, err
    assert snapshot(trained) == before


def test_train_sh_refuses_an_ambiguous_relative_config(tmp_path):
    """Through a real train.sh: the method's configs/smoke.yaml and a different one in the working directory."""
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "smoke.yaml").write_text("seed: 1\n")
    script = REPO / "hgb_benchmark" / "simple_hgn" / "train.sh"
    proc = subprocess.run(["bash", str(script), "--config", "configs/smoke.yaml", "--out_dir", tmp_path / "run"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 2 and "--config configs/smoke.yaml is ambiguous" in proc.stderr, proc.stderr[-2000:]
    assert str(script.parent / "configs" / "smoke.yaml") in proc.stderr and not (tmp_path / "run").exists()
