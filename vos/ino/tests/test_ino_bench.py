"""bench.py runs on CPU at small sizes, writes its JSON, and the two propagation paths agree."""
import json

from ino import bench


def test_bench_writes_json_with_equal_outputs(tmp_path):
    out = tmp_path / "b.json"
    bench.main(["--device", "cpu", "--height", "64", "--width", "96", "--repeats", "2", "--warmup", "0",
                "--n_context", "3", "--train_batch", "1", "--train_global", "32", "--train_local", "16",
                "--train_num_local", "1", "--out", str(out)])
    res = json.loads(out.read_text())
    prop = res["propagation"]
    assert prop["tokens"] == [8, 12] and prop["context_frames"] == 4
    assert prop["max_abs_difference"] < 1e-5
    assert prop["chunked"]["frames_per_second"] > 0 and prop["dense"]["frames_per_second"] > 0
    assert res["training"]["clips_per_second"] > 0 and res["training"]["arch"] == "vit_micro"
