"""Mean-teacher plumbing, batching and the end-to-end smoke run of Consistent-Teacher."""
import dataclasses
import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from consistent_teacher.data import SemiIterationData
from consistent_teacher.semi_step import pad_cat, valid_anchor_mask
from consistent_teacher.teacher import PseudoLabeler, ema_momentum, ema_update
from consistent_teacher.train import TrainConfig, lr_factor, summarize_gmm
from consistent_teacher.train import main as train_main

from common.checkpoint import load_checkpoint
from common.config import config_from_dict, load_yaml

HERE = Path(__file__).resolve().parents[1]
MAP_FLOOR = 0.15  # smoke run (teacher), seeds 0 / 1: 0.54 / 0.25; the untrained teacher: 0.0001


def run(script, *args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(["bash", str(HERE / script), *args], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


# ----------------------------------------------------------------------------------------------- teacher / EMA
def test_ema_momentum_follows_the_mean_teacher_hook():
    assert ema_momentum(0, 0.9995) == 0.0  # iteration 0: the teacher becomes a copy of the student
    assert ema_momentum(9, 0.9995) == pytest.approx(0.9)
    assert ema_momentum(10**6, 0.9995) == 0.9995
    assert ema_momentum(9, 0.9995, warm_up=10) == pytest.approx(1 - 11 / 20)


def test_ema_update_moves_parameters_and_leaves_buffers():
    student, teacher = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        student.weight.fill_(2.0)
        teacher.weight.fill_(1.0)
        student.running_mean.fill_(5.0)
    ema_update(teacher, student, 0.75)
    assert torch.allclose(teacher.weight, torch.full((3,), 1.25))
    assert torch.all(teacher.running_mean == 0)


def det(boxes, scores, labels):
    return dict(boxes=torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4), scores=torch.tensor(scores),
                labels=torch.tensor(labels, dtype=torch.long))


def test_count_prior_keeps_the_top_n_plus_one_boxes():
    # scores sum to 1.6 -> n = int(1.6 + 0.5) = 2 -> the top 3 boxes survive stage 1; the queue then holds
    # fewer than 4 scores, so the GMM falls back to given_gt_thr = 0 and stage 2 keeps all three.
    boxes = [[0, 0, 10, 10], [1, 1, 11, 11], [2, 2, 12, 12], [3, 3, 13, 13], [4, 4, 14, 14]]
    labeler = PseudoLabeler(num_classes=2, num_scores=8)
    out, mean_thr, class_thr = labeler([det(boxes, [0.1, 0.6, 0.5, 0.3, 0.1], [0, 0, 0, 0, 0])])
    assert sorted(out[0]["scores"].tolist()) == pytest.approx([0.3, 0.5, 0.6])
    assert class_thr == {0: 0.0} and mean_thr == 0.0
    assert labeler.scores[0, :3].tolist() == pytest.approx([0.6, 0.5, 0.3])  # survivors queued (in input order)
    empty, _, _ = labeler([det([], [], [])])
    assert len(empty[0]["boxes"]) == 0


def test_score_queue_is_fifo_and_the_threshold_adapts():
    labeler = PseudoLabeler(num_classes=1, num_scores=6, dynamic_ratio=100.0)  # count prior keeps everything
    box = [[0, 0, 10, 10]]
    thrs = []
    for s in (0.9, 0.2, 0.85, 0.25, 0.8, 0.3, 0.95, 0.15):
        _, _, class_thr = labeler([det(box * 2, [s, s - 0.01], [0, 0])])
        thrs.append(class_thr[0])
    # newest first, the oldest scores fall off the end: steps 8, 7 and 6
    assert labeler.scores[0].tolist() == pytest.approx([0.15, 0.14, 0.95, 0.94, 0.3, 0.29])
    assert len(set(thrs[2:])) > 1  # fitted on a moving window, the threshold moves


def test_pad_cat_and_valid_anchor_mask():
    a, b = torch.ones(1, 3, 64, 96), torch.ones(2, 3, 96, 64)
    both = pad_cat(a, b)
    assert both.shape == (3, 3, 96, 96) and both[0, :, 64:].abs().sum() == 0
    # two levels, strides 8 and 16 on a 96 x 96 batch; image 0 is 64 x 96 (rows >= 8 / >= 4 invalid)
    mask = valid_anchor_mask([(12, 12), (6, 6)], [8, 16], [(64, 96), (96, 96)])
    level0 = mask[0, :144].view(12, 12)
    assert level0[:8].all() and not level0[8:].any()
    assert mask[1].all()
    assert mask[0, 144:].view(6, 6)[:4].all() and not mask[0, 144:].view(6, 6)[4:].any()


def test_lr_warmup_and_steps():
    cfg = TrainConfig(warmup_iters=500, warmup_ratio=0.001, lr_steps=[1000, 2000])
    assert lr_factor(0, cfg) == pytest.approx(0.001)
    assert lr_factor(250, cfg) == pytest.approx(0.5005)
    assert lr_factor(600, cfg) == 1.0 and lr_factor(1500, cfg) == pytest.approx(0.1)
    assert lr_factor(2500, cfg) == pytest.approx(0.01)


class _Sized(torch.utils.data.Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


def test_iteration_batches_cover_each_pass_and_split_ranks():
    lab, unl = _Sized(5), _Sized(12)
    ranks = [SemiIterationData(lab, unl, 1, 4, rank=r, world_size=2, max_iters=100, seed=3) for r in range(2)]
    # over 6 iterations x 2 ranks x 1 labelled image, the first 5 positions are one permutation of the 5 images
    first_pass = []
    for it in range(3):
        for r in range(2):
            first_pass += [i for i, _ in ranks[r].items(it)[0]]
    assert sorted(first_pass[:5]) == list(range(5))
    unl_pass = [i for it in range(3) for r in range(2) for i, _ in ranks[r].items(it)[1]][:12]
    assert sorted(unl_pass) == list(range(12))
    nonces = [n for it in range(4) for r in range(2) for _, n in ranks[r].items(it)[1]]
    assert len(set(nonces)) == len(nonces)  # every unlabelled draw has its own augmentation
    again = SemiIterationData(lab, unl, 1, 4, rank=1, world_size=2, max_iters=100, seed=3)
    assert again.items(7) == ranks[1].items(7)


def test_summarize_gmm():
    s = summarize_gmm([(1, 0.2), (2, 0.4), (3, 0.4), (4, 0.5)])
    assert s["gmm_thr_first"] == 0.2 and s["gmm_thr_last"] == 0.5 and s["gmm_thr_distinct"] == 2
    assert summarize_gmm([]) == {}


def test_paper_configs_parse_and_carry_the_official_values():
    for path in sorted((HERE / "configs").glob("*.yaml")):
        config_from_dict(TrainConfig, load_yaml(path), source=str(path))
    c10 = load_yaml(HERE / "configs" / "coco_10p.yaml")
    assert (c10["lr"], c10["ema_momentum"], c10["unsup_weight"], c10["unsup_warmup"], c10["iou_factor"]) == \
        (0.01, 0.9995, 2.0, 10000, 2.0)
    assert (c10["labeled_per_gpu"], c10["unlabeled_per_gpu"], c10["max_iters"]) == (1, 4, 180000)
    full = load_yaml(HERE / "configs" / "coco_full.yaml")
    assert full["iou_factor"] == 3.0 and not full["bn_affine_trainable"] and full["ema_momentum"] == 0.9998
    two = load_yaml(HERE / "configs" / "coco_10p_2x8.yaml")
    assert (two["unlabeled_per_gpu"], two["lr"], two["unsup_weight"]) == (1, 0.005, 1.0)
    assert load_yaml(HERE / "configs" / "voc.yaml")["unsup_warmup"] == 1000


# ------------------------------------------------------------------------------------------------- end to end
@pytest.mark.smoke
def test_smoke_run_beats_an_untrained_teacher_and_the_gmm_threshold_adapts(tmp_path):
    out = tmp_path / "run"
    run("train.sh", "--config", "configs/smoke.yaml", "--out_dir", str(out), "--progress", "false")
    train = json.loads((out / "metrics.json").read_text())
    assert train["bbox_mAP"] > MAP_FLOOR, train
    assert train["gmm_thr_std"] > 0.01 and train["gmm_thr_distinct"] > 3, train  # not a constant threshold
    for picture in ("detections.png", "gmm_threshold.png", "pseudo_labels.png"):
        assert (out / picture).stat().st_size > 0
    run("eval.sh", "--checkpoint", str(out / "checkpoints" / "last.pt"), "--out_dir", str(tmp_path / "eval"),
        "--progress", "false")
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["bbox_mAP"] == pytest.approx(train["bbox_mAP"], abs=1e-6)
    per_class = json.loads((tmp_path / "eval" / "per_class_ap.json").read_text())
    assert set(per_class) == {"square", "disc", "triangle"}
    assert sum(per_class.values()) / 3 == pytest.approx(metrics["bbox_mAP"], abs=1e-6)
    assert "Average Precision" in (tmp_path / "eval" / "coco_summary.txt").read_text()
    # The same config with zero iterations evaluates the untrained teacher on the same validation images; with
    # the score threshold at 0.001 its (near-prior) detections are scored instead of being dropped.
    run("train.sh", "--config", "configs/smoke.yaml", "--out_dir", str(tmp_path / "untrained"), "--max_iters", "0",
        "--score_thr", "0.001", "--progress", "false")
    untrained = json.loads((tmp_path / "untrained" / "metrics.json").read_text())
    assert untrained["bbox_mAP"] < MAP_FLOOR / 3, untrained


def test_resume_ends_with_the_same_weights(tmp_path):
    args = ["--config", str(HERE / "configs" / "smoke.yaml"), "--progress", "false", "--eval_every", "0",
            "--synthetic_train", "12", "--synthetic_val", "2", "--unsup_warmup", "0", "--ema_momentum", "0.5"]
    train_main(args + ["--out_dir", str(tmp_path / "a"), "--max_iters", "4"])
    train_main(args + ["--out_dir", str(tmp_path / "b"), "--max_iters", "2"])  # "killed" after iteration 2
    train_main(args + ["--out_dir", str(tmp_path / "b"), "--max_iters", "4", "--resume", "true"])
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 4
    for key in ("model", "teacher"):
        for name, value in a[key].items():
            assert torch.equal(value, b[key][name]), (key, name)
    assert torch.equal(a["pseudo_scores"][0], b["pseudo_scores"][0])


@pytest.mark.realdata
def test_custom_coco_export_trains_and_evaluates(real_data, tmp_path):
    """The real Roboflow COCO export (29 chess images, 14 categories incl. an unused supercategory id 0) through
    the custom-dataset path: split, two-view loading, the full iteration and the pycocotools evaluation."""
    root = real_data("coco_chess/test")
    ann = root / "_annotations.coco.json"
    out = tmp_path / "run"
    train_main(["--config", str(HERE / "configs" / "smoke.yaml"), "--dataset", "custom", "--train_ann", str(ann),
                "--train_images", str(root), "--val_ann", str(ann), "--val_images", str(root), "--percent", "50",
                "--train_short_range", "[96, 128]", "--max_long", "192", "--test_short", "128", "--max_iters", "3",
                "--unsup_warmup", "0", "--ema_momentum", "0.5", "--vis_images", "2", "--eval_batch_size", "4",
                "--score_thr", "0.001",
                "--out_dir", str(out), "--progress", "false"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["bbox_mAP"] <= 1.0 and metrics["iterations"] == 3
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["num_classes"] == 14 and ckpt["class_names"][0] == "pieces"
    file_ids = {c["id"] for c in json.loads(ann.read_text())["categories"]}
    detections = json.loads((out / "detections.json").read_text())
    assert detections and {d["category_id"] for d in detections} <= file_ids
    # boxes are in the original 2048 x 1371 pixels, not in the 192-pixel test view
    assert max(d["bbox"][0] + d["bbox"][2] for d in detections) > 300
    split = sorted((out / "splits").glob("*.ids.txt"))
    assert len(split) == 1 and len(split[0].read_text().split()) == int(0.5 * 29)


def test_two_process_torchrun_run_keeps_one_score_queue_per_rank(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", NPROC="2")
    out = tmp_path / "ddp"
    proc = subprocess.run(["bash", str(HERE / "train.sh"), "--config", "configs/smoke.yaml", "--out_dir", str(out),
                           "--max_iters", "3", "--unsup_warmup", "0", "--ema_momentum", "0.5", "--synthetic_train",
                           "12", "--synthetic_val", "2", "--progress", "false", "--device", "cpu"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["step"] == 3 and len(ckpt["pseudo_scores"]) == 2
    assert json.loads((out / "metrics.json").read_text())["iterations"] == 3


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_run_matches_the_cpu_run_closely(tmp_path):
    """The whole iteration on CUDA under bf16 autocast: finite, fp32 teacher scores, and close to the CPU run."""
    args = ["--config", str(HERE / "configs" / "smoke.yaml"), "--progress", "false", "--eval_every", "0",
            "--synthetic_train", "12", "--synthetic_val", "4", "--unsup_warmup", "0", "--max_iters", "20"]
    train_main(args + ["--out_dir", str(tmp_path / "cpu"), "--device", "cpu"])
    train_main(args + ["--out_dir", str(tmp_path / "cuda"), "--device", "cuda", "--amp", "true"])
    cpu = load_checkpoint(tmp_path / "cpu" / "checkpoints" / "last.pt")
    gpu = load_checkpoint(tmp_path / "cuda" / "checkpoints" / "last.pt")
    for name, value in cpu["model"].items():
        if value.is_floating_point():
            assert torch.isfinite(gpu["model"][name]).all(), name
            assert torch.allclose(gpu["model"][name].float(), value, atol=5e-2, rtol=5e-2), name


def _write_voc_year(devkit, year, splits, seed):
    """One 64x80 image with one object per split, in the real VOCdevkit layout."""
    import cv2
    import numpy as np
    rng = np.random.default_rng(seed)
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (devkit / f"VOC{year}" / sub).mkdir(parents=True, exist_ok=True)
    for split in splits:
        name = f"{year}_{split}"
        cv2.imwrite(str(devkit / f"VOC{year}" / "JPEGImages" / f"{name}.jpg"),
                    rng.integers(0, 255, (64, 80, 3), dtype=np.uint8))
        (devkit / f"VOC{year}" / "Annotations" / f"{name}.xml").write_text(
            f"<annotation><filename>{name}.jpg</filename><size><width>80</width><height>64</height>"
            "<depth>3</depth></size><object><name>dog</name><difficult>1</difficult><bndbox><xmin>11</xmin>"
            "<ymin>6</ymin><xmax>50</xmax><ymax>40</ymax></bndbox></object></annotation>")
        (devkit / f"VOC{year}" / "ImageSets" / "Main" / f"{split}.txt").write_text(name + "\n")


@pytest.mark.parametrize("given", ["parent", "devkit"])
def test_voc_setting_reads_vocdevkit_or_its_parent(tmp_path, given):
    from consistent_teacher.data import build_train_sets, build_val_set, dataset_files
    devkit = tmp_path / "VOCdevkit"
    _write_voc_year(devkit, "2007", ("trainval", "test"), 0)
    _write_voc_year(devkit, "2012", ("trainval",), 1)
    cfg = TrainConfig(dataset="voc", data_root=str(tmp_path if given == "parent" else devkit))
    files = dataset_files(cfg, tmp_path / "run")
    assert files["val"][0] == devkit / "VOC2007" / "instances_test.json" and files["val"][0].exists()
    labeled, unlabeled = build_train_sets(files, cfg)
    assert len(labeled) == 1 and len(unlabeled) == 1 and len(build_val_set(files, cfg)) == 1
    assert labeled.class_names[-1] == "dog"  # the STAC class order ends with dog
    target = labeled.target(0)
    assert target["labels"].tolist() == [19]  # the difficult object is a plain box, as in the official JSON
    assert target["boxes"].tolist() == [[10.0, 5.0, 49.0, 39.0]]  # mmdet's converter: every coordinate - 1


def test_warns_when_the_teacher_gives_no_pseudo_boxes(tmp_path):
    """A teacher whose every score is under score_thr gives no pseudo box: after warn_no_pseudo_iters iterations
    in a row the log says so (short runs otherwise train the unsupervised branch on background silently)."""
    out = tmp_path / "run"
    train_main(["--config", str(HERE / "configs" / "smoke.yaml"), "--progress", "false", "--eval_every", "0",
                "--synthetic_train", "12", "--synthetic_val", "2", "--unsup_warmup", "0", "--max_iters", "4",
                "--score_thr", "1.01", "--warn_no_pseudo_iters", "2", "--out_dir", str(out)])
    log = (out / "log.txt").read_text()
    assert log.count("no pseudo box for") == 2 and "for 2 iterations in a row" in log and "for 4 iterations" in log


class _FixedDetector(torch.nn.Module):
    """Stands in for the detector: one box per image reaching 20 px past the right and bottom edges."""

    def predict(self, images, img_shapes, clip=False, **kw):
        dets = []
        for h, w in img_shapes:
            box = torch.tensor([[w - 30.0, h - 30.0, w + 20.0, h + 20.0]])
            if clip:
                box = torch.cat([box[:, :2], box[:, 2:].clamp(max=torch.tensor([float(w), float(h)]))], 1)
            dets.append(dict(boxes=box, scores=torch.tensor([0.9]), labels=torch.tensor([0])))
        return dets


def test_evaluation_keeps_boxes_unclipped_by_default(tmp_path):
    """Official test path: FAM3DHead decodes without max_shape and the boxes are only rescaled to the original
    image, so a box past the edge stays past it; --clip_test_boxes true clips."""
    from consistent_teacher.data import build_val_set
    from consistent_teacher.evaluate import run_detector

    from common.data.shapes import write_shapes_dataset
    files = write_shapes_dataset(tmp_path / "shapes", num_train=1, num_val=2, image_size=(96, 128))
    cfg = TrainConfig(test_short=192, max_long=256, vis_images=0)  # a 2x test view: boxes are mapped back
    val = build_val_set({"val": (files["val_json"], files["image_dir"])}, cfg)
    results, _ = run_detector(_FixedDetector(), val, torch.device("cpu"), cfg)
    x, y, w, h = results[0]["bbox"]
    assert (x, y, x + w, y + h) == pytest.approx((113.0, 81.0, 138.0, 106.0))  # (view box) / 2, past 128 x 96
    clip_cfg = dataclasses.replace(cfg, clip_test_boxes=True)
    clipped, _ = run_detector(_FixedDetector(), val, torch.device("cpu"), clip_cfg)
    x, y, w, h = clipped[0]["bbox"]
    assert (x + w, y + h) == pytest.approx((128.0, 96.0))


@pytest.mark.parametrize("train_pad", ["before_normalize", "after_normalize"])
def test_training_views_are_padded_before_normalize_as_the_official_pipeline(tmp_path, train_pad):
    """Official pipelines: Pad(size_divisor=32) then Normalize, so padded pixels are (0 - mean) / std; a 96 x 120
    image is padded to 96 x 128 in the dataset. after_normalize (the old way) leaves the padding to the collate (0)."""
    from consistent_teacher.data import build_train_sets

    from common.data.detection_transforms import IMAGENET_MEAN_255, IMAGENET_STD_255, collate_views
    from common.data.shapes import write_shapes_dataset
    files = write_shapes_dataset(tmp_path / "shapes", num_train=2, num_val=1, image_size=(96, 120))
    cfg = TrainConfig(train_short_range=[96, 96], max_long=120, train_pad=train_pad)
    labeled, unlabeled = build_train_sets({"labeled": (files["train_json"], files["image_dir"]),
                                           "unlabeled": (files["train_json"], files["image_dir"])}, cfg)
    black = -torch.tensor(IMAGENET_MEAN_255) / torch.tensor(IMAGENET_STD_255)
    for view in (labeled[(0, 0)], unlabeled[(1, 1)]["weak"], unlabeled[(1, 1)]["strong"]):
        assert view["img_shape"] == (96, 120)
        batch = collate_views([view])
        assert batch["image"].shape[-2:] == (96, 128)
        pad = batch["image"][0, :, :, 120:]
        want = black.view(3, 1, 1).expand_as(pad) if train_pad == "before_normalize" else torch.zeros_like(pad)
        torch.testing.assert_close(pad, want)


def test_small_custom_data_recipe_runs(tmp_path):
    """configs/custom_small.yaml (the README's small-data recipe) on a generated COCO-format set, cut to 2 iterations
    and the tiny detector so it fits a CPU test; everything else is the recipe's."""
    from common.data.shapes import write_shapes_dataset
    files = write_shapes_dataset(tmp_path / "shapes", num_train=8, num_val=2, image_size=(96, 128))
    out = tmp_path / "run"
    train_main(["--config", str(HERE / "configs" / "custom_small.yaml"), "--train_ann", str(files["train_json"]),
                "--train_images", str(files["image_dir"]), "--val_ann", str(files["val_json"]), "--val_images",
                str(files["image_dir"]), "--percent", "50", "--model", "tiny", "--max_iters", "2",
                "--train_short_range", "[96, 96]", "--test_short", "96", "--max_long", "128", "--num_workers", "0",
                "--out_dir", str(out), "--progress", "false"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["iterations"] == 2 and 0.0 <= metrics["bbox_mAP"] <= 1.0
    cfg = load_yaml(HERE / "configs" / "custom_small.yaml")
    assert (cfg["labeled_per_gpu"], cfg["unlabeled_per_gpu"], cfg["unsup_warmup"]) == (2, 2, 2000)
