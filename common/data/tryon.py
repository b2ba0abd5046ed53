"""Virtual try-on data: VITON (DAFlow and CP-VTON+ layouts), VITON-HD, pair lists, the agnostic person image.

Layouts read here (one `TryOnDataset`, chosen by ``layout``):

* ``daflow`` (OFA-Sys/DAFlow ``data/VITON``)::

      <root>/train.txt              person names, cloth = name with _0 -> _1
      <root>/test_pairs.txt         PAIRED "person cloth" lines (the person's own garment)
      <root>/test_unpairs.txt       UNPAIRED lines (= CP-VTON+'s test_pairs.txt)
      <root>/VITON_{train,test}/{clothes, {train,test}_img, img_agnostic, vis_pose/<stem>_keypoints.jpg}

* ``cpvton`` (CP-VTON+ ``viton_plus``)::

      <root>/test_pairs.txt         UNPAIRED lines;  <root>/test_pairs_same.txt  PAIRED lines
      <root>/{train,test}/{image, cloth, cloth-mask, image-parse-new (LIP label ids),
                            pose/<stem>_keypoints.json (COCO-18)}

* ``viton_hd`` (shadow2496/VITON-HD ``zalando-hd-resized``)::

      <root>/{train,test}_pairs.txt  "person cloth" lines, UNPAIRED for test (paired = person's own name)
      <root>/{train,test}/{image, cloth, cloth-mask, image-parse-v3 (palette PNG, LIP ids),
                            openpose_json/<stem>_keypoints.json (BODY_25), openpose_img, agnostic-v3.2}

* ``dresscode`` (aimagelab DressCode; ``root`` = one category folder, e.g. ``DressCode/upper_body``)::

      <root>/train_pairs.txt, test_pairs_paired.txt, test_pairs_unpaired.txt
      <root>/images/<id>_0.jpg (person), <id>_1.jpg (garment); label_maps/<id>_4.png (DressCode's 18 labels);
      keypoints/<id>_2.json ({"keypoints": [[x, y, c, id] * 18]} in 384x512 pixels); skeletons/<id>_5.jpg

  The category (``upper_body``, ``lower_body``, ``dresses``) is the folder's name unless given (`dresscode_category`).
  ``upper_body``: label maps are mapped to LIP ids (`DRESSCODE_TO_LIP`) and DAFlow's upper-body recipe
  (`agnostic_person`) builds the agnostic, as for VITON. ``lower_body`` / ``dresses``: DressCode's own loader recipe
  (`dresscode_agnostic`) on the DressCode labels, which hides the pants/skirt or the dress and the legs.

Naming inversion: DAFlow's ``test_pairs.txt`` is paired, CP-VTON+'s ``test_pairs.txt`` is unpaired (its paired file
is ``test_pairs_same.txt``) and VITON-HD's is unpaired; `pair_list_path` resolves (layout, mode) to the right file.

For ``cpvton`` and ``viton_hd`` the agnostic image and the skeleton are built on the fly from parse + keypoints
(`agnostic_person`, `common.data.openpose.render_skeleton`), exactly as DAFlow's offline scripts build the
``daflow`` layout's files. Samples are dicts of float tensors in [-1, 1] (ToTensor + Normalize(0.5, 0.5)).
"""
import os
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw

from ..errors import DataError, read_utf8
from .openpose import body25_to_coco18, coco18_to_body25, read_openpose_json, render_skeleton, write_openpose_json

__all__ = ["LAYOUTS", "LIP_LABELS", "DRESSCODE_TO_LIP", "read_dresscode_keypoints", "read_rgb", "read_label_map",
           "image_size", "image_to_tensor", "read_pairs", "pair_list_path", "agnostic_person", "DRESSCODE_CATEGORIES",
           "dresscode_category", "dresscode_agnostic_mask", "dresscode_agnostic", "TryOnDataset",
           "write_synthetic_tryon"]

LAYOUTS = ("daflow", "cpvton", "viton_hd", "dresscode")
LIP_LABELS = ("background", "hat", "hair", "glove", "sunglasses", "upper_clothes", "dress", "coat", "socks",
              "pants", "jumpsuits", "scarf", "skirt", "face", "left_arm", "right_arm", "left_leg", "right_leg",
              "left_shoe", "right_shoe")
_UPPER, _HEAD, _LOWER = (5, 6, 7), (2, 4, 13), (9, 12, 16, 17, 18, 19)
# DressCode label ids (data/labelmap.py of aimagelab/dress-code) -> LIP ids; belt and bag have no LIP class
# (-> background, 0).
DRESSCODE_TO_LIP = np.array([0, 1, 2, 4, 5, 12, 9, 6, 0, 18, 19, 13, 16, 17, 14, 15, 0, 11], dtype=np.uint8)
_DRESSCODE_KEYPOINT_SPACE = (384, 512)  # (W, H) of the keypoint coordinates, whatever the image size

# (layout, mode) -> list file name, relative to the layout root.
_PAIR_FILES = {("daflow", "paired"): "test_pairs.txt", ("daflow", "unpaired"): "test_unpairs.txt",
               ("cpvton", "paired"): "test_pairs_same.txt", ("cpvton", "unpaired"): "test_pairs.txt",
               ("viton_hd", "paired"): "test_pairs.txt", ("viton_hd", "unpaired"): "test_pairs.txt",
               ("dresscode", "paired"): "test_pairs_paired.txt", ("dresscode", "unpaired"): "test_pairs_unpaired.txt"}


def read_pairs(path, single_column_cloth=("_0", "_1")):
    """Read a pair list -> list of (person, cloth) file names.

    Lines are "person cloth" (whitespace separated; a missing final newline and blank lines are fine). A
    one-column line (DAFlow's train.txt) pairs the person with its own garment, named by replacing
    single_column_cloth[0] with single_column_cloth[1] in the stem. A list without any pair, a line that is not
    UTF-8 and a one-column name without a file extension are DataErrors naming the file (and line).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "pair list not found", hint="see the layouts in common/data/tryon.py")
    pairs = []
    for lineno, line in enumerate(read_utf8(path).splitlines(), 1):
        cols = line.split()
        if not cols:
            continue
        if len(cols) == 1:
            if "." not in cols[0]:
                raise DataError(path, f"an image file name with its extension, found {cols[0]!r}", line=lineno)
            stem, ext = cols[0].rsplit(".", 1)
            a, b = single_column_cloth
            cols.append((stem[: -len(a)] + b if stem.endswith(a) else stem) + "." + ext)
        if len(cols) != 2:
            raise DataError(path, f"'person cloth' per line, found {len(cols)} columns", line=lineno)
        pairs.append((cols[0], cols[1]))
    if not pairs:
        raise DataError(path, "at least one 'person cloth' pair; the list is empty")
    return pairs


def pair_list_path(root, layout, mode):
    """The test list of `layout` for mode "paired" / "unpaired", with the repos' naming inversion resolved."""
    if (layout, mode) not in _PAIR_FILES:
        raise ValueError(f"layout must be one of {LAYOUTS} and mode paired/unpaired, got {layout!r}, {mode!r}")
    return Path(root) / _PAIR_FILES[(layout, mode)]


def read_dresscode_keypoints(path):
    """DressCode ``keypoints/<id>_2.json`` -> (18, 3) COCO-18 (x, y, c) in the file's 384x512 pixel space.

    Rows are [x, y, score, joint id]; a joint counts as present when x > 1 and y > 1 (the dataset's own test
    in its loader), confidence 1 then, else (0, 0, 0).
    """
    import json
    path = Path(path)
    try:
        rows = np.asarray(json.loads(read_utf8(path))["keypoints"], dtype=np.float32).reshape(-1, 4)
    except FileNotFoundError:
        raise DataError(path, "DressCode keypoint JSON not found") from None
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(path, f"a 'keypoints' list of 18 [x, y, score, id] rows ({type(e).__name__}: {e})") from None
    if rows.shape[0] != 18:
        raise DataError(path, f"18 keypoints, found {rows.shape[0]}")
    if not np.isfinite(rows).all():
        row = int(np.argwhere(~np.isfinite(rows))[0, 0])
        raise DataError(path, f"finite keypoint values, found a non-finite one in row {row}")
    present = (rows[:, 0] > 1) & (rows[:, 1] > 1)
    out = np.zeros((18, 3), np.float32)
    out[present, :2] = rows[present, :2]
    out[present, 2] = 1.0
    return out


def agnostic_person(image, parse, keypoints, radius=None):
    """Cloth-agnostic person image of DAFlow's ``get_img_agnostic.py`` (COCO-18 variant), as uint8 (H, W, 3).

    image (H, W, 3) uint8 RGB; parse (H, W) LIP label ids (CP-VTON+ ``image-parse-new``); keypoints (18, 3)
    COCO-18 or (25, 3) BODY_25 in pixels. radius defaults to 10 * W / 192 (r = 10 at 256x192).
    Steps (the official script's order): zero the upper-clothes labels {5, 6, 7}; rescale the hips so their
    width equals the shoulders'; draw in black the shoulder line (width 7r), shoulder ellipses
    (x-4r..x+5r, y+-4r, asymmetric as in the code), upper/lower arm lines (10r) with elbow discs (4r), hip ellipses
    (3r x 6r), side lines (6r), hip line (12r), the torso polygon (2, 5, 11, 8) and a neck square (+-4r);
    then paste the original pixels back on head {2, 4, 13} and lower body {9, 12, 16..19}. The official
    code also computes a hand paste-back, but with its window r=0 the mask it subtracts is the whole hand
    mask, so nothing is pasted: reproduced here by not pasting the arms.
    """
    image = np.asarray(image)
    parse = np.asarray(parse)
    kps = np.asarray(keypoints, dtype=np.float64)
    if kps.shape[0] == 25:
        kps = body25_to_coco18(kps)
    pts = kps[:, :2].copy()
    h, w = parse.shape
    r = radius if radius is not None else 10.0 * w / 192.0
    img = image.copy()
    img[np.isin(parse, _UPPER)] = 0
    agnostic = Image.fromarray(img)
    draw = ImageDraw.Draw(agnostic)

    def missing(i):
        return pts[i][0] < 1 and pts[i][1] < 1

    length_a = np.linalg.norm(pts[5] - pts[2] + 1e-8)
    length_b = np.linalg.norm(pts[11] - pts[8] + 1e-8)
    mid = (pts[8] + pts[11]) / 2
    pts[8] = mid + (pts[8] - mid) / length_b * length_a
    pts[11] = mid + (pts[11] - mid) / length_b * length_a
    t = [tuple(p) for p in pts]
    draw.line([t[2], t[5]], "black", width=int(r * 7))
    for i in (2, 5):
        x, y = pts[i]
        draw.ellipse((x - r * 4, y - r * 4, x + r * 5, y + r * 4), "black", "black")
    for i in (3, 4, 6, 7):
        if (pts[i - 1] == 0).all() or (pts[i] == 0).all():
            continue
        draw.line([t[i - 1], t[i]], "black", width=int(r * 10))
        if i in (3, 6):
            x, y = pts[i]
            draw.ellipse((x - r * 4, y - r * 4, x + r * 4, y + r * 4), "black", "black")
    for i in (8, 11):
        if not missing(i):
            x, y = pts[i]
            draw.ellipse((x - r * 3, y - r * 6, x + r * 3, y + r * 6), "black", "black")
    for idx, width in (((2, 8), 6), ((5, 11), 6), ((8, 11), 12)):
        line = [t[i] for i in idx if not missing(i)]
        if len(line) > 1:
            draw.line(line, "black", width=int(r * width))
    poly = [t[i] for i in (2, 5, 11, 8) if not missing(i)]
    if len(poly) > 2:
        draw.polygon(poly, "black", "black")
    x, y = pts[1]
    draw.rectangle((x - r * 4, y - r * 4, x + r * 4, y + r * 4), "black", "black")
    out = np.array(agnostic)
    keep = np.isin(parse, _HEAD + _LOWER)
    out[keep] = image[keep]
    return out


DRESSCODE_CATEGORIES = ("upper_body", "lower_body", "dresses")
# DressCode label ids (aimagelab/dress-code data/labelmap.py).
_DC_HAT, _DC_HAIR, _DC_SUNGLASSES, _DC_UPPER, _DC_SKIRT, _DC_PANTS, _DC_DRESS = 1, 2, 3, 4, 5, 6, 7
_DC_SHOES, _DC_HEAD, _DC_LEGS, _DC_ARMS, _DC_BAG, _DC_SCARF = (9, 10), 11, (12, 13), (14, 15), 16, 17
# Per category: the labels that are removed (garment to replace, plus the skin it may cover) and the labels that are
# always kept on top of the common ones (hat, hair, sunglasses, shoes, bag, scarf).
_DC_REMOVED = {"upper_body": (_DC_UPPER,), "lower_body": (_DC_PANTS, _DC_SKIRT) + _DC_LEGS,
               "dresses": (_DC_DRESS,) + _DC_LEGS}
_DC_KEPT = {"upper_body": (_DC_SKIRT, _DC_PANTS), "lower_body": (_DC_UPPER,) + _DC_ARMS, "dresses": ()}
_DC_KEPT_ALWAYS = (_DC_HAT, _DC_HAIR, _DC_SUNGLASSES, _DC_BAG, _DC_SCARF) + _DC_SHOES


def dresscode_category(root, category="auto"):
    """The DressCode category of a dataset folder: `category` itself, or (``"auto"``) the folder's name.

    DressCode ships one folder per category (``DressCode/{upper_body,lower_body,dresses}``); a copy under another
    name needs the category given explicitly. Raises DataError when auto cannot tell, ValueError on a bad name.
    """
    if category in DRESSCODE_CATEGORIES:
        return category
    if category != "auto":
        raise ValueError(f"category must be one of {DRESSCODE_CATEGORIES + ('auto',)}, got {category!r}")
    name = Path(os.path.abspath(root)).name
    if name in DRESSCODE_CATEGORIES:
        return name
    raise DataError(root, f"a DressCode category folder named one of {', '.join(DRESSCODE_CATEGORIES)} "
                          f"(category 'auto' reads it from the folder name, found {name!r})",
                    hint="pass the category explicitly, e.g. --category lower_body")


def _present(p):
    # DressCode's own test for a detected joint (its loader): not both coordinates <= 1.
    return not (p[0] <= 1 and p[1] <= 1)


def dresscode_agnostic_mask(parse, keypoints, category):
    """Boolean (H, W) map of the person pixels DressCode's loader hides for `category` (True = hidden).

    parse (H, W) DressCode label ids (18 classes, not LIP); keypoints (18, 3) COCO-18 in the parse's pixels (a
    joint is missing when x <= 1 and y <= 1). Follows ``__getitem__`` of aimagelab/dress-code ``data/dataset.py``
    (the ``parse_mask`` / ``parser_mask_fixed`` / ``im_mask`` computation):

    * removed: ``upper_body`` upper clothes; ``lower_body`` pants, skirt and both legs; ``dresses`` dress and legs.
    * kept whatever happens: hat, hair, sunglasses, shoes, bag, scarf; plus skirt and pants for ``upper_body``,
      upper clothes and both arms for ``lower_body``; the head above the neck cut (below).
    * ``upper_body`` / ``dresses``: the arms are hidden by a polyline wrist-elbow-shoulder-shoulder-elbow-wrist, 30 px
      wide with round joints (dilated 5x by a 10x10 kernel when H > 512); arm pixels outside it (the hands) are
      kept. Neck: head pixels below the line through the two shoulders raised by 20 H/512 px are hidden.
    * the hidden region is dilated 5x by a 5x5 kernel (20x20 when H > 512), then the kept labels are cut out.
    Deviations: a missing joint is left out of the arm polyline (the official code keeps some missing joints, which
    then draw lines to the image corner); the neck cut is skipped without both shoulders, and where the raised
    shoulder line leaves the top of the image the whole head column is hidden (the official negative slice start
    hides only the bottom rows there); ``lower_body`` also hides
    the skirt label (the official loader hides only pants, so a skirt labelled 5 would stay visible).
    """
    if category not in DRESSCODE_CATEGORIES:
        raise ValueError(f"category must be one of {DRESSCODE_CATEGORIES}, got {category!r}")
    parse = np.asarray(parse)
    pts = np.asarray(keypoints, dtype=np.float64)[:, :2]
    h, w = parse.shape
    big = h > 512
    kept = np.isin(parse, _DC_KEPT_ALWAYS + _DC_KEPT[category])
    hidden = np.isin(parse, _DC_REMOVED[category])
    if category != "lower_body":
        # Arms: one polyline over both arms through the shoulders; missing joints are skipped.
        chain = [pts[i] for i in (7, 6, 5, 2, 3, 4) if _present(pts[i])]
        arms_drawn = Image.new("L", (w, h))
        if len(chain) > 1:
            ImageDraw.Draw(arms_drawn).line([(int(max(x, 0)), int(max(y, 0))) for x, y in chain], fill=255,
                                            width=30, joint="curve")
        arms_drawn = np.array(arms_drawn)
        if big:
            arms_drawn = cv2.dilate(arms_drawn, np.ones((10, 10), np.uint8), iterations=5)
        arms_drawn = arms_drawn > 0
        kept |= np.isin(parse, _DC_ARMS) & ~arms_drawn  # the hands
        hidden |= arms_drawn
        # Neck: the head below the shoulder line (raised by 20 px at 512) is hidden, the rest of the head is kept.
        head = np.isin(parse, (_DC_HAT, _DC_HAIR, _DC_SUNGLASSES, _DC_HEAD))
        (xr, yr), (xl, yl) = pts[2], pts[5]
        below = np.zeros_like(head)
        if _present(pts[2]) and _present(pts[5]) and xl != xr:
            slope = (yl - yr) / (xl - xr)
            cut = (slope * (np.arange(w) - xr) + yr - 20.0 * h / 512.0).astype(np.int64)  # per column, truncated
            below = np.arange(h)[:, None] >= np.clip(cut, 0, h)[None, :]
        kept |= head & ~below
        hidden |= head & below
    else:
        kept |= np.isin(parse, (_DC_HAT, _DC_HAIR, _DC_SUNGLASSES, _DC_HEAD))
    kernel = np.ones((20, 20) if big else (5, 5), np.uint8)
    hidden = cv2.dilate(hidden.astype(np.uint8), kernel, iterations=5) > 0
    return hidden & ~kept


def dresscode_agnostic(image, parse, keypoints, category, fill=128):
    """DressCode's agnostic person image (its loader's ``im_mask``) as uint8 (H, W, 3).

    image (H, W, 3) uint8; parse, keypoints, category as `dresscode_agnostic_mask`. Hidden pixels get `fill`: 128
    is the official value (the loader multiplies the [-1, 1] image by the mask, so hidden pixels are mid-grey);
    `TryOnDataset` passes 0 (black, DAFlow's convention for its agnostic images).
    """
    out = np.array(image, dtype=np.uint8, copy=True)
    out[dresscode_agnostic_mask(parse, keypoints, category)] = fill
    return out


def _open_image(path, what):
    """A fully decoded PIL image; a missing, empty, truncated or non-image file is a DataError naming it."""
    if not Path(path).is_file():
        raise DataError(path, f"{what} not found")
    try:
        img = Image.open(path)
        img.load()
    except (OSError, ValueError, SyntaxError) as e:  # PIL: UnidentifiedImageError, truncated data, bad headers
        raise DataError(path, f"{what}: not a readable image file ({e})") from None
    return img


def image_size(path, what="image"):
    """(H, W) of an image file from its header (nothing decoded); DataError if it is not an image."""
    if not Path(path).is_file():
        raise DataError(path, f"{what} not found")
    try:
        with Image.open(path) as img:
            return img.size[1], img.size[0]
    except (OSError, ValueError, SyntaxError) as e:
        raise DataError(path, f"{what}: not a readable image file ({e})") from None


def read_rgb(path, size):
    """RGB uint8 (H, W, 3) of an image file, bicubic-resized to size = (H, W) unless None."""
    img = _open_image(path, "image").convert("RGB")
    if size is not None and img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.BICUBIC)
    return np.array(img)


def read_label_map(path, size, num_labels=None, expect=None):
    """Label ids (H, W) uint8 of a mode L / P PNG (nearest-resized); a colour-coded RGB parse is a DataError.

    num_labels: ids must be < num_labels (the parse scheme: 20 for LIP, 18 for DressCode), else a DataError.
    expect: (H, W) the file must have before resizing (the person image's size), else a DataError.
    """
    img = _open_image(path, "parse map (PNG of label ids)")
    if img.mode not in ("L", "P"):
        raise DataError(path, f"a label-id PNG (mode L or P), found mode {img.mode} (a colour-coded parse?)")
    if expect is not None and img.size != (expect[1], expect[0]):
        raise DataError(path, f"a parse map of the person image's size {expect[1]}x{expect[0]} (W x H), found "
                        f"{img.size[0]}x{img.size[1]}; a parse of another size would be stretched onto the person")
    if size is not None and img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.NEAREST)
    ids = np.array(img)
    if num_labels is not None and ids.max(initial=0) >= num_labels:
        bad = np.unique(ids[ids >= num_labels])
        raise DataError(path, f"label ids 0..{num_labels - 1} of the parse scheme, found {bad[:8].tolist()}")
    return ids


def image_to_tensor(img):
    """uint8 (H, W, 3) -> float (3, H, W) in [-1, 1] (ToTensor + Normalize(0.5, 0.5))."""
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div(127.5).sub(1.0)


class TryOnDataset(torch.utils.data.Dataset):
    """Try-on samples for DAFlow-style models from any of `LAYOUTS`.

    Args:
        root: layout root (see the module docstring).
        layout: "daflow", "cpvton" or "viton_hd".
        split: "train" or "test".
        mode: "paired" (own garment, ground truth available) or "unpaired" (test only).
        size: (H, W) to resize to; None keeps the files' size.
        flip: joint horizontal flip with p=0.5 (DAFlow's training augmentation).
        pairs: optional explicit list of (person, cloth) names instead of the layout's list file.
        category: ``dresscode`` only: "upper_body", "lower_body", "dresses", or "auto" (the root folder's name).
    For ``dresscode`` pass one category folder as root (e.g. ``DressCode/upper_body``).
    Each item: dict(cloth, person, agnostic, pose: float (3, H, W) in [-1, 1]; person_name, cloth_name).
    In unpaired mode `person` is the person photo (not a ground truth of the result).
    """

    def __init__(self, root, layout, split="train", mode="paired", size=None, flip=False, pairs=None,
                 category="auto"):
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if category != "auto" and layout != "dresscode":
            raise ValueError(f"category={category!r} applies to layout 'dresscode' only (got layout {layout!r})")
        self.root, self.layout, self.split, self.mode = Path(root), layout, split, mode
        self.size, self.flip = size, flip
        if not self.root.is_dir():
            raise DataError(self.root, f"a {layout} try-on dataset folder",
                            hint="VITON / VITON-HD are distributed by their authors on request; see README")
        self.category = dresscode_category(self.root, category) if layout == "dresscode" else None
        if pairs is None:
            if split == "train":
                name = {"daflow": "train.txt"}.get(layout, "train_pairs.txt")
                pairs = read_pairs(self.root / name)
            else:
                pairs = read_pairs(pair_list_path(self.root, layout, mode))
        if mode == "paired" and layout == "viton_hd":
            pairs = [(p, p) for p, _ in pairs]  # VITON-HD: person 00000_00.jpg wears cloth 00000_00.jpg
        if not pairs:
            raise DataError(self.root, f"at least one (person, cloth) pair for the {split} {mode} split, got none")
        self.pairs = pairs

    def __len__(self):
        return len(self.pairs)

    def paths(self, index):
        """The files of pair `index` -> dict of Paths: person, cloth, and parse + keypoints (cpvton, viton_hd,
        dresscode) or agnostic + pose (daflow). Nothing is read or checked: a missing file is the reader's error."""
        return self._paths(*self.pairs[index])

    def _paths(self, person, cloth):
        stem = Path(person).stem
        if self.layout == "daflow":
            d = self.root / f"VITON_{self.split}"
            return dict(person=d / f"{self.split}_img" / person, cloth=d / "clothes" / cloth,
                        agnostic=d / "img_agnostic" / person, pose=d / "vis_pose" / f"{stem}_keypoints.jpg")
        if self.layout == "dresscode":
            d = self.root
            return dict(person=d / "images" / person, cloth=d / "images" / cloth,
                        parse=d / "label_maps" / f"{stem.rsplit('_', 1)[0]}_4.png",
                        keypoints=d / "keypoints" / f"{stem.rsplit('_', 1)[0]}_2.json")
        d = self.root / self.split
        if self.layout == "cpvton":
            return dict(person=d / "image" / person, cloth=d / "cloth" / cloth,
                        parse=d / "image-parse-new" / f"{stem}.png", keypoints=d / "pose" / f"{stem}_keypoints.json")
        # VITON-HD folder names: zalando-hd-resized (image-parse-v3, openpose_json) or the original release
        # (image-parse, openpose-json); the first that exists is read.
        parse_dir = next((d / n for n in ("image-parse-v3", "image-parse") if (d / n).is_dir()), d / "image-parse-v3")
        pose_dir = next((d / n for n in ("openpose_json", "openpose-json") if (d / n).is_dir()), d / "openpose_json")
        return dict(person=d / "image" / person, cloth=d / "cloth" / cloth,
                    parse=parse_dir / f"{stem}.png",
                    keypoints=pose_dir / f"{stem}_keypoints.json")

    def load_arrays(self, index):
        """uint8 arrays (H, W, 3) of cloth, person, agnostic, pose for one pair (no flip)."""
        person_name, cloth_name = self.pairs[index]
        p = self._paths(person_name, cloth_name)
        person = read_rgb(p["person"], self.size)
        cloth = read_rgb(p["cloth"], self.size)
        if self.layout == "daflow":
            return dict(cloth=cloth, person=person, agnostic=read_rgb(p["agnostic"], self.size),
                        pose=read_rgb(p["pose"], self.size))
        h, w = person.shape[:2]
        if self.layout == "dresscode":  # DressCode's own 18 labels; its loader resizes the maps, so only the
            ph, pw = image_size(p["person"])  # aspect ratio has to agree
            parse = read_label_map(p["parse"], (h, w), num_labels=len(DRESSCODE_TO_LIP))
            qh, qw = image_size(p["parse"])
            if abs(qh * pw - ph * qw) > 0.01 * ph * qw:
                raise DataError(p["parse"], f"a label map with the person image's aspect ratio ({pw}x{ph}), "
                                f"found {qw}x{qh}")
        else:
            parse = read_label_map(p["parse"], (h, w), num_labels=len(LIP_LABELS), expect=image_size(p["person"]))
        if self.layout == "dresscode":
            kps, src = read_dresscode_keypoints(p["keypoints"]), _DRESSCODE_KEYPOINT_SPACE
            if self.category == "upper_body":
                parse = DRESSCODE_TO_LIP[np.minimum(parse, len(DRESSCODE_TO_LIP) - 1)]
        else:
            kps, flavour = read_openpose_json(p["keypoints"])
            if flavour == "body25":
                kps = body25_to_coco18(kps)
            src = image_size(p["person"])[::-1]  # (W, H): keypoints are in the original image's pixels
        kps = kps.copy()
        kps[:, 0] *= w / src[0]
        kps[:, 1] *= h / src[1]
        if self.category in ("lower_body", "dresses"):
            agnostic = dresscode_agnostic(person, parse, kps, self.category, fill=0)
        else:
            agnostic = agnostic_person(person, parse, kps)
        return dict(cloth=cloth, person=person, agnostic=agnostic,
                    pose=render_skeleton(kps, h, w, radius=max(1, round(4 * w / 192)),
                                         stick_width=max(1, round(4 * w / 192))))

    def __getitem__(self, index):
        arrays = self.load_arrays(index)
        out = {k: image_to_tensor(v) for k, v in arrays.items()}
        if self.flip and torch.rand(()) < 0.5:
            out = {k: v.flip(-1) for k, v in out.items()}
        out["person_name"], out["cloth_name"] = self.pairs[index]
        return out


def _person_keypoints(h, w, rng):
    """Plausible upright COCO-18 keypoints for an (H, W) canvas with a little random jitter."""
    cx = w / 2 + rng.uniform(-0.04, 0.04) * w
    sw = rng.uniform(0.17, 0.22) * w  # half shoulder width
    xy = {0: (cx, 0.14 * h), 1: (cx, 0.26 * h), 2: (cx - sw, 0.27 * h), 5: (cx + sw, 0.27 * h),
          3: (cx - sw * 1.25, 0.42 * h), 6: (cx + sw * 1.25, 0.42 * h), 4: (cx - sw * 1.3, 0.56 * h),
          7: (cx + sw * 1.3, 0.56 * h), 8: (cx - 0.6 * sw, 0.58 * h), 11: (cx + 0.6 * sw, 0.58 * h),
          9: (cx - 0.6 * sw, 0.76 * h), 12: (cx + 0.6 * sw, 0.76 * h), 10: (cx - 0.6 * sw, 0.94 * h),
          13: (cx + 0.6 * sw, 0.94 * h), 14: (cx - 0.04 * w, 0.12 * h), 15: (cx + 0.04 * w, 0.12 * h),
          16: (cx - 0.08 * w, 0.13 * h), 17: (cx + 0.08 * w, 0.13 * h)}
    kps = np.zeros((18, 3), dtype=np.float32)
    for i, (x, y) in xy.items():
        kps[i] = (x + rng.normal(0, 0.005 * w), y + rng.normal(0, 0.005 * h), rng.uniform(0.5, 0.95))
    return kps


def _garment_texture(h, w, rng, period_range=(5, 12)):
    """A garment pattern: a random base colour with stripes of a second colour (period and angle random)."""
    base, stripe = rng.integers(30, 226, size=(2, 3))
    period = rng.uniform(*period_range) * w / 48
    angle = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:h, 0:w]
    phase = (xx * np.cos(angle) + yy * np.sin(angle)) / period
    mask = (np.sin(2 * np.pi * phase) > 0)[..., None]
    return np.where(mask, stripe, base).astype(np.uint8)


def write_synthetic_tryon(root, num_train=16, num_test=8, height=64, width=48, seed=0,
                          garment_box=(0.2, 0.8, 0.15, 0.85), stripe_period=(12, 20)):
    """Write a small learnable try-on dataset in the VITON-HD layout (BODY_25 JSON, palette parse PNGs).

    Each person: grey background, skin-coloured head/arms/neck, dark trousers, and an upper garment. Files:
    <root>/{train,test}/{image, cloth, cloth-mask, image-parse-v3, openpose_json}, <root>/{train,test}_pairs.txt
    (test pairs unpaired: person i with cloth i+1). Returns root.

    Planted signal (what a try-on model must learn, and what a trivial output cannot fake): every garment has its
    own random colours and stripes (angle random, period `stripe_period` px at width 48, scaled with the width), so
    no constant image matches the garment region; the garment image shows the pattern on a flat box at
    `garment_box` = (x0, x1, y0, y1) fractions of the image, and the person wears the same pattern resampled from
    that box onto the torso's bounding box (about x 0.3-0.7, y 0.27-0.6). With the default box this is a large
    deformation: the pattern is squeezed ~2.3x vertically and ~1.5x horizontally and the garment's lower edge moves
    by ~0.27 H, so the garment pasted without warping does not match either. Wider boxes make the deformation
    larger still (the smoke run's 100 CPU steps then train unreliably: 1 of 3 seeds collapsed, 2026-12-03).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    palette = (rng.integers(0, 256, size=(256, 3))).astype(np.uint8)
    palette[0] = 0
    for split, n in (("train", num_train), ("test", num_test)):
        d = root / split
        for sub in ("image", "cloth", "cloth-mask", "image-parse-v3", "openpose_json"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        names = [f"{i:05d}_00.jpg" for i in range(n)]
        for name in names:
            stem = Path(name).stem
            h, w = height, width
            kps = _person_keypoints(h, w, rng)
            parse = np.zeros((h, w), np.uint8)
            pint = lambda i, kps=kps: (int(kps[i, 0]), int(kps[i, 1]))  # noqa: E731
            thick = max(2, w // 12)
            for a, b, lab in ((2, 4, 15), (5, 7, 14)):  # arms (right arm = label 15 in LIP)
                cv2.line(parse, pint(a), pint(b - 1), lab, thick)
                cv2.line(parse, pint(b - 1), pint(b), lab, thick)
            cv2.rectangle(parse, (pint(8)[0] - thick // 2, pint(8)[1]), (pint(11)[0] + thick // 2, pint(13)[1]), 9, -1)
            cv2.line(parse, pint(1), pint(0), 13, thick)
            cv2.circle(parse, pint(0), max(3, w // 9), 13, -1)
            hair_axes = (max(3, w // 8), max(2, w // 14))
            cv2.ellipse(parse, (pint(0)[0], pint(0)[1] - w // 16), hair_axes, 0, 180, 360, 2, -1)
            torso = np.array([pint(2), pint(5), (pint(11)[0] + 1, pint(11)[1] + 2), (pint(8)[0] - 1, pint(8)[1] + 2)])
            cv2.fillConvexPoly(parse, torso, 5)
            texture = _garment_texture(h, w, rng, stripe_period)
            person = np.full((h, w, 3), 200, np.uint8)
            skin = rng.integers(150, 230, size=3)
            for lab, colour in ((13, skin), (14, skin), (15, skin), (2, (40, 30, 20)), (9, (50, 50, 90))):
                person[parse == lab] = colour
            # The garment image: texture inside a flat T-shirt-like box; the person's garment pixels show the
            # same texture, resampled from the torso's bounding box onto the cloth's box.
            cloth = np.full((h, w, 3), 255, np.uint8)
            cmask = np.zeros((h, w), np.uint8)
            x0, x1, y0, y1 = (int(garment_box[0] * w), int(garment_box[1] * w), int(garment_box[2] * h),
                              int(garment_box[3] * h))
            cmask[y0:y1, x0:x1] = 255
            cloth[cmask > 0] = texture[cmask > 0]
            ys, xs = np.nonzero(parse == 5)
            bx0, bx1, by0, by1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
            warped = cv2.resize(texture[y0:y1, x0:x1], (bx1 - bx0, by1 - by0), interpolation=cv2.INTER_NEAREST)
            region = parse[by0:by1, bx0:bx1] == 5
            person[by0:by1, bx0:bx1][region] = warped[region]
            Image.fromarray(person).save(d / "image" / name, quality=95)
            Image.fromarray(cloth).save(d / "cloth" / name, quality=95)
            Image.fromarray(cmask).save(d / "cloth-mask" / name)
            label_img = Image.fromarray(parse, mode="P")
            label_img.putpalette(palette.reshape(-1).tolist())
            label_img.save(d / "image-parse-v3" / f"{stem}.png")
            write_openpose_json(d / "openpose_json" / f"{stem}_keypoints.json", coco18_to_body25(kps))
        if split == "train":
            lines = [f"{nm} {nm}" for nm in names]
        else:
            lines = [f"{nm} {names[(i + 1) % n]}" for i, nm in enumerate(names)]
        (root / f"{split}_pairs.txt").write_text("\n".join(lines) + "\n")
    return root
