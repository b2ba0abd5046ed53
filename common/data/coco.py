"""COCO instances JSON: reading and validating it, an mmdet-equivalent detection dataset, and the SSOD splits.

Format (`instances_*.json`, what pycocotools and mmdet read):

    {"images": [{"id", "file_name", "width", "height", ...}],
     "annotations": [{"id", "image_id", "category_id", "bbox": [x, y, w, h], "area", "iscrowd", ...}],
     "categories": [{"id", "name", "supercategory"}], "info": ..., "licenses": ...}

`bbox` is in float pixels with (x, y) the top-left corner of the box (pixel edges, not centres), so the
x1y1x2y2 box is [x, y, x + w, y + h]; `area` is the mask area for real COCO. Unlabelled sets
(`image_info_unlabeled2017.json` turned into `instances_unlabeled2017.json` by `unlabeled_json`) have no
`annotations` key or an empty list.

`CocoDetection` keeps mmdet 2.x `CocoDataset` semantics (what the ConsistentTeacher configs train on):
every category listed in the file is a class, labels follow the file's category order (pycocotools
`getCatIds`), images keep file order, and the filters of `_filter_imgs` / `_parse_ann_info` apply.

`make_semi_split` is the SoftTeacher / ConsistentTeacher protocol of `tools/dataset/semi_coco.py`.
"""
import json
import math
from pathlib import Path

import cv2
import numpy as np
import torch

from ..errors import DataError, warn_data

COCO_HINT = ("COCO 2017 comes from https://cocodataset.org/#download: annotations_trainval2017.zip holds "
             "instances_train2017.json / instances_val2017.json, image_info_unlabeled2017.zip the unlabelled list; "
             "the semi-supervised split files (instances_train2017.<fold>@<percent>.json and its -unlabeled.json) "
             "are written by common.data.coco.make_semi_split")


def _read_json(path, hint=COCO_HINT):
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "COCO annotation file not found", hint=hint)
    try:
        with open(path, encoding="utf-8") as f:  # JSON is UTF-8 whatever the locale
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(path, f"not a readable JSON file ({e})") from None
    if not isinstance(data, dict):
        raise DataError(path, f"expected a JSON object at the top level, got {type(data).__name__}")
    return data


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x):
    """A finite JSON number (Python's json reads NaN and Infinity literals as floats; they are not numbers here)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_images(path, images):
    if not isinstance(images, list):
        raise DataError(path, "'images' must be a list of image records")
    seen = set()
    for i, im in enumerate(images):
        if not (isinstance(im, dict) and _is_int(im.get("id")) and isinstance(im.get("file_name"), str)
                and _is_int(im.get("width")) and _is_int(im.get("height"))
                and im["width"] > 0 and im["height"] > 0):
            raise DataError(path, f"images[{i}] = {str(im)[:200]}: expected an object with an integer 'id', a "
                                  "string 'file_name' and positive integer 'width' and 'height'")
        if im["id"] in seen:
            raise DataError(path, f"images[{i}]: duplicate image id {im['id']}")
        seen.add(im["id"])
    return seen


def load_coco_json(path):
    """Read and validate a COCO instances JSON; returns the parsed dict ('annotations' set to [] if absent).

    Checked: the 'images' / 'categories' lists and their fields, unique image and category ids, and per
    annotation an existing 'image_id' and 'category_id', a 4-number 'bbox' and a numeric 'area' (finite: NaN
    and Infinity are refused), and unique annotation ids. A missing file or a bad entry raises DataError naming
    the file and the entry.
    """
    path = Path(path)
    data = _read_json(path)
    for key in ("images", "categories"):
        if key not in data:
            raise DataError(path, f"missing the '{key}' key of a COCO instances file (keys: {sorted(data)})",
                            hint=COCO_HINT)
    image_ids = _check_images(path, data["images"])
    cats = data["categories"]
    if not isinstance(cats, list) or not cats:
        raise DataError(path, "'categories' must be a non-empty list of {'id', 'name'} objects")
    cat_ids = set()
    for i, c in enumerate(cats):
        if not (isinstance(c, dict) and _is_int(c.get("id")) and isinstance(c.get("name"), str)):
            raise DataError(path, f"categories[{i}] = {str(c)[:200]}: expected an integer 'id' and a string 'name'")
        if c["id"] in cat_ids:
            raise DataError(path, f"categories[{i}]: duplicate category id {c['id']}")
        cat_ids.add(c["id"])
    anns = data.setdefault("annotations", [])
    if not isinstance(anns, list):
        raise DataError(path, "'annotations' must be a list")
    ann_ids = {}
    for i, a in enumerate(anns):
        where = f"annotations[{i}] = {str(a)[:200]}"
        if not isinstance(a, dict):
            raise DataError(path, f"{where}: expected an object")
        bbox = a.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
            raise DataError(path, f"{where}: expected 'bbox' = [x, y, w, h] (4 finite numbers)")
        if not _is_number(a.get("area")):
            raise DataError(path, f"{where}: expected a finite numeric 'area'")
        if "id" in a:
            if a["id"] in ann_ids:
                raise DataError(path, f"{where}: duplicate annotation id {a['id']} (also annotations"
                                      f"[{ann_ids[a['id']]}])")
            ann_ids[a["id"]] = i
        if a.get("image_id") not in image_ids:
            raise DataError(path, f"{where}: 'image_id' is not the id of any entry of 'images'")
        if a.get("category_id") not in cat_ids:
            raise DataError(path, f"{where}: 'category_id' is not the id of any entry of 'categories'")
    return data


def read_image(path):
    """An image file -> (H, W, 3) uint8 RGB, decoded like mmcv.imread (cv2, colour, EXIF orientation applied).

    The bytes are read in Python and decoded with cv2.imdecode, so any file name works (cv2.imread crashes on
    names that are not UTF-8). A missing, empty or non-image file, and a truncated JPEG or PNG (which OpenCV
    would decode to a grey-padded image with only a warning), are DataErrors naming the file.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise DataError(path, f"image file missing or unreadable ({e.strerror})") from None
    if data[:2] == b"\xff\xd8" and data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda"):
        # Entropy-coded data never holds an FFxx marker other than restarts, so the last scan (FFDA) of a
        # complete JPEG is followed by its end-of-image marker (FFD9).
        raise DataError(path, "truncated JPEG (no end-of-image marker after the last scan)")
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data.rfind(b"IEND") < 0:
        raise DataError(path, "truncated PNG (no IEND chunk)")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if img is None:
        raise DataError(path, "not a readable image file")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


class CocoDetection(torch.utils.data.Dataset):
    """A COCO instances file + image folder, with mmdet 2.x `CocoDataset` filtering rules.

    - Classes: every category listed in the file, in file order (mmdet: `coco.get_cat_ids(cat_names=CLASSES)`
      with CLASSES = all names, i.e. pycocotools' file order; for COCO that is ascending id). Categories that
      never occur stay classes: e.g. Roboflow exports list an unused supercategory (id 0 'pieces' in the chess
      set), which so becomes label 0, always negative. `cat_id_to_label` maps COCO ids to 0..C-1.
    - Boxes (`_parse_ann_info`): skip annotations with `ignore` set, boxes that do not intersect the image,
      `area <= 0`, `w < 1` or `h < 1`; x1y1x2y2 = [x, y, x + w, y + h], not clipped; `iscrowd` boxes go to
      `ignore_boxes`.
    - Images (`_filter_imgs`): skip images whose min(width, height) in the JSON is < `min_size`; with
      `filter_empty` also those without any annotation in the file (as mmdet, an image whose annotations are
      all crowd or degenerate is kept, with zero boxes). Unlabelled sets use `filter_empty=False`.
    - Checks beyond mmdet: an image whose annotations are all degenerate (outside the image, area <= 0, w or
      h < 1) is reported with a `DataWarning` (the ids of the first few); a file with annotations of which not
      one is a usable box is a DataError; an image whose decoded size differs from the JSON's width/height is
      a DataError naming the image file and id when it is read (its boxes would be misaligned).

    `dataset[i]` or `dataset[(i, nonce)]` gives {"image": (H, W, 3) uint8 RGB, "boxes": (N, 4) float32,
    "labels": (N,) int64, "ignore_boxes": (M, 4) float32, "image_id", "file_name", "ori_shape": (h, w)}
    (`images` holds the kept image records, `target(i)` the annotations alone);
    with a transform, `transform(sample, rng)` with `rng = np.random.default_rng([seed, nonce, i])`, so the
    augmentation is a pure function of (seed, nonce, index), the same in any worker and after a resume.
    """

    def __init__(self, ann_file, image_dir, transform=None, filter_empty=True, min_size=32, seed=0):
        self.ann_file, self.image_dir = Path(ann_file), Path(image_dir)
        self.transform, self.seed = transform, seed
        data = load_coco_json(self.ann_file)
        self.categories = list(data["categories"])
        self.cat_ids = [c["id"] for c in self.categories]
        self.cat_id_to_label = {cid: i for i, cid in enumerate(self.cat_ids)}
        self.label_to_cat_id = list(self.cat_ids)
        self.class_names = [c["name"] for c in self.categories]

        anns_of = {im["id"]: [] for im in data["images"]}
        for a in data["annotations"]:
            anns_of[a["image_id"]].append(a)
        self.images, self._targets = [], []
        no_usable, usable = [], 0                          # images whose annotations are all degenerate
        for im in data["images"]:
            anns = anns_of[im["id"]]
            if min(im["width"], im["height"]) < min_size or (filter_empty and not anns):
                continue
            self.images.append(im)
            target = self._parse_annotations(im, anns)
            self._targets.append(target)
            usable += len(target[1]) + len(target[2])
            if anns and not len(target[1]) and not len(target[2]) and not all(a.get("ignore", False) for a in anns):
                no_usable.append(im)
        self.image_ids = [im["id"] for im in self.images]
        if any(not a.get("ignore", False) for a in data["annotations"]) and usable == 0:
            raise DataError(self.ann_file, f"no usable box in {len(data['annotations'])} annotations (every box "
                            "lies outside its image or has area <= 0, width < 1 or height < 1)")
        if no_usable:
            warn_data(self.ann_file, f"{len(no_usable)} image(s) have annotations but no usable box (outside the "
                      "image, area <= 0, width or height < 1); they are kept with zero boxes, as mmdet does: "
                      + ", ".join(f"id {im['id']} ({im['file_name']})" for im in no_usable[:5]))

    def _parse_annotations(self, im, anns):
        boxes, labels, ignore = [], [], []
        for a in anns:
            if a.get("ignore", False):
                continue
            x, y, w, h = a["bbox"]
            inter_w = max(0, min(x + w, im["width"]) - max(x, 0))
            inter_h = max(0, min(y + h, im["height"]) - max(y, 0))
            if inter_w * inter_h == 0 or a["area"] <= 0 or w < 1 or h < 1:
                continue  # degenerate (mmdet's rule)
            if a.get("iscrowd", 0):
                ignore.append([x, y, x + w, y + h])
            else:
                boxes.append([x, y, x + w, y + h])
                labels.append(self.cat_id_to_label[a["category_id"]])
        return (np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64),
                np.asarray(ignore, np.float32).reshape(-1, 4))

    def __len__(self):
        return len(self.images)

    def target(self, index):
        """The annotations of kept image `index` without reading the image: {"boxes", "labels", "ignore_boxes"}."""
        boxes, labels, ignore = self._targets[index]
        return {"boxes": boxes.copy(), "labels": labels.copy(), "ignore_boxes": ignore.copy()}

    def __getitem__(self, item):
        index, nonce = item if isinstance(item, (tuple, list)) else (item, 0)
        im = self.images[index]
        image = read_image(self.image_dir / im["file_name"])
        if image.shape[:2] != (im["height"], im["width"]):
            raise DataError(self.image_dir / im["file_name"], f"an image of {im['width']}x{im['height']} (W x H), as "
                            f"image id {im['id']} of {self.ann_file.name} says, found {image.shape[1]}x"
                            f"{image.shape[0]}; its boxes would be misaligned")
        sample = {"image": image, **self.target(index), "image_id": im["id"], "file_name": im["file_name"],
                  "ori_shape": image.shape[:2]}
        if self.transform is None:
            return sample
        return self.transform(sample, np.random.default_rng([self.seed, nonce, index]))

    def num_boxes(self):
        """Number of training boxes (non-crowd, after the filters) over the kept images."""
        return sum(len(t[1]) for t in self._targets)


def _percent_tag(percent):
    """The official tool writes `int(percent)`; a fractional percent (0.5) keeps its digits instead of '0'."""
    percent = float(percent)
    return str(int(percent)) if percent.is_integer() else f"{percent:g}"


def _dump_like_official(obj, path):
    with open(path, "w") as f:
        json.dump(obj, f)  # default separators, as tools/dataset/semi_coco.py: same input -> same bytes


def make_semi_split(ann_file, percent, fold, out_dir, seed_offset=0):
    """Write the labelled / unlabelled split of `ann_file` (tools/dataset/semi_coco.py, SoftTeacher protocol).

    `np.random.seed(fold + seed_offset)` then `np.random.choice(range(N), size=int(percent / 100 * N),
    replace=False)` over the images in file order (done here with an equal, private `RandomState`). Writes to
    `out_dir`, with stem = the file name without '.json':
      <stem>.<fold>@<percent>.json            the chosen images (file order) and their annotations
      <stem>.<fold>@<percent>-unlabeled.json  the other images, their annotations kept (as the official tool)
      <stem>.<fold>@<percent>.ids.txt         the chosen image ids, one per line
    The JSON files hold images, annotations, licenses, categories, info in that order, dumped like the
    official tool, so the same inputs give byte-identical files. Returns {"labeled", "unlabeled", "ids"}.
    """
    ann_file, out_dir = Path(ann_file), Path(out_dir)
    if not 0 < float(percent) <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    anno = load_coco_json(ann_file)
    images = anno["images"]
    num_labeled = int(float(percent) / 100.0 * len(images))
    if num_labeled == 0:
        raise ValueError(f"{percent}% of {len(images)} images in {ann_file} is no image at all")
    chosen = np.random.RandomState(fold + seed_offset).choice(range(len(images)), size=num_labeled, replace=False)
    chosen = set(chosen.tolist())
    labeled_images = [im for i, im in enumerate(images) if i in chosen]
    unlabeled_images = [im for i, im in enumerate(images) if i not in chosen]
    labeled_ids = {im["id"] for im in labeled_images}

    def record(imgs, anns):
        out = {"images": imgs, "annotations": anns}
        out.update({k: anno[k] for k in ("licenses", "categories", "info") if k in anno})
        return out

    stem = ann_file.name[:-len(".json")] if ann_file.name.endswith(".json") else ann_file.stem
    name = f"{stem}.{fold}@{_percent_tag(percent)}"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"labeled": out_dir / f"{name}.json", "unlabeled": out_dir / f"{name}-unlabeled.json",
             "ids": out_dir / f"{name}.ids.txt"}
    _dump_like_official(record(labeled_images, [a for a in anno["annotations"] if a["image_id"] in labeled_ids]),
                        paths["labeled"])
    _dump_like_official(record(unlabeled_images,
                               [a for a in anno["annotations"] if a["image_id"] not in labeled_ids]),
                        paths["unlabeled"])
    paths["ids"].write_text("".join(f"{im['id']}\n" for im in labeled_images))
    return paths


def unlabeled_json(image_info_file, categories_from, out_path):
    """`image_info_unlabeled2017.json` (images only) -> an instances file with `annotations: []` and the
    categories of `categories_from` (what tools/dataset/semi_coco.py writes as instances_unlabeled2017.json).
    Returns `out_path` as a Path."""
    info = _read_json(image_info_file)
    if "images" not in info:
        raise DataError(image_info_file, "missing the 'images' key of a COCO image-info file", hint=COCO_HINT)
    _check_images(Path(image_info_file), info["images"])
    info["annotations"] = []
    info["categories"] = load_coco_json(categories_from)["categories"]
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    _dump_like_official(info, out_path)
    return out_path
