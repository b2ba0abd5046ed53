"""`make bench` (common/bench_all.py): the whole tiny run on CPU, and how failures become rows, not crashes."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from common import bench_all

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_make_bench_tiny_on_cpu_reports_every_method_and_case(tmp_path):
    """CI guard for the GPU run: the same command at --size tiny must give every method's every case with our
    own numbers; peers may be missing (no torch-geometric, no peft here) but must then say why."""
    out = tmp_path / "bench"
    proc = subprocess.run(["make", "--no-print-directory", "bench", f"PYTHON={sys.executable}",
                           f"BENCH_ARGS=--size tiny --device cpu --out {out} --budget_scale 3"],
                          cwd=REPO, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "results.json").read_text())
    assert report["size"] == "tiny" and report["cuda_tests"] == {"ran": False, "reason": "no CUDA device"}
    got = {(r["method"], r["case"]) for r in report["records"]}
    want = {(m.name, c) for m in bench_all.METHODS for c in m.cases["tiny"]}
    assert got == want
    for r in report["records"]:
        assert r["error"] is None and isinstance(r["ours_ms"], float) and math.isfinite(r["ours_ms"]), r
        assert r["peer_ms"] is not None or r["peer_error"], r  # a missing peer says why
        assert r["passed"] is None and r["goal"] and r["torch"] and r["device"].startswith("CPU"), r
    table = (out / "results.md").read_text()
    assert all(f"| {m.name} |" in table for m in bench_all.METHODS)
    assert bench_all.format_markdown(report) == table
    # each adapter, called on the raw JSON its bench wrote, gives back the reported numbers
    parsers = [bench_all.parse_simple_hgn, bench_all.parse_ipwd, bench_all.parse_ino, bench_all.parse_daflow,
               bench_all.parse_consistent_teacher, bench_all.parse_ipt, bench_all.parse_dsnet, bench_all.parse_ickd,
               bench_all.parse_bvton, bench_all.parse_ofa_prompt]
    assert [m.parse for m in bench_all.METHODS] == parsers
    reported = {(r["method"], r["case"]): r for r in report["records"]}
    for m, parse in zip(bench_all.METHODS, parsers, strict=True):
        raw = out / "raw" / (f"{m.name}/bench.json" if m.out_flag == "--out_dir" else f"{m.name}.json")
        for rec in parse(json.loads(raw.read_text()), "tiny"):
            assert rec["ours_ms"] == reported[(m.name, rec["case"])]["ours_ms"], (m.name, rec["case"])
            assert rec["peer_ms"] == reported[(m.name, rec["case"])]["peer_ms"], (m.name, rec["case"])


def test_helpers_device_name_run_process_and_cuda_tests(tmp_path):
    assert bench_all.device_name("cpu").startswith("CPU ")
    rc, seconds = bench_all.run_process(["bash", "-c", "echo hello; exit 3"], tmp_path / "log", 30, dict(os.environ))
    assert rc == 3 and seconds >= 0 and (tmp_path / "log").read_text() == "hello\n"
    rc, _ = bench_all.run_process(["sleep", "30"], tmp_path / "log2", 0.5, dict(os.environ))
    assert rc is None                                                # over budget: killed, reported as None
    if not torch.cuda.is_available():
        assert bench_all.run_cuda_tests(dict(os.environ), 10) == {"ran": False, "reason": "no CUDA device"}


def fake_method(tmp_path, script, **kw):
    """A Method whose bench.sh is `script` (bash; "$@" holds the arguments) writing the standard schema."""
    folder = tmp_path / "fake"
    folder.mkdir(exist_ok=True)
    (folder / "bench.sh").write_text("#!/usr/bin/env bash\n" + script)
    spec = dict(name="fake", folder=str(folder), args={"tiny": ["--tiny"]}, cases={"tiny": ["a", "b"]},
                parse=bench_all.parse_standard, goal="none", budget_s={"tiny": 20}, no_peer=["--no-peer"])
    return bench_all.Method(**{**spec, **kw})


STANDARD = """out="${@: -1}"
if [[ " $* " == *" --no-peer "* ]]; then peer=null; else peer=20.0; fi
cat > "$out" <<EOF
{"torch": "x", "records": [{"case": "a", "size": "s", "ours_ms": 10.0, "ours_mb": 1.0, "peer": "p",
 "peer_ms": $peer, "peer_mb": null, "peer_error": null, "time_ratio": null, "memory_ratio": null, "goal": "g",
 "passed": true}]}
EOF
"""


def test_a_failing_peer_run_is_retried_without_the_peer_and_missing_cases_are_rows(tmp_path):
    m = fake_method(tmp_path, 'if [[ " $* " != *" --no-peer "* ]]; then echo "peer exploded" >&2; exit 1; fi\n'
                    + STANDARD)
    records, info = bench_all.run_method(m, "tiny", "cpu", tmp_path / "out", dict(os.environ))
    assert [r["returncode"] for r in info["runs"]] == [1, 0]
    by = {r["case"]: r for r in records}
    assert by["a"]["ours_ms"] == 10.0 and "peer exploded" in by["a"]["peer_error"]
    assert by["a"]["passed"] is None and by["a"]["goal_note"]  # goals apply on CUDA at --size paper only
    assert by["b"]["error"] == "the bench did not report this case" and by["b"]["ours_ms"] is None


def test_a_bench_over_its_budget_is_killed_and_reported(tmp_path):
    m = fake_method(tmp_path, "sleep 30\n", budget_s={"tiny": 1}, no_peer=[])
    records, info = bench_all.run_method(m, "tiny", "cpu", tmp_path / "out", dict(os.environ))
    assert info["runs"][0]["returncode"] is None and info["seconds"] < 15
    assert {r["case"] for r in records} == {"a", "b"}
    assert all(r["error"].startswith("timed out after 1 s") for r in records)


def test_standard_schema_and_ratios(tmp_path):
    m = fake_method(tmp_path, STANDARD, cases={"tiny": ["a"]})
    (rec,), _ = bench_all.run_method(m, "tiny", "cpu", tmp_path / "out", dict(os.environ))
    assert rec["peer_ms"] == 20.0 and rec["error"] is None and rec["torch"] == "x"
    r = bench_all.record("c", "s", 10.0, 4.0, peer="p", peer_ms=40.0, peer_mb=2.0)
    assert r["time_ratio"] == 0.25 and r["memory_ratio"] == 2.0


def test_adapters_read_each_bench_format():
    """The per-method parsers on JSON shaped like each bench.py writes it (field names from those files)."""
    hgn = {"cases": [{"model": "simple_hgn", "graph": "dblp", "median_ms": 50.0, "peak_mb": 100.0, "num_nodes": 1,
                      "num_edges": 2},
                     {"model": "pyg_gat", "graph": "dblp", "median_ms": 100.0, "peak_mb": 400.0}], "skipped": {}}
    (r,) = bench_all.parse_simple_hgn(hgn, "paper")
    assert (r["time_ratio"], r["memory_ratio"], r["passed"]) == (0.5, 0.25, True)
    ipwd = {"results": [{"method": k, "batch_size": 64, "path": p, "images_per_s": v, "peak_mem_mib": 1.0}
                        for k, p, v in (("kd", "fast", 3000.0), ("kd", "crd_fp32_eager", 1000.0),
                                        ("ipwd", "fast", 2500.0), ("ipwd", "crd_fp32_eager", 1000.0))]}
    by = {r["case"]: r for r in bench_all.parse_ipwd(ipwd, "paper")}
    assert by["kd_b64"]["passed"] is True and by["ipwd_b64"]["passed"] is True  # 3.0x and 2.5x
    assert by["ipwd_vs_kd_b64"]["passed"] is False  # 1.2x the KD step
    ct = {"config": {}, "results": [{"case": "consistent_teacher", "seconds_per_iter": 1.0, "peak_mb": 1.0,
                                     "asa_gmm_share": 0.2},
                                    {"case": "retinanet", "error": "boom"}]}
    (r,) = bench_all.parse_consistent_teacher(ct, "paper")
    assert r["peer_error"] == "boom" and r["passed"] is None
    daflow = {"rows": [{"height": 1024, "width": 768, "batch": 1, "backend": be, "dtype": "fp32", "ms_per_step": 1.0,
                        "peak_mib": mib} for be, mib in (("reference", 100.0), ("deform_conv", 30.0))]}
    (r,) = bench_all.parse_daflow(daflow, "paper")
    assert r["memory_ratio"] == 0.3 and r["passed"] is True
