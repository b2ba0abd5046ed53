"""Label propagation: chunked == dense (DINO's full affinity), the window, norm_mask, the video driver."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ino.model import vit
from ino.propagation import (
    frame_to_tensor,
    grid_to_ids,
    ids_to_grid,
    norm_mask,
    overlay,
    propagate_chunked,
    propagate_dense,
    propagate_video,
    window_mask,
)

from common.data.davis import read_annotation, synthetic_clip, write_annotation


def _random_case(m=3, h=6, w=7, d=8, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = F.normalize(torch.randn(h * w, d, generator=g), dim=-1)
    k = F.normalize(torch.randn(m, h * w, d, generator=g), dim=-1)
    y = torch.softmax(torch.randn(m, c, h * w, generator=g), dim=1)
    return q, k, y, h, w


def test_window_mask_is_the_square_neighbourhood():
    mask = window_mask(torch.tensor([0, 8]), 3, 4, 1)  # tokens (0, 0) and (2, 0) of a 3 x 4 grid
    expected0 = torch.zeros(3, 4, dtype=torch.bool)
    expected0[:2, :2] = True
    expected8 = torch.zeros(3, 4, dtype=torch.bool)
    expected8[1:, :2] = True
    assert torch.equal(mask[0].view(3, 4), expected0) and torch.equal(mask[1].view(3, 4), expected8)


@pytest.mark.parametrize("radius", [1, 2, 40, -1])
@pytest.mark.parametrize("chunk", [1, 5, 1000])
def test_chunked_equals_dense(radius, chunk):
    q, k, y, h, w = _random_case()
    dense = propagate_dense(q, k, y, h, w, topk=5, temperature=0.1, radius=radius)
    chunked = propagate_chunked(q, k, y, h, w, topk=5, temperature=0.1, radius=radius, chunk_size=chunk)
    assert torch.allclose(chunked, dense, atol=1e-5)


def test_propagation_is_a_softmax_over_the_topk_in_window():
    q, k, y, h, w = _random_case(m=2, h=4, w=4, seed=1)
    out = propagate_chunked(q, k, y, h, w, topk=3, temperature=0.1, radius=1)
    i = 5  # token (1, 1)
    qy, qx = divmod(i, w)
    cand = [(float(q[i] @ k[f, j]), f, j) for f in range(2) for j in range(h * w)
            if max(abs(j // w - qy), abs(j % w - qx)) <= 1]
    top = sorted(cand, reverse=True)[:3]
    wts = torch.softmax(torch.tensor([s for s, _, _ in top]) / 0.1, 0)
    expected = sum(wt * y[f, :, j] for wt, (_, f, j) in zip(wts, top, strict=True))
    assert torch.allclose(out[:, i], expected, atol=1e-6)


def test_norm_mask_and_label_resizing():
    seg = torch.tensor([[[0.2, 0.6], [0.4, 0.2]], [[0.0, 0.0], [0.0, 0.0]]])
    n = norm_mask(seg)
    assert torch.allclose(n[0], torch.tensor([[0.0, 1.0], [0.5, 0.0]])) and torch.equal(n[1], seg[1])
    ids = np.zeros((16, 24), np.uint8)
    ids[:8, :12] = 1
    ids[15, 23] = 255  # void (here a sampled corner) counts as background
    grid = ids_to_grid(ids, 2, 2, 3)
    assert grid.shape == (2, 2, 3) and torch.allclose(grid.sum(0), torch.ones(2, 3))
    assert grid[1, 0, 0] == 1 and grid[0, 1, 2] == 1  # align_corners=True samples the corner pixels
    back = grid_to_ids(grid, 8, (16, 24))
    assert back.shape == (16, 24) and back[2, 2] == 1 and back[12, 20] == 0
    x = frame_to_tensor(np.zeros((50, 70, 3), np.uint8), short_side=0, patch_size=8)
    assert x.shape == (1, 3, 48, 64)
    assert frame_to_tensor(np.zeros((480, 854, 3), np.uint8), 480, 8).shape == (1, 3, 480, 848)


class ColourFeatures(torch.nn.Module):
    """A 'backbone' whose patch features are the mean colour of each patch (plus position-free noise)."""
    patch_size = 8

    def block_features(self, x, block):
        f = F.avg_pool2d(x, 8)  # (1, 3, h, w)
        return f.permute(0, 2, 3, 1)


def test_propagate_video_tracks_textured_objects_and_round_trips_palette(tmp_path):
    frames, ids = synthetic_clip(np.random.default_rng(0), num_frames=6, height=64, width=96)
    preds = propagate_video(ColourFeatures(), frames, ids[0], block=1, short_side=0, n_context=3, radius=4)
    assert len(preds) == 6 and np.array_equal(preds[0], ids[0])
    accuracy = np.mean([(p == g).mean() for p, g in zip(preds[1:], ids[1:], strict=True)])
    assert accuracy > 0.8
    write_annotation(tmp_path / "p.png", preds[3])
    assert np.array_equal(read_annotation(tmp_path / "p.png"), preds[3])
    pic = overlay(frames[3], preds[3])
    assert pic.shape == frames[3].shape and pic.dtype == np.uint8


def test_late_objects_are_injected_and_kept():
    frames, ids = synthetic_clip(np.random.default_rng(1), num_frames=6, height=64, width=96)
    first = np.where(ids[0] == 2, 0, ids[0])  # object 2 is only given at frame 2
    given = np.where(ids[2] == 2, 2, 0).astype(np.uint8)
    preds = propagate_video(ColourFeatures(), frames, first, block=1, short_side=0, n_context=1, radius=4,
                            injections={2: given}, num_classes=3, late_objects="inject")
    assert not (preds[1] == 2).any()
    assert ((preds[2] == 2) == (given == 2)).mean() > 0.99
    assert (preds[5] == 2).sum() > 0.3 * (ids[5] == 2).sum()  # without the injection: 0 pixels
    # pixels per id in every frame, as the implementation before `late_objects="chains"` gave them
    old = [[5759, 385, 0], [5848, 296, 0], [5360, 251, 533], [5332, 413, 399], [5196, 536, 412], [5425, 504, 215]]
    assert [np.bincount(p.ravel(), minlength=3).tolist() for p in preds] == old


def test_real_vit_features_run_through_the_video_driver():
    torch.manual_seed(0)
    frames, ids = synthetic_clip(np.random.default_rng(2), num_frames=3, height=32, width=48)
    model = vit("vit_micro").eval()
    preds = propagate_video(model, frames, ids[0], block=2, short_side=0, n_context=2, chunk_size=7)
    assert [p.shape for p in preds] == [(32, 48)] * 3 and max(p.max() for p in preds) <= 2
    dense = propagate_video(model, frames, ids[0], block=2, short_side=0, n_context=2, propagate=propagate_dense)
    assert all(np.array_equal(a, b) for a, b in zip(preds, dense, strict=True))
