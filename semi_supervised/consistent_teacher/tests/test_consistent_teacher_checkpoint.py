"""The released mmdet checkpoints load into our detector (key mapping written out by hand from mmdet's FPN)."""
import json

import pytest
import torch
from consistent_teacher.checkpoint import convert_official_state_dict, load_official_checkpoint
from consistent_teacher.eval import main as eval_main
from consistent_teacher.model import ConsistentTeacherDetector

from common.data.shapes import write_shapes_dataset
from common.errors import DataError


def mmdet_key(ours):
    """Our key -> the key mmdet's RetinaNet(ResNet, FPN, FAM3DHead) has for the same tensor."""
    for i in range(3):
        ours = ours.replace(f"neck.inner_blocks.{i}.0.", f"neck.lateral_convs.{i}.conv.")
        ours = ours.replace(f"neck.layer_blocks.{i}.0.", f"neck.fpn_convs.{i}.conv.")
    return ours.replace("neck.extra_blocks.p6.", "neck.fpn_convs.3.conv.").replace(
        "neck.extra_blocks.p7.", "neck.fpn_convs.4.conv.")


def official_file(path, teacher, student, num_classes):
    state = {f"teacher.{mmdet_key(k)}": v for k, v in teacher.state_dict().items()}
    state.update({f"student.{mmdet_key(k)}": v for k, v in student.state_dict().items()})
    state["scores"] = torch.rand(num_classes, 100)
    torch.save({"meta": {"mmdet_version": "2.28.1"}, "state_dict": state}, path)


def test_official_checkpoint_loads_teacher_and_student(tmp_path):
    torch.manual_seed(0)
    teacher, student = ConsistentTeacherDetector.paper(3), ConsistentTeacherDetector.paper(3)
    official_file(tmp_path / "ct.pth", teacher, student, 3)
    raw = torch.load(tmp_path / "ct.pth", weights_only=False)["state_dict"]
    assert "teacher.neck.fpn_convs.4.conv.weight" in raw and "teacher.neck.lateral_convs.0.conv.bias" in raw
    state, num_classes, scores = load_official_checkpoint(tmp_path / "ct.pth")
    assert num_classes == 3 and scores.shape == (3, 100)
    model = ConsistentTeacherDetector.paper(3)
    model.load_state_dict(state)  # strict: every key maps, nothing left over
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x).boxes, teacher(x).boxes)
        assert not torch.allclose(model(x).cls_logits, student(x).cls_logits)
    student_state = convert_official_state_dict(raw, "student")
    assert all(torch.equal(student_state[k], v) for k, v in student.state_dict().items())


def test_not_an_official_checkpoint_is_a_clear_error(tmp_path):
    torch.save({"state_dict": {"backbone.conv1.weight": torch.zeros(1)}}, tmp_path / "plain.pth")
    with pytest.raises(DataError, match="teacher"):
        load_official_checkpoint(tmp_path / "plain.pth")
    with pytest.raises(DataError, match="official Consistent-Teacher checkpoint"):
        load_official_checkpoint(tmp_path / "missing.pth")


def test_eval_sh_path_with_an_official_checkpoint(tmp_path):
    files = write_shapes_dataset(tmp_path / "shapes", num_train=2, num_val=3, seed=0)
    torch.manual_seed(0)
    net = ConsistentTeacherDetector.paper(3)
    official_file(tmp_path / "ct.pth", net, net, 3)
    eval_main(["--official_checkpoint", str(tmp_path / "ct.pth"), "--ann_file", str(files["val_json"]),
               "--image_dir", str(files["image_dir"]), "--test_short", "96", "--max_long", "128",
               "--out_dir", str(tmp_path / "eval"), "--progress", "false", "--num_workers", "0"])
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics) >= {"bbox_mAP", "bbox_mAP_50", "bbox_mAP_75"}
