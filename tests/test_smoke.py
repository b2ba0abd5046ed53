"""Every method's real train.sh + eval.sh on its smoke config, in a subprocess, and the copy-out contract.

Methods assert their own quality floors in their own tests; here every method must run end to end from a
different working directory and write finite metrics.
"""
import shutil

import pytest

from common.demo import REPO, discover_methods, non_finite, run_smoke

METHODS = discover_methods()
IDS = [f"{m.parent.name}/{m.name}" for m in METHODS]


def test_discovery_finds_every_method_folder():
    found = {p.parent for p in REPO.glob("*/*/train.sh")}
    assert set(METHODS) == {p for p in found if p.parent.name != "common"}


@pytest.mark.smoke
@pytest.mark.parametrize("method_dir", METHODS, ids=IDS)
def test_smoke_train_then_eval(method_dir, tmp_path):
    result = run_smoke(method_dir, tmp_path / "run")
    assert result["metrics"] and not non_finite(result["metrics"]), result
    assert not non_finite(result["train_metrics"]), result


@pytest.mark.smoke
@pytest.mark.parametrize("method_dir", METHODS, ids=IDS)
def test_copy_out_method_with_common(method_dir, tmp_path):
    """`cp -r <area>/<method> common DEST/` then DEST/<method>/train.sh runs its smoke config there."""
    dest = tmp_path / "elsewhere"
    ignore = shutil.ignore_patterns("__pycache__", "runs")
    shutil.copytree(method_dir, dest / method_dir.name, ignore=ignore)
    shutil.copytree(REPO / "common", dest / "common", ignore=ignore)
    result = run_smoke(dest / method_dir.name, tmp_path / "run", env={"PYTHONPATH": ""})
    assert result["metrics"] and not non_finite(result["metrics"]), result
