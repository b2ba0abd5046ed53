"""DS-MBNet against the official key list (generated from changlin31/DS-Net@15cd303's own model class, not from
our names): key names, shapes and MAdds of every width; a file in the official trainer's format loads, a broken
one is a DataError naming the file."""
from pathlib import Path

import pytest
import torch
from dsnet.model import slimmable_mbnet_v1_bn_uniform
from dsnet.official import load_supernet, read_state_dict

from common.errors import DataError

OFFICIAL = Path(__file__).parent / "data" / "official_slimmable_mbnet_v1_bn_uniform_keys.txt"


def official_list():
    keys, madds = {}, {}
    for line in OFFICIAL.read_text().splitlines():
        if line.startswith("#"):
            continue
        parts = line.split()
        if parts[0] == "madds":
            madds[parts[1]] = float(parts[2])
        else:
            keys[parts[0]] = () if parts[1] == "scalar" else tuple(int(s) for s in parts[1].split("x"))
    return keys, madds


def test_official_list_is_from_the_official_repo():
    head = OFFICIAL.read_text().splitlines()[1]
    assert "changlin31/DS-Net" in head and "15cd3036970ec27d2c306014344fd50d9e9b888b" in head


def test_mbnet_state_dict_has_the_official_names_and_shapes():
    keys, _ = official_list()
    ours = {k: tuple(v.shape) for k, v in slimmable_mbnet_v1_bn_uniform(1000).state_dict().items()}
    assert ours == keys


def test_mbnet_madds_equal_the_official_count_of_every_width():
    """The official hooks gave 132.9M .. 565.4M (the README table's 133M .. 565M) for uniform choices 0..13."""
    _, official = official_list()
    net = slimmable_mbnet_v1_bn_uniform(1000).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        for width in [*range(14), "largest", "smallest"]:
            net(x, width)
            assert net.madds == official[str(width)], width


def fake_official_file(path, drop=None, reshape=None):
    """A timm-saver style file with the official keys (DDP `module.` prefix) and random tensors of their shapes."""
    keys, _ = official_list()
    g = torch.Generator().manual_seed(0)
    state = {}
    for k, shape in keys.items():
        if k == drop:
            continue
        if k == reshape:
            shape = (shape[0] + 1,) + shape[1:]
        state["module." + k] = torch.randint(0, 5, shape, generator=g) if k.endswith("num_batches_tracked") and \
            shape == () else torch.randn(shape, generator=g)
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}
    torch.save({"epoch": 150, "arch": "slimmable_mbnet_v1_bn_uniform", "state_dict": state, "state_dict_ema": ema,
                "version": 2}, path)
    return state, ema


def test_official_file_loads_into_our_supernet(tmp_path):
    path = tmp_path / "DS_MBNet-70_1.pth.tar"
    state, ema = fake_official_file(path)
    net = load_supernet(slimmable_mbnet_v1_bn_uniform(1000), path, prefer_ema=False)
    ours = net.state_dict()
    assert len(ours) == len(state)
    for k, v in state.items():
        assert torch.equal(ours[k.removeprefix("module.")], v), k
    net = load_supernet(slimmable_mbnet_v1_bn_uniform(1000), path, prefer_ema=True)
    assert torch.equal(net.state_dict()["classifier.bias"], ema["module.classifier.bias"])
    with torch.no_grad():
        assert net.eval()(torch.randn(1, 3, 64, 64), 0).shape == (1, 1000)


def test_broken_files_name_the_file(tmp_path):
    missing, wrong = tmp_path / "missing.pth.tar", tmp_path / "wrong.pth.tar"
    fake_official_file(missing, drop="blocks.3.first_block.gate.gate.0.weight")
    fake_official_file(wrong, reshape="classifier.bias")
    with pytest.raises(DataError, match=r"missing\.pth\.tar.*missing blocks\.3\.first_block\.gate\.gate\.0\.weight"):
        load_supernet(slimmable_mbnet_v1_bn_uniform(1000), missing)
    with pytest.raises(DataError, match=r"wrong\.pth\.tar.*shape differs for classifier\.bias"):
        load_supernet(slimmable_mbnet_v1_bn_uniform(1000), wrong)
    (tmp_path / "junk.pth.tar").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="junk.pth.tar.*not a readable checkpoint"):
        read_state_dict(tmp_path / "junk.pth.tar")
    with pytest.raises(DataError, match="absent.pth.tar.*not found"):
        read_state_dict(tmp_path / "absent.pth.tar")
