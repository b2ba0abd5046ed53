"""Person-side geometry BVTON needs: garment parts, the layered layout labels, pose heatmaps, misalignment.

All of it is [assumption] (research note ``virtual_tryon.md`` §2.3-§2.5): the abstract names the parts ("sleeves,
torso"), a "layered mask" and "randomly misaligned on-model clothes", nothing more. Arrays are numpy, images uint8
(H, W, 3), label maps (H, W), keypoints COCO-18 (18, 3) in pixels (x, y, confidence; missing = 0).
"""
import cv2
import numpy as np

PARTS = ("torso", "right_sleeve", "left_sleeve")  # COCO right arm = joints 2-3-4 (image left on a frontal person)
# Layers of the layered layout, bottom to top (research note §2.4; "skin" = neck / torso skin / legs).
LAYERS = ("background", "skin", "torso", "right_sleeve", "left_sleeve", "bottom", "arms", "hair", "face")
GARMENT_LAYERS = (2, 3, 4)
# Layers hidden in the parse-agnostic input (the garment, the arms it touches and the neck skin it may reveal).
AGNOSTIC_HIDDEN = (1, 2, 3, 4, 6)
# LIP/CIHP id (+ CP-VTON+'s 20 = neck) -> layer id; the upper garment (5, 6, 7) is resolved per part, -1 here.
LIP_TO_LAYER = np.array([0, 7, 7, 6, 8, -1, -1, -1, 5, 5, 1, 0, 5, 8, 6, 6, 1, 1, 5, 5, 1], dtype=np.int64)
UPPER_LIP = (5, 6, 7)
LAYER_COLOURS = np.array([[0, 0, 0], [250, 200, 160], [220, 40, 40], [40, 160, 40], [40, 80, 220], [90, 60, 30],
                          [250, 150, 100], [60, 30, 10], [255, 220, 180]], dtype=np.uint8)


def _point_segment_distance(px, py, a, b):
    """Distance of pixel coordinates (px, py) to the segment a-b (both (2,))."""
    d = b - a
    t = np.clip(((px - a[0]) * d[0] + (py - a[1]) * d[1]) / max(float(d @ d), 1e-8), 0, 1)
    return np.hypot(px - (a[0] + t * d[0]), py - (a[1] + t * d[1]))


def split_upper_parts(parse, keypoints, dilate=0.1):
    """Split the upper-garment pixels into (torso, right sleeve, left sleeve) masks, float32 (3, H, W).

    Pose-polygon fallback of research note §2.3 (no DensePose here): the torso is the quadrilateral shoulders
    (COCO 2, 5) - hips (11, 8), dilated by `dilate` x shoulder width; garment pixels outside it go to the nearer
    arm polyline (shoulder-elbow-wrist). Without both shoulders or both hips every garment pixel is torso.
    """
    h, w = parse.shape
    upper = np.isin(parse, UPPER_LIP)
    out = np.zeros((3, h, w), np.float32)
    k = np.asarray(keypoints, np.float64)
    have = lambda *ids: all(k[i, 2] > 0 and (k[i, 0] > 0 or k[i, 1] > 0) for i in ids)  # noqa: E731
    if not have(2, 5, 8, 11):
        out[0] = upper
        return out
    quad = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(quad, np.round(k[[2, 5, 11, 8], :2]).astype(np.int32), 1)
    grow = int(round(dilate * np.linalg.norm(k[5, :2] - k[2, :2])))
    if grow > 0:
        quad = cv2.dilate(quad, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    torso = upper & (quad > 0)
    rest = upper & ~torso
    py, px = np.mgrid[0:h, 0:w].astype(np.float64)
    dist = []
    for chain in ((2, 3, 4), (5, 6, 7)):
        pts = [k[i, :2] for i in chain if have(i)]
        d = np.full((h, w), np.inf)
        for a, b in zip(pts[:-1], pts[1:], strict=False):
            d = np.minimum(d, _point_segment_distance(px, py, a, b))
        if len(pts) == 1:
            d = np.hypot(px - pts[0][0], py - pts[0][1])
        dist.append(d)
    right = rest & (dist[0] <= dist[1])
    out[0], out[1], out[2] = torso, right, rest & ~right
    return out


def layer_labels(parse, parts):
    """Visible layer id per pixel (H, W) int64: LIP ids via `LIP_TO_LAYER`, garment pixels by their part."""
    labels = LIP_TO_LAYER[np.minimum(parse, len(LIP_TO_LAYER) - 1)]
    garment = labels < 0
    part_id = np.argmax(parts, axis=0)
    labels[garment] = np.asarray(GARMENT_LAYERS)[part_id[garment]]
    return labels


def pose_heatmaps(keypoints, height, width, sigma):
    """18 Gaussian heatmaps float32 (18, H, W) (research note §2.2: sigma 6 px at 1024); missing joints are 0."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    maps = np.zeros((18, height, width), np.float32)
    for i, (x, y, c) in enumerate(np.asarray(keypoints, np.float32)):
        if c > 0 and (x > 0 or y > 0):
            maps[i] = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
    return maps


def _affine(angle_deg, scale_xy, centre, shift):
    """2x3 affine: rotate by angle and scale (sx, sy) about centre, then shift (pixels)."""
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) @ np.diag(scale_xy)
    c = np.asarray(centre, np.float64)
    return np.concatenate([rot, (c - rot @ c + np.asarray(shift))[:, None]], 1)


def misalign(garment, parts, keypoints, rng, cfg):
    """Randomly misalign an on-model garment (research note §2.5, every number an option of `cfg`).

    garment: uint8 (H, W, 3) with white outside the garment; parts: float (3, H, W) part masks.
    1. per-part jitter: sleeves rotate U(-part_rotate, part_rotate) deg about their shoulder, every part shifts
       U(-part_shift, part_shift) x (W, H); 2. one global affine: rotation U(-global_rotate, ..), isotropic scale
       U(1 - global_scale, 1 + global_scale), anisotropic stretch U(1 - stretch, 1 + stretch), shift
       U(-global_shift, ..) x (W, H); 3. smooth elastic noise: a 5x5 grid of displacements with std
       elastic_sigma x (H, W), bicubic-upsampled (the note's 5x5 TPS, approximated); 4. with p mask_jitter_p the
       mask is eroded or dilated by up to mask_jitter_px x H / 1024 pixels.
    Returns (garment uint8 (H, W, 3) white outside, mask float32 (H, W)).
    """
    h, w = garment.shape[:2]
    k = np.asarray(keypoints, np.float64)
    colour = np.zeros((h, w, 3), np.float32)
    alpha = np.zeros((h, w), np.float32)
    for p, pivot_joint in zip(range(3), (None, 2, 5), strict=True):
        m = parts[p].astype(np.float32)
        if not m.any():
            continue
        pivot = k[pivot_joint, :2] if pivot_joint is not None else np.array([w / 2, h / 2])
        ang = rng.uniform(-cfg.part_rotate, cfg.part_rotate) if pivot_joint is not None else 0.0
        shift = rng.uniform(-cfg.part_shift, cfg.part_shift, 2) * (w, h)
        mat = _affine(ang, (1.0, 1.0), pivot, shift)
        mw = cv2.warpAffine(m, mat, (w, h), flags=cv2.INTER_LINEAR)
        cw = cv2.warpAffine(garment.astype(np.float32) * m[..., None], mat, (w, h), flags=cv2.INTER_LINEAR)
        colour = colour * (1 - mw[..., None]) + cw  # later parts (sleeves) over earlier ones (torso)
        alpha = alpha * (1 - mw) + mw
    s = rng.uniform(1 - cfg.global_scale, 1 + cfg.global_scale)
    stretch = rng.uniform(1 - cfg.global_stretch, 1 + cfg.global_stretch)
    mat = _affine(rng.uniform(-cfg.global_rotate, cfg.global_rotate), (s * stretch, s / stretch), (w / 2, h / 2),
                  rng.uniform(-cfg.global_shift, cfg.global_shift, 2) * (w, h))
    colour = cv2.warpAffine(colour, mat, (w, h), flags=cv2.INTER_LINEAR)
    alpha = cv2.warpAffine(alpha, mat, (w, h), flags=cv2.INTER_LINEAR)
    if cfg.elastic_sigma > 0:
        grid = rng.normal(0, cfg.elastic_sigma, (2, 5, 5)) * np.array([w, h])[:, None, None]
        dx = cv2.resize(grid[0].astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
        dy = cv2.resize(grid[1].astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        colour = cv2.remap(colour, xs + dx, ys + dy, cv2.INTER_LINEAR)
        alpha = cv2.remap(alpha, xs + dx, ys + dy, cv2.INTER_LINEAR)
    if cfg.mask_jitter_p > 0 and rng.random() < cfg.mask_jitter_p:
        r = int(rng.integers(0, max(1, round(cfg.mask_jitter_px * h / 1024)) + 1))
        if r > 0:
            kernel = np.ones((2 * r + 1, 2 * r + 1), np.uint8)
            grown = rng.random() < 0.5
            new = (cv2.dilate if grown else cv2.erode)((alpha > 0.5).astype(np.uint8), kernel).astype(np.float32)
            if grown:  # a dilated rim takes the nearest garment colour
                colour = np.where((new > 0)[..., None] & (alpha <= 0.5)[..., None],
                                  cv2.dilate(colour, kernel), colour)
            alpha = np.minimum(alpha, new) if not grown else np.maximum(alpha, new)
    safe = np.maximum(alpha, 1e-6)[..., None]
    out = np.where(alpha[..., None] > 1e-3, colour / safe, 255.0) * alpha[..., None] + 255.0 * (1 - alpha[..., None])
    return np.clip(out, 0, 255).astype(np.uint8), alpha.clip(0, 1)
