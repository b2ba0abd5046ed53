"""Bad-input suite for the video object segmentation readers: DAVIS (`common.data.davis.load_davis`) and
YouTube-VOS (`common.data.youtube_vos.load_youtube_vos`).

Each case takes a freshly generated valid dataset (`write_synthetic_davis`; YouTube-VOS written here from
`synthetic_clip` in its on-disk layout), corrupts one thing, and reads every frame and mask through the real
reader, which must stop with a `DataError` naming the file. Part of the table-driven bad-input suites
(`tests/test_bad_input_<format>.py`): a new reader must join them with a table of its own (at least 8 cases),
and a new check in a reader adds a row here.
"""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.data.davis import (
    image_size,
    load_davis,
    read_annotation,
    synthetic_clip,
    write_annotation,
    write_synthetic_davis,
)
from common.data.video import VideoCollection
from common.data.youtube_vos import load_youtube_vos
from common.errors import DataError, DataWarning, check_utf8_name, warn_data

SEQ = "synth_val_000"
FRAME = f"JPEGImages/480p/{SEQ}/00003.jpg"
MASK0 = f"Annotations/480p/{SEQ}/00000.png"
MASK = f"Annotations/480p/{SEQ}/00004.png"
YT_NAMES = ["00000", "00005", "00010", "00015", "00020"]


@pytest.fixture(scope="module")
def davis_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("davis_valid") / "DAVIS"
    write_synthetic_davis(root, num_sequences=2, num_frames=6, height=24, width=32)
    return root


@pytest.fixture(scope="module")
def ytvos_root(tmp_path_factory):
    """YouTube-VOS valid/: object 1 annotated in the first frame, object 2 only where it first appears."""
    root = tmp_path_factory.mktemp("ytvos_valid") / "ytvos"
    frames, ids = synthetic_clip(np.random.default_rng(0), len(YT_NAMES), 24, 32, num_objects=2)
    for name, frame in zip(YT_NAMES, frames, strict=True):
        (root / "valid" / "JPEGImages" / "v1").mkdir(parents=True, exist_ok=True)
        Image.fromarray(frame).save(root / "valid" / "JPEGImages" / "v1" / f"{name}.jpg")
    write_annotation(root / "valid" / "Annotations" / "v1" / "00000.png", np.where(ids[0] == 1, 1, 0))
    write_annotation(root / "valid" / "Annotations" / "v1" / "00010.png", np.where(ids[2] == 2, 2, 0))
    meta = {"videos": {"v1": {"objects": {"1": {"category": "a", "frames": YT_NAMES},
                                          "2": {"category": "b", "frames": YT_NAMES[2:]}}}}}
    (root / "valid" / "meta.json").write_text(json.dumps(meta))
    return root


def read_davis(root):
    for seq in load_davis(root, split="val"):
        for t in range(len(seq)):
            seq.frame(t), seq.annotation(t)


def read_ytvos(root):
    for video in load_youtube_vos(root):
        video.first_appearances()


def read_video(root):
    """The DAVIS frame folders as training videos (`common.data.video.VideoCollection`, INO's train reader)."""
    videos = VideoCollection(Path(root) / "JPEGImages/480p")
    for i in range(len(videos)):
        videos.read_clip(i, 0, videos.num_frames(i))


def resize(rel):
    def corrupt(root):
        img = Image.open(root / rel)
        img.resize((16, 12), Image.NEAREST).save(root / rel)
    return corrupt


def blank_first_mask(root):
    write_annotation(root / MASK0, np.zeros((24, 32), np.uint8))


def non_utf8(rel_dir, name):
    def corrupt(root):
        shutil.copy(root / rel_dir / "00000.jpg", os.fsencode(root / rel_dir) + b"/" + name)
    return corrupt


def rename_sequence(root):
    os.rename(root / "JPEGImages/480p" / SEQ, os.fsencode(root / "JPEGImages/480p") + b"/synth_\xe9")
    (root / "ImageSets/2017/val.txt").unlink()   # sequences come from the folder listing


def write(rel, data):
    return lambda root: (root / rel).write_bytes(data if isinstance(data, bytes) else data.encode())


def rgb_mask(root):
    Image.open(root / MASK).convert("RGB").save(root / MASK)


def empty_sequence(root):
    for f in (root / "JPEGImages/480p" / SEQ).iterdir():
        f.unlink()


def yt_without_object_2(root):
    write_annotation(root / "valid/Annotations/v1/00010.png", np.zeros((24, 32), np.uint8))


# (case, reader, corrupt(root), file named in the error (relative to root), message fragment)
CASES = [
    ("davis_frame_size_differs", read_davis, resize(FRAME), FRAME, "has the size of its first frame"),
    ("davis_mask_size_differs", read_davis, resize(MASK), MASK, "this one is 16x12"),
    ("davis_blank_first_mask", read_davis, blank_first_mask, MASK0, "holds no object"),
    ("davis_first_mask_missing", read_davis, lambda root: (root / MASK0).unlink(), MASK0,
     "first-frame annotation missing"),
    ("davis_frame_name_not_utf8", read_davis, non_utf8(f"JPEGImages/480p/{SEQ}", b"0\xff.jpg"),
     f"JPEGImages/480p/{SEQ}/0\\xff.jpg", "name is not valid UTF-8"),
    ("davis_sequence_name_not_utf8", lambda root: load_davis(root), rename_sequence,
     "JPEGImages/480p/synth_\\xe9", "name is not valid UTF-8"),
    ("davis_frame_not_an_image", read_davis, write(FRAME, "<html>"), FRAME, "not a readable image"),
    ("davis_empty_mask_file", read_davis, write(MASK, b""), MASK, "not a readable image"),
    ("davis_rgb_mask", read_davis, rgb_mask, MASK, "expected a palette ('P') or grayscale ('L') PNG"),
    ("davis_sequence_without_frames", read_davis, empty_sequence, f"JPEGImages/480p/{SEQ}", "no .jpg frames"),
    ("video_frame_size_differs", read_video, resize(FRAME), FRAME, "this one is 16x12"),
    ("video_frame_name_not_utf8", read_video, non_utf8(f"JPEGImages/480p/{SEQ}", b"\xfe.jpg"),
     f"JPEGImages/480p/{SEQ}/\\xfe.jpg", "name is not valid UTF-8"),
    ("video_frame_not_an_image", read_video, write(FRAME, b""), FRAME, "not a readable image"),
    ("ytvos_frame_size_differs", read_ytvos, resize("valid/JPEGImages/v1/00005.jpg"), "valid/JPEGImages/v1/00005.jpg",
     "this one is 16x12"),
    ("ytvos_meta_not_utf8", read_ytvos, write("valid/meta.json", b'{"videos": {}}\n"\xff"'), "valid/meta.json",
     "expected UTF-8 text"),
    ("ytvos_meta_without_videos", read_ytvos, write("valid/meta.json", "{}"), "valid/meta.json",
     "top-level 'videos' mapping"),
    ("ytvos_mask_size_differs", read_ytvos, resize("valid/Annotations/v1/00010.png"),
     "valid/Annotations/v1/00010.png", "this one is 16x12"),
    ("ytvos_object_missing_from_its_first_mask", read_ytvos, yt_without_object_2, "valid/Annotations/v1/00010.png",
     "no pixel has id 2"),
    ("ytvos_frame_name_not_utf8", read_ytvos, non_utf8("valid/JPEGImages/v1", b"\xff.jpg"),
     "valid/JPEGImages/v1/\\xff.jpg", "name is not valid UTF-8"),
]


def test_valid_data_reads(davis_root, ytvos_root):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        read_davis(davis_root)
        read_ytvos(ytvos_root)
    assert image_size(davis_root / FRAME) == (24, 32)
    assert load_youtube_vos(ytvos_root)[0].first_appearances() == {0: [1], 2: [2]}


def test_mask_id_absent_from_the_first_frame_warns_with_sequence_and_frame(davis_root, tmp_path):
    root = shutil.copytree(davis_root, tmp_path / "DAVIS")
    ids = read_annotation(root / MASK)
    ids[:3, :3] = 3
    write_annotation(root / MASK, ids)
    (seq, _) = load_davis(root, split="val")
    with pytest.warns(DataWarning, match=rf"{SEQ}, frame 00004: object id\(s\) \[3\] do not appear in the first "
                                         r"frame 00000"):
        for t in range(len(seq)):
            seq.annotation(t)


def test_check_utf8_name_passes_valid_names_and_warn_data_names_the_file(tmp_path):
    assert check_utf8_name(tmp_path / "café.jpg") == tmp_path / "café.jpg"
    with pytest.warns(DataWarning, match=r"^/x/00004.png: odd$"):
        warn_data("/x/00004.png", "odd")


@pytest.mark.parametrize("read, corrupt, rel, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_a_data_error_naming_the_file(davis_root, ytvos_root, tmp_path, read, corrupt, rel, fragment):
    valid = ytvos_root if rel.startswith("valid/") else davis_root
    root = shutil.copytree(valid, tmp_path / valid.name)
    corrupt(root)
    with pytest.raises(DataError) as e:
        read(root)
    assert e.value.path == str(Path(root) / rel), str(e.value)
    assert fragment in str(e.value)
