"""Generated try-on data with a planted flat garment and a known per-part deformation.

Planted signal: every person wears a flat T-shirt (the in-shop image written to ``cloth/``) deformed part by part:
the torso rectangle by an axis-aligned affine onto the person's shoulder-hip box, each sleeve by a similarity that
pins its canonical shoulder point to the person's shoulder joint and turns it from the in-shop 45 degrees to the
person's arm angle (random, 15-60 degrees). Half of the persons tuck the shirt in (the trousers cover its hem:
"clothes occluded by pants", the abstract's example). Because the deformation is exact and known, a
canonicalizing flow can be scored against the true flat garment, and the pixel texture (stripes) makes any
misalignment visible. Written in the VITON-HD layout (read back by `common.data.tryon.TryOnDataset`) plus an
unpaired photo folder (`common.data.unpaired_photos`) of more persons without their garment.
"""
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from common.data.openpose import coco18_to_body25, write_openpose_json
from common.data.unpaired_photos import write_unpaired_photo

# Canonical (in-shop) T-shirt, in fractions of (W, H): torso box, shoulder points, sleeve length / half-width.
TORSO_BOX = (0.3, 0.7, 0.18, 0.78)  # x0, x1, y0, y1
SLEEVE_LEN, SLEEVE_HALF = 0.2, 0.07
CANONICAL_SLEEVE_DEG = 45.0  # in-shop sleeves point 45 degrees outward-down


def _canonical_frames(h, w):
    """Per part (torso, right sleeve, left sleeve): the canonical origin (x, y) and axis angle (rad)."""
    x0, x1, y0, _ = TORSO_BOX
    a = np.deg2rad(CANONICAL_SLEEVE_DEG)
    y = y0 * h + SLEEVE_HALF * h
    return [None, ((x0 * w, y), np.pi / 2 + a), ((x1 * w, y), np.pi / 2 - a)]


def part_membership(qx, qy, h, w):
    """Boolean (3, ...) membership of canonical pixel coordinates in (torso, right sleeve, left sleeve)."""
    x0, x1, y0, y1 = TORSO_BOX
    torso = (qx >= x0 * w) & (qx < x1 * w) & (qy >= y0 * h) & (qy < y1 * h)
    out = [torso]
    for origin, ang in _canonical_frames(h, w)[1:]:
        dx, dy = qx - origin[0], qy - origin[1]
        t = dx * np.cos(ang) + dy * np.sin(ang)
        n = -dx * np.sin(ang) + dy * np.cos(ang)
        out.append((t >= 0) & (t < SLEEVE_LEN * w) & (np.abs(n) < SLEEVE_HALF * h) & ~torso)
    return np.stack(out)


def texture(qx, qy, colours, period, angle):
    """Stripes in canonical pixel coordinates -> uint8 (..., 3)."""
    phase = (qx * np.cos(angle) + qy * np.sin(angle)) / period
    return np.where((np.sin(2 * np.pi * phase) > 0)[..., None], colours[1], colours[0]).astype(np.uint8)


def person_to_canonical(keypoints, h, w):
    """The known deformation: per part a 2x3 affine mapping person pixels (x, y, 1) to canonical pixels.

    torso: the person's box [r_shoulder.x, l_shoulder.x] x [shoulder.y - 0.02 H, hip.y + 0.04 H] onto TORSO_BOX;
    sleeves: rotation about the shoulder joint by (canonical angle - arm angle), scale = the torso's x scale.
    """
    k = np.asarray(keypoints, np.float64)
    x0, x1, y0, y1 = TORSO_BOX
    bx0, bx1 = k[2, 0], k[5, 0]
    by0, by1 = (k[2, 1] + k[5, 1]) / 2 - 0.02 * h, (k[8, 1] + k[11, 1]) / 2 + 0.04 * h
    sx, sy = (x1 - x0) * w / (bx1 - bx0), (y1 - y0) * h / (by1 - by0)
    mats = [np.array([[sx, 0, x0 * w - sx * bx0], [0, sy, y0 * h - sy * by0]])]
    for (origin, ang_c), (s, e) in zip(_canonical_frames(h, w)[1:], ((2, 3), (5, 6)), strict=True):
        arm = k[e, :2] - k[s, :2]
        ang_p = np.arctan2(arm[1], arm[0])
        rot = ang_c - ang_p
        r = sx * np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]])
        t = np.asarray(origin) - r @ k[s, :2]
        mats.append(np.concatenate([r, t[:, None]], 1))
    return np.stack(mats)


def _keypoints(h, w, rng):
    cx = w / 2 + rng.uniform(-0.03, 0.03) * w
    sw = rng.uniform(0.15, 0.2) * w
    ys, yh = rng.uniform(0.25, 0.29) * h, rng.uniform(0.56, 0.62) * h
    k = np.zeros((18, 3), np.float32)
    k[:, 2] = 0.9
    k[0], k[1] = (cx, 0.13 * h, 0.9), (cx, ys - 0.02 * h, 0.9)
    upper, lower = 0.16 * h, 0.15 * h
    for side, (s, e, wr) in ((-1, (2, 3, 4)), (1, (5, 6, 7))):
        k[s, :2] = (cx + side * sw, ys)
        ang = np.deg2rad(rng.uniform(15, 60))  # arm angle from the vertical, outward
        k[e, :2] = k[s, :2] + upper * np.array([side * np.sin(ang), np.cos(ang)])
        ang2 = ang - np.deg2rad(rng.uniform(0, 25))
        k[wr, :2] = k[e, :2] + lower * np.array([side * np.sin(ang2), np.cos(ang2)])
    for side, (hip, knee, ankle) in ((-1, (8, 9, 10)), (1, (11, 12, 13))):
        x = cx + side * 0.6 * sw
        k[hip, :2], k[knee, :2], k[ankle, :2] = (x, yh), (x, 0.77 * h), (x, 0.95 * h)
    for i, dx in ((14, -0.03), (15, 0.03), (16, -0.06), (17, 0.06)):
        k[i, :2] = (cx + dx * w, 0.12 * h)
    return k


def render_person(h, w, rng):
    """One person -> dict(person uint8 (H, W, 3), parse LIP ids, keypoints (18, 3), cloth, cloth_mask, parts
    (3, H, W) true on-model part masks, tucked bool)."""
    k = _keypoints(h, w, rng)
    colours = rng.integers(20, 236, size=(2, 3))
    period, angle = rng.uniform(0.1, 0.18) * w, rng.uniform(0, np.pi)
    skin = rng.integers(150, 230, size=3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    # the flat garment
    member_c = part_membership(xx, yy, h, w)
    cmask = member_c.any(0)
    cloth = np.where(cmask[..., None], texture(xx, yy, colours, period, angle), 255).astype(np.uint8)
    # the person
    parse = np.zeros((h, w), np.uint8)
    thick = max(2, int(0.09 * w))
    for a, b, c, lab in ((2, 3, 4, 15), (5, 6, 7, 14)):
        for p, q in ((a, b), (b, c)):
            cv2.line(parse, tuple(int(v) for v in k[p, :2]), tuple(int(v) for v in k[q, :2]), lab, thick)
    tucked = bool(rng.random() < 0.5)
    top = (k[8, 1] - (0.1 * h if tucked else 0.0))
    cv2.rectangle(parse, (int(k[8, 0] - 0.08 * w), int(top)), (int(k[11, 0] + 0.08 * w), int(k[13, 1])), 9, -1)
    cv2.line(parse, tuple(int(v) for v in k[1, :2]), tuple(int(v) for v in k[0, :2]), 13, thick)
    cv2.circle(parse, tuple(int(v) for v in k[0, :2]), max(3, int(0.11 * w)), 13, -1)
    cv2.ellipse(parse, (int(k[0, 0]), int(k[0, 1] - 0.06 * w)), (max(3, int(0.12 * w)), max(2, int(0.07 * w))),
                0, 180, 360, 2, -1)
    mats = person_to_canonical(k, h, w)
    parts = np.zeros((3, h, w), bool)
    q = []
    for p in range(3):
        qx = mats[p, 0, 0] * xx + mats[p, 0, 1] * yy + mats[p, 0, 2]
        qy = mats[p, 1, 0] * xx + mats[p, 1, 1] * yy + mats[p, 1, 2]
        parts[p] = part_membership(qx, qy, h, w)[p]
        q.append((qx, qy))
    parts[0] &= ~(parts[1] | parts[2])  # sleeves over the torso
    hidden = (parse == 9) | (parse == 13) | (parse == 2)  # trousers (tucked hem), neck, hair over the shirt
    parts &= ~hidden[None]
    person = np.full((h, w, 3), 200, np.uint8)
    for lab, col in ((13, skin), (14, skin), (15, skin), (2, (40, 30, 20)), (9, (50, 50, 90))):
        person[parse == lab] = col
    for p in range(3):
        person[parts[p]] = texture(q[p][0], q[p][1], colours, period, angle)[parts[p]]
    parse[parts.any(0)] = 5
    return dict(person=person, parse=parse, keypoints=k, cloth=cloth, cloth_mask=cmask, parts=parts, tucked=tucked)


def write_synthetic_bvton(root, num_train=16, num_test=8, num_unpaired=16, height=64, width=48, seed=0):
    """Write the paired VITON-HD layout (<root>/paired: train/test, image, cloth, cloth-mask, image-parse-v3,
    openpose_json, {train,test}_pairs.txt with unpaired test lines) and an unpaired photo folder
    (<root>/unpaired: image, parsing, keypoints). Returns root."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    palette = np.zeros((256, 3), np.uint8)
    palette[:21] = rng.integers(0, 256, size=(21, 3))
    for split, n in (("train", num_train), ("test", num_test)):
        d = root / "paired" / split
        for sub in ("image", "cloth", "cloth-mask", "image-parse-v3", "openpose_json"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        names = [f"{i:05d}_00.jpg" for i in range(n)]
        for name in names:
            s = render_person(height, width, rng)
            stem = Path(name).stem
            Image.fromarray(s["person"]).save(d / "image" / name, quality=95)
            Image.fromarray(s["cloth"]).save(d / "cloth" / name, quality=95)
            Image.fromarray(s["cloth_mask"].astype(np.uint8) * 255).save(d / "cloth-mask" / name, quality=95)
            img = Image.fromarray(s["parse"], mode="P")
            img.putpalette(palette.reshape(-1).tolist())
            img.save(d / "image-parse-v3" / f"{stem}.png")
            write_openpose_json(d / "openpose_json" / f"{stem}_keypoints.json", coco18_to_body25(s["keypoints"]))
        lines = [f"{m} {m}" if split == "train" else f"{m} {names[(i + 1) % n]}" for i, m in enumerate(names)]
        (root / "paired" / f"{split}_pairs.txt").write_text("\n".join(lines) + "\n")
    for i in range(num_unpaired):
        s = render_person(height, width, rng)
        write_unpaired_photo(root / "unpaired", f"photo_{i:05d}.png", s["person"], s["parse"], s["keypoints"],
                             flavour="coco18" if i % 2 else "body25")
    return root


def write_synthetic_dresscode(root, num_train=4, num_test=2, height=64, width=48, seed=0):
    """The same generated persons in DressCode's on-disk layout (one category folder, <root>/upper_body):
    images/<id>_0.jpg (person) and <id>_1.jpg (the flat garment), label_maps/<id>_4.png (DressCode's 18 labels,
    the inverse of `common.data.tryon.DRESSCODE_TO_LIP` on the LIP ids drawn here), keypoints/<id>_2.json (18
    [x, y, score, id] rows in DressCode's 384x512 pixel space), train_pairs.txt, test_pairs_paired.txt and
    test_pairs_unpaired.txt. No cloth masks: DressCode has none. Returns the category folder."""
    import json

    from common.data.tryon import DRESSCODE_TO_LIP
    lip_to_dc = np.zeros(256, np.uint8)
    for dc, lip in enumerate(DRESSCODE_TO_LIP):
        if lip:
            lip_to_dc[lip] = dc
    folder = Path(root) / "upper_body"
    for sub in ("images", "label_maps", "keypoints"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = [f"{i:06d}" for i in range(num_train + num_test)]
    for i in ids:
        s = render_person(height, width, rng)
        Image.fromarray(s["person"]).save(folder / "images" / f"{i}_0.jpg", quality=95)
        Image.fromarray(s["cloth"]).save(folder / "images" / f"{i}_1.jpg", quality=95)
        Image.fromarray(lip_to_dc[s["parse"]]).save(folder / "label_maps" / f"{i}_4.png")
        rows = [[float(x) * 384 / width, float(y) * 512 / height, float(c), j]
                for j, (x, y, c) in enumerate(s["keypoints"])]
        (folder / "keypoints" / f"{i}_2.json").write_text(json.dumps({"keypoints": rows}))
    train, test = ids[:num_train], ids[num_train:]
    (folder / "train_pairs.txt").write_text("".join(f"{i}_0.jpg {i}_1.jpg\n" for i in train))
    (folder / "test_pairs_paired.txt").write_text("".join(f"{i}_0.jpg {i}_1.jpg\n" for i in test))
    (folder / "test_pairs_unpaired.txt").write_text(
        "".join(f"{i}_0.jpg {test[(k + 1) % len(test)]}_1.jpg\n" for k, i in enumerate(test)))
    return folder
