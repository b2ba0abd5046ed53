import contextlib
import json
import re

import pytest
import torch
import yaml

from common.config import RunConfig
from common.distributed import DistInfo
from common.errors import ConfigError, DivergedError, NonFiniteLossError
from common.rundir import (
    DivergenceCheck,
    Run,
    check_finite,
    default_out_dir,
    environment_report,
    get_logger,
    git_commit,
)


def test_default_out_dir_layout():
    assert re.fullmatch(r"runs/simple_hgn/acm-\d{8}-\d{6}", default_out_dir("simple_hgn", "acm"))


def test_git_commit_and_environment_report():
    commit = git_commit()
    assert commit == "unknown" or re.match(r"[0-9a-f]{40}", commit)
    report = environment_report()
    for key in ("git_commit:", "python:", f"torch: {torch.__version__}", "cuda (torch build):", "# packages"):
        assert key in report
    assert re.search(r"^torch==", report, re.M)


def test_get_logger_writes_file_only_when_enabled(tmp_path):
    log = get_logger("t1", tmp_path / "log.txt")
    log.info("hello %d", 3)
    assert "hello 3" in (tmp_path / "log.txt").read_text()
    quiet = get_logger("t2", None, enabled=False)
    quiet.info("nothing")  # no handler, no error


def test_run_directory_contents(tmp_path):
    cfg = RunConfig(out_dir=str(tmp_path / "run"), seed=3)
    run = Run(cfg, "tiny")
    run.scalars(0, **{"train/loss": 1.5})
    run.write_metrics({"test_macro_f1": 0.9})
    assert list(run.progress(range(3))) == [0, 1, 2]
    run.close()
    d = tmp_path / "run"
    assert yaml.safe_load((d / "config.yaml").read_text())["seed"] == 3
    assert "git_commit:" in (d / "env.txt").read_text()
    assert json.loads((d / "metrics.json").read_text()) == {"test_macro_f1": 0.9}
    assert list((d / "tb").iterdir()), "TensorBoard events written"
    assert run.last_checkpoint == d / "checkpoints" / "last.pt" and (d / "checkpoints").is_dir()
    with pytest.raises(ValueError, match="finite"):
        run.write_metrics({"x": float("nan")})


def test_run_default_dir_and_non_main_rank(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = RunConfig()
    cfg._config_name = "smoke"
    Run(cfg, "tiny")
    assert cfg.out_dir.startswith("runs/tiny/smoke-") and (tmp_path / cfg.out_dir / "config.yaml").exists()
    other = Run(RunConfig(out_dir=str(tmp_path / "rank1")), "tiny", DistInfo(rank=1, world_size=2))
    other.write_metrics({"a": 1.0})
    assert not (tmp_path / "rank1").exists(), "only rank 0 writes"
    with pytest.raises(ConfigError, match="--resume needs --out_dir"):
        Run(RunConfig(resume=True), "tiny")


def test_check_finite(tmp_path):
    check_finite(torch.tensor(1.0), 0)
    last = tmp_path / "last.pt"
    last.write_bytes(b"a checkpoint")
    with pytest.raises(NonFiniteLossError, match=r"loss is inf at step 4.*last good checkpoint .*last.pt was left"):
        check_finite(torch.tensor(float("inf")), 4, last)
    with pytest.raises(NonFiniteLossError, match="loss is nan at step 0"):
        check_finite(float("nan"), 0)


def test_check_finite_says_when_no_checkpoint_was_written(tmp_path):
    with pytest.raises(NonFiniteLossError) as e:
        check_finite(torch.tensor(float("nan")), 2, tmp_path / "checkpoints" / "last.pt")
    assert "no checkpoint was written yet" in str(e.value) and "last good checkpoint" not in str(e.value)


def test_check_finite_of_a_whole_tensor_names_what():
    check_finite(torch.ones(2, 8, 3, 3), 0, what="offsets")
    bad = torch.ones(2, 8, 3, 3)
    bad[1, 2, 0, 0] = float("nan")
    with pytest.raises(NonFiniteLossError, match="the teacher's offsets is nan at step 7"):
        check_finite(bad, 7, what="the teacher's offsets")
    bad[1, 2, 0, 0] = float("-inf")
    with pytest.raises(NonFiniteLossError, match="offsets is inf at step 1"):
        check_finite(bad, 1, what="offsets")


def test_divergence_check_stops_a_finite_blow_up_and_resumes_with_its_start(tmp_path):
    check = DivergenceCheck(factor=10, window=4)
    for step, loss in enumerate([1.4, 1.3, 1.5, 1.2, 1.1, 0.9, 13.0, 0.8]):  # one spike is not a divergence
        check.update(torch.tensor(loss), step)
    resumed = DivergenceCheck(factor=10, window=4)
    resumed.load_state_dict(check.state_dict())
    assert resumed.start == pytest.approx(1.4)
    with pytest.raises(DivergedError, match=r"loss diverged.*at step 9, more than 10x its start 1.4.*no checkpoint"):
        for step, loss in enumerate([5e8, 6e9, 4e9, 7e9], start=8):
            resumed.update(loss, step, tmp_path / "last.pt")
    # a fresh check started from the trained loss would have measured against 0.8, not the run's start
    fresh = DivergenceCheck(factor=10, window=4)
    for step, loss in enumerate([0.8, 9.0, 9.0, 9.0]):
        with pytest.raises(DivergedError) if step == 3 else contextlib.nullcontext():
            fresh.update(loss, step)
    with pytest.raises(DivergedError, match="may already hold diverging weights.*--overwrite"):
        last = tmp_path / "last.pt"
        last.write_bytes(b"a checkpoint")
        fresh.update(9.0, 4, last)
