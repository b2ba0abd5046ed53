"""BVTON data: the generator's planted deformation, the part split, the pseudo-pair builder (deterministic under a
seed, saveable), the readers on a generated VITON-HD layout, a generated DressCode layout, the real VITON sample,
and their errors."""
import types

import numpy as np
import pytest
import torch
from bvton.data import PseudoPairDataset, load_paired
from bvton.parts import LAYERS, layer_labels, misalign, split_upper_parts
from bvton.synthetic import (
    person_to_canonical,
    render_person,
    write_synthetic_bvton,
    write_synthetic_dresscode,
)
from bvton.train import TrainConfig
from PIL import Image

from common.data.tryon import TryOnDataset
from common.data.unpaired_photos import UnpairedPhotos
from common.errors import ConfigError, DataError

H, W = 64, 48


def cfg(**kw):
    return TrainConfig(**{"height": H, "width": W, **kw})


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return write_synthetic_bvton(tmp_path_factory.mktemp("bvton"), num_train=4, num_test=2, num_unpaired=3,
                                 height=H, width=W, seed=3)


def test_generated_person_wears_the_flat_garment_under_the_known_deformation():
    rng = np.random.default_rng(0)
    s = render_person(H, W, rng)
    mats = person_to_canonical(s["keypoints"], H, W)
    ys, xs = np.nonzero(s["parts"].any(0))
    part = np.argmax(s["parts"][:, ys, xs], 0)
    q = np.einsum("nij,nj->ni", mats[part], np.stack([xs + 0.5, ys + 0.5, np.ones_like(xs)], 1).astype(float))
    # every garment pixel of the person lands inside the flat garment's mask ...
    assert s["cloth_mask"][np.clip(q[:, 1].astype(int), 0, H - 1), np.clip(q[:, 0].astype(int), 0, W - 1)].mean() > 0.97
    # ... and its colour is the flat garment's colour there (exact: both are the same analytic texture)
    assert (s["parse"][ys, xs] == 5).all() and s["parts"].sum() > 100


def test_part_split_separates_sleeves_from_torso():
    agree = []
    for seed in range(4):
        s = render_person(128, 96, np.random.default_rng(seed))
        parts = split_upper_parts(s["parse"], s["keypoints"])
        assert parts.shape == (3, 128, 96) and parts.sum(0).max() == 1
        np.testing.assert_array_equal(parts.any(0), s["parse"] == 5)
        agree.append((parts.astype(bool) == s["parts"]).all(0)[s["parse"] == 5].mean())
    assert np.mean(agree) > 0.85, agree  # the pose-polygon fallback vs the generator's true parts
    labels = layer_labels(s["parse"], parts)
    assert set(np.unique(labels)) <= set(range(len(LAYERS))) and (labels[parts[1] > 0] == 3).all()
    no_pose = split_upper_parts(s["parse"], np.zeros((18, 3)))
    np.testing.assert_array_equal(no_pose[0], s["parse"] == 5)


def test_misalignment_moves_the_garment_and_respects_zero_ranges():
    s = render_person(H, W, np.random.default_rng(1))
    c_on = np.where(s["parts"].any(0)[..., None], s["person"], 255).astype(np.uint8)
    parts = s["parts"].astype(np.float32)
    moved, mask = misalign(c_on, parts, s["keypoints"], np.random.default_rng(0), cfg())
    assert moved.shape == c_on.shape and mask.shape == (H, W) and 0 <= mask.min() and mask.max() <= 1
    assert np.abs(moved.astype(int) - c_on).mean() > 3
    still = cfg(global_rotate=0, global_scale=0, global_stretch=0, global_shift=0, part_rotate=0, part_shift=0,
                elastic_sigma=0, mask_jitter_p=0)
    same, mask = misalign(c_on, parts, s["keypoints"], np.random.default_rng(0), still)
    assert np.abs(same.astype(int) - c_on).max() <= 1 and np.array_equal(mask > 0.5, parts.any(0))


def dataset(root, seed=0, **kw):
    c = cfg(seed=seed, **kw)
    paired = TryOnDataset(root / "paired", "viton_hd", "train", size=(H, W))
    return PseudoPairDataset(paired, UnpairedPhotos(root / "unpaired"), (H, W), c)


def test_pseudo_pairs_are_deterministic_under_a_seed(generated):
    a, b, c = dataset(generated), dataset(generated), dataset(generated, seed=1)
    assert len(a) == 4 + 3
    for i in (0, 5):
        x, y, z = a[i], b[i], c[i]
        for k, v in x.items():
            if torch.is_tensor(v):
                assert torch.equal(v, y[k]), k
        assert not torch.equal(x["misaligned"], z["misaligned"])  # the seed matters
    a.set_epoch(1)
    assert not torch.equal(a[0]["misaligned"], b[0]["misaligned"])  # a new draw every epoch
    item = b[5]
    assert item["paired"] == 0 and item["use_proxy"] == 1 and item["cloth"].abs().sum() == 0  # unpaired photo
    assert item["pose"].shape == (18, H, W) and item["layers"].dtype == torch.int64
    assert item["parse_agnostic"][[2, 3, 4]].sum() == 0 and item["parse_agnostic"].sum() > 0


def test_pseudo_pair_images_can_be_saved(generated, tmp_path):
    ds = dataset(generated)
    ds.canonicalizer = lambda c_on, parts, pose: c_on.flip(-1)  # any callable of the flow's signature
    paths = ds.save_sample(0, tmp_path / "look")
    names = {p.name.rsplit("_", 1)[1] for p in paths}
    assert names == {f"{k}.png" for k in ("person", "agnostic", "on", "misaligned", "cloth", "proxy", "layers",
                                          "parts")}
    for p in paths:
        assert Image.open(p).size == (W, H)


def test_paired_reader_on_a_generated_viton_hd_layout(generated):
    ds = TryOnDataset(generated / "paired", "viton_hd", "test", mode="paired", size=(H, W))
    a = load_paired(ds, 0)
    assert a["person"].shape == (H, W, 3) and a["parse"].shape == (H, W) and a["keypoints"].shape == (18, 3)
    assert a["cloth_mask"].any() and (a["parse"] == 5).any()
    unpaired = TryOnDataset(generated / "paired", "viton_hd", "test", mode="unpaired", size=(H, W))
    assert unpaired.pairs[0] != (unpaired.pairs[0][0],) * 2


def test_paired_reader_on_a_generated_dresscode_layout(tmp_path):
    """DressCode upper_body through the common reader and BVTON's data path: labels mapped back to the generator's
    LIP ids, keypoints from DressCode's 384x512 space back to the image's pixels, garment mask from the non-white
    pixels (DressCode has no cloth-mask/); then pseudo pairs and one training epoch of the flow stage on it."""
    root = write_synthetic_dresscode(tmp_path / "DressCode", num_train=4, num_test=2, height=H, width=W, seed=5)
    rng = np.random.default_rng(5)
    truth = [render_person(H, W, rng) for _ in range(6)]
    ds = TryOnDataset(root, "dresscode", "train", size=(H, W))
    assert ds.category == "upper_body" and len(ds) == 4
    for i in range(4):
        a, t = load_paired(ds, i), truth[i]
        assert ds.paths(i)["parse"] == root / "label_maps" / f"{i:06d}_4.png"
        assert ds.paths(i)["keypoints"] == root / "keypoints" / f"{i:06d}_2.json"
        np.testing.assert_array_equal(a["parse"], t["parse"])
        np.testing.assert_allclose(a["keypoints"][:, :2], t["keypoints"][:, :2], atol=1e-3)
        assert (a["cloth_mask"] == t["cloth_mask"]).mean() > 0.97
        parts = split_upper_parts(a["parse"], a["keypoints"])
        assert (parts.astype(bool) == t["parts"]).all(0)[t["parse"] == 5].mean() > 0.8
    pseudo = PseudoPairDataset(ds, None, (H, W), cfg(layout="dresscode"))
    x, y = pseudo[1], PseudoPairDataset(ds, None, (H, W), cfg(layout="dresscode"))[1]
    assert all(torch.equal(v, y[k]) for k, v in x.items() if torch.is_tensor(v))
    assert x["paired"] == 1 and x["cloth_mask"].mean() > 0.1 and torch.isfinite(x["misaligned"]).all()
    unpaired = TryOnDataset(root, "dresscode", "test", mode="unpaired", size=(H, W))
    assert [p[1] for p in unpaired.pairs] == ["000005_1.jpg", "000004_1.jpg"]
    from bvton.train import main as train_main
    out = tmp_path / "run"
    train_main(["--config", "configs/smoke.yaml", "--layout", "dresscode", "--dataset", "dresscode",
                "--data_root", str(root), "--stage", "flow", "--epochs_flow", "1", "--batch_size", "2",
                "--progress", "false", "--out_dir", str(out)])
    assert (out / "checkpoints" / "flow.pt").exists()


@pytest.mark.realdata
def test_paired_reader_on_the_real_viton_sample(real_data):
    root = real_data("viton_cpvton/data/test").parent
    ds = TryOnDataset(root, "cpvton", "test",
                      pairs=[("000010_0.jpg", "000048_1.jpg"), ("000066_0.jpg", "000074_1.jpg")])
    for i in range(2):
        a = load_paired(ds, i)
        assert a["person"].shape == (256, 192, 3) and a["keypoints"].shape == (18, 3)
        parts = split_upper_parts(a["parse"], a["keypoints"])
        assert parts[0].sum() > parts[1].sum() > 0 and parts[2].sum() > 0  # real shirts: a torso and two sleeves
        assert a["cloth_mask"].mean() > 0.2  # cloth-mask/ read and binarized
    sample = PseudoPairDataset(ds, None, (256, 192), cfg(height=256, width=192))[0]
    assert torch.isfinite(sample["misaligned"]).all() and sample["paired"] == 1
    # Quirk of the sample: 000020_0 has parse and pose but no image -> a DataError naming the file.
    bad = TryOnDataset(root, "cpvton", "test", pairs=[("000020_0.jpg", "000048_1.jpg")])
    with pytest.raises(DataError, match="000020_0.jpg"):
        load_paired(bad, 0)


def test_reader_errors_name_the_file(generated, tmp_path):
    import shutil
    root = tmp_path / "copy"
    shutil.copytree(generated, root)
    (root / "paired" / "train" / "openpose_json" / "00001_00_keypoints.json").write_text("{")
    ds = dataset(root)
    with pytest.raises(DataError, match="00001_00_keypoints.json"):
        ds[1]
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(root / "unpaired" / "parsing" / "photo_00000.png")
    with pytest.raises(DataError, match="photo_00000.png"):
        ds[4]
    with pytest.raises(ConfigError, match="no samples"):
        PseudoPairDataset(None, None, (H, W), cfg())
    daflow = types.SimpleNamespace(layout="daflow", load_arrays=lambda i: {}, pairs=[("a.jpg", "b.jpg")])
    with pytest.raises(ConfigError, match="parse"):
        load_paired(daflow, 0)
