"""common.data.video (frame folders, mp4 via OpenCV) and common.data.youtube_vos (meta.json, late objects)."""
import json

import numpy as np
import pytest
from PIL import Image

from common.data.davis import synthetic_clip, write_annotation
from common.data.video import Video, VideoCollection, write_mp4
from common.data.youtube_vos import YouTubeVOSVideo, load_youtube_vos
from common.errors import DataError


def _frames(n=10, h=32, w=48):
    frames, _ = synthetic_clip(np.random.default_rng(0), num_frames=n, height=h, width=w)
    return frames


def test_frame_folder_and_mp4_clips(tmp_path):
    frames = _frames()
    (tmp_path / "a").mkdir()
    for t, f in enumerate(frames):
        Image.fromarray(f).save(tmp_path / "a" / f"{t:05d}.png")
    write_mp4(tmp_path / "b.mp4", frames, fps=8)
    (tmp_path / "notes.txt").write_text("ignored")
    vids = VideoCollection(tmp_path)
    assert len(vids) == 2 and all(isinstance(v, Video) for v in vids.videos)
    assert vids.num_frames(0) == 10 and vids.num_frames(1) == 10
    clip = vids.read_clip(0, start=2, length=4, step=2)
    assert clip.shape == (4, 32, 48, 3) and np.array_equal(clip[0], frames[2]) and np.array_equal(clip[3], frames[8])
    mp4 = vids.read_clip(1, start=1, length=3).astype(float)
    assert mp4.shape == (3, 32, 48, 3)
    assert np.abs(mp4 - frames[1:4]).mean() < 12  # lossy codec, same frames
    assert np.abs(mp4[0] - frames[1]).mean() < np.abs(mp4[0] - frames[8]).mean()
    assert len(VideoCollection(tmp_path, names=["b"])) == 1
    half = VideoCollection(tmp_path, frame_rate=4)  # resampled mp4: 8 fps -> 4 fps
    assert half.num_frames(1) == 5 and half.num_frames(0) == 10
    with pytest.raises(DataError, match="could not decode"):
        vids.read_clip(1, start=8, length=4)


def test_video_collection_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        VideoCollection(tmp_path / "nope")
    (tmp_path / "short").mkdir()
    Image.fromarray(_frames(1)[0]).save(tmp_path / "short" / "00000.jpg")
    with pytest.raises(DataError, match="at least 4"):
        VideoCollection(tmp_path, min_frames=4)


def test_youtube_vos_objects_appearing_mid_video(tmp_path):
    root = tmp_path / "ytvos"
    frames = _frames(4)
    names = ["00000", "00005", "00010", "00015"]
    for n, f in zip(names, frames, strict=True):
        (root / "valid" / "JPEGImages" / "v1").mkdir(parents=True, exist_ok=True)
        Image.fromarray(f).save(root / "valid" / "JPEGImages" / "v1" / f"{n}.jpg")
    first = np.zeros((32, 48), np.uint8)
    first[2:8, 2:8] = 1
    late = np.zeros((32, 48), np.uint8)
    late[10:20, 10:20] = 2
    write_annotation(root / "valid" / "Annotations" / "v1" / "00000.png", first)
    write_annotation(root / "valid" / "Annotations" / "v1" / "00010.png", late)
    meta = {"videos": {"v1": {"objects": {"1": {"category": "cat", "frames": names},
                                          "2": {"category": "dog", "frames": names[2:]}}}}}
    (root / "valid" / "meta.json").write_text(json.dumps(meta))
    (video,) = load_youtube_vos(root)
    assert isinstance(video, YouTubeVOSVideo) and video.frame_names() == names
    assert video.objects[2] == {"category": "dog", "first_frame": "00010"}
    assert video.first_appearances() == {0: [1], 2: [2]}
    assert np.array_equal(video.annotation("00010"), late)
    (root / "valid" / "meta.json").write_text("{}")
    with pytest.raises(DataError, match="videos"):
        load_youtube_vos(root)
    with pytest.raises(DataError, match="meta.json"):
        load_youtube_vos(tmp_path)
