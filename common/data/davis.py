"""DAVIS video object segmentation data on disk: frames, palette-PNG annotations, ImageSets, synthetic clips.

Layout (DAVIS-2017 trainval, semi-supervised; DAVIS-2016 is the same with single-object masks):

    DAVIS/JPEGImages/480p/<seq>/00000.jpg ...     5-digit, 0-based frame names
    DAVIS/Annotations/480p/<seq>/00000.png ...    2017: mode 'P' palette PNG, value = object id (0 background,
                                                  1..N objects, 255 void); 2016: 8-bit grayscale 0 / 255
    DAVIS/ImageSets/2017/{train,val}.txt          one sequence name per line (optional here)

`read_annotation` returns object ids for both: a DAVIS-2016 grayscale 0/255 mask becomes ids {0, 1} (its 255
is the object, not void); a palette PNG keeps its indices (255 stays 255 = void). `write_annotation` writes a
mode 'P' PNG with the DAVIS (PASCAL VOC) colour map, which the official `davis2017-evaluation` reads back as
the same ids (it reads PNGs with `np.array(Image.open(path))`, i.e. the palette indices).

`load_davis` validates what the evaluation relies on: sequence and frame names that are valid UTF-8 (OpenCV
crashes on others), readable frames and annotation PNGs of one size per sequence, and a first-frame mask with
at least one object. An object id that appears in a later mask but not in the first frame cannot be scored
(the official evaluation counts objects from frame 0): `DavisSequence.annotation` warns (`DataWarning`) naming
the sequence, the frame and the id.
"""
import dataclasses
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError, check_utf8_name, warn_data

VOID = 255
HINT = ("download DAVIS-2017 trainval 480p from https://davischallenge.org/davis2017/code.html and pass "
        "--data_root with the folder holding DAVIS/")


def davis_palette():
    """The DAVIS / PASCAL VOC colour map (davis2017 `utils.color_map`): (256, 3) uint8, index -> RGB."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):  # spread the bits of the index over the high bits of r, g, b
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette[i] = (r, g, b)
    return palette


def read_annotation(path):
    """A DAVIS annotation PNG -> (H, W) uint8 object ids (0 background, 1..N objects, 255 void).

    Palette ('P') PNGs give their indices. Grayscale ('L'/'1') PNGs are DAVIS-2016 binary masks: any value
    above 127 is the object (id 1). Anything else (e.g. an RGB colour-coded mask) is a DataError.
    """
    path = Path(path)
    try:
        img = Image.open(path)
        img.load()
    except (OSError, ValueError) as e:
        raise DataError(path, f"not a readable PNG annotation ({e})", hint=HINT) from None
    if img.mode == "P":
        return np.array(img, dtype=np.uint8)
    if img.mode in ("L", "1"):
        return (np.array(img.convert("L")) > 127).astype(np.uint8)
    raise DataError(path, f"expected a palette ('P') or grayscale ('L') PNG, got mode {img.mode!r}")


def write_annotation(path, ids):
    """Write (H, W) integer object ids as a DAVIS palette PNG (ids 0..255; 255 = void)."""
    ids = np.asarray(ids)
    if ids.ndim != 2 or ids.min(initial=0) < 0 or ids.max(initial=0) > 255:
        raise ValueError(f"expected (H, W) ids in 0..255, got shape {ids.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(ids.astype(np.uint8), mode="P")
    img.putpalette(davis_palette().reshape(-1).tolist())
    img.save(path)


def read_frame(path):
    """A JPEG frame -> (H, W, 3) uint8 RGB."""
    try:
        with Image.open(path) as img:
            return np.array(img.convert("RGB"))
    except (OSError, ValueError) as e:
        raise DataError(path, f"not a readable image ({e})") from None


def image_size(path):
    """(H, W) of an image file from its header (nothing decoded); DataError if it is not a readable image."""
    try:
        with Image.open(path) as img:
            return img.size[1], img.size[0]
    except (OSError, ValueError, SyntaxError) as e:
        raise DataError(path, f"not a readable image ({e})", hint=HINT) from None


@dataclasses.dataclass
class DavisSequence:
    """One sequence: frame paths and, per frame, its annotation path (None where the frame has none)."""
    name: str
    frames: list
    annotations: list
    _first_ids: set | None = dataclasses.field(default=None, repr=False, compare=False)
    _warned: set = dataclasses.field(default_factory=set, repr=False, compare=False)

    def __len__(self):
        return len(self.frames)

    def frame(self, t):
        return read_frame(self.frames[t])

    def annotation(self, t):
        """Object ids of frame t; warns (once per id) about an object id that the first frame does not show."""
        if self.annotations[t] is None:
            raise DataError(self.frames[t], "this frame has no annotation PNG")
        ids = read_annotation(self.annotations[t])
        if self._first_ids is None:
            first = ids if t == 0 else read_annotation(self.annotations[0])
            self._first_ids = set(np.unique(first).tolist()) | {0, VOID}
        if t > 0:
            new = sorted(set(np.unique(ids).tolist()) - self._first_ids - self._warned)
            if new:
                self._warned.update(new)
                warn_data(self.annotations[t], f"sequence {self.name}, frame {Path(self.annotations[t]).stem}: "
                          f"object id(s) {new} do not appear in the first frame "
                          f"{Path(self.annotations[0]).stem}; the evaluation counts objects from the first frame, "
                          "so they are not scored (or, below its largest id, scored against an empty start)")
        return ids

    def num_objects(self):
        """Number of objects as the official evaluation counts them: the largest id in frame 0 (void aside)."""
        first = self.annotation(0)
        return int(first[first != VOID].max(initial=0))


def read_sequence_list(path):
    """ImageSets/<year>/<split>.txt -> list of sequence names (blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "sequence list not found", hint=HINT)
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def load_davis(root, split=None, year="2017", resolution="480p", sequences=None):
    """Read a DAVIS folder (the one holding JPEGImages/ and Annotations/, i.e. `.../DAVIS`).

    Args:
        split: 'train' / 'val' reads ImageSets/<year>/<split>.txt; None takes every sequence folder.
        sequences: explicit names (wins over split).
    Returns a list of `DavisSequence`, in list (or sorted folder) order. Raises DataError (naming the file)
    for a name that is not UTF-8, a frame or annotation that is not a readable image or whose size differs
    from the sequence's first frame, and a first-frame mask without any object.
    """
    root = Path(root)
    jpeg_dir, ann_dir = root / "JPEGImages" / resolution, root / "Annotations" / resolution
    if not jpeg_dir.is_dir():
        raise DataError(jpeg_dir, "DAVIS frame folder not found (expected DAVIS/JPEGImages/<resolution>/<seq>/)",
                        hint=HINT)
    if sequences is None:
        if split is not None:
            sequences = read_sequence_list(root / "ImageSets" / year / f"{split}.txt")
        else:
            sequences = sorted(p.name for p in jpeg_dir.iterdir() if p.is_dir())
    out = []
    for name in sequences:
        check_utf8_name(jpeg_dir / name, "sequence folder")
        frames = sorted((jpeg_dir / name).glob("*.jpg"))
        if not frames:
            raise DataError(jpeg_dir / name, "no .jpg frames for this sequence", hint=HINT)
        for f in frames:
            check_utf8_name(f, "frame file")
        anns = [ann_dir / name / f"{f.stem}.png" for f in frames]
        anns = [a if a.is_file() else None for a in anns]
        if anns[0] is None:
            raise DataError(ann_dir / name / f"{frames[0].stem}.png", "first-frame annotation missing", hint=HINT)
        size = image_size(frames[0])
        for path in frames + [a for a in anns if a is not None]:
            if image_size(path) != size:
                h, w = image_size(path)
                raise DataError(path, f"every frame and mask of sequence {name} has the size of its first frame "
                                f"{frames[0].name}, {size[1]}x{size[0]} (W x H); this one is {w}x{h}")
        first = read_annotation(anns[0])
        if not ((first > 0) & (first != VOID)).any():
            raise DataError(anns[0], f"the first-frame mask of sequence {name} holds no object (all background "
                            "or void), so there is nothing to propagate or score")
        out.append(DavisSequence(name, [str(f) for f in frames], [None if a is None else str(a) for a in anns]))
    return out


def _texture(rng, h, w, base):
    """A random smooth colour texture around `base` RGB: sum of a few oriented stripes + noise, (h, w, 3)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32) + np.asarray(base, np.float32)
    for _ in range(3):
        theta, freq = rng.uniform(0, np.pi), rng.uniform(0.15, 0.6)
        amp = rng.uniform(15, 40, size=3)
        img += amp * np.sin(freq * (np.cos(theta) * xx + np.sin(theta) * yy) + rng.uniform(0, 6.3))[..., None]
    img += rng.normal(0, 6, size=img.shape)
    return img


def synthetic_clip(rng, num_frames=12, height=64, width=96, num_objects=2):
    """One clip of textured objects moving over a textured background; later objects occlude earlier ones.

    Each object is an ellipse with its own texture, which it carries along (the texture moves with it); it
    moves in a straight line with a slight size change and bounces off the borders. Objects are drawn in id
    order, so object k hides parts of objects < k where they overlap (the masks say so: one id per pixel).
    Returns frames (T, H, W, 3) uint8 and ids (T, H, W) uint8.
    """
    bg_colour = rng.uniform(60, 190, size=3)
    background = _texture(rng, height, width, bg_colour)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    objects = []
    for _ in range(num_objects):
        colour = (bg_colour + rng.choice([-1, 1], size=3) * rng.uniform(50, 90, size=3)) % 256
        ry, rx = rng.uniform(0.16, 0.28) * height, rng.uniform(0.12, 0.22) * width
        cy, cx = rng.uniform(ry, height - ry), rng.uniform(rx, width - rx)
        speed = rng.uniform(1.0, 2.5) * max(height, width) / 64
        angle = rng.uniform(0, 2 * np.pi)
        tex = _texture(rng, 2 * height, 2 * width, colour)  # object-attached texture, larger than the frame
        objects.append(dict(c=[cy, cx], r=(ry, rx), v=[speed * np.sin(angle), speed * np.cos(angle)], tex=tex,
                            grow=rng.uniform(-0.01, 0.01)))
    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    ids = np.zeros((num_frames, height, width), np.uint8)
    for t in range(num_frames):
        img = background.copy()
        for k, ob in enumerate(objects, start=1):
            (cy, cx), (ry, rx) = ob["c"], ob["r"]
            scale = 1 + ob["grow"] * t
            inside = ((yy - cy) / (ry * scale)) ** 2 + ((xx - cx) / (rx * scale)) ** 2 <= 1
            ty = np.clip((yy - cy + height).astype(int), 0, 2 * height - 1)
            tx = np.clip((xx - cx + width).astype(int), 0, 2 * width - 1)
            img[inside] = ob["tex"][ty[inside], tx[inside]]
            ids[t][inside] = k
            for d, size, rad in ((0, height, ry), (1, width, rx)):  # move, bounce off the borders
                ob["c"][d] += ob["v"][d]
                if not rad * 0.5 <= ob["c"][d] <= size - rad * 0.5:
                    ob["v"][d] = -ob["v"][d]
                    ob["c"][d] = float(np.clip(ob["c"][d], rad * 0.5, size - rad * 0.5))
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)
    return frames, ids


def write_synthetic_davis(root, num_sequences=4, num_frames=12, height=64, width=96, num_objects=2, seed=0,
                          split="val", year="2017", resolution="480p"):
    """Generate `synthetic_clip`s in the DAVIS layout under `root` (the folder that plays `DAVIS/`).

    Writes JPEGImages/<res>/<seq>/%05d.jpg, Annotations/<res>/<seq>/%05d.png (palette, every frame) and
    ImageSets/<year>/<split>.txt. Deterministic in `seed`. Returns the sequence names.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    names = [f"synth_{split}_{i:03d}" for i in range(num_sequences)]
    for name in names:
        frames, ids = synthetic_clip(rng, num_frames, height, width, num_objects)
        (root / "JPEGImages" / resolution / name).mkdir(parents=True, exist_ok=True)
        for t in range(num_frames):
            Image.fromarray(frames[t]).save(root / "JPEGImages" / resolution / name / f"{t:05d}.jpg", quality=95)
            write_annotation(root / "Annotations" / resolution / name / f"{t:05d}.png", ids[t])
    (root / "ImageSets" / year).mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / year / f"{split}.txt").write_text("\n".join(names) + "\n")
    return names
