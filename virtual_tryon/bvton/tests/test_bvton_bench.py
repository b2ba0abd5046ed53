"""bench.py at its smoke size: every case runs in its own process and reports time and memory; the paper preset's
configs and shapes build (without running) so the GPU bench is ready."""
import json

from bvton.bench import PRESETS, bench_case, main, random_batch, stage_config


def test_bench_smoke_cases_report_time_and_memory(tmp_path):
    out = tmp_path / "bench.json"
    result = main(["--device", "cpu", "--preset", "smoke", "--cases", "inference,mask", "--steps", "1",
                   "--warmup", "0", "--daflow_preset", "none", "--out", str(out)])
    assert json.loads(out.read_text()) == result and result["daflow"] == {}
    assert [r["case"] for r in result["rows"]] == ["inference", "mask"]
    for r in result["rows"]:
        assert "error" not in r and r["ms"] > 0 and r["peak_mib"] is not None and (r["height"], r["width"]) == (64, 48)


def test_bench_case_in_process_and_paper_preset_configs():
    r = bench_case("synth", "smoke", "cpu", 1, False, 1, 0)
    assert r["case"] == "synth" and r["batch"] == 1 and r["params_m"] > 0
    for stage in ("flow", "mask", "synth"):
        cfg = stage_config("paper", stage)
        assert cfg.stage == stage and (cfg.height, cfg.width) == PRESETS["paper"]["size"] and not cfg.pretrained_losses
    b = random_batch(2, 8, 6, "cpu")
    assert b["layers"].shape == (2, 8, 6) and b["parts"].shape == (2, 3, 8, 6)
