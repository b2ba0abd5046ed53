"""Dump what the official Consistent-Teacher code computes, as test data (writes JSON files beside this file).

Not a test. Needs, outside this repo, under ROOT: `ct_src/` = Adamdad/ConsistentTeacher at b49a9ce (its ssod/ and
configs/), `site/` = the mmdet 2.28.2 wheel unpacked (plus addict), `mmcv_src/` = open-mmlab/mmcv tag v1.7.2's Python
sources, `mmdetection/configs` = the wheel's `mmdet/.mim/configs`. Compiled mmcv ops and a few optional imports are
stubbed (`official_env`); nothing of the official code is copied here.

    python dump_official_keys.py keys OUT.json [ROOT]     state_dict names/shapes of the official model
    python dump_official_keys.py asa OUT.json [ROOT]      official DynamicSoftLabelAssigner outputs on test inputs
"""
import collections
import collections.abc
import json
import sys
import types
from pathlib import Path

MMCV_COMMIT = "4c01b026f0afa5a91a5f54aea313788da1e40f95"
CT_COMMIT = "b49a9ce1c0ae78d13528be0a9a4eff65a627d581"
CONFIG = "configs/consistent-teacher/consistent_teacher_r50_fpn_coco_180k_10p.py"


class _Any(types.ModuleType):
    """STUB module: any attribute is a dummy class (for imports that are never used to build the model)."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (), {"__init__": lambda self, *a, **k: None})


def official_env(root):
    sys.path[:0] = [f"{root}/site", f"{root}/mmcv_src", f"{root}/ct_src"]
    for name in ("yapf", "yapf.yapflib", "yapf.yapflib.yapf_api"):  # config pretty-printing only
        sys.modules[name] = types.ModuleType(name)
    sys.modules["yapf.yapflib.yapf_api"].FormatCode = lambda text, **kw: (text, None)
    for name in ("terminaltables", "pycocotools", "pycocotools.coco", "pycocotools.cocoeval", "pycocotools.mask",
                 "wandb", "matplotlib", "matplotlib.pyplot", "matplotlib.collections", "matplotlib.patches",
                 "prettytable"):
        try:
            __import__(name)
        except Exception:
            sys.modules[name] = _Any(name)
    six = types.ModuleType("six")  # py2 shim
    six.moves = types.ModuleType("six.moves")
    six.moves.map, six.moves.zip, six.moves.range = map, zip, range
    sys.modules["six"], sys.modules["six.moves"] = six, six.moves
    sys.modules["mmcv._ext"] = _Any("mmcv._ext")  # the compiled ops: never called here
    collections.Mapping, collections.Sequence = collections.abc.Mapping, collections.abc.Sequence  # py<3.10 names
    import mmcv
    import mmdet
    import ssod.core  # noqa: F401  (registers DynamicSoftLabelAssigner)
    import ssod.models  # noqa: F401  (registers ConsistentTeacher, FAM3DHead)
    return mmcv.__version__, mmdet.__version__


def write_json(path, head, rows_key, rows):
    with open(path, "w") as f:
        f.write(json.dumps(head, indent=1)[:-2] + f',\n "{rows_key}": [\n'
                + ",\n".join("  " + json.dumps(r) for r in rows) + "\n ]\n}\n")


def dump_keys(root, out):
    from mmcv import Config
    from mmdet.models import build_detector
    from ssod.utils import patch_config
    cfg = Config.fromfile(f"{root}/ct_src/{CONFIG}")
    cfg.work_dir = f"{root}/work"
    cfg = patch_config(cfg)  # as the official tools/train.py: the semi_wrapper becomes the model
    model = build_detector(cfg.model, train_cfg=cfg.get("train_cfg"), test_cfg=cfg.get("test_cfg"))
    keys = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    head = {"source": f"Adamdad/ConsistentTeacher at commit {CT_COMMIT}, {CONFIG}",
            "made_by": "the official tools/train.py model path: mmcv Config.fromfile(config) -> ssod.utils.patch_config"
                       " -> mmdet.models.build_detector(cfg.model) (the ConsistentTeacher wrapper with teacher/student "
                       "RetinaNet(ResNet-50, FPN, FAM3DHead)), .state_dict() names and shapes in order; with mmdet "
                       f"2.28.2 (PyPI wheel) and mmcv 1.7.2 (open-mmlab/mmcv tag v1.7.2, {MMCV_COMMIT}) Python sources"
                       " on CPU; stubbed: mmcv._ext (compiled ops, never called), yapf, six, terminaltables, "
                       "pycocotools, matplotlib, prettytable (imports only). "
                       "Script: tests/data/dump_official_keys.py keys",
            "num_classes": 80}
    write_json(out, head, "keys", keys)
    print(len(keys), "keys ->", out)


def dump_asa(root, out):
    """The official assigner on the inputs of test_matches_the_official_assigner_outputs and
    test_logits_form_equals_official_probability_form (built by those test files' own functions)."""
    import importlib.util

    from mmdet.core.bbox.builder import build_assigner
    here = Path(__file__).resolve().parent
    sys.path[:0] = [str(here.parents[2]), str(here.parents[3])]  # semi_supervised/ (package) and the repo root

    def load(name):
        spec = importlib.util.spec_from_file_location(name, here.parent / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    assigner = build_assigner(dict(type="DynamicSoftLabelAssigner", topk=13, iou_factor=2.0))

    def run(scores, priors, boxes, gts, labels):
        res = assigner.assign(scores, boxes, priors, gts, None, labels)
        return {"assigned_gt_inds": res.gt_inds.tolist(), "max_overlaps": [round(float(v), 7) if v > -1 else -1.0
                                                                          for v in res.max_overlaps]}

    rows_assigner = []
    asg = load("test_consistent_teacher_assigner")
    for seed in range(6):
        scores, priors, boxes, gts, labels = asg.random_image_inputs(seed)
        rows_assigner.append({"seed": seed, "checksum": float(scores.sum() + boxes.sum() + gts.sum()),
                              **run(scores, priors, boxes, gts, labels)})
    rows_loss = []
    lss = load("test_consistent_teacher_losses")
    for seed in range(3):
        logits, boxes, priors, gts, labels = lss.loss_inputs(seed)
        probs = logits.sigmoid()
        rows_loss.append({"seed": seed, "checksum": float(logits.sum() + boxes.sum()),
                          "images": [run(probs[b], priors, boxes[b], gts[b], labels[b]) for b in range(len(gts))]})
    head = {"source": f"Adamdad/ConsistentTeacher at commit {CT_COMMIT}, ssod/core/bbox/assigners/dynamic_assigner.py",
            "made_by": "DynamicSoftLabelAssigner(topk=13, iou_factor=2.0).assign(pred_scores, decoded_bboxes, "
                       "priors, gt_bboxes, None, gt_labels) of the official class (mmdet 2.28.2, mmcv 1.7.2 sources, "
                       "CPU) on the "
                       "inputs built by the test files' random_image_inputs / loss_inputs; assigned_gt_inds: 0 = "
                       "background, i + 1 = GT i; max_overlaps: -1 marks the official -INF of unassigned priors. "
                       "Script: tests/data/dump_official_keys.py asa"}
    with open(out, "w") as f:
        f.write(json.dumps(head, indent=1)[:-2] + ',\n "assigner": [\n' + ",\n".join(
            "  " + json.dumps(r) for r in rows_assigner) + '\n ],\n "loss": [\n' + ",\n".join(
            "  " + json.dumps(r) for r in rows_loss) + "\n ]\n}\n")
    print("asa ->", out)


if __name__ == "__main__":
    what, out = sys.argv[1], sys.argv[2]
    root = sys.argv[3] if len(sys.argv) > 3 else "/tmp/tryon_ct/mm"
    print("mmcv {}, mmdet {}".format(*official_env(root)))
    {"keys": dump_keys, "asa": dump_asa}[what](root, out)
