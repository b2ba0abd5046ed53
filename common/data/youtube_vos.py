"""YouTube-VOS 2018 on disk: frames, palette PNG annotations and meta.json, with objects starting mid-video.

    <root>/{train,valid}/JPEGImages/<video>/<frame>.jpg     every 5th frame of the 30 fps video (00000, 00005, ...)
    <root>/{train,valid}/Annotations/<video>/<frame>.png    palette PNG, value = object id
    <root>/{train,valid}/meta.json                          {"videos": {video: {"objects": {"1": {"category": c,
                                                              "frames": [frame names where the object is]}}}}}
    <root>/valid_all_frames/JPEGImages/<video>/...          all 30 fps frames (optional)

In `valid/` an object's mask is given only in the frame where it first appears, which may be after frame 0;
`first_frame` of each object says where. Annotation PNGs are read with `common.data.davis.read_annotation`.
Validated: meta.json is UTF-8 JSON; video and frame names are valid UTF-8 (OpenCV crashes on others); each
frame and annotation PNG has the size of its video's first frame; an object's first annotated mask shows its id
(`first_appearances`). Each is a DataError naming the file.
"""
import dataclasses
import json
from pathlib import Path

from ..errors import DataError, check_utf8_name, read_utf8
from .davis import image_size, read_annotation

HINT = "download YouTube-VOS 2018 from https://youtube-vos.org/dataset/ and pass the folder holding valid/"


@dataclasses.dataclass
class YouTubeVOSVideo:
    name: str
    frames: list  # frame paths, in order (every frame that has to be predicted and written)
    annotations: dict  # frame name -> annotation PNG path (the frames where some object first appears)
    objects: dict  # object id (int) -> {"category": str, "first_frame": frame name}

    def frame_names(self):
        return [Path(f).stem for f in self.frames]

    def annotation(self, frame_name):
        return read_annotation(self.annotations[frame_name])

    def first_appearances(self):
        """{frame index: [object ids first annotated there]}, in frame order.

        DataError when an object's first frame has no JPEG or no annotation PNG, or its mask lacks the object's id.
        """
        index = {n: i for i, n in enumerate(self.frame_names())}
        out, masks = {}, {}
        for obj, info in sorted(self.objects.items()):
            first = info["first_frame"]
            if first not in index:
                raise DataError(self.annotations.get(first, self.name),
                                f"object {obj} first appears in frame {first}, which has no JPEG")
            if first not in self.annotations:
                raise DataError(self.name, f"object {obj} first appears in frame {first}, which has no annotation PNG")
            if first not in masks:
                masks[first] = self.annotation(first)
            if not (masks[first] == obj).any():
                raise DataError(self.annotations[first], f"video {self.name}: object {obj} should first appear in "
                                f"this mask (meta.json), but no pixel has id {obj}")
            out.setdefault(index[first], []).append(obj)
        return dict(sorted(out.items()))


def load_youtube_vos(root, split="valid", all_frames=False):
    """Read `<root>/<split>` (meta.json + JPEGImages + Annotations) -> list of `YouTubeVOSVideo`.

    `all_frames=True` takes the frames from `<root>/<split>_all_frames/JPEGImages` (the annotations stay
    those of `<split>/`), as INO and STM-style propagation do before writing every 5th frame.
    """
    root = Path(root)
    meta_path = root / split / "meta.json"
    if not meta_path.is_file():
        raise DataError(meta_path, "YouTube-VOS meta.json not found", hint=HINT)
    try:
        meta = json.loads(read_utf8(meta_path))["videos"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise DataError(meta_path, f"expected JSON with a top-level 'videos' mapping ({e})") from None
    jpeg_root = root / (f"{split}_all_frames" if all_frames else split) / "JPEGImages"
    out = []
    for name in sorted(meta):
        check_utf8_name(jpeg_root / name, "video folder")
        frames = sorted(str(check_utf8_name(p, "frame file")) for p in (jpeg_root / name).glob("*.jpg"))
        if not frames:
            raise DataError(jpeg_root / name, "no .jpg frames for this video", hint=HINT)
        ann_dir = root / split / "Annotations" / name
        anns = {p.stem: str(check_utf8_name(p, "annotation file")) for p in sorted(ann_dir.glob("*.png"))}
        size = image_size(frames[0])
        for path in frames[1:] + list(anns.values()):
            if image_size(path) != size:
                h, w = image_size(path)
                raise DataError(path, f"a frame or mask of the size of video {name}'s first frame, {size[1]}x{size[0]} "
                                f"(W x H); this one is {w}x{h}")
        objects = {}
        for obj, info in meta[name].get("objects", {}).items():
            seen = sorted(info.get("frames", []))
            annotated = [f for f in seen if f in anns] or seen
            if not annotated:
                raise DataError(meta_path, f"video {name} object {obj} lists no frames")
            objects[int(obj)] = {"category": info.get("category", ""), "first_frame": annotated[0]}
        out.append(YouTubeVOSVideo(name, frames, anns, objects))
    return out
