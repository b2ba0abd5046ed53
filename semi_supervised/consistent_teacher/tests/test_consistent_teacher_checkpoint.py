"""The released mmdet checkpoints load into our detector. The official layout comes from a committed list of the
names and shapes that the official code's own model (ConsistentTeacher wrapper around mmdet's RetinaNet with
FAM3DHead, built from the official config) has: tests/data/official_coco_10p_state_dict_keys.json."""
import json
from pathlib import Path

import pytest
import torch
from consistent_teacher.checkpoint import convert_official_state_dict, load_official_checkpoint
from consistent_teacher.eval import main as eval_main
from consistent_teacher.model import ConsistentTeacherDetector

from common.data.shapes import write_shapes_dataset
from common.errors import DataError

OFFICIAL_KEYS = Path(__file__).resolve().parent / "data" / "official_coco_10p_state_dict_keys.json"


def official_state(seed=0):
    """Random tensors under every name and shape of the official wrapper's state_dict (teacher.*, student.*,
    scores), from the committed list, not from our names."""
    listing = json.loads(OFFICIAL_KEYS.read_text())
    assert "b49a9ce1c0ae78d13528be0a9a4eff65a627d581" in listing["source"]
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in listing["keys"]:
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(0)
        elif name.endswith("running_var"):
            state[name] = torch.rand(shape, generator=g) + 0.5
        else:
            state[name] = torch.randn(shape, generator=g) * 0.02
    return state, listing["num_classes"]


def official_file(path, seed=0):
    state, num_classes = official_state(seed)
    torch.save({"meta": {"mmdet_version": "2.28.1"}, "state_dict": state}, path)
    return state, num_classes


def test_official_checkpoint_loads_teacher_and_student(tmp_path):
    raw, n = official_file(tmp_path / "ct.pth")
    state, num_classes, scores = load_official_checkpoint(tmp_path / "ct.pth")
    assert num_classes == n == 80 and scores.shape == (80, 100)
    model = ConsistentTeacherDetector.paper(80)
    ours = model.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: tuple(v.shape) for k, v in ours.items()}
    model.load_state_dict(state)  # strict: every official key maps, nothing is left over
    teacher_keys = [k for k in raw if k.startswith("teacher.")]
    assert len(state) == len(teacher_keys)
    # the mapped tensors are the teacher's, e.g. mmdet's FPN output conv of P7 and lateral conv of C3
    assert torch.equal(state["neck.extra_blocks.p7.weight"], raw["teacher.neck.fpn_convs.4.conv.weight"])
    assert torch.equal(state["neck.inner_blocks.0.0.bias"], raw["teacher.neck.lateral_convs.0.conv.bias"])
    student_state = convert_official_state_dict(raw, "student")
    assert torch.equal(student_state["bbox_head.tood_cls.weight"], raw["student.bbox_head.tood_cls.weight"])
    assert not torch.equal(student_state["bbox_head.tood_cls.weight"], state["bbox_head.tood_cls.weight"])


def test_not_an_official_checkpoint_is_a_clear_error(tmp_path):
    torch.save({"state_dict": {"backbone.conv1.weight": torch.zeros(1)}}, tmp_path / "plain.pth")
    with pytest.raises(DataError, match="teacher"):
        load_official_checkpoint(tmp_path / "plain.pth")
    with pytest.raises(DataError, match="official Consistent-Teacher checkpoint"):
        load_official_checkpoint(tmp_path / "missing.pth")


def test_eval_sh_path_with_an_official_checkpoint(tmp_path):
    files = write_shapes_dataset(tmp_path / "shapes", num_train=2, num_val=3, seed=0)
    raw, _ = official_state()
    keep = {k: (v[:3] if "tood_cls" in k else v) for k, v in raw.items()}  # a 3-class model of the same layout
    keep["scores"] = raw["scores"][:3]
    torch.save({"meta": {}, "state_dict": keep}, tmp_path / "ct.pth")
    eval_main(["--official_checkpoint", str(tmp_path / "ct.pth"), "--ann_file", str(files["val_json"]),
               "--image_dir", str(files["image_dir"]), "--test_short", "96", "--max_long", "128",
               "--out_dir", str(tmp_path / "eval"), "--progress", "false", "--num_workers", "0"])
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics) >= {"bbox_mAP", "bbox_mAP_50", "bbox_mAP_75"}
