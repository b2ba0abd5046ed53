"""Training videos for self-supervised video methods: a folder of frame folders and/or mp4 files.

    <root>/<video>/00000.jpg 00001.jpg ...     a video as a folder of frames (jpg/png, sorted by name)
    <root>/<video>.mp4                          a video file, decoded with OpenCV

`VideoCollection(root)` lists both kinds; `read_clip(i, start, length, step)` returns `length` frames
(T, H, W, 3) uint8 RGB taken every `step` frames from `start`. For mp4 files `frame_rate` resamples the
video's native rate first (the official INO/CRW loaders use torchvision `VideoClips(frame_rate=8)`).
Names that are not valid UTF-8 are refused when listing (OpenCV crashes on them); a frame that is not a
readable image, or whose size differs from the clip's first frame, is a DataError naming the file.
"""
import dataclasses
from pathlib import Path

import cv2
import numpy as np

from ..errors import DataError, check_utf8_name
from .coco import read_image

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")


@dataclasses.dataclass
class Video:
    path: str
    frames: list  # frame file paths (frame folders); empty for video files
    num_frames: int
    fps: float  # native rate of a video file; 0 for frame folders


def _probe(path):
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(path, "OpenCV cannot open this video file")
    n, fps = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), float(cap.get(cv2.CAP_PROP_FPS))
    cap.release()
    return n, fps


class VideoCollection:
    """Every video under `root` (frame folders and video files), sorted by name.

    Args:
        frame_rate: resample video files to this many frames per second (0 keeps the native rate);
            frame folders are taken as they are.
        min_frames: skip videos shorter than this (after resampling).
        names: keep only these videos (folder names or file stems), e.g. a split list.
    """

    def __init__(self, root, frame_rate=0, min_frames=1, names=None):
        self.root, self.frame_rate = Path(root), frame_rate
        if not self.root.is_dir():
            raise DataError(self.root, "video folder not found (expected <root>/<video>/*.jpg or <root>/*.mp4)")
        self.videos = []
        for p in sorted(self.root.iterdir()):
            if names is not None and p.name not in names and p.stem not in names:
                continue
            check_utf8_name(p, "video")
            if p.is_dir():
                frames = sorted(str(check_utf8_name(f, "frame file")) for f in p.iterdir()
                                if f.suffix.lower() in FRAME_SUFFIXES)
                video = Video(str(p), frames, len(frames), 0.0)
            elif p.suffix.lower() in VIDEO_SUFFIXES:
                n, fps = _probe(p)
                video = Video(str(p), [], n, fps)
            else:
                continue
            if self.length(video) >= min_frames:
                self.videos.append(video)
        if not self.videos:
            raise DataError(self.root, f"no videos with at least {min_frames} frames")

    def __len__(self):
        return len(self.videos)

    def _source_indices(self, video, indices):
        """Resampled frame indices -> native frame indices."""
        if video.frames or not self.frame_rate or not video.fps:
            return list(indices)
        return [int(i * video.fps / self.frame_rate) for i in indices]

    def length(self, video):
        if video.frames or not self.frame_rate or not video.fps:
            return video.num_frames
        return int(video.num_frames * self.frame_rate / video.fps)

    def num_frames(self, i):
        return self.length(self.videos[i])

    def read_clip(self, i, start, length, step=1):
        """`length` frames of video `i` from `start`, every `step`: (T, H, W, 3) uint8 RGB."""
        video = self.videos[i]
        wanted = self._source_indices(video, range(start, start + length * step, step))
        if video.frames:
            out = []
            for k in wanted:
                img = read_image(video.frames[k])      # RGB; bytes decoded in Python, any file name
                if out and img.shape != out[0].shape:
                    raise DataError(video.frames[k], f"a frame of the size of {Path(video.frames[wanted[0]]).name}, "
                                    f"{out[0].shape[1]}x{out[0].shape[0]} (W x H); this one is "
                                    f"{img.shape[1]}x{img.shape[0]}")
                out.append(img)
            return np.stack(out)
        cap = cv2.VideoCapture(video.path)
        out, k = {}, 0
        while len(out) < len(set(wanted)):
            ok, img = cap.read()
            if not ok:
                break
            if k in wanted:
                out[k] = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
            k += 1
        cap.release()
        missing = [w for w in wanted if w not in out]
        if missing:
            raise DataError(video.path, f"could not decode frames {missing[:5]} (video has {k} readable frames)")
        return np.stack([out[w] for w in wanted])


def write_mp4(path, frames, fps=8):
    """Write (T, H, W, 3) uint8 RGB frames as an mp4 (OpenCV 'mp4v'); used for tests and demos."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t, h, w, _ = frames.shape
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        writer.write(cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2BGR))
    writer.release()
