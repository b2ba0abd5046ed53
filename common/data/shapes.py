"""A small, learnable detection dataset written like a real COCO export (for tests and smoke runs).

Each image is a textured background (grey noise + oriented stripes) with 1..max_objects non-overlapping shapes.
The planted signal: every class has its own shape AND a class-typical colour (a base colour +- 25 per channel),
so a detector can reach a high mAP within a few hundred CPU steps. Shapes are 1/6 to 1/2 of the short side.

On disk (what `CocoDetection` reads, the same as a COCO / Roboflow export):

    root/images/{train,val}_00000.png                  lossless, so boxes stay pixel-tight
    root/annotations/instances_{train,val}.json        category ids 1, 3, 7, ... (non-contiguous on purpose, so
                                                        the id -> label mapping is exercised); bbox [x, y, w, h]
                                                        tight around the drawn pixels; area = drawn pixel count
                                                        (like COCO's mask area); iscrowd 0
"""
import json
from pathlib import Path

import numpy as np
from PIL import Image

# shape name -> typical RGB colour of that class
SHAPE_COLOURS = {"square": (210, 60, 50), "disc": (50, 200, 70), "triangle": (60, 80, 220), "diamond": (220, 200, 40)}


def _shape_mask(name, size, x0, y0, height, width):
    """Boolean (height, width) mask of a shape inscribed in the size x size square at (x0, y0), tested at
    pixel centres."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    u, v = (xx - x0) / size, (yy - y0) / size  # coordinates in the unit square of the shape
    inside = (u >= 0) & (u < 1) & (v >= 0) & (v < 1)
    if name == "square":
        return inside
    if name == "disc":
        return (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25
    if name == "triangle":  # apex at the top centre, base at the bottom
        return inside & (np.abs(u - 0.5) <= 0.5 * v)
    if name == "diamond":
        return np.abs(u - 0.5) + np.abs(v - 0.5) <= 0.5
    raise ValueError(f"unknown shape {name!r}; choose from {list(SHAPE_COLOURS)}")


def _background(rng, height, width):
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.full((height, width, 3), rng.uniform(90, 160), np.float32) + rng.uniform(-15, 15, size=3)
    for _ in range(2):  # oriented stripes
        theta, freq = rng.uniform(0, np.pi), rng.uniform(0.2, 0.8)
        img += rng.uniform(8, 20) * np.sin(freq * (np.cos(theta) * xx + np.sin(theta) * yy))[..., None]
    return img + rng.normal(0, 8, size=img.shape)


def render_shapes_image(rng, image_size=(96, 128), max_objects=3, class_names=("square", "disc", "triangle")):
    """One image: (H, W, 3) uint8 RGB and a list of objects {"label": index into class_names, "mask": (H, W) bool}.

    1..max_objects shapes whose bounding squares do not overlap (a placement that would is re-drawn, up to 50
    tries, then the object is left out; the first always fits).
    """
    height, width = image_size
    img = _background(rng, height, width)
    short = min(height, width)
    objects, placed = [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _try in range(50):
            size = int(rng.integers(short // 6, short // 2 + 1))
            x0, y0 = int(rng.integers(0, width - size + 1)), int(rng.integers(0, height - size + 1))
            if all(x0 >= a + s + 2 or a >= x0 + size + 2 or y0 >= b + s + 2 or b >= y0 + size + 2
                   for a, b, s in placed):
                break
        else:
            continue
        placed.append((x0, y0, size))
        label = int(rng.integers(len(class_names)))
        mask = _shape_mask(class_names[label], size, x0, y0, height, width)
        colour = np.asarray(SHAPE_COLOURS[class_names[label]], np.float32) + rng.uniform(-25, 25, size=3)
        img[mask] = colour + rng.normal(0, 6, size=(int(mask.sum()), 3))
        objects.append({"label": label, "mask": mask})
    return np.clip(img, 0, 255).astype(np.uint8), objects


def shapes_category_ids(num_classes):
    """The non-contiguous category ids of the generated files: 1, 3, 7, 15, ... (2^(k+1) - 1)."""
    return [2 ** (k + 1) - 1 for k in range(num_classes)]


def mask_to_coco_box(mask):
    """Tight COCO box [x, y, w, h] (pixel edges) of a boolean mask."""
    xs, ys = np.flatnonzero(mask.any(0)), np.flatnonzero(mask.any(1))
    return [int(xs[0]), int(ys[0]), int(xs[-1] + 1 - xs[0]), int(ys[-1] + 1 - ys[0])]


def write_shapes_dataset(root, num_train=64, num_val=16, image_size=(96, 128), max_objects=3, seed=0,
                         class_names=("square", "disc", "triangle")):
    """Write the dataset under `root` (see the module docstring); deterministic from `seed`.

    Image k of split s (train 0, val 1) is `render_shapes_image(np.random.default_rng([seed, s, k]), ...)`.
    Image ids are 1..num_train for train and continue for val. Returns {"train_json", "val_json", "image_dir"}.
    """
    for name in class_names:
        if name not in SHAPE_COLOURS:
            raise ValueError(f"unknown shape {name!r}; choose from {list(SHAPE_COLOURS)}")
    root = Path(root)
    image_dir, ann_dir = root / "images", root / "annotations"
    image_dir.mkdir(parents=True, exist_ok=True)
    ann_dir.mkdir(parents=True, exist_ok=True)
    cat_ids = shapes_category_ids(len(class_names))
    categories = [{"id": cid, "name": n, "supercategory": "shape"} for cid, n in zip(cat_ids, class_names, strict=True)]
    out = {"image_dir": image_dir}
    next_image_id = 1
    for split_code, (split, count) in enumerate((("train", num_train), ("val", num_val))):
        images, annotations = [], []
        for k in range(count):
            rng = np.random.default_rng([seed, split_code, k])
            img, objects = render_shapes_image(rng, image_size, max_objects, class_names)
            file_name = f"{split}_{k:05d}.png"
            Image.fromarray(img).save(image_dir / file_name)
            images.append({"id": next_image_id, "file_name": file_name, "height": image_size[0],
                           "width": image_size[1]})
            for ob in objects:
                annotations.append({"id": len(annotations) + 1, "image_id": next_image_id,
                                    "category_id": cat_ids[ob["label"]], "bbox": mask_to_coco_box(ob["mask"]),
                                    "area": int(ob["mask"].sum()), "iscrowd": 0, "segmentation": []})
            next_image_id += 1
        path = ann_dir / f"instances_{split}.json"
        with open(path, "w") as f:
            json.dump({"info": {"description": "synthetic shapes (common.data.shapes)", "seed": seed},
                       "licenses": [], "images": images, "annotations": annotations, "categories": categories}, f)
        out[f"{split}_json"] = path
    return out
