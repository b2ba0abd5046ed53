"""bench.py at its smoke size: every case runs in its own process and reports time and memory; DAFlow's own bench
runs beside it in the same run on BVTON's inference inputs; the paper preset's configs and shapes build (without
running) so the GPU bench is ready."""
import json

import torch
from bvton.bench import PRESETS, bench_case, daflow_inputs, main, random_batch, stage_config

from common.bench_all import parse_bvton


def test_bench_smoke_cases_report_time_and_memory(tmp_path):
    out = tmp_path / "bench.json"
    result = main(["--device", "cpu", "--preset", "smoke", "--cases", "inference,mask", "--steps", "1",
                   "--warmup", "0", "--daflow_preset", "none", "--out", str(out)])
    assert json.loads(out.read_text()) == result and result["daflow"] == {}
    assert [r["case"] for r in result["rows"]] == ["inference", "mask"]
    for r in result["rows"]:
        assert "error" not in r and r["ms"] > 0 and r["peak_mib"] is not None and (r["height"], r["width"]) == (64, 48)


def test_bench_runs_daflow_inference_on_the_same_inputs_in_the_same_run(tmp_path):
    result = main(["--device", "cpu", "--preset", "smoke", "--cases", "inference", "--steps", "2", "--warmup", "1",
                   "--out", str(tmp_path / "bench.json")])
    daflow = result["daflow"]
    assert "error" not in daflow and result["daflow_preset"] == "smoke", daflow
    assert "--cases inference --inputs" in daflow["command"] and daflow["result"]["rows"] == []  # no train steps
    rows = daflow["result"]["inference"]
    assert [(r["backend"], r["dtype"]) for r in rows] == [("reference", "fp32"), ("deform_conv", "fp32")]
    for r in rows:
        assert r["ms"] > 0 and r["peak_mib"] is not None and (r["height"], r["width"], r["batch"]) == (64, 48, 1)
        assert r["output_shape"] == [1, 3, 64, 48] and r["inputs"].endswith("inputs.pt")
    # the make-bench adapter: DAFlow's reference-warp inference is the peer of BVTON's inference row
    recs = {r["case"]: r for r in parse_bvton(result, "tiny")}
    assert recs["inference"]["ours_ms"] == result["rows"][0]["ms"] and recs["inference"]["peer_ms"] == rows[0]["ms"]
    assert recs["inference"]["peer_error"] is None and recs["inference"]["time_ratio"] > 0
    assert recs["flow_step"]["peer_ms"] is None and "--daflow_cases" in recs["flow_step"]["peer_error"]


def test_daflow_inputs_are_this_bench_inference_inputs(tmp_path):
    daflow_inputs(64, 48, tmp_path / "x.pt")
    x, b = torch.load(tmp_path / "x.pt"), random_batch(1, 64, 48, "cpu")
    assert torch.equal(x["cloth"], b["cloth"]) and torch.equal(x["agnostic"], b["agnostic"])
    assert x["pose"].shape == (1, 3, 64, 48) and x["pose"].min() >= -1 and x["pose"].max() <= 1


def test_bench_case_in_process_and_paper_preset_configs():
    r = bench_case("synth", "smoke", "cpu", 1, False, 1, 0)
    assert r["case"] == "synth" and r["batch"] == 1 and r["params_m"] > 0
    for stage in ("flow", "mask", "synth"):
        cfg = stage_config("paper", stage)
        assert cfg.stage == stage and (cfg.height, cfg.width) == PRESETS["paper"]["size"] and not cfg.pretrained_losses
    b = random_batch(2, 8, 6, "cpu")
    assert b["layers"].shape == (2, 8, 6) and b["parts"].shape == (2, 3, 8, 6)
