"""Time and peak memory of one Consistent-Teacher iteration against a supervised torchvision RetinaNet step.

    bash bench.sh [--device cuda] [--height 800 --width 1333] [--iters 10] [--out_dir DIR]

Ours: one full semi-supervised iteration as train.py runs it (EMA update, teacher on the unlabelled weak views,
count prior + per-class GMM threshold, box transfer, student on labelled + strong views in one forward, ASA and
the focal / GIoU losses on both groups, backward, grad clip, SGD step) on the official per-GPU batch: 1 labelled
+ 4 unlabelled images at the paper's test resolution (800 x 1333), ResNet-50 FPN, 80 classes.
Peer: `torchvision.models.detection.retinanet_resnet50_fpn` training step (forward with targets, backward, SGD)
on the same number of images (5) at the same size with the same boxes. Both start from random weights.

A random-init teacher finds nothing above the 0.05 score threshold, which would make the pseudo-label branch
empty and the timing meaningless. So the teacher's classification bias is raised (sigmoid(bias) ~ 0.2): it then
returns its full 100 detections per image, the count prior keeps ~20 of them and the GMM is fitted on full
score queues - more pseudo boxes than a trained teacher gives on COCO (a few per image), i.e. a pessimistic
load for ASA. ASA and GMM shares: the assigner calls of the iteration (labelled and pseudo-labelled images) and
the PseudoLabeler call are re-run on the very inputs of a timed iteration and timed alone.

Each case runs in a fresh spawned process. Memory: CUDA `max_memory_allocated`; CPU the growth of VmHWM over the
process's RSS once the model exists (`common.benchmark.PeakMemory`). Output: a table on stdout
and `<out_dir>/bench.json`.
"""
import copy
import dataclasses
import json
import math
import statistics
import time
from pathlib import Path

import torch

from common.benchmark import PeakMemory, run_isolated, step_times, sync
from common.config import RunConfig, option, parse_config
from common.data.detection_transforms import IMAGENET_MEAN_255, IMAGENET_STD_255
from common.errors import exit_on_user_error
from common.runtime import select_device

from .assigner import dynamic_soft_label_assign
from .model import ConsistentTeacherDetector
from .semi_step import pseudo_targets, semi_supervised_loss, valid_anchor_mask
from .teacher import PseudoLabeler, ema_update
from .train import TrainConfig

MEAN = torch.tensor(IMAGENET_MEAN_255).view(3, 1, 1)
STD = torch.tensor(IMAGENET_STD_255).view(3, 1, 1)


@dataclasses.dataclass
class BenchConfig(RunConfig):
    height: int = option(800, "image height (the paper's test scale is 800 x 1333)")
    width: int = option(1333, "image width")
    labeled: int = option(1, "labelled images per iteration (official per-GPU batch: 1)")
    unlabeled: int = option(4, "unlabelled images per iteration (official per-GPU batch: 4)")
    num_classes: int = option(80, "classes (COCO: 80)")
    boxes_per_image: int = option(7, "ground-truth boxes per labelled image (COCO mean: 7.3)")
    model: str = option("paper", "paper (ResNet-50 FPN) or tiny", choices=("paper", "tiny"))
    warmup: int = option(2, "untimed iterations")
    iters: int = option(10, "timed iterations")
    cases: list[str] = option(["consistent_teacher", "retinanet"], "what to measure")


def random_boxes(n, height, width, generator):
    """n boxes with sides between 1/16 and 1/2 of the image, inside it."""
    wh = torch.rand(n, 2, generator=generator) * 0.44 + 0.06
    wh = wh * torch.tensor([width, height])
    xy = torch.rand(n, 2, generator=generator) * (torch.tensor([width, height]) - wh)
    return torch.cat([xy, xy + wh], dim=1)


def make_view_batch(n, cfg, device, generator, with_boxes):
    pad = lambda v: math.ceil(v / 32) * 32
    images = torch.zeros(n, 3, pad(cfg.height), pad(cfg.width))
    images[:, :, :cfg.height, :cfg.width] = (torch.rand(n, 3, cfg.height, cfg.width, generator=generator) * 255
                                             - MEAN) / STD
    batch = dict(image=images.to(device), img_shape=[(cfg.height, cfg.width)] * n,
                 matrix=torch.eye(3).repeat(n, 1, 1).to(device))
    if with_boxes:
        batch["boxes"] = [random_boxes(cfg.boxes_per_image, cfg.height, cfg.width, generator).to(device)
                          for _ in range(n)]
        batch["labels"] = [torch.randint(0, cfg.num_classes, (cfg.boxes_per_image,), generator=generator).to(device)
                           for _ in range(n)]
    return batch


def consistent_teacher_case(cfg, device):
    """-> (step function, shares function) for our iteration."""
    g = torch.Generator().manual_seed(cfg.seed)
    tcfg = TrainConfig(model=cfg.model, unsup_warmup=0)
    student = (ConsistentTeacherDetector.tiny(cfg.num_classes) if cfg.model == "tiny"
               else ConsistentTeacherDetector.paper(cfg.num_classes)).to(device).train()
    teacher = copy.deepcopy(student).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    pseudo = PseudoLabeler(cfg.num_classes).to(device)
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=1e-4, momentum=0.9, weight_decay=1e-4)
    batch = dict(labeled=make_view_batch(cfg.labeled, cfg, device, g, True),
                 weak=make_view_batch(cfg.unlabeled, cfg, device, g, False),
                 strong=make_view_batch(cfg.unlabeled, cfg, device, g, False))
    state = {"step": 1}

    def raise_teacher_scores():
        with torch.no_grad():
            teacher.bbox_head.tood_cls.bias.fill_(math.log(0.2 / 0.8))

    def step():
        ema_update(teacher, student, 0.9995)
        raise_teacher_scores()
        loss, _ = semi_supervised_loss(student, teacher, pseudo, batch, tcfg, state["step"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 20.0)
        optimizer.step()
        state["step"] += 1

    def component_times():
        """Seconds of (ASA calls, PseudoLabeler) on this iteration's inputs, each timed alone."""
        raise_teacher_scores()
        with torch.no_grad():
            dets = teacher.predict(batch["weak"]["image"], batch["weak"]["img_shape"])
            p_boxes, p_labels, _ = pseudo_targets(teacher, copy.deepcopy(pseudo), batch["weak"], batch["strong"],
                                                  tcfg)
            lab = batch["labeled"]
            out = student(torch.cat([lab["image"], batch["strong"]["image"]]))
            valid = valid_anchor_mask(out.level_sizes, out.strides, [(cfg.height, cfg.width)] * len(out.boxes),
                                      device=device)
        gts = list(zip(lab["boxes"] + p_boxes, lab["labels"] + p_labels, strict=True))
        scores = out.cls_logits.sigmoid()
        sync(device)
        t0 = time.perf_counter()
        for i, (boxes, labels) in enumerate(gts):
            v = valid[i]
            dynamic_soft_label_assign(scores[i][v], out.priors[v], out.boxes[i][v], boxes, labels, topk=13,
                                      iou_factor=2.0)
        sync(device)
        t1 = time.perf_counter()
        queue = copy.deepcopy(pseudo)
        sync(device)
        t2 = time.perf_counter()
        queue(dets)
        sync(device)
        t3 = time.perf_counter()
        return t1 - t0, t3 - t2, sum(len(b) for b in p_boxes) / len(p_boxes)

    return step, component_times


def retinanet_case(cfg, device):
    """torchvision's RetinaNet R50-FPN training step on the same images and boxes (no resize: min/max size match)."""
    from torchvision.models.detection import retinanet_resnet50_fpn

    g = torch.Generator().manual_seed(cfg.seed)
    model = retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=cfg.num_classes + 1,
                                   min_size=cfg.height, max_size=cfg.width).to(device).train()
    n = cfg.labeled + cfg.unlabeled
    images = [(torch.rand(3, cfg.height, cfg.width, generator=g)).to(device) for _ in range(n)]
    targets = [dict(boxes=random_boxes(cfg.boxes_per_image, cfg.height, cfg.width, g).to(device),
                    labels=torch.randint(1, cfg.num_classes + 1, (cfg.boxes_per_image,), generator=g).to(device))
               for _ in range(n)]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=1e-4, momentum=0.9, weight_decay=1e-4)

    def step():
        losses = model(images, targets)
        loss = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 20.0)
        optimizer.step()

    return step, None


def measure(case, cfg, device_name):
    device = select_device(device_name)
    torch.manual_seed(cfg.seed)
    if cfg.cpu_threads:
        torch.set_num_threads(cfg.cpu_threads)
    step, component_times = (consistent_teacher_case if case == "consistent_teacher" else retinanet_case)(cfg, device)
    peak = PeakMemory(device)
    peak.baseline()
    peak.start()
    times = step_times(step, cfg.iters, cfg.warmup, device)
    peak_mb, _ = peak.peak_mb()
    result = dict(case=case, device=str(device), seconds_per_iter=statistics.median(times), peak_mb=peak_mb,
                  threads=torch.get_num_threads())
    if component_times is not None:
        runs = [component_times() for _ in range(3)]
        asa = statistics.median(r[0] for r in runs)
        gmm = statistics.median(r[1] for r in runs)
        result.update(asa_seconds=asa, gmm_seconds=gmm, pseudo_boxes_per_image=runs[-1][2],
                      asa_gmm_share=(asa + gmm) / result["seconds_per_iter"])
    if device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(device)
    return result


def measure_isolated(case, cfg, device_name):
    return run_isolated(measure, case, cfg, device_name, on_error={"case": case})


def run(cfg):
    results = {case: measure_isolated(case, cfg, cfg.device) for case in cfg.cases}
    ours, peer = results.get("consistent_teacher", {}), results.get("retinanet", {})
    summary = dict(config=dataclasses.asdict(cfg), results=list(results.values()))
    if "seconds_per_iter" in ours and "seconds_per_iter" in peer:
        summary.update(time_ratio=ours["seconds_per_iter"] / peer["seconds_per_iter"],
                       memory_ratio=ours["peak_mb"] / peer["peak_mb"])
    return summary


def format_table(summary):
    lines = [f"{'case':<20}{'s/iter':>10}{'peak MB':>10}{'ASA s':>9}{'GMM s':>9}{'ASA+GMM share':>15}"]
    for r in summary["results"]:
        if "error" in r:
            lines.append(f"{r['case']:<20}error: {r['error']}")
            continue
        extra = (f"{r['asa_seconds']:>9.3f}{r['gmm_seconds']:>9.3f}{r['asa_gmm_share']:>15.1%}"
                 if "asa_seconds" in r else "")
        lines.append(f"{r['case']:<20}{r['seconds_per_iter']:>10.3f}{r['peak_mb']:>10.0f}{extra}")
    if "time_ratio" in summary:
        lines.append(f"Consistent-Teacher iteration / RetinaNet step: time x{summary['time_ratio']:.2f}, "
                     f"peak memory x{summary['memory_ratio']:.2f}")
    return "\n".join(lines)


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(BenchConfig, argv, config_dir=Path(__file__).resolve().parent, description=__doc__)
    out_dir = Path(cfg.out_dir or "runs/consistent_teacher/bench")
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = run(cfg)
    print(format_table(summary))
    (out_dir / "bench.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {out_dir / 'bench.json'}")


if __name__ == "__main__":
    main()
