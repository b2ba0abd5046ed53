import json
import textwrap

import pytest

from common.demo import discover_methods, main, non_finite, run_smoke

FAKE_TRAIN = textwrap.dedent("""\
    #!/usr/bin/env bash
    # a stand-in method: parses --out_dir, writes a checkpoint and metrics
    while [ $# -gt 0 ]; do case "$1" in --out_dir) out="$2"; shift;; esac; shift; done
    mkdir -p "$out/checkpoints" && echo ckpt > "$out/checkpoints/last.pt"
    echo '{"train_loss": 0.5}' > "$out/metrics.json"
""")
FAKE_EVAL = textwrap.dedent("""\
    #!/usr/bin/env bash
    while [ $# -gt 0 ]; do case "$1" in --out_dir) out="$2";; --checkpoint) ck="$2";; esac; shift; done
    test -f "$ck" || exit 3
    mkdir -p "$out" && echo '{"test_top1": 0.75}' > "$out/metrics.json"
""")


def fake_repo(tmp_path, eval_script=FAKE_EVAL):
    m = tmp_path / "repo" / "vos" / "fake"
    m.mkdir(parents=True)
    (m / "train.sh").write_text(FAKE_TRAIN)
    (m / "eval.sh").write_text(eval_script)
    return tmp_path / "repo", m


def test_discover_and_run_smoke(tmp_path):
    root, m = fake_repo(tmp_path)
    assert discover_methods(root) == [m]
    r = run_smoke(m, tmp_path / "out")
    assert r["method"] == "vos/fake" and r["metrics"] == {"test_top1": 0.75}
    assert r["train_metrics"] == {"train_loss": 0.5} and r["seconds"] > 0


def test_run_smoke_reports_failures(tmp_path):
    root, m = fake_repo(tmp_path, eval_script="echo broken >&2; exit 1\n")
    with pytest.raises(RuntimeError, match="(?s)eval.sh.*exited 1.*broken"):
        run_smoke(m, tmp_path / "out")


def test_non_finite():
    assert non_finite({"a": 1.0, "b": float("nan"), "c": "x", "d": float("inf")}) == ["b", "c", "d"]


def test_main_prints_table_or_says_there_is_nothing(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(tmp_path / "empty") == 0
    assert "no method folders yet" in capsys.readouterr().out
    root, _ = fake_repo(tmp_path)
    assert main(root) == 0
    out = capsys.readouterr().out
    assert "method" in out and "vos/fake" in out and "test_top1" in out and "0.7500" in out
    (root / "vos" / "fake" / "eval.sh").write_text("exit 1\n")
    assert main(root) == 1


def test_metrics_files_are_json(tmp_path):
    root, m = fake_repo(tmp_path)
    run_smoke(m, tmp_path / "o")
    assert json.loads((tmp_path / "o" / "eval" / "metrics.json").read_text())["test_top1"] == 0.75


def test_launch_sh_runs_the_module_from_any_directory(tmp_path):
    """common/launch.sh: PYTHONPATH = method parent + repo root; NPROC=1 runs python -m <pkg>.<module>."""
    import subprocess
    import sys

    from common.demo import REPO

    pkg = tmp_path / "area" / "fakepkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "hello.py").write_text("import sys, common\nprint('args', sys.argv[1:], common.__file__)\n")
    out = subprocess.run(["bash", str(REPO / "common" / "launch.sh"), str(pkg), "hello", "--x", "1"],
                         capture_output=True, text=True, cwd=tmp_path.parent, env={"PYTHON": sys.executable,
                                                                                   "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert "args ['--x', '1']" in out.stdout and str(REPO / "common") in out.stdout
