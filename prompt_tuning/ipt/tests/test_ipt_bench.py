"""bench.py on a tiny shape: every case runs, the JSON is written, PEFT is skipped with a message when absent."""
import importlib.util
import json

from ipt.bench import main


def test_bench_runs_on_a_tiny_shape_and_writes_json(tmp_path):
    out = main(["--device", "cpu", "--batch_size", "2", "--seq_len", "8", "--prompt_length", "4", "--steps", "1",
                "--warmup", "0", "--layers", "2", "--hidden", "32", "--heads", "4", "--out", tmp_path / "b.json"])
    saved = json.loads((tmp_path / "b.json").read_text())
    cases = {r["case"]: r for r in saved["cases"]}
    assert {"ours_finetune", "ours_ptuning_v2", "ours_ipt_prefix"} <= set(cases)
    assert all(r["tokens_per_s"] > 0 for r in saved["cases"])
    # P-tuning v2 trains n * 2 L d prefix values + the head; IPT adds the |V| x 2d table
    assert cases["ours_ptuning_v2"]["trainable_params"] == 4 * 2 * 2 * 32 + 32 * 2 + 2
    assert cases["ours_ipt_prefix"]["trainable_params"] == cases["ours_ptuning_v2"]["trainable_params"] + 30522 * 64
    assert "ipt_step_over_ptuning_v2_step" in out["ratios"]
    if importlib.util.find_spec("peft") is None:
        assert "peft" in saved["skipped"]["peft_prefix"]
    else:  # same configuration: PEFT's prefix (n x 2 L d) + classifier equals ours
        assert cases["peft_prefix"]["trainable_params"] == cases["ours_ptuning_v2"]["trainable_params"]
