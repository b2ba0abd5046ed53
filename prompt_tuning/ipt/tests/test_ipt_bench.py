"""bench.py on a tiny shape: every case runs, the JSON is written, PEFT is skipped with a message when absent."""
import importlib.util
import json

import torch
from ipt.bench import main


def test_bench_runs_on_a_tiny_shape_and_writes_json(tmp_path):
    out = main(["--device", "cpu", "--batch_size", "2", "--seq_len", "8", "--prompt_length", "4", "--steps", "1",
                "--warmup", "0", "--layers", "2", "--hidden", "32", "--heads", "4", "--out", tmp_path / "b.json"])
    saved = json.loads((tmp_path / "b.json").read_text())
    cases = {r["case"]: r for r in saved["cases"]}
    assert {"ours_finetune", "ours_ptuning_v2", "ours_ipt_prefix", "ours_ipt_prefix_lazy"} <= set(cases)
    assert all(r["tokens_per_s"] > 0 for r in saved["cases"])
    # P-tuning v2 trains n * 2 L d prefix values + the head; IPT adds the |V| x 2d table
    assert cases["ours_ptuning_v2"]["trainable_params"] == 4 * 2 * 2 * 32 + 32 * 2 + 2
    assert cases["ours_ipt_prefix"]["trainable_params"] == cases["ours_ptuning_v2"]["trainable_params"] + 30522 * 64
    assert cases["ours_ipt_prefix_lazy"]["trainable_params"] == cases["ours_ipt_prefix"]["trainable_params"]
    assert {"ipt_step_over_ptuning_v2_step", "ipt_step_over_ptuning_v2_step_lazy"} <= set(out["ratios"])
    assert saved["versions"]["torch"] and "transformers" in saved["versions"] and "peft" in saved["versions"]
    if importlib.util.find_spec("peft") is None:
        assert "peft" in saved["skipped"]["peft_prefix"]
    else:  # same configuration: PEFT's prefix (n x 2 L d) + classifier equals ours
        assert cases["peft_prefix"]["trainable_params"] == cases["ours_ptuning_v2"]["trainable_params"]


def test_a_failing_peer_is_a_row_that_says_why_not_a_traceback(tmp_path, monkeypatch, capsys):
    """PEFT prefix tuning on transformers' BERT raised "Model does not support past key values" with
    transformers 5.24 (issue 14): the bench records the reason and the versions and carries on."""
    from ipt import bench

    class Broken(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, **kw):
            raise ValueError("Model does not support past key values")

    monkeypatch.setattr(bench, "build_peft", lambda cfg: Broken())
    out = main(["--device", "cpu", "--batch_size", "1", "--seq_len", "4", "--prompt_length", "2", "--steps", "1",
                "--warmup", "0", "--layers", "1", "--hidden", "16", "--heads", "2", "--cases", "ptuning_v2",
                "peft_prefix", "--out", tmp_path / "b.json"])
    saved = json.loads((tmp_path / "b.json").read_text())
    assert saved["skipped"]["peft_prefix"] == "failed: ValueError: Model does not support past key values"
    assert [r["case"] for r in saved["cases"]] == ["ours_ptuning_v2"] and out["ratios"] == {}
    assert "does not support past key values" in capsys.readouterr().out
