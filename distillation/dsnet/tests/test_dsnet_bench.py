"""bench.py: the exported dense sub-networks (DS-MBNet and DS-ViT++) compute what the sliced supernet computes, and
the JSON is written (the DS-MBNet keys as common/bench_all.py's parse_dsnet reads them, DS-ViT++ under "vit")."""
import json

import torch
from dsnet import bench
from dsnet.model import ds_mbnet_v1_tiny
from dsnet.vit import ds_vit_tiny


def test_dense_export_equals_the_sliced_subnetwork():
    torch.manual_seed(0)
    net = ds_mbnet_v1_tiny(10).eval()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        for width in (0, 7, 13, "largest"):
            dense = bench.DenseSubnet(net, width).eval()
            torch.testing.assert_close(dense(x), net(x, width), rtol=1e-4, atol=1e-5)
            assert not any(p.data_ptr() == q.data_ptr() for p in dense.parameters() for q in net.parameters())


def test_dense_vit_export_equals_the_sliced_subnetwork():
    torch.manual_seed(0)
    net = ds_vit_tiny(10).eval()
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() == 1:
                p.normal_(0, 0.3)  # non-trivial biases and LayerNorm affines
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        for width in (0, 2, "largest"):
            dense = bench.DenseViT(net, width).eval()
            torch.testing.assert_close(dense(x), net(x, width), rtol=1e-4, atol=1e-5)
            assert not any(p.data_ptr() == q.data_ptr() for p in dense.parameters() for q in net.parameters())
    assert dense.stages[0][0].qkv.weight.shape == (3 * 64, 64)
    assert bench.DenseViT(net, 0).stages[0][0].qkv.weight.shape == (3 * 16, 16)


def test_bench_writes_every_row_and_the_ratios(tmp_path):
    out = tmp_path / "bench.json"
    result = bench.main(["--image_size", "32", "--num_classes", "10", "--widths", "0", "--warmup", "0",
                         "--iters", "1", "--device", "cpu", "--out", str(out), "--vit_model", "ds_vit_tiny",
                         "--vit_image_size", "32"])
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(result))
    assert set(saved["rows"]) == {"largest", "width_0", "dense_0", "width_13", "dense_13", "gated_slimmest", "gated"}
    assert saved["rows"]["gated_slimmest"]["madds"] < saved["rows"]["width_13"]["madds"]
    # the forced slimmest route costs the slimmest width plus the 4-logit head (66 x 4 MAdds)
    assert saved["rows"]["gated_slimmest"]["madds"] == saved["rows"]["width_0"]["madds"] + 66 * 4
    assert all(r["median_ms"] > 0 for r in saved["rows"].values())
    assert saved["device"].startswith("CPU") and "full_over_gated_slimmest" in saved["ratios"]
    vit = saved["vit"]
    assert vit["model"] == "ds_vit_tiny" and vit["full_width"] == 3
    assert set(vit["rows"]) == {f"{k}_{i}" for k in ("width", "dense") for i in range(4)} | {"gated_slimmest", "gated"}
    # three stage gates forced to the slimmest route: the slimmest width plus three 16 x 4 slimming heads
    assert vit["rows"]["gated_slimmest"]["madds"] == vit["rows"]["width_0"]["madds"] + 3 * 16 * 4
    assert vit["rows"]["width_0"]["madds"] < vit["rows"]["width_3"]["madds"]
    assert "full_over_gated_slimmest" in vit["ratios"]
    # what common/bench_all.py's parse_dsnet reads is unchanged by the ViT rows
    assert not any(k.startswith("vit") for k in saved["rows"]) and saved["full_width"] == 13
