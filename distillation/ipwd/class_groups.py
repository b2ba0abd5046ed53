"""The transfer-gap table of the paper (Table 1): per-class-group recall, classes ranked by the teacher.

Classes are ranked by the teacher's average probability (softmax at temperature 1) over the unaugmented
training set (its "machine-domain" class frequency, Fig. 1: Avg. Prob. x #Total Samples), split into
`num_groups` equal groups (4 in the paper: top 1-25, 26-50, 51-75, 76-100 on CIFAR-100), and each group's
macro-average recall on the test set is reported for the student, the teacher, and - when a baseline
student (trained without distillation) is given - the student's gain over it, the quantity of Table 1.
"""
import csv

import numpy as np
import torch

from common.plot import bar_plot

from .losses import propensity_weight


def teacher_class_ranking(class_mass):
    """Class ids sorted by the teacher's summed probability mass, largest first: (C,) -> (C,)."""
    return np.argsort(-np.asarray(class_mass), kind="stable")


def group_means(ranking, per_class, num_groups=4):
    """Mean of a per-class value (e.g. recall -> macro recall) over each rank group: ranking (C,), per_class (C,)
    -> list of floats (NaN-safe); at most one group per class."""
    groups = np.array_split(np.asarray(ranking), min(num_groups, len(ranking)))
    return [float(np.nanmean(np.asarray(per_class)[g])) if len(g) else float("nan") for g in groups]


def group_table(ranking, recalls, num_groups=4):
    """Rows of the table: one per group, {'group': '1-25', <name>: group mean, ...}; recalls = {name: (C,) values}
    (recalls, their differences, or the mean IPWD weight of each class: a column named `ipwd_weight`)."""
    groups = np.array_split(np.asarray(ranking), min(num_groups, len(ranking)))
    rows, start = [], 1
    for k, g in enumerate(groups):
        row = {"group": f"{start}-{start + len(g) - 1}"}
        for name, rec in recalls.items():
            row[name] = group_means(ranking, rec, num_groups)[k]
        rows.append(row)
        start += len(g)
    return rows


def write_table(rows, path_stem):
    """Write `<stem>.csv` and `<stem>.md` (recalls in percent, 2 decimals, as the paper prints them; weights as is)."""
    keys = list(rows[0])
    with open(f"{path_stem}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        cells = [f"{r[k]:.3f}" if k == "ipwd_weight" else f"{100 * r[k]:+.2f}" if k == "gain" else f"{100 * r[k]:.2f}"
                 for k in keys[1:]]
        lines.append("| " + " | ".join([r["group"]] + cells) + " |")
    text = "\n".join(lines) + "\n"
    with open(f"{path_stem}.md", "w") as f:
        f.write(text)
    return text


def draw_bar_chart(rows, path, title="recall by teacher-rank group"):
    """The table's recalls (and gain) per group as a grouped bar chart PNG (`common.plot.bar_plot`)."""
    keys = [k for k in rows[0] if k not in ("group", "ipwd_weight")]
    bar_plot(path, [f"top {r['group']}" for r in rows], {k: [100 * r[k] for r in rows] for k in keys},
             title=title, ylabel="recall (%)")


@torch.no_grad()
def sample_weights(student, loader, device, **weight_options):
    """IPWD weight of every (unaugmented) sample of `loader` under a TwoHeadStudent, and its label: (N,), (N,)."""
    student.eval()
    weights, labels = [], []
    for x, y, _ in loader:
        main, aux = student(x.to(device))
        weights.append(propensity_weight(main.float(), aux.float(), y.to(device), **weight_options).double().cpu())
        labels.append(y)
    return torch.cat(weights), torch.cat(labels)


def weight_summary(w):
    """Mean, std, min, percentiles (5, 25, 50, 75, 95) and max of a weight vector, as a dict of floats."""
    w = torch.as_tensor(w, dtype=torch.float64)
    q = torch.quantile(w, torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95], dtype=torch.float64)).tolist()
    return {"count": len(w), "mean": w.mean().item(), "std": w.std(unbiased=False).item(), "min": w.min().item(),
            **{f"p{k}": v for k, v in zip((5, 25, 50, 75, 95), q, strict=True)}, "max": w.max().item()}


@torch.no_grad()
def class_mean_weights(student, loader, device, num_classes, **weight_options):
    """Mean IPWD weight of each class's (unaugmented) training samples under a TwoHeadStudent: (C,) numpy.

    Shows on real data whether the weight does what IPWD intends: larger for the classes the teacher ranks low.
    """
    student.eval()
    total, count = torch.zeros(num_classes, dtype=torch.float64), torch.zeros(num_classes, dtype=torch.float64)
    for x, y, _ in loader:
        main, aux = student(x.to(device))
        w = propensity_weight(main.float(), aux.float(), y.to(device), **weight_options).double().cpu()
        total.index_add_(0, y, w)
        count.index_add_(0, y, torch.ones_like(w))
    return (total / count.clamp_min(1)).numpy()


@torch.no_grad()
def teacher_class_mass(teacher, loader, device, temperature=1.0):
    """Sum over the (unaugmented) training set of the teacher's softmax(z / tau): (C,) numpy."""
    teacher.eval()
    total = None
    for x, _, _ in loader:
        p = torch.softmax(teacher(x.to(device)).float() / temperature, dim=1).sum(0)
        total = p if total is None else total + p
    return total.cpu().numpy()

