"""common.data.davis (formats, palette PNGs, synthetic clips) and common.metrics.davis (official J & F)."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.data.davis import (
    DavisSequence,
    davis_palette,
    load_davis,
    read_annotation,
    read_frame,
    read_sequence_list,
    synthetic_clip,
    write_annotation,
    write_synthetic_davis,
)
from common.errors import DataError
from common.metrics.davis import (
    boundary_radius,
    davis_summary,
    db_eval_boundary,
    db_eval_iou,
    db_statistics,
    disk,
    evaluate_results_dir,
    evaluate_sequence,
    f_measure,
    seg2bmap,
    split_objects,
)

SQUARE = np.zeros((4, 4), bool)
SQUARE[1:3, 1:3] = True
SHIFTED = np.zeros((4, 4), bool)
SHIFTED[1:3, 2:4] = True


# ---------------------------------------------------------------- formats
def test_palette_is_the_pascal_voc_colour_map():
    p = davis_palette()
    assert p.shape == (256, 3) and p.dtype == np.uint8
    assert p[0].tolist() == [0, 0, 0] and p[1].tolist() == [128, 0, 0] and p[2].tolist() == [0, 128, 0]
    assert p[3].tolist() == [128, 128, 0] and p[255].tolist() == [224, 224, 192]


def test_palette_png_round_trips_ids_and_void(tmp_path):
    ids = np.random.default_rng(0).integers(0, 6, size=(7, 9)).astype(np.uint8)
    ids[0, 0] = 255
    write_annotation(tmp_path / "a" / "00000.png", ids)
    img = Image.open(tmp_path / "a" / "00000.png")
    assert img.mode == "P"  # what the official evaluator reads: np.array(Image.open(path)) == ids
    assert np.array_equal(np.array(img), ids)
    assert np.array_equal(read_annotation(tmp_path / "a" / "00000.png"), ids)
    with pytest.raises(ValueError):
        write_annotation(tmp_path / "b.png", np.zeros((2, 2, 3)))


def test_davis2016_grayscale_masks_read_as_object_one(tmp_path):
    m = np.zeros((5, 6), np.uint8)
    m[1:3, 2:5] = 255
    Image.fromarray(m, mode="L").save(tmp_path / "m.png")
    assert np.array_equal(read_annotation(tmp_path / "m.png"), (m > 0).astype(np.uint8))
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(DataError, match="rgb.png"):
        read_annotation(tmp_path / "rgb.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="bad.png"):
        read_annotation(tmp_path / "bad.png")


def test_synthetic_clip_has_moving_occluding_objects():
    frames, ids = synthetic_clip(np.random.default_rng(3), num_frames=20, height=48, width=64, num_objects=3)
    assert frames.shape == (20, 48, 64, 3) and ids.shape == (20, 48, 64)
    assert set(np.unique(ids[0])) == {0, 1, 2, 3}
    centres = [np.argwhere(ids[t] == 1).mean(0) for t in (0, 19)]
    assert np.abs(centres[0] - centres[1]).max() > 2  # objects move
    # textured: the pixels of an object are not one flat colour, and objects differ from the background
    assert frames[0][ids[0] == 1].std(0).mean() > 5
    assert np.abs(frames[0][ids[0] == 1].mean(0) - frames[0][ids[0] == 0].mean(0)).max() > 10


def test_synthetic_clips_occlude_somewhere():
    # an object's area drops while another object covers it: object 1's visible area varies more than its
    # unoccluded ellipse does (scale change is <= 1%/frame)
    occluded = 0
    rng = np.random.default_rng(0)
    for _ in range(6):
        _, ids = synthetic_clip(rng, num_frames=16, height=48, width=64, num_objects=2)
        area = (ids == 1).sum((1, 2))
        occluded += area.min() < 0.7 * area.max()
    assert occluded >= 1


def test_write_synthetic_davis_is_read_back(tmp_path):
    names = write_synthetic_davis(tmp_path / "DAVIS", num_sequences=2, num_frames=5, height=32, width=48, seed=1)
    assert read_sequence_list(tmp_path / "DAVIS" / "ImageSets" / "2017" / "val.txt") == names
    seqs = load_davis(tmp_path / "DAVIS", split="val")
    assert [s.name for s in seqs] == names and isinstance(seqs[0], DavisSequence)
    assert len(seqs[0]) == 5 and seqs[0].frame(4).shape == (32, 48, 3)
    assert read_frame(seqs[0].frames[0]).dtype == np.uint8
    assert seqs[0].num_objects() == 2 and seqs[0].annotation(2).shape == (32, 48)
    assert [s.name for s in load_davis(tmp_path / "DAVIS")] == names  # without ImageSets: every folder
    again = tmp_path / "again"
    write_synthetic_davis(again, num_sequences=2, num_frames=5, height=32, width=48, seed=1)
    assert np.array_equal(read_annotation(again / "Annotations/480p/synth_val_001/00003.png"), seqs[1].annotation(3))


def test_missing_data_errors_name_the_place(tmp_path):
    with pytest.raises(DataError, match="JPEGImages"):
        load_davis(tmp_path)
    with pytest.raises(DataError, match="val.txt"):
        read_sequence_list(tmp_path / "val.txt")
    (tmp_path / "JPEGImages" / "480p" / "s").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "JPEGImages" / "480p" / "s" / "00000.jpg")
    with pytest.raises(DataError, match="first-frame annotation"):
        load_davis(tmp_path)


# ---------------------------------------------------------------- J
def test_iou_hand_computed_and_empty_and_void():
    assert db_eval_iou(SQUARE, SHIFTED) == pytest.approx(2 / 6)
    assert db_eval_iou(SQUARE, SQUARE) == 1.0
    empty = np.zeros((4, 4), bool)
    assert db_eval_iou(empty, empty) == 1.0  # empty union counts as perfect
    assert db_eval_iou(SQUARE, empty) == 0.0 and db_eval_iou(empty, SQUARE) == 0.0
    void = np.zeros((4, 4), bool)
    void[1:3, 3] = True  # the two pixels of SHIFTED outside SQUARE are void: 2 / 4
    assert db_eval_iou(SQUARE, SHIFTED, void) == pytest.approx(2 / 4)
    stack = db_eval_iou(np.stack([SQUARE, empty]), np.stack([SHIFTED, empty]))
    assert stack.tolist() == pytest.approx([2 / 6, 1.0])


# ---------------------------------------------------------------- F
def test_seg2bmap_hand_computed():
    expected = np.array([[1, 1, 1, 0], [1, 0, 1, 0], [1, 1, 1, 0], [0, 0, 0, 0]], bool)
    assert np.array_equal(seg2bmap(SQUARE), expected)
    expected_shifted = np.array([[0, 1, 1, 1], [0, 1, 0, 0], [0, 1, 1, 1], [0, 0, 0, 0]], bool)
    assert np.array_equal(seg2bmap(SHIFTED), expected_shifted)


def test_disk_and_radius_match_skimage_and_official_tolerance():
    assert disk(1).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    assert disk(2).sum() == 13 and disk(8).shape == (17, 17)
    assert boundary_radius((480, 854)) == 8 and boundary_radius((480, 910)) == 9
    assert boundary_radius((480, 1152)) == 10 and boundary_radius((10, 10), bound_th=3) == 3


def test_f_measure_hand_computed():
    # radius 0: exact boundary overlap; 4 shared pixels, |B_pred| = 7, |B_gt| = 8 -> P = 4/7, R = 1/2
    assert f_measure(SHIFTED, SQUARE, bound_th=0) == pytest.approx(8 / 15)
    assert f_measure(SHIFTED, SQUARE, bound_th=1) == 1.0  # every boundary pixel within a 1-px plus
    assert f_measure(SQUARE, SQUARE) == 1.0


def test_f_measure_empty_masks_and_void():
    empty = np.zeros((4, 4), bool)
    assert f_measure(empty, empty) == 1.0
    assert f_measure(empty, SQUARE) == 0.0 and f_measure(SQUARE, empty) == 0.0
    void = np.ones((4, 4), bool)  # everything void: both boundaries empty -> 1
    assert f_measure(SHIFTED, SQUARE, void_pixels=void, bound_th=0) == 1.0
    per_frame = db_eval_boundary(np.stack([SQUARE, SQUARE]), np.stack([SHIFTED, empty]), bound_th=0)
    assert per_frame.tolist() == pytest.approx([8 / 15, 0.0])


def test_f_uses_the_scaled_tolerance_on_large_frames():
    gt = np.zeros((480, 854), bool)
    gt[100:300, 200:500] = True
    for shift, expected in ((8, 1.0), (9, None)):  # radius 8 at 854x480: an 8-px shift is still perfect
        pred = np.roll(gt, shift, axis=1)
        f = f_measure(pred, gt)
        assert f == 1.0 if expected else f < 1.0


# ---------------------------------------------------------------- statistics and sequences
def test_db_statistics_hand_computed():
    values = np.linspace(1.0, 0.1, 10)  # bins [0:3], [2:6], [5:8], [7:10]
    mean, recall, decay = db_statistics(values)
    assert mean == pytest.approx(0.55) and recall == pytest.approx(0.5)
    assert decay == pytest.approx(0.9 - 0.2)
    assert db_statistics(np.array([np.nan, 1.0, 0.0]))[0] == pytest.approx(0.5)  # nanmean


def test_evaluate_sequence_drops_first_and_last_frame_and_pads_missing_objects():
    gt = np.zeros((5, 4, 4), np.uint8)
    gt[:, 1:3, 1:3] = 1
    gt[:, 0, 0] = 2
    pred = np.zeros_like(gt)
    pred[1:4] = gt[1:4]
    pred[2, 0, 0] = 0  # object 2 lost in frame 2
    pred[0] = 0  # frames 0 and 4 are not scored
    pred[4] = 0
    j, f = evaluate_sequence(gt, pred)
    assert j.shape == (2, 3)
    assert j[0].tolist() == [1, 1, 1] and j[1].tolist() == [1, 0, 1]
    assert f[1].tolist() == [1, 0, 1]
    j, _ = evaluate_sequence(gt, np.where(pred == 2, 0, pred))  # no id 2 at all: zero-padded object
    assert j[1].tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="id 3"):
        evaluate_sequence(gt, np.full_like(gt, 3))


def test_void_in_gt_is_background_for_semi_supervised():
    gt = np.zeros((3, 4, 4), np.uint8)
    gt[:, 1:3, 1:3] = 1
    gt[:, 3, :] = 255
    pred = gt.copy()
    pred[pred == 255] = 1  # predicting the void row as object 1 is a false positive (official: void unused)
    j, _ = evaluate_sequence(gt, pred)
    assert j[0, 0] == pytest.approx(4 / 8)
    assert split_objects(gt[0], 1).shape == (1, 4, 4) and not split_objects(gt[0], 1)[0, 3].any()


def test_summary_pools_objects_not_sequences():
    per_seq = {"a": (np.ones((1, 4)), np.ones((1, 4))), "b": (np.zeros((2, 4)), np.full((2, 4), 0.5))}
    glob, per_obj = davis_summary(per_seq)
    assert set(per_obj) == {"a_1", "b_1", "b_2"}
    assert glob["j_mean"] == pytest.approx(1 / 3) and glob["f_mean"] == pytest.approx(2 / 3)
    assert glob["jf_mean"] == pytest.approx(0.5)


def test_evaluate_results_dir(tmp_path):
    write_synthetic_davis(tmp_path / "DAVIS", num_sequences=2, num_frames=5, height=32, width=48, seed=2)
    seqs = load_davis(tmp_path / "DAVIS", split="val")
    for s in seqs:
        for t, fr in enumerate(s.frames):
            write_annotation(tmp_path / "res" / s.name / f"{Path(fr).stem}.png", s.annotation(t))
    glob, per_obj = evaluate_results_dir(seqs, tmp_path / "res")
    assert glob["jf_mean"] == 1.0 and len(per_obj) == 4
    (tmp_path / "res" / seqs[0].name / "00002.png").unlink()
    with pytest.raises(DataError, match="00002.png"):
        evaluate_results_dir(seqs, tmp_path / "res")


# ---------------------------------------------------------------- real DAVIS-2016 sequences
@pytest.mark.realdata
def test_real_davis2016_sequences_score_against_themselves_and_a_shift(real_data):
    seqs = load_davis(real_data("davis2016/DAVIS"), sequences=["blackswan", "dog"])
    assert [len(s) for s in seqs] == [50, 60]
    per_seq, shifted = {}, {}
    for s in seqs:
        gt = np.stack([s.annotation(t) for t in range(len(s))])
        assert gt.shape[1:] == (480, 854) and set(np.unique(gt)) == {0, 1} and s.num_objects() == 1
        assert s.frame(0).shape == (480, 854, 3)
        per_seq[s.name] = evaluate_sequence(gt, gt)
        moved = np.roll(gt, 20, axis=2)
        shifted[s.name] = evaluate_sequence(gt, moved)
        direct = [(g & m).sum() / (g | m).sum() for g, m in zip(gt[1:-1] == 1, moved[1:-1] == 1, strict=True)]
        assert shifted[s.name][0][0] == pytest.approx(direct)
    glob, _ = davis_summary(per_seq)
    assert glob["j_mean"] == 1.0 and glob["f_mean"] == 1.0 and glob["jf_mean"] == 1.0
    glob_shift, per_obj = davis_summary(shifted)
    assert 0.2 < glob_shift["j_mean"] < 0.95 and 0.05 < glob_shift["f_mean"] < 0.95
    # the official davis2017-evaluation (commit ac7c43f, DAVISEvaluation semi-supervised) on these very
    # predictions written as palette PNGs (GT as palette PNGs with id 1), measured 2026-11-23; see vos/ino/README.md
    official = dict(jf_mean=0.5381400603352924, j_mean=0.6645907832787921, j_recall=1.0,
                    j_decay=-0.03396035486239557, f_mean=0.4116893373917927, f_recall=0.5,
                    f_decay=-0.012042500669716044)
    assert glob_shift == pytest.approx(official, abs=1e-12)
    assert per_obj["dog_1"]["f_mean"] == pytest.approx(0.29246330048636887, abs=1e-12)
    assert per_obj["blackswan_1"]["j_decay"] == pytest.approx(0.00020569547797233412, abs=1e-12)
