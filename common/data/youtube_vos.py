"""YouTube-VOS 2018 on disk: frames, palette PNG annotations and meta.json, with objects starting mid-video.

    <root>/{train,valid}/JPEGImages/<video>/<frame>.jpg     every 5th frame of the 30 fps video (00000, 00005, ...)
    <root>/{train,valid}/Annotations/<video>/<frame>.png    palette PNG, value = object id
    <root>/{train,valid}/meta.json                          {"videos": {video: {"objects": {"1": {"category": c,
                                                              "frames": [frame names where the object is]}}}}}
    <root>/valid_all_frames/JPEGImages/<video>/...          all 30 fps frames (optional)

In `valid/` an object's mask is given only in the frame where it first appears, which may be after frame 0;
`first_frame` of each object says where. Annotation PNGs are read with `common.data.davis.read_annotation`.
"""
import dataclasses
import json
from pathlib import Path

from ..errors import DataError
from .davis import read_annotation

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
        """{frame index: [object ids first annotated there]}, in frame order."""
        index = {n: i for i, n in enumerate(self.frame_names())}
        out = {}
        for obj, info in sorted(self.objects.items()):
            if info["first_frame"] not in index:
                raise DataError(self.annotations.get(info["first_frame"], self.name),
                                f"object {obj} first appears in frame {info['first_frame']}, which has no JPEG")
            out.setdefault(index[info["first_frame"]], []).append(obj)
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
        meta = json.loads(meta_path.read_text())["videos"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise DataError(meta_path, f"expected JSON with a top-level 'videos' mapping ({e})") from None
    jpeg_root = root / (f"{split}_all_frames" if all_frames else split) / "JPEGImages"
    out = []
    for name in sorted(meta):
        frames = sorted(str(p) for p in (jpeg_root / name).glob("*.jpg"))
        if not frames:
            raise DataError(jpeg_root / name, "no .jpg frames for this video", hint=HINT)
        ann_dir = root / split / "Annotations" / name
        anns = {p.stem: str(p) for p in sorted(ann_dir.glob("*.png"))}
        objects = {}
        for obj, info in meta[name].get("objects", {}).items():
            seen = sorted(info.get("frames", []))
            annotated = [f for f in seen if f in anns] or seen
            if not annotated:
                raise DataError(meta_path, f"video {name} object {obj} lists no frames")
            objects[int(obj)] = {"category": info.get("category", ""), "first_frame": annotated[0]}
        out.append(YouTubeVOSVideo(name, frames, anns, objects))
    return out
