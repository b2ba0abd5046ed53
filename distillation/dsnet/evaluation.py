"""Evaluation of a supernet: top-1 and MAdds of every static width, the gated network, a random-gate control, and
the accuracy-vs-MAdds picture.

Static widths are the official evaluation's sub-networks (`set_mode('uniform', choice=i)`, i = 0..13 for
DS-MBNet). The gated network's MAdds are the mean over the evaluation set of each sample's MAdds (as the paper
and the official `validate_gate` report them, issue #2).

Control (issue 19 of this repo): a gate that routes samples at random with the *same route histogram* as the
learned gate, hence the same mean MAdds. Because a route's output equals the static width's output (masked ==
sliced), its expected top-1 is exactly sum_k frac_k * top1(width start + k); the learned gate beats it only if it
sends the samples that need a wide route to a wide route. Multi-gate networks (DS-ResNet, DS-ViT++): each gate's
column of routes is permuted across the evaluation set (every gate keeps its route histogram; for DS-ViT++, whose
MAdds add up stage by stage, the mean MAdds are then the same) and the network is run again on those routes.
"""
from pathlib import Path

import cv2
import numpy as np
import torch

from common.plot import COLOURS, FONT


def per_sample_gumbel(indices, num_routes, seed, salt=0):
    """(B, K) Gumbel(0, 1) noise drawn from one generator per sample, keyed by (seed, salt, sample index): the same
    noise for a sample whatever the batch it lands in, the process that sees it, or a resume."""
    rows = []
    for i in indices.tolist():
        g = torch.Generator().manual_seed((seed * 1_000_003 + salt) * 10_000_019 + int(i))
        rows.append(-torch.empty(num_routes).exponential_(generator=g).log())
    return torch.stack(rows)


@torch.no_grad()
def evaluate(model, loader, device, dynamic=True, noise_seed=0):
    """Runs every static width and (if `dynamic`) the gated network over `loader`.

    Returns {"labels": (N,), "static": {width: {"correct": (N,) bool, "madds": float}},
             "dynamic": {"correct", "madds": (N,), "route": (N,)} or None}.
    """
    model.eval()
    widths = model.static_widths()
    static = {w: {"correct": [], "madds": 0.0} for w in widths}
    dyn = {"correct": [], "madds": [], "route": []}
    labels = []
    for x, y, idx in loader:
        x, y = x.to(device), y.to(device)
        labels.append(y.cpu())
        for w in widths:
            out = model(x, w)
            static[w]["correct"].append((out.argmax(1) == y).cpu())
            static[w]["madds"] = float(model.madds)
        if dynamic:
            model.gumbel_noise = per_sample_gumbel(idx, model.num_routes, noise_seed, salt=7).to(device)
            out = model(x, "dynamic")
            model.gumbel_noise = None
            dyn["correct"].append((out.argmax(1) == y).cpu())
            dyn["madds"].append(model.madds.float().cpu())
            dyn["route"].append(torch.stack([g.index for g in model.gates], 1).cpu())  # (B, gates)
    for w in widths:
        static[w]["correct"] = torch.cat(static[w]["correct"])
    result = {"labels": torch.cat(labels), "static": static, "dynamic": None, "random_gate": None}
    if dynamic:
        result["dynamic"] = {k: torch.cat(v) for k, v in dyn.items()}
        if result["dynamic"]["route"].shape[1] > 1:
            result["random_gate"] = shuffled_route_control(model, loader, device, result["dynamic"]["route"],
                                                           noise_seed)
    return result


@torch.no_grad()
def shuffled_route_control(model, loader, device, routes, seed=0):
    """The multi-gate random-gate control: routes (N, G) with each gate's column permuted across the samples, run
    through the gated network (gates forced to those routes). Returns {"correct": (N,), "madds": (N,)}."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + 11)
    shuffled = torch.stack([routes[torch.randperm(len(routes), generator=g), j] for j in range(routes.shape[1])], 1)
    out_correct, out_madds, start = [], [], 0
    for x, y, _ in loader:
        x, y = x.to(device), y.to(device)
        model.forced_routes = shuffled[start:start + len(y)].to(device)
        out = model(x, "dynamic")
        model.forced_routes = None
        out_correct.append((out.argmax(1) == y).cpu())
        out_madds.append(model.madds.float().cpu())
        start += len(y)
    return {"correct": torch.cat(out_correct), "madds": torch.cat(out_madds)}


def summarize(result, route_start=0, num_routes=4):
    """metrics.json numbers: top1_width_<i>, madds_width_<i>, and for the gated net test_top1, mean_madds,
    route_frac_<k>, random_gate_top1 (single-gate nets: its expectation; multi-gate nets: the shuffled-route run,
    with its random_gate_mean_madds) and route_frac_gate<g>_<k> (multi-gate nets); without a gate test_top1 is the
    widest width's."""
    metrics = {}
    for w, r in result["static"].items():
        metrics[f"top1_width_{w}"] = float(r["correct"].float().mean())
        metrics[f"madds_width_{w}"] = r["madds"]
    dyn = result["dynamic"]
    widths = list(result["static"])
    if dyn is None:
        metrics["test_top1"] = metrics[f"top1_width_{widths[-1]}"]
        metrics["mean_madds"] = metrics[f"madds_width_{widths[-1]}"]
        return metrics
    metrics["test_top1"] = float(dyn["correct"].float().mean())
    metrics["mean_madds"] = float(dyn["madds"].mean())
    if dyn["route"].shape[1] == 1:
        route = dyn["route"][:, 0]
        frac = torch.bincount(route, minlength=num_routes).float() / len(route)
        for k in range(num_routes):
            metrics[f"route_frac_{k}"] = float(frac[k])
        metrics["random_gate_top1"] = float(sum(frac[k] * metrics[f"top1_width_{route_start + k}"]
                                                for k in range(num_routes)))
    else:  # one route histogram per gate (DS-ResNet stages 2-4, DS-ViT++ stages 1-3)
        for g in range(dyn["route"].shape[1]):
            frac = torch.bincount(dyn["route"][:, g], minlength=num_routes).float() / len(dyn["route"])
            for k in range(num_routes):
                metrics[f"route_frac_gate{g}_{k}"] = float(frac[k])
        if result.get("random_gate") is not None:
            metrics["random_gate_top1"] = float(result["random_gate"]["correct"].float().mean())
            metrics["random_gate_mean_madds"] = float(result["random_gate"]["madds"].mean())
    return metrics


def draw_accuracy_vs_madds(path, metrics, title="accuracy vs MAdds", size=(720, 420), gated=None):
    """PNG: the static widths' (MAdds, top-1) curve and the gated network's point (a filled circle). `gated`: draw
    the gated point (None: when the metrics hold a single gate's route fractions; pass it for multi-gate nets)."""
    widths = sorted(int(k.rsplit("_", 1)[1]) for k in metrics if k.startswith("top1_width_"))
    xs = np.array([metrics[f"madds_width_{w}"] for w in widths]) / 1e6
    ys = np.array([metrics[f"top1_width_{w}"] for w in widths])
    if gated is None:
        gated = "route_frac_0" in metrics or "random_gate_top1" in metrics
    dyn = (metrics["mean_madds"] / 1e6, metrics["test_top1"]) if gated else None
    all_x = np.append(xs, [dyn[0], metrics.get("random_gate_mean_madds", dyn[0] * 1e6) / 1e6]) if dyn else xs
    all_y = np.append(ys, [dyn[1], metrics.get("random_gate_top1", dyn[1])]) if dyn else ys
    x_lo, x_hi = float(all_x.min()), float(max(all_x.max(), all_x.min() + 1e-6))
    y_lo, y_hi = float(all_y.min()) - 0.02, float(all_y.max()) + 0.02
    w_px, h_px = size
    img = np.full((h_px, w_px, 3), 255, np.uint8)
    box = (70, 40, w_px - 190, h_px - 50)

    def px(x, y):
        return (int(box[0] + (x - x_lo) / (x_hi - x_lo) * (box[2] - box[0])),
                int(box[3] - (y - y_lo) / (y_hi - y_lo) * (box[3] - box[1])))

    cv2.rectangle(img, box[:2], box[2:], (0, 0, 0), 1)
    cv2.putText(img, title, (12, 24), FONT, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    for k in range(5):
        yv, xv = y_lo + (y_hi - y_lo) * k / 4, x_lo + (x_hi - x_lo) * k / 4
        cv2.putText(img, f"{yv:.3f}", (8, px(x_lo, yv)[1] + 4), FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, f"{xv:.3g}", (px(xv, y_lo)[0] - 12, box[3] + 16), FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "MAdds (M)", ((box[0] + box[2]) // 2 - 30, box[3] + 36), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "top-1", (box[0] + 4, box[1] - 6), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    pts = np.array([px(x, y) for x, y in zip(xs, ys, strict=True)], np.int32)
    cv2.polylines(img, [pts], False, COLOURS[0], 2, cv2.LINE_AA)
    for p in pts:
        cv2.circle(img, tuple(int(v) for v in p), 3, COLOURS[0], -1, cv2.LINE_AA)
    legend = [("static widths", COLOURS[0])]
    if dyn:
        cv2.circle(img, px(*dyn), 7, COLOURS[1], -1, cv2.LINE_AA)
        legend.append(("gated (DS-Net)", COLOURS[1]))
        if "random_gate_top1" in metrics:
            rx = metrics.get("random_gate_mean_madds", metrics["mean_madds"]) / 1e6
            cv2.drawMarker(img, px(rx, metrics["random_gate_top1"]), COLOURS[3], cv2.MARKER_TILTED_CROSS, 12, 2)
            legend.append(("random gate", COLOURS[3]))
    for i, (name, colour) in enumerate(legend):
        y = box[1] + 12 + 18 * i
        cv2.rectangle(img, (box[2] + 12, y - 9), (box[2] + 26, y + 1), colour, -1)
        cv2.putText(img, name, (box[2] + 32, y), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"could not write {path}")
    return path
