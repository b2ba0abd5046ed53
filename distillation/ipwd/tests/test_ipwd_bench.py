"""bench.py runs both paths for KD and IPWD on CPU and writes its JSON."""
import json

from ipwd import bench


def test_bench_writes_both_paths_for_each_method_and_batch(tmp_path):
    out = tmp_path / "bench.json"
    result = bench.main(["--teacher", "resnet8", "--student", "resnet8", "--batch_sizes", "4,6", "--warmup", "0",
                         "--iters", "1", "--device", "cpu", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(result))
    combos = {(r["method"], r["batch_size"], r["path"]) for r in saved["results"]}
    assert combos == {(m, b, p) for m in ("kd", "ipwd") for b in (4, 6) for p in ("crd_fp32_eager", "fast")}
    assert all(r["images_per_s"] > 0 and r["peak_mem_mib"] is None for r in saved["results"])
    assert saved["compile"] is False and saved["device"].startswith("CPU")
