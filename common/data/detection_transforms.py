"""Detection augmentations that track their geometry as a 3x3 matrix (ConsistentTeacher / SoftTeacher / STAC).

A *view* is a dict: `image` (H, W, 3) uint8 RGB, `boxes` (N, 4) float32 x1y1x2y2 in pixels (edges: a box
[0, 0, W, H] covers the whole image), `labels` (N,) int64, `matrix` (3, 3) float64 mapping ORIGINAL image
coordinates to this view's coordinates, `img_shape` (h, w) of this view, and passthrough keys (`image_id`,
`ori_shape`, `file_name`, optionally `ignore_boxes`, transformed like `boxes`). Each transform is a callable
`t(view, rng) -> view` drawing its randomness from the numpy Generator `rng`, and composes its geometry as
`matrix <- A @ matrix` (official: ssod/datasets/pipelines/geo_utils.py, `GTrans.apply`). Transforms never
modify their input arrays, so one sample can feed several views.

With the matrices of two views of one image, boxes predicted on the teacher's (weak) view map onto the
student's (strong) view by `matrix_student @ inv(matrix_teacher)` (`transform_boxes`, official
`Transform2D.transform_bboxes` in ssod/models/utils/bbox_utils.py).

Official behaviour kept (ssod/datasets/pipelines/rand_aug.py, mmdet 2.x transforms, mmcv 1.x image ops):
- Resize: mmdet `Resize(img_scale=[(long, s0), (long, s1)], multiscale_mode='range', keep_ratio=True)`: short
  edge s ~ randint(s0, s1 + 1), scale = min(long / max(h, w), s / min(h, w)), new size int(w * scale + 0.5);
  the per-axis factors new_w / w and new_h / h scale the boxes, which are clipped to the image.
- Flip: x -> w - x (matrix [[-1, 0, w], [0, 1, 0]]).
- Colour ops (STAC RandAug): magnitude m = randint(1, 10) in 1..9 on a 0..10 scale; Solarize threshold
  min(int(m * 256 / 10), 255); Color / Contrast / Brightness / Sharpness factor m * 1.8 / 10 + 0.1 (PIL
  ImageEnhance); Posterize to 4 - int(m * 4 / 10) bits; AutoContrast / Equalize (PIL ImageOps); Identity.
- Geometric ops, cv2.warpAffine bilinear with constant fill 125: Translate by U(-0.1, 0.1) of the width or
  height; Rotate by U(-30, 30) degrees clockwise about ((w - 1) / 2, (h - 1) / 2)
  (cv2.getRotationMatrix2D(centre, -angle, 1)); ShearX then ShearY by U(-30, 30) degrees with the official
  factors tanh(-angle_x * pi / 180) and tanh(angle_y * pi / 180) (tanh, not tan: the official code's choice).
  Boxes: the 4 corners through the same matrix, min / max, clipped to the image; then boxes with width or
  height <= min_size (official min_size=0: only empty boxes) are dropped with their labels. As in the
  official code the cv2 matrix (pixel-centre convention) is applied unchanged to the edge-convention boxes,
  a sub-pixel offset for rotate and shear.
- RandomErase: randint(1, 5) (1..4) square patches of side U(0, 0.2) x (h, w) at randint positions, fill 125;
  boxes and matrix unchanged.
- OneOf picks one uniformly; ShuffledSequential applies its transforms in a random order.

Tensor side: `to_tensor_view` normalises with the ImageNet mean / std in 0..255 RGB (mmdet img_norm_cfg),
`collate_views` pads the normalised images with 0 at the bottom / right to a multiple of 32. The official
training pipelines pad each image to a multiple of 32 before normalising (so their own pad is black, then
normalised) and then the batch with 0; here every pad is 0 after normalisation, as the official test pipeline.
"""
import cv2
import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

IMAGENET_MEAN_255 = (123.675, 116.28, 103.53)
IMAGENET_STD_255 = (58.395, 57.12, 57.375)
FILL = 125
BOX_KEYS = ("boxes", "ignore_boxes")


def start_view(sample):
    """A dataset sample -> a view at the identity geometry (a shallow copy with `matrix` and `img_shape`)."""
    view = dict(sample)
    view["matrix"] = np.eye(3)
    view["img_shape"] = tuple(sample["image"].shape[:2])
    return view


def _box_corners(boxes):
    """(N, 4) x1y1x2y2 -> (N, 4, 2) corners (x1y1, x2y1, x2y2, x1y2)."""
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    return np.stack([np.stack([x1, y1], -1), np.stack([x2, y1], -1), np.stack([x2, y2], -1),
                     np.stack([x1, y2], -1)], 1)


def _warp_boxes(boxes, affine, img_shape):
    """Map (N, 4) boxes by a (2, 3) or (3, 3) affine matrix via their 4 corners, then clip to (h, w)."""
    h, w = img_shape
    pts = _box_corners(boxes.astype(np.float64)) @ affine[:2, :2].T + affine[:2, 2]  # (N, 4, 2)
    x1 = np.clip(pts[..., 0].min(1), 0, w)
    y1 = np.clip(pts[..., 1].min(1), 0, h)
    x2 = np.clip(pts[..., 0].max(1), x1, w)
    y2 = np.clip(pts[..., 1].max(1), y1, h)
    return np.stack([x1, y1, x2, y2], 1).astype(np.float32)


def _apply_affine(view, affine, image, min_size=None):
    """The new view after a geometric op: `image` already warped, boxes mapped by `affine` (3, 3) and clipped,
    boxes with w or h <= min_size dropped with their labels (None: no filtering), `matrix` composed."""
    out = dict(view)
    out["image"] = image
    out["img_shape"] = tuple(image.shape[:2])
    out["matrix"] = affine @ view["matrix"]
    for key in BOX_KEYS:
        if key not in view:
            continue
        boxes = _warp_boxes(view[key], affine, out["img_shape"]).reshape(-1, 4)
        if min_size is not None:
            keep = (boxes[:, 2] - boxes[:, 0] > min_size) & (boxes[:, 3] - boxes[:, 1] > min_size)
            boxes = boxes[keep]
            if key == "boxes":
                out["labels"] = view["labels"][keep]
        out[key] = boxes
    return out


def rescale_size(h, w, long_edge, short_edge):
    """mmcv.rescale_size with keep_ratio: scale = min(long / max(h, w), short / min(h, w)) where (long, short)
    are the larger and smaller of the two edges asked for; new (h, w) = int(size * scale + 0.5)."""
    long_edge, short_edge = max(long_edge, short_edge), min(long_edge, short_edge)
    scale = min(long_edge / max(h, w), short_edge / min(h, w))
    return int(h * scale + 0.5), int(w * scale + 0.5)


def _resize(view, long_edge, short_edge):
    h, w = view["img_shape"]
    new_h, new_w = rescale_size(h, w, long_edge, short_edge)
    image = cv2.resize(view["image"], (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    affine = np.diag([new_w / w, new_h / h, 1.0])  # mmdet scales boxes by the realised per-axis factors
    return _apply_affine(view, affine, image)


class RandomResize:
    """mmdet Resize 'range' mode with keep_ratio: long edge `max_long`, short edge uniform in `short_range`
    (both ends included)."""

    def __init__(self, short_range=(400, 1200), max_long=1333):
        self.short_range, self.max_long = tuple(short_range), max_long

    def __call__(self, view, rng):
        short = int(rng.integers(self.short_range[0], self.short_range[1] + 1))
        return _resize(view, self.max_long, short)


class Resize:
    """Deterministic keep-ratio resize into (max_long, short) (the test pipeline's 1333 x 800)."""

    def __init__(self, max_long=1333, short=800):
        self.max_long, self.short = max_long, short

    def __call__(self, view, rng=None):
        return _resize(view, self.max_long, self.short)


class RandomFlip:
    """Horizontal flip with probability p: x -> w - x."""

    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, view, rng):
        if rng.random() >= self.p:
            return view
        w = view["img_shape"][1]
        affine = np.array([[-1.0, 0.0, w], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        return _apply_affine(view, affine, np.ascontiguousarray(view["image"][:, ::-1]))


# ---------------------------------------------------------------- colour ops (geometry unchanged)
def _pil(fn):
    return lambda img, m: np.array(fn(Image.fromarray(img), m), dtype=np.uint8)  # a writable copy


def _enhance(enhancer):
    return _pil(lambda pil, m: enhancer(pil).enhance(m * 1.8 / 10 + 0.1))


COLOR_OPS = {
    "identity": lambda img, m: img,
    "auto_contrast": _pil(lambda pil, m: ImageOps.autocontrast(pil)),
    "equalize": _pil(lambda pil, m: ImageOps.equalize(pil)),
    "solarize": lambda img, m: np.where(img < min(int(m * 256 / 10), 255), img, 255 - img).astype(np.uint8),
    "color": _enhance(ImageEnhance.Color),
    "contrast": _enhance(ImageEnhance.Contrast),
    "brightness": _enhance(ImageEnhance.Brightness),
    "sharpness": _enhance(ImageEnhance.Sharpness),
    "posterize": _pil(lambda pil, m: ImageOps.posterize(pil, 4 - int(m * 4 / 10))),
}


class ColorOp:
    """One STAC colour op by name (a key of COLOR_OPS) with magnitude randint(*magnitude_range) (1..9)."""

    def __init__(self, name, magnitude_range=(1, 10)):
        if name not in COLOR_OPS:
            raise ValueError(f"unknown colour op {name!r}; choose from {list(COLOR_OPS)}")
        self.name, self.magnitude_range = name, tuple(magnitude_range)

    def __call__(self, view, rng):
        magnitude = int(rng.integers(*self.magnitude_range))
        out = dict(view)
        out["image"] = COLOR_OPS[self.name](view["image"], magnitude)
        return out


# ---------------------------------------------------------------- geometric ops
def _warp_image(image, affine, fill):
    h, w = image.shape[:2]
    return cv2.warpAffine(image, affine[:2], (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(fill, fill, fill))


class _Geometric:
    """Base of the warps: subclasses give the (3, 3) affine for this view and draw."""

    def __init__(self, magnitude, fill=FILL, min_size=0):
        self.magnitude, self.fill, self.min_size = tuple(magnitude), fill, min_size

    def affine(self, img_shape, value):
        raise NotImplementedError

    def __call__(self, view, rng):
        value = rng.uniform(*self.magnitude)
        affine = self.affine(view["img_shape"], value)
        return _apply_affine(view, affine, _warp_image(view["image"], affine, self.fill), min_size=self.min_size)


class TranslateX(_Geometric):
    """Shift right by U(ratio) x width (mmcv.imtranslate)."""

    def __init__(self, ratio=(-0.1, 0.1), fill=FILL, min_size=0):
        super().__init__(ratio, fill, min_size)

    def affine(self, img_shape, value):
        return np.array([[1.0, 0.0, value * img_shape[1]], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


class TranslateY(_Geometric):
    """Shift down by U(ratio) x height."""

    def __init__(self, ratio=(-0.1, 0.1), fill=FILL, min_size=0):
        super().__init__(ratio, fill, min_size)

    def affine(self, img_shape, value):
        return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, value * img_shape[0]], [0.0, 0.0, 1.0]])


class Rotate(_Geometric):
    """Rotate clockwise by U(angle) degrees about the image centre ((w - 1) / 2, (h - 1) / 2) (mmcv.imrotate)."""

    def __init__(self, angle=(-30, 30), fill=FILL, min_size=0):
        super().__init__(angle, fill, min_size)

    def affine(self, img_shape, value):
        h, w = img_shape
        return np.vstack([cv2.getRotationMatrix2D(((w - 1) * 0.5, (h - 1) * 0.5), -value, 1.0), [0.0, 0.0, 1.0]])


class ShearX(_Geometric):
    """x -> x + tanh(-angle * pi / 180) * y about the origin, angle ~ U(angle) degrees (official RandShear x)."""

    def __init__(self, angle=(-30, 30), fill=FILL, min_size=0):
        super().__init__(angle, fill, min_size)

    def affine(self, img_shape, value):
        return np.array([[1.0, np.tanh(-value * np.pi / 180), 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


class ShearY(_Geometric):
    """y -> y + tanh(angle * pi / 180) * x about the origin (official RandShear y)."""

    def __init__(self, angle=(-30, 30), fill=FILL, min_size=0):
        super().__init__(angle, fill, min_size)

    def affine(self, img_shape, value):
        return np.array([[1.0, 0.0, 0.0], [np.tanh(value * np.pi / 180), 1.0, 0.0], [0.0, 0.0, 1.0]])


class RandomErase:
    """Fill randint(*n) square-ratio patches (side U(size) x (h, w)) with `fill` (official RandErase, squared)."""

    def __init__(self, n=(1, 5), size=(0, 0.2), fill=FILL):
        self.n, self.size, self.fill = tuple(n), tuple(size), fill

    def __call__(self, view, rng):
        h, w = view["img_shape"]
        image = view["image"].copy()
        for _ in range(int(rng.integers(*self.n))):
            ratio = rng.uniform(*self.size)
            ph, pw = int(ratio * h), int(ratio * w)
            px, py = int(rng.integers(0, w - pw)), int(rng.integers(0, h - ph))
            image[py:py + ph, px:px + pw] = self.fill
        out = dict(view)
        out["image"] = image
        return out


# ---------------------------------------------------------------- composition
class Sequential:
    """Apply the transforms in order."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, view, rng):
        for t in self.transforms:
            view = t(view, rng)
        return view


class OneOf:
    """Apply one of the transforms, chosen uniformly."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, view, rng):
        return self.transforms[int(rng.integers(len(self.transforms)))](view, rng)


class ShuffledSequential(Sequential):
    """Apply all the transforms in a random order."""

    def __call__(self, view, rng):
        for i in rng.permutation(len(self.transforms)):
            view = self.transforms[i](view, rng)
        return view


class Pipeline(Sequential):
    """A dataset transform: `pipeline(sample, rng)` starts a view (identity matrix) and applies the transforms."""

    def __call__(self, sample, rng):
        return super().__call__(start_view(sample), rng)


class MultiBranch:
    """Several views of one sample: `MultiBranch(weak=p1, strong=p2)(sample, rng)` -> {"weak": ..., "strong": ...},
    each pipeline drawing its own randomness (own resize and flip) from `rng`, in argument order."""

    def __init__(self, **pipelines):
        self.pipelines = pipelines

    def __call__(self, sample, rng):
        return {k: p(sample, rng) for k, p in self.pipelines.items()}


def color_one_of():
    """OneOf the 9 STAC colour ops (Identity, AutoContrast, Equalize, Solarize, Color, Contrast, Brightness,
    Sharpness, Posterize)."""
    return OneOf([ColorOp(name) for name in COLOR_OPS])


def geometric_one_of(fill=FILL):
    """OneOf(TranslateX, TranslateY, Rotate, [ShearX, ShearY]) of the strong pipeline."""
    return OneOf([TranslateX(fill=fill), TranslateY(fill=fill), Rotate(fill=fill),
                  Sequential([ShearX(fill=fill), ShearY(fill=fill)])])


def labeled_pipeline(short_range=(400, 1200), max_long=1333):
    """Labelled images: RandomResize -> RandomFlip(0.5) -> OneOf(colour ops)."""
    return Pipeline([RandomResize(short_range, max_long), RandomFlip(0.5), color_one_of()])


def weak_pipeline(short_range=(400, 1200), max_long=1333):
    """Teacher view of an unlabelled image: RandomResize -> RandomFlip(0.5)."""
    return Pipeline([RandomResize(short_range, max_long), RandomFlip(0.5)])


def strong_pipeline(short_range=(400, 1200), max_long=1333):
    """Student view: RandomResize -> RandomFlip -> ShuffledSequential[colour OneOf, geometric OneOf] -> RandomErase."""
    return Pipeline([RandomResize(short_range, max_long), RandomFlip(0.5),
                     ShuffledSequential([color_one_of(), geometric_one_of()]), RandomErase()])


def test_pipeline(max_long=1333, short=800):
    """Evaluation: keep-ratio Resize into (max_long, short)."""
    return Pipeline([Resize(max_long, short)])


test_pipeline.__test__ = False  # a pipeline factory, not a pytest test


# ---------------------------------------------------------------- tensors
def transform_boxes(boxes, matrix, img_shape):
    """Map (K, 4 + E) x1y1x2y2 boxes (E extra columns such as scores pass through) by a (3, 3) matrix via the
    4 corners with a homogeneous divide, take min / max and clip to img_shape (h, w). Any device / dtype;
    `matrix` may be a tensor or an array (official Transform2D.transform_bboxes)."""
    if boxes.shape[0] == 0:
        return boxes
    matrix = torch.as_tensor(matrix, dtype=boxes.dtype, device=boxes.device)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    corners = torch.stack([torch.stack([x1, y1], -1), torch.stack([x2, y1], -1), torch.stack([x2, y2], -1),
                           torch.stack([x1, y2], -1)], 1)  # (K, 4, 2)
    pts = torch.cat([corners, torch.ones_like(corners[..., :1])], -1) @ matrix.T  # (K, 4, 3)
    pts = pts[..., :2] / pts[..., 2:3]
    h, w = img_shape
    lo, hi = pts.min(1).values, pts.max(1).values  # (K, 2)
    out = torch.stack([lo[:, 0].clamp(0, w), lo[:, 1].clamp(0, h), hi[:, 0].clamp(0, w), hi[:, 1].clamp(0, h)], 1)
    return torch.cat([out, boxes[:, 4:]], 1)


def to_tensor_view(view, mean=IMAGENET_MEAN_255, std=IMAGENET_STD_255):
    """uint8 (H, W, 3) RGB -> float32 (3, H, W) (x - mean) / std; boxes, ignore_boxes -> float32, labels -> int64,
    matrix -> float32 tensors; other keys unchanged."""
    out = dict(view)
    image = torch.from_numpy(np.ascontiguousarray(view["image"])).permute(2, 0, 1).float()
    mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    out["image"] = (image - mean) / std
    for key in BOX_KEYS:
        if key in view:
            out[key] = torch.as_tensor(np.asarray(view[key], np.float32)).reshape(-1, 4)
    out["labels"] = torch.as_tensor(np.asarray(view["labels"], np.int64))
    out["matrix"] = torch.as_tensor(np.asarray(view["matrix"]), dtype=torch.float32)
    return out


def collate_views(views, size_divisor=32):
    """Batch a list of views (raw views are passed through `to_tensor_view` first).

    Returns {"image": (B, 3, H, W) with H, W the batch maxima rounded up to `size_divisor`, zero-padded at the
    bottom / right after normalisation, "matrix": (B, 3, 3), and every other key as a list (boxes, labels,
    img_shape, image_id, ...)}. For multi-view samples collate each key separately.
    """
    views = [v if torch.is_tensor(v["image"]) else to_tensor_view(v) for v in views]
    height = max(v["image"].shape[1] for v in views)
    width = max(v["image"].shape[2] for v in views)
    height = -(-height // size_divisor) * size_divisor
    width = -(-width // size_divisor) * size_divisor
    images = views[0]["image"].new_zeros(len(views), 3, height, width)
    for i, v in enumerate(views):
        images[i, :, :v["image"].shape[1], :v["image"].shape[2]] = v["image"]
    batch = {k: [v[k] for v in views] for k in views[0] if k not in ("image", "matrix")}
    batch["image"] = images
    batch["matrix"] = torch.stack([v["matrix"] for v in views])
    return batch
