"""OpenPose keypoint JSON in both flavours, the COCO-18 <-> BODY_25 mapping, and skeleton rendering.

Two on-disk flavours exist in the try-on datasets:
* legacy (OpenPose <= 1.0, COCO-18 model): ``{"version": 1.0, "people": [{"pose_keypoints": [x, y, c] * 18, ...}]}``
  (VITON / CP-VTON+ ``pose/<name>_keypoints.json``, used by DAFlow);
* modern (OpenPose >= 1.2, BODY_25 model): ``{"version": 1.3, "people": [{"pose_keypoints_2d": [x, y, c] * 25, ...}]}``
  (VITON-HD ``openpose_json/<name>_keypoints.json``).
A missing joint is (0, 0, 0) in both. Arrays here are float (J, 3) rows (x, y, confidence) in pixels.
"""
import json
import math
from pathlib import Path

import cv2
import numpy as np

from ..errors import DataError, read_utf8

__all__ = ["COCO18_NAMES", "BODY25_NAMES", "BODY25_TO_COCO18", "read_openpose_json", "write_openpose_json",
           "body25_to_coco18", "coco18_to_body25", "render_skeleton"]

COCO18_NAMES = ("nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist", "r_hip",
                "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear")
BODY25_NAMES = ("nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist", "mid_hip",
                "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
                "l_big_toe", "l_small_toe", "l_heel", "r_big_toe", "r_small_toe", "r_heel")
# COCO-18 joint i is BODY_25 joint BODY25_TO_COCO18[i] (same names; BODY_25 adds mid_hip and six foot points).
BODY25_TO_COCO18 = tuple(BODY25_NAMES.index(n) for n in COCO18_NAMES)
_FLAVOURS = {"coco18": ("pose_keypoints", 18, 1.0), "body25": ("pose_keypoints_2d", 25, 1.3)}

# OpenPose / pytorch-openpose limbs (1-based joint pairs of COCO-18) and the 18 part colours. DAFlow's
# draw_keypoints.py draws the first 17 limbs; the colours are written with cv2.imwrite, i.e. as BGR.
LIMBS = ((2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12), (12, 13), (13, 14),
         (2, 1), (1, 15), (15, 17), (1, 16), (16, 18), (3, 17), (6, 18))
COLORS = ((255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
          (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
          (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85))


def read_openpose_json(path, person=0):
    """Keypoints of one person from an OpenPose JSON file -> (array (J, 3) float32, flavour).

    flavour is "coco18" (key ``pose_keypoints``, J=18) or "body25" (key ``pose_keypoints_2d``, J=25); the
    number of values decides, the key only has to be one of the two. Raises DataError on anything else,
    including text that is not UTF-8 and values that are not finite numbers (null, NaN, strings).
    """
    path = Path(path)
    try:
        data = json.loads(read_utf8(path))
    except FileNotFoundError:
        raise DataError(path, "OpenPose keypoint JSON not found", hint="run OpenPose (COCO-18 or BODY_25) "
                        "with --write_json on the person image") from None
    except json.JSONDecodeError as e:
        raise DataError(path, f"invalid JSON ({e.msg})", line=e.lineno) from None
    people = data.get("people") if isinstance(data, dict) else None
    if not people or len(people) <= person:
        raise DataError(path, f"OpenPose JSON with at least {person + 1} entry in 'people'")
    entry = people[person]
    values = entry.get("pose_keypoints_2d", entry.get("pose_keypoints"))
    if values is None:
        raise DataError(path, "a 'pose_keypoints' (COCO-18) or 'pose_keypoints_2d' (BODY_25) list")
    if not isinstance(values, list):
        raise DataError(path, f"a flat list of keypoint numbers, found {type(values).__name__}")
    for k, v in enumerate(values):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            raise DataError(path, f"finite numbers as keypoint values, found {v!r} (joint {k // 3}, value {k % 3}: "
                            "x, y, confidence)")
    kps = np.asarray(values, dtype=np.float32)
    for flavour, (_, joints, _) in _FLAVOURS.items():
        if kps.size == 3 * joints:
            return kps.reshape(joints, 3), flavour
    raise DataError(path, f"54 (COCO-18) or 75 (BODY_25) keypoint values, found {kps.size}")


def write_openpose_json(path, keypoints, flavour=None):
    """Write (J, 3) keypoints as OpenPose JSON: J=18 -> legacy ``pose_keypoints``, J=25 -> ``pose_keypoints_2d``."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    flavour = flavour or {18: "coco18", 25: "body25"}.get(keypoints.shape[0])
    if flavour not in _FLAVOURS or keypoints.shape != (_FLAVOURS[flavour][1], 3):
        raise ValueError(f"keypoints must be (18, 3) or (25, 3), got {keypoints.shape}")
    key, _, version = _FLAVOURS[flavour]
    entry = {"face_keypoints" + ("_2d" if flavour == "body25" else ""): [], key: keypoints.reshape(-1).tolist(),
             "hand_right_keypoints" + ("_2d" if flavour == "body25" else ""): [],
             "hand_left_keypoints" + ("_2d" if flavour == "body25" else ""): []}
    Path(path).write_text(json.dumps({"version": version, "people": [entry]}))


def body25_to_coco18(keypoints):
    """(25, 3) BODY_25 -> (18, 3) COCO-18: drop mid_hip and the feet (names match one to one)."""
    return np.asarray(keypoints)[list(BODY25_TO_COCO18)].copy()


def coco18_to_body25(keypoints):
    """(18, 3) COCO-18 -> (25, 3) BODY_25; mid_hip = mean of the two hips when both are detected (as OpenPose
    would place it), feet points missing (0)."""
    keypoints = np.asarray(keypoints)
    out = np.zeros((25, 3), dtype=keypoints.dtype)
    out[list(BODY25_TO_COCO18)] = keypoints
    r_hip, l_hip = keypoints[8], keypoints[11]
    if r_hip[2] > 0 and l_hip[2] > 0:
        out[8] = (r_hip + l_hip) / 2
    return out


def render_skeleton(keypoints, height, width, threshold=0.01, stick_width=4, radius=4, num_limbs=17):
    """DAFlow's ``draw_keypoints.py`` skeleton image as an RGB uint8 (H, W, 3) array.

    keypoints: COCO-18 (18, 3) in pixels of the (H, W) canvas (convert BODY_25 with `body25_to_coco18`).
    Black canvas; a filled circle of `radius` per joint with confidence > threshold; then each of the first
    `num_limbs` limbs whose two joints are present as a filled ellipse (half-axes length/2 x stick_width),
    blended as canvas = 0.4 canvas + 0.6 (canvas with limb). DAFlow writes its colour table with
    cv2.imwrite (BGR) and reads the file with PIL (RGB), so the RGB image here holds the reversed colours,
    as the released ``vis_pose/*_keypoints.jpg`` files do.
    """
    kps = np.asarray(keypoints, dtype=np.float64)
    if kps.shape != (18, 3):
        raise ValueError(f"render_skeleton needs COCO-18 keypoints (18, 3), got {kps.shape}")
    canvas = np.zeros((height, width, 3), dtype=np.uint8)  # drawn in BGR, the way cv2.imwrite sees it
    present = kps[:, 2] > threshold
    for i in range(18):
        if present[i]:
            cv2.circle(canvas, (int(kps[i, 0]), int(kps[i, 1])), radius, COLORS[i], thickness=-1)
    for n, (a, b) in enumerate(LIMBS[:num_limbs]):
        a, b = a - 1, b - 1
        if not (present[a] and present[b]):
            continue
        (xa, ya), (xb, yb) = kps[a, :2], kps[b, :2]
        length = math.hypot(xa - xb, ya - yb)
        angle = math.degrees(math.atan2(ya - yb, xa - xb))
        poly = cv2.ellipse2Poly((int((xa + xb) / 2), int((ya + yb) / 2)), (int(length / 2), stick_width),
                                int(angle), 0, 360, 1)
        limb = canvas.copy()
        cv2.fillConvexPoly(limb, poly, COLORS[n])
        canvas = cv2.addWeighted(canvas, 0.4, limb, 0.6, 0)
    return canvas[..., ::-1].copy()  # BGR file -> RGB as PIL reads it
