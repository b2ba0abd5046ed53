"""`make demo`: run every method's train.sh + eval.sh on its smoke config and print one table.

Also the discovery and smoke-run helpers that `tests/test_smoke.py` and `tests/test_copy_out.py` use.
"""
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
AREAS = ("distillation", "prompt_tuning", "virtual_tryon", "semi_supervised", "vos", "hgb_benchmark")


def discover_methods(root=REPO):
    """Every `<area>/<method>/` folder that has a train.sh, sorted by path."""
    root = Path(root)
    return sorted(p.parent for area in AREAS for p in (root / area).glob("*/train.sh"))


def run_smoke(method_dir, out_dir, timeout=900, env=None):
    """Run `train.sh --config configs/smoke.yaml` then `eval.sh` on its checkpoint.

    Returns {"method", "metrics" (eval's metrics.json), "train_metrics", "seconds"}. Raises
    RuntimeError with the tail of the output when either script fails or writes no metrics.json.
    """
    method_dir, out_dir = Path(method_dir), Path(out_dir)
    env = {**os.environ, "PYTHON": sys.executable, **(env or {})}
    start = time.time()

    def sh(script, *args):
        cmd = ["bash", str(method_dir / script), *map(str, args)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=out_dir.parent)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{(proc.stdout + proc.stderr)[-4000:]}")

    out_dir.mkdir(parents=True, exist_ok=True)
    sh("train.sh", "--config", "configs/smoke.yaml", "--out_dir", out_dir / "train", "--progress", "false")
    ckpt_dir = out_dir / "train" / "checkpoints"
    ckpt = ckpt_dir / "best.pt" if (ckpt_dir / "best.pt").exists() else ckpt_dir / "last.pt"
    sh("eval.sh", "--checkpoint", ckpt, "--out_dir", out_dir / "eval")
    result = {"method": f"{method_dir.parent.name}/{method_dir.name}", "seconds": time.time() - start}
    for key, path in (("train_metrics", out_dir / "train" / "metrics.json"),
                      ("metrics", out_dir / "eval" / "metrics.json")):
        if not path.is_file():
            raise RuntimeError(f"{path} was not written")
        result[key] = json.loads(path.read_text())
    return result


def non_finite(metrics):
    """Keys whose values are not finite numbers."""
    return [k for k, v in metrics.items() if not isinstance(v, (int, float)) or not math.isfinite(v)]


def main(root=REPO):
    methods = discover_methods(root)
    if not methods:
        print("no method folders yet: nothing to demo")
        return 0
    rows, failed = [], []
    with tempfile.TemporaryDirectory(prefix="demo-") as tmp:
        for m in methods:
            name = f"{m.parent.name}/{m.name}"
            print(f"running {name} (smoke config) ...", flush=True)
            try:
                r = run_smoke(m, Path(tmp) / m.name)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                print(f"FAILED {name}: {e}", file=sys.stderr)
                failed.append(name)
                continue
            rows += [(name, k, f"{v:.4f}", f"{r['seconds']:.1f}") for k, v in sorted(r["metrics"].items())]
    header = ("method", "metric", "value", "seconds")
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)))
    if failed:
        print(f"{len(failed)} method(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
