"""A folder of plain fashion photos (no in-shop garment) with human parsing and OpenPose keypoints.

The large-scale unpaired source of try-on methods that learn from fashion photos alone (BVTON, arXiv 2411.01593;
PASTA-GAN's UPT). BVTON's own layout is not public; this is the closest documented one, PASTA-GAN's UPT folders
(xiezhy6/PASTA-GAN: per image ``image/``, ``keypoints/<stem>_keypoints.json`` with 18 OpenPose points,
``parsing/<stem>.png`` from Graphonomy/CIHP), with the names made plain::

    <root>/image/<stem>.jpg|.png              person photo (RGB)
    <root>/parsing/<stem>.png                 label ids, PNG mode L or P, LIP/CIHP ids 0..19 (CP-VTON+'s 20 =
                                              neck skin is accepted too), same size as the photo
    <root>/keypoints/<stem>_keypoints.json    OpenPose JSON, COCO-18 (``pose_keypoints``) or BODY_25
                                              (``pose_keypoints_2d``), pixels of the photo
    <root>/list.txt                           optional: one image file name per line (else every file in image/)

`UnpairedPhotos` validates each sample when it is read and raises `common.errors.DataError` naming the file at
fault: an unreadable or truncated photo, a missing/colour-coded/wrong-size/out-of-range parsing, a missing or
malformed keypoint file, a person without any upper-garment pixels (``require_upper=True``: the pseudo pairs of
BVTON are built from the upper garment), a list entry without a photo, an empty folder.
"""
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import DataError
from .openpose import body25_to_coco18, coco18_to_body25, read_openpose_json, write_openpose_json

__all__ = ["IMAGE_SUFFIXES", "MAX_LABEL", "UPPER_LABELS", "read_photo", "read_parsing", "UnpairedPhotos",
           "write_unpaired_photo"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MAX_LABEL = 20  # LIP/CIHP 0..19, plus CP-VTON+'s 20 (neck skin)
UPPER_LABELS = (5, 6, 7)  # LIP upper clothes, dress, coat
_HINT = "an unpaired photo folder: image/, parsing/, keypoints/ (see common/data/unpaired_photos.py)"


def read_photo(path):
    """RGB uint8 (H, W, 3) of a photo, fully decoded (a truncated file is a DataError, not a grey bottom)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "photo not found", hint=_HINT)
    try:
        with Image.open(path) as img:
            img.load()
            return np.array(img.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(path, f"a readable JPEG/PNG photo ({type(e).__name__}: {e})") from None


def read_parsing(path, size):
    """Label ids (H, W) uint8 of a parsing PNG; checks mode L/P, the size (H, W) and the label range."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "parsing PNG (label ids) not found", hint=_HINT)
    try:
        with Image.open(path) as img:
            img.load()
            mode, arr = img.mode, np.array(img)
    except (OSError, ValueError) as e:
        raise DataError(path, f"a readable PNG of label ids ({type(e).__name__}: {e})") from None
    if mode not in ("L", "P"):
        raise DataError(path, f"a label-id PNG (mode L or P), found mode {mode} (a colour-coded parsing?)")
    if arr.shape != tuple(size):
        raise DataError(path, f"parsing of the photo's size {tuple(size)} (H, W), found {arr.shape}")
    if arr.max() > MAX_LABEL:
        raise DataError(path, f"LIP/CIHP label ids 0..{MAX_LABEL}, found {int(arr.max())}")
    return arr.astype(np.uint8)


class UnpairedPhotos(torch.utils.data.Dataset):
    """Fashion photos with parsing and keypoints, for unpaired learning.

    Args:
        root: the folder (layout in the module docstring).
        require_upper: a photo whose parsing has no upper-garment pixel (LIP 5, 6, 7) is a DataError.
    Items (`load`): dict(person uint8 (H, W, 3), parse uint8 (H, W) LIP ids, keypoints float32 (18, 3) COCO-18
    in the photo's pixels, name). `__getitem__` returns the same dict.
    """

    def __init__(self, root, require_upper=True):
        self.root, self.require_upper = Path(root), require_upper
        if not (self.root / "image").is_dir():
            raise DataError(self.root / "image", "a folder of person photos", hint=_HINT)
        listing = self.root / "list.txt"
        if listing.is_file():
            names = []
            for lineno, line in enumerate(listing.read_text().splitlines(), 1):
                name = line.strip()
                if not name:
                    continue
                if not (self.root / "image" / name).is_file():
                    raise DataError(listing, f"an image file name under image/, {name!r} is not there", line=lineno)
                names.append(name)
        else:
            names = sorted(p.name for p in (self.root / "image").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not names:
            raise DataError(listing if listing.is_file() else self.root / "image", "at least one photo", hint=_HINT)
        self.names = names

    def __len__(self):
        return len(self.names)

    def paths(self, name):
        stem = Path(name).stem
        return dict(person=self.root / "image" / name, parse=self.root / "parsing" / f"{stem}.png",
                    keypoints=self.root / "keypoints" / f"{stem}_keypoints.json")

    def load(self, index):
        name = self.names[index]
        p = self.paths(name)
        person = read_photo(p["person"])
        parse = read_parsing(p["parse"], person.shape[:2])
        if self.require_upper and not np.isin(parse, UPPER_LABELS).any():
            raise DataError(p["parse"], "an upper garment (LIP label 5, 6 or 7) to build pseudo pairs from",
                            hint="drop the photo from list.txt or pass require_upper=False")
        kps, flavour = read_openpose_json(p["keypoints"])
        if flavour == "body25":
            kps = body25_to_coco18(kps)
        if not np.isfinite(kps).all():
            raise DataError(p["keypoints"], "finite keypoint values")
        return dict(person=person, parse=parse, keypoints=kps.astype(np.float32), name=name)

    def __getitem__(self, index):
        return self.load(index)


def write_unpaired_photo(root, name, person, parse, keypoints_coco18, flavour="body25"):
    """Write one photo with its parsing and keypoints in the layout above (used by generators and tests)."""
    root = Path(root)
    for sub in ("image", "parsing", "keypoints"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    stem = Path(name).stem
    Image.fromarray(np.asarray(person, np.uint8)).save(root / "image" / name, quality=95)
    Image.fromarray(np.asarray(parse, np.uint8)).save(root / "parsing" / f"{stem}.png")
    kps = np.asarray(keypoints_coco18, np.float64)
    write_openpose_json(root / "keypoints" / f"{stem}_keypoints.json",
                        coco18_to_body25(kps) if flavour == "body25" else kps)
