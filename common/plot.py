"""Small PNG charts drawn with OpenCV (matplotlib is not a dependency): training curves, grouped bars."""
from pathlib import Path

import cv2
import numpy as np

# BGR colours, readable on white and for the common colour-vision deficiencies (Okabe-Ito palette)
COLOURS = [(178, 114, 0), (0, 159, 230), (115, 158, 0), (0, 94, 213), (167, 121, 204), (66, 228, 240)]
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _canvas(width, height, title):
    img = np.full((height, width, 3), 255, np.uint8)
    if title:
        cv2.putText(img, title, (12, 24), FONT, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def _axes(img, box, y_lo, y_hi, xlabel, ylabel, x_ticks):
    """Draw the frame, 5 y ticks with values and the given x ticks [(pixel_x, text)]."""
    x0, y0, x1, y1 = box
    for k in range(5):
        v = y_lo + (y_hi - y_lo) * k / 4
        py = int(y1 - (y1 - y0) * k / 4)
        cv2.line(img, (x0, py), (x1, py), (225, 225, 225), 1)
        cv2.putText(img, f"{v:.3g}", (4, py + 4), FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.rectangle(img, (x0, y0), (x1, y1), (0, 0, 0), 1)
    for px, text in x_ticks:
        cv2.putText(img, text, (px - 4 * len(text), y1 + 16), FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, xlabel, ((x0 + x1) // 2 - 4 * len(xlabel), y1 + 34), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, ylabel, (x0 + 4, y0 - 6), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)


def _legend(img, names, x, y):
    for i, name in enumerate(names):
        c = COLOURS[i % len(COLOURS)]
        cv2.rectangle(img, (x, y + 18 * i - 9), (x + 14, y + 18 * i + 1), c, -1)
        cv2.putText(img, name, (x + 20, y + 18 * i), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)


def _range(values):
    values = np.asarray(values, float)
    values = values[np.isfinite(values)] if np.isfinite(values).any() else np.zeros(1)
    lo, hi = float(np.min(values)), float(np.max(values))
    pad = 0.05 * (hi - lo) if hi > lo else 0.5
    return lo - pad, hi + pad


def line_plot(path, series, title="", xlabel="", ylabel="", size=(720, 420)):
    """Write a PNG with one line per entry of `series` ({name: (xs, ys)}); non-finite points are skipped."""
    width, height = size
    img = _canvas(width, height, title)
    box = (60, 40, width - 170, height - 45)
    pts = {k: (np.asarray(x, float), np.asarray(y, float)) for k, (x, y) in series.items()}
    pts = {k: (x[np.isfinite(y)], y[np.isfinite(y)]) for k, (x, y) in pts.items()}
    xs = np.concatenate([x for x, _ in pts.values()] or [np.zeros(1)])
    ys = np.concatenate([y for _, y in pts.values()] or [np.zeros(1)])
    (x_lo, x_hi), (y_lo, y_hi) = (float(xs.min()), float(max(xs.max(), xs.min() + 1))), _range(ys)

    def to_px(x, y):
        px = box[0] + (x - x_lo) / (x_hi - x_lo) * (box[2] - box[0])
        py = box[3] - (y - y_lo) / (y_hi - y_lo) * (box[3] - box[1])
        return np.stack([px, py], 1).round().astype(np.int32)

    ticks = [(int(to_px(np.array([v]), np.array([y_lo]))[0, 0]), f"{v:.0f}") for v in np.linspace(x_lo, x_hi, 5)]
    _axes(img, box, y_lo, y_hi, xlabel, ylabel, ticks)
    for i, (x, y) in enumerate(pts.values()):
        if len(x):
            cv2.polylines(img, [to_px(x, y)], False, COLOURS[i % len(COLOURS)], 2, cv2.LINE_AA)
    _legend(img, list(pts), box[2] + 12, box[1] + 12)
    return _write(path, img)


def bar_plot(path, categories, groups, title="", ylabel="", size=(720, 420)):
    """Write a PNG of grouped bars: one group of bars per category, one bar colour per entry of `groups`
    ({name: values aligned with categories}); a zero line is drawn, non-finite values draw no bar."""
    width, height = size
    img = _canvas(width, height, title)
    box = (60, 40, width - 170, height - 45)
    values = np.asarray(list(groups.values()), float)  # (G, K)
    y_lo, y_hi = _range(np.concatenate([values.ravel(), [0.0]]))
    to_py = lambda v: int(round(box[3] - (v - y_lo) / (y_hi - y_lo) * (box[3] - box[1])))  # noqa: E731
    k, g = len(categories), len(groups)
    slot = (box[2] - box[0]) / max(k, 1)
    bar = slot * 0.8 / max(g, 1)
    ticks = [(int(box[0] + slot * (j + 0.5)), str(c)) for j, c in enumerate(categories)]
    _axes(img, box, y_lo, y_hi, "", ylabel, ticks)
    zero = to_py(0.0)
    cv2.line(img, (box[0], zero), (box[2], zero), (0, 0, 0), 1)
    for gi, row in enumerate(values):
        for j, v in enumerate(row):
            if not np.isfinite(v):
                continue
            left = int(box[0] + slot * j + slot * 0.1 + bar * gi)
            cv2.rectangle(img, (left, min(zero, to_py(v))), (int(left + bar) - 1, max(zero, to_py(v))),
                          COLOURS[gi % len(COLOURS)], -1)
    _legend(img, list(groups), box[2] + 12, box[1] + 12)
    return _write(path, img)


def _write(path, img):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"could not write {path}")
    return path
