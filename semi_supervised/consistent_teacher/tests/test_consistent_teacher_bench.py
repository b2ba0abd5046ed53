"""bench.py end to end on a tiny shape: both cases run in their own process and the JSON has the ratios."""
import json

from consistent_teacher.bench import format_table
from consistent_teacher.bench import main as bench_main


def test_bench_writes_ratios_and_the_asa_gmm_share(tmp_path, capsys):
    bench_main(["--model", "tiny", "--height", "64", "--width", "96", "--boxes_per_image", "3", "--iters", "1",
                "--warmup", "0", "--cpu_threads", "1", "--out_dir", str(tmp_path)])
    summary = json.loads((tmp_path / "bench.json").read_text())
    ours, peer = summary["results"]
    assert ours["case"] == "consistent_teacher" and peer["case"] == "retinanet", summary
    assert summary["time_ratio"] > 0 and summary["memory_ratio"] > 0
    assert 0 < ours["asa_gmm_share"] < 1
    assert ours["pseudo_boxes_per_image"] > 0  # the raised teacher bias really feeds the pseudo-label branch
    assert "time x" in capsys.readouterr().out and "ASA+GMM share" in format_table(summary)
