"""bench.py: the generated graphs have HGB's statistics, and a benchmark run on the small graph writes sane JSON."""
import json
import math
import sys

import pytest
import torch
from simple_hgn.bench import GRAPHS, BenchConfig, generate_graph, main, run, training_step


def test_graph_specs_have_the_hgb_statistics():
    # paper Table 2: DBLP 26,128 nodes / 4 types / 239,566 links / 6 types; Freebase 180,098 / 8 / 1,057,688 / 36
    dblp, freebase = GRAPHS["dblp"], GRAPHS["freebase"]
    assert (sum(dblp.type_sizes), len(dblp.type_sizes), dblp.num_links, dblp.num_link_types) == (26128, 4, 239566, 6)
    assert (sum(freebase.type_sizes), len(freebase.type_sizes), freebase.num_links, freebase.num_link_types) == (
        180098, 8, 1057688, 36)
    assert len({(s, d) for s, d, _ in freebase.relations}) == 36


def test_generated_graph_is_symmetric_with_typed_self_loops():
    spec = GRAPHS["small"]
    src, dst, etype, num_etypes, offsets = generate_graph(spec, seed=0)
    n, r = int(offsets[-1]), spec.num_link_types
    assert num_etypes == 2 * r + 1
    pairs = set(zip(src.tolist(), dst.tolist(), strict=True))
    assert all((v, u) in pairs for u, v in pairs)  # symmetrised
    loops = src == dst
    assert loops.sum() == n and bool((etype[loops] == r).all())  # one self-loop per node, type R
    key = dst * n + src
    assert bool((key[1:] > key[:-1]).all())  # sorted by (dst, src), no duplicates
    assert torch.equal(generate_graph(spec, seed=0)[0], src)  # seeded


def test_benchmark_on_small_graph_writes_json_and_skips_missing_peer(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch_geometric", None)  # as if torch_geometric were not installed
    out = tmp_path / "bench.json"
    cfg = BenchConfig(graphs=["small"], device="cpu", repeats=2, warmup=1, threads=1, out=str(out))
    run(cfg)
    printed = capsys.readouterr().out
    assert "skipped pyg_gat: torch_geometric is not installed" in printed
    results = json.loads(out.read_text())
    assert set(results) >= {"config", "skipped", "cases", "comparisons", "env"}
    assert "pyg_gat" in results["skipped"] and results["comparisons"] == []
    (case,) = results["cases"]
    assert case["model"] == "simple_hgn" and case["graph"] == "small" and case["device"] == "cpu"
    for key in ("median_ms", "min_ms", "peak_mb"):
        assert isinstance(case[key], float) and math.isfinite(case[key]) and case[key] > 0, (key, case[key])
    assert len(case["step_ms"]) == 2 and case["params"] > 0 and case["num_edges"] > case["num_nodes"]
    assert "small" in printed and "simple_hgn" in printed  # the table


def test_unknown_graph_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--graphs", "dblp,nope", "--device", "cpu"])
    assert e.value.code == 2 and "nope" in capsys.readouterr().err


def test_peer_has_the_same_layers_heads_and_widths():
    """Parameter counts differ only by the output layer's edge term: Simple-HGN's fc_e/attn_e have width
    edge_dim whatever the layer's output, GATConv's lin_edge/att_edge have the output width (num_classes)."""
    pytest.importorskip("torch_geometric.nn")
    cfg = BenchConfig(threads=1)
    _, ours = training_step("simple_hgn", "small", torch.device("cpu"), cfg)
    step, peer = training_step("pyg_gat", "small", torch.device("cpu"), cfg)
    step()
    c, d = GRAPHS["small"].num_classes, cfg.edge_dim
    assert ours["params"] - peer["params"] == (d * d + d) - (d * c + c)
    assert (ours["num_edges"], ours["num_etypes"]) == (peer["num_edges"], peer["num_etypes"])
