"""The loader reads checkpoints laid out as the official INO `main_VOS.py` saves them.

The key names and shapes come from the official model classes (`tests/data/official_main_vos_keys.json`,
written by `tools/dump_official_keys.py` from github.com/pansanity666/INO_VOS; repo and commit inside the
file), not from our own module names."""
import argparse
import json
from pathlib import Path

import pytest
import torch
from ino.checkpoints import load_backbone

KEYS = json.loads((Path(__file__).parent / "data" / "official_main_vos_keys.json").read_text())


def _state(shapes, seed):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(*s, generator=g) if "backbone" in k else torch.zeros(*s) for k, s in shapes.items()}


def test_key_list_is_the_official_layout():
    assert KEYS["commit"] and "pansanity666/INO_VOS" in KEYS["source"]
    assert "module.headlist.headlist.0.last_layer.weight_v" in KEYS["student"]
    assert "headlist.headlist.0.mlp.0.weight" in KEYS["teacher"]
    assert KEYS["student"]["module.backbone.pos_embed"] == [1, 65, 384]


@pytest.mark.parametrize("key", ["student", "teacher"])
def test_official_main_vos_checkpoint_loads_with_every_backbone_weight(tmp_path, key):
    states = {"student": _state(KEYS["student"], 0), "teacher": _state(KEYS["teacher"], 1)}
    torch.save({**states, "optimizer": {}, "epoch": 25, "args": argparse.Namespace(arch="vit_small", patch_size=8),
                "dino_loss_cls_list": {}, "dino_loss_hw_list": {}}, tmp_path / "checkpoint.pth")
    model = load_backbone(tmp_path / "checkpoint.pth", key)
    assert (model.embed_dim, model.depth, model.patch_size) == (384, 12, 8)
    prefix = "module.backbone." if key == "student" else "backbone."
    ours = model.state_dict()
    backbone_keys = [k for k in states[key] if k.startswith(prefix)]
    assert {k[len(prefix):] for k in backbone_keys} == set(ours)  # nothing missing, nothing extra
    for k in backbone_keys:
        assert torch.equal(ours[k[len(prefix):]], states[key][k]), k
    out = model.block_features(torch.randn(1, 3, 32, 48), 7)
    assert out.shape == (1, 4, 6, 384) and torch.isfinite(out).all()
