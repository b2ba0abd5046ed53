"""YouTube-VOS objects that appear late: INO's reference chains (`late_objects="chains"`, the default).

The videos are 32 x 32 frames (a 4 x 4 token grid) whose pixels encode a region (red) and the frame index
(green); the backbone turns them into one-hot region features plus a small one-hot frame code, so a token
matches exactly the context tokens of its own region (all equally), and the frame code tells which frames a
context holds. Ids: 0 background (region 0), 1 in token column 0 from frame 0, 2 in token column 3 from frame 3.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ino.data import IMAGENET_MEAN, IMAGENET_STD
from ino.propagation import grid_to_ids, ids_to_grid, propagate_chunked, propagate_video

from common.data.davis import synthetic_clip

REGIONS, FRAMES, T_LATE = 3, 6, 3


class OneHotRegions(torch.nn.Module):
    """Patch features: normalize(one_hot(region) + 0.1 one_hot(frame index)), read back from the pixels."""
    patch_size = 8

    def block_features(self, x, block):
        mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        px = F.avg_pool2d((x * std + mean) * 255, 8)[0]  # (3, h, w)
        region, frame = (px[0] / 40).round().long(), (px[1] / 10).round().long()
        f = torch.cat([F.one_hot(region, REGIONS), 0.1 * F.one_hot(frame, FRAMES)], -1).float()
        return f.unsqueeze(0)  # (1, h, w, D)


def _video():
    """Frames and per-frame ground-truth ids (object 2 enters at frame T_LATE)."""
    frames, gt = [], []
    for t in range(FRAMES):
        ids = np.zeros((32, 32), np.uint8)
        ids[:, :8] = 1
        if t >= T_LATE:
            ids[:, 24:] = 2
        frame = np.zeros((32, 32, 3), np.uint8)
        frame[..., 0], frame[..., 1] = 40 * ids, 10 * t  # region code == id here
        frames.append(frame)
        gt.append(ids)
    return frames, gt


def _frame_of(feats):
    """(N, D) features of one frame -> its frame index (the frame code)."""
    return int(feats[:, REGIONS:].sum(0).argmax())


class Spy:
    """A `propagate` that records (query frame, context frames, context labels) and then propagates."""

    def __init__(self, inner=propagate_chunked):
        self.inner, self.calls = inner, []

    def __call__(self, query, keys, labels, h, w, **kw):
        self.calls.append((_frame_of(query), [_frame_of(k) for k in keys], labels.clone()))
        return self.inner(query, keys, labels, h, w, **kw)


def _run(frames, first, injections, propagate=propagate_chunked, **kw):
    args = dict(block=1, short_side=0, n_context=2, radius=-1, topk=3, num_classes=3, propagate=propagate)
    return propagate_video(OneHotRegions(), frames, first, injections=injections, **(args | kw))


def test_late_object_starts_its_own_chain_at_its_first_frame():
    frames, gt = _video()
    spy = Spy()
    # frame 4 re-annotates object 1, which is known already: no chain starts there
    _run(frames, gt[0], {T_LATE: np.where(gt[T_LATE] == 2, 2, 0), 4: np.where(gt[4] == 1, 1, 0)}, propagate=spy)
    contexts = [(t, ctx) for t, ctx, _ in spy.calls]
    assert contexts == [
        (1, [0]), (2, [0, 1]), (3, [0, 1, 2]),  # one chain (frame 0 + 2 previous) up to the late object's frame
        (4, [0, 2, 3]), (4, [3]),  # chain 0, and chain 3 = its start frame + the previous frames after it
        (5, [0, 3, 4]), (5, [3, 4]),
    ]


def test_frames_before_the_late_object_are_unaffected_and_it_is_tracked():
    frames, gt = _video()
    chains = _run(frames, gt[0], {T_LATE: np.where(gt[T_LATE] == 2, 2, 0)})
    without = _run(frames, gt[0], {})
    for t in range(T_LATE):
        assert np.array_equal(chains[t], without[t]) and np.array_equal(chains[t], gt[t])
    for t in range(T_LATE, FRAMES):  # one-hot features: propagation is exact, the new chain carries object 2
        assert np.array_equal(chains[t], gt[t]), t
    assert not (without[FRAMES - 1] == 2).any()


def test_chain_predictions_are_summed_masked_to_their_ids_then_argmaxed():
    """With a `propagate` that returns random soft labels, every output is the hand-made merge of them."""
    frames, gt = _video()
    given = np.zeros((32, 32), np.uint8)
    given[:, 21:] = 2  # the grid samples column 20.67 of it: coverage s = 2/3 in token column 2, 1 in column 3
    spy = Spy(inner=lambda q, k, y, h, w, **kw: torch.rand(3, h * w, generator=torch.Generator().manual_seed(
        len(spy.calls))))
    preds = _run(frames, gt[0], {T_LATE: given}, propagate=spy)
    rand = [torch.rand(3, 16, generator=torch.Generator().manual_seed(i + 1)) for i in range(len(spy.calls))]
    owned0 = torch.tensor([1.0, 1.0, 0.0])[:, None]  # ids of frame 0's grid labels: background and object 1
    owned3 = torch.tensor([0.0, 0.0, 1.0])[:, None]  # the ids first given at frame 3

    def ids(seg):
        return grid_to_ids(seg.reshape(3, 4, 4), 8, (32, 32))

    # up to frame 3 a single chain: its prediction masked to its ids
    for t in (1, 2):
        assert np.array_equal(preds[t], ids(owned0 * rand[t - 1]))
    # frame 3: the chain-0 prediction, overwritten by the new object's downsampled mask: (1 - s) pred + s gt
    pred3 = owned0 * rand[2]
    gt3 = ids_to_grid(given, 3, 4, 4).reshape(3, 16)
    gt3[0] = 0
    s = gt3.sum(0, keepdim=True)
    seg3 = (1 - s) * pred3 + s * gt3
    token = 4 * 1 + 2  # row 1, column 2
    assert float(s[0, token]) == pytest.approx(2 / 3, abs=1e-5)
    assert float(seg3[2, token]) == pytest.approx(4 / 9, abs=1e-5)  # s * gt = s^2 there
    assert np.array_equal(preds[3], ids(seg3))
    # both chains take frame 3's blended labels as context: chain 3 as its start, chain 0 as a recent frame
    _, ctx0, labels0 = spy.calls[3]
    _, ctx3, labels3 = spy.calls[4]
    assert ctx0 == [0, 2, 3] and ctx3 == [3]
    assert torch.allclose(labels0[2], seg3) and torch.allclose(labels3[0], seg3)
    # frames 4, 5: sum of the chains' predictions, each masked to its ids
    for t, (a, b) in ((4, (3, 4)), (5, (5, 6))):
        merged = owned0 * rand[a] + owned3 * rand[b]
        assert np.array_equal(preds[t], ids(merged))
        assert not np.array_equal(preds[t], ids(rand[a] + rand[b]))  # unmasked sum: another answer


def test_without_late_objects_chains_and_inject_agree():
    class ColourFeatures(torch.nn.Module):
        patch_size = 8

        def block_features(self, x, block):
            return F.avg_pool2d(x, 8).permute(0, 2, 3, 1)

    frames, ids = synthetic_clip(np.random.default_rng(3), num_frames=5, height=64, width=96)
    kw = dict(block=1, short_side=0, n_context=2, radius=4)
    chains = propagate_video(ColourFeatures(), frames, ids[0], late_objects="chains", **kw)
    inject = propagate_video(ColourFeatures(), frames, ids[0], late_objects="inject", **kw)
    assert all(np.array_equal(a, b) for a, b in zip(chains, inject, strict=True))
    with pytest.raises(ValueError, match="late_objects"):
        propagate_video(ColourFeatures(), frames, ids[0], late_objects="merge", **kw)


def test_chains_on_a_textured_clip_keep_the_late_object():
    frames, ids = synthetic_clip(np.random.default_rng(1), num_frames=6, height=64, width=96)
    first = np.where(ids[0] == 2, 0, ids[0])  # object 2 is only given at frame 2

    class ColourFeatures(torch.nn.Module):
        patch_size = 8

        def block_features(self, x, block):
            return F.avg_pool2d(x, 8).permute(0, 2, 3, 1)

    given = np.where(ids[2] == 2, 2, 0).astype(np.uint8)
    preds = propagate_video(ColourFeatures(), frames, first, block=1, short_side=0, n_context=1, radius=4,
                            injections={2: given}, num_classes=3)
    assert not (preds[1] == 2).any()
    # frame 2 is the argmax of the blended labels on an 8 x 12 grid: the given mask up to its border
    inter = ((preds[2] == 2) & (given == 2)).sum()
    assert inter > 0.6 * (given == 2).sum() and inter > 0.8 * (preds[2] == 2).sum()
    assert (preds[5] == 2).sum() > 0.15 * (ids[5] == 2).sum()  # without the chain: 0 pixels
