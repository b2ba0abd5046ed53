"""eval.py on a generated YouTube-VOS folder (an object that appears mid-video) and its error messages."""
import json

import numpy as np
import pytest
import torch
from ino import eval as ino_eval
from ino.model import build_ino
from PIL import Image

from common.data.davis import read_annotation, synthetic_clip, write_annotation


def _checkpoint(path):
    torch.manual_seed(0)
    student, _ = build_ino("vit_micro", 8, out_dim=16, hidden_dim=16, bottleneck_dim=8)
    torch.save({"model": student.state_dict(), "config": {"eval_block": 2, "eval_short_side": 0}}, path)
    return path


@pytest.mark.parametrize("late_objects", ["chains", "inject"])
def test_youtube_vos_late_object_is_written_from_its_first_frame(tmp_path, late_objects):
    frames, ids = synthetic_clip(np.random.default_rng(4), num_frames=5, height=48, width=64)
    names = [f"{5 * t:05d}" for t in range(5)]
    root = tmp_path / "ytvos"
    for n, f in zip(names, frames, strict=True):
        (root / "valid" / "JPEGImages" / "v1").mkdir(parents=True, exist_ok=True)
        Image.fromarray(f).save(root / "valid" / "JPEGImages" / "v1" / f"{n}.jpg", quality=95)
    # object 1 starts at frame 1 (00005), object 2 at frame 3 (00015); frame 0 has no object
    write_annotation(root / "valid" / "Annotations" / "v1" / "00005.png", np.where(ids[1] == 1, 1, 0))
    write_annotation(root / "valid" / "Annotations" / "v1" / "00015.png", np.where(ids[3] == 2, 2, 0))
    meta = {"videos": {"v1": {"objects": {"1": {"category": "a", "frames": names[1:]},
                                          "2": {"category": "b", "frames": names[3:]}}}}}
    (root / "valid" / "meta.json").write_text(json.dumps(meta))
    ino_eval.main(["--checkpoint", _checkpoint(tmp_path / "c.pt"), "--dataset", "youtube_vos", "--data_root", root,
                   "--out_dir", tmp_path / "out", "--progress", "false", "--late_objects", late_objects])
    out = [read_annotation(tmp_path / "out" / "results" / "v1" / f"{n}.png") for n in names]
    assert not out[0].any()  # before any object: background
    assert np.array_equal(out[1], np.where(ids[1] == 1, 1, 0))  # the given first masks are kept
    assert not (out[2] == 2).any()
    if late_objects == "inject":  # the given mask is written exactly
        assert (out[3] == 2).sum() == (ids[3] == 2).sum()
    else:  # chains (official): argmax of (1 - s) pred + s gt on a 6 x 8 token grid: roughly the mask
        assert ((out[3] == 2) & (ids[3] == 2)).sum() / ((out[3] == 2) | (ids[3] == 2)).sum() > 0.7
    assert (out[4] == 2).any() and (out[4] == 1).any()
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["frames"] == 4
    # all frames: propagate over valid_all_frames (every frame), write only the frames of valid/JPEGImages
    for t, f in enumerate(frames[:4]):
        (root / "valid_all_frames" / "JPEGImages" / "v1").mkdir(parents=True, exist_ok=True)
        for k in range(5):  # five 30 fps frames per 6 fps frame (repeats stand in for the in-between frames)
            Image.fromarray(f).save(root / "valid_all_frames" / "JPEGImages" / "v1" / f"{5 * t + k:05d}.jpg")
    ino_eval.main(["--checkpoint", tmp_path / "c.pt", "--dataset", "youtube_vos", "--data_root", root,
                   "--all_frames", "--out_dir", tmp_path / "all", "--progress", "false",
                   "--late_objects", late_objects])
    written = sorted(p.stem for p in (tmp_path / "all" / "results" / "v1").glob("*.png"))
    assert written == names[:4]
    assert json.loads((tmp_path / "all" / "metrics.json").read_text())["frames"] == 15  # 00005 .. 00019


def test_eval_errors_are_clear(tmp_path, capsys):
    with pytest.raises(SystemExit):
        ino_eval.main(["--out_dir", str(tmp_path / "a")])
    assert "--checkpoint is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ino_eval.main(["--checkpoint", str(tmp_path / "missing.pt"), "--out_dir", str(tmp_path / "b")])
    assert "missing.pt" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ino_eval.main(["--checkpoint", str(_checkpoint(tmp_path / "c.pt")), "--dataset", "davis",
                       "--data_root", str(tmp_path / "nowhere"), "--out_dir", str(tmp_path / "c")])
    assert "JPEGImages" in capsys.readouterr().err
