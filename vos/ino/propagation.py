"""Label propagation with ViT patch features (INO `infer_vos.py` / `labelprop/dino.py`, DINO's
`eval_video_segmentation.py`), memory-bounded by chunking the queries.

For target frame t with L2-normalised patch features q (N tokens) and context frames (the first frame plus the
`n_context` previous frames) with features k (M frames x N tokens) and soft labels y (M x C x N):

    a_ij = exp(<q_i, k_j> / tau) if token j lies in the square window max(|dy|, |dx|) <= R around i, else 0
    keep the top-k a_ij per query i, normalise them to sum 1,  seg_t[:, i] = sum_j a_ij y[:, j]

which is a softmax over the top-k windowed cosine similarities divided by tau. `propagate_dense` does this
as DINO's script does (the full (M N x N) affinity of a frame at once, a dense (N x N) window mask);
`propagate_chunked` does it for `chunk_size` queries at a time, building each chunk's window on the fly, so
peak memory is O(chunk_size * M * N) instead of O(M * N^2). Both give the same result (tested).
"""
import collections

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from common.data.davis import davis_palette

from .data import IMAGENET_MEAN, IMAGENET_STD


def window_mask(rows, h, w, radius):
    """(n,) query token indices on an h x w grid -> (n, h*w) bool: keys with max(|dy|, |dx|) <= radius."""
    qy, qx = rows // w, rows % w
    ky = torch.arange(h, device=rows.device).repeat_interleave(w)
    kx = torch.arange(w, device=rows.device).repeat(h)
    return ((qy[:, None] - ky[None]).abs() <= radius) & ((qx[:, None] - kx[None]).abs() <= radius)


def propagate_chunked(query, keys, labels, h, w, topk=5, temperature=0.1, radius=40, chunk_size=1000):
    """Soft labels of one target frame.

    Args:
        query: (N, D) L2-normalised target features, N = h * w.
        keys: (M, N, D) L2-normalised context features.
        labels: (M, C, N) context soft labels.
        radius: window radius in tokens; a negative radius means no window.
    Returns (C, N).
    """
    m, n, d = keys.shape
    c = labels.shape[1]
    keys_flat = keys.reshape(m * n, d)  # (M N, D)
    labels_flat = labels.permute(1, 0, 2).reshape(c, m * n)  # (C, M N)
    out = labels.new_empty(c, n)
    for start in range(0, n, chunk_size):
        rows = torch.arange(start, min(start + chunk_size, n), device=query.device)
        sim = query[rows] @ keys_flat.T  # (n_c, M N) cosine similarities
        if radius >= 0:
            outside = ~window_mask(rows, h, w, radius).repeat(1, m)  # same window in every context frame
            sim = sim.masked_fill(outside, float("-inf"))
        vals, idx = sim.topk(topk, dim=1)  # (n_c, k)
        weights = torch.softmax(vals.float() / temperature, dim=1).to(labels.dtype)
        out[:, rows] = (labels_flat[:, idx] * weights).sum(-1)  # (C, n_c, k) -> (C, n_c)
    return out


def propagate_dense(query, keys, labels, h, w, topk=5, temperature=0.1, radius=40):
    """The same as `propagate_chunked`, computed like DINO's `label_propagation`: the full affinity
    exp(K Q^T / tau) of all M N context tokens to all N target tokens, multiplied by the dense window mask,
    entries below each column's k-th largest set to 0, columns normalised. Reference and benchmark peer."""
    m, n, d = keys.shape
    c = labels.shape[1]
    aff = torch.exp((keys @ query.T).float() / temperature)  # (M, N_src, N_tgt)
    if radius >= 0:
        dense = window_mask(torch.arange(n, device=query.device), h, w, radius).T.float()  # (N_src, N_tgt)
        aff = aff * dense.unsqueeze(0)
    aff = aff.reshape(m * n, n)  # (M N_src, N_tgt)
    kth = aff.topk(topk, dim=0).values.min(dim=0).values  # (N_tgt,)
    aff = torch.where(aff < kth, torch.zeros_like(aff), aff)
    aff = aff / aff.sum(dim=0, keepdim=True)
    return labels.permute(1, 0, 2).reshape(c, m * n).float() @ aff  # (C, N_tgt)


def norm_mask(seg):
    """DINO's `norm_mask`: min-max normalise every channel of (C, H, W) that has a positive maximum."""
    lo = seg.amin(dim=(1, 2), keepdim=True)
    hi = (seg - lo).amax(dim=(1, 2), keepdim=True)
    positive = seg.amax(dim=(1, 2), keepdim=True) > 0
    return torch.where(positive & (hi > 0), (seg - lo) / hi.clamp_min(1e-12), seg)


def frame_to_tensor(frame, short_side, patch_size):
    """(H, W, 3) uint8 -> (1, 3, H', W') normalised: shorter side resized to `short_side` (0 keeps the size),
    both sides floored to a multiple of the patch size (INO: cv2 bilinear, `round_number=8`)."""
    h, w = frame.shape[:2]
    if short_side:
        scale = short_side / min(h, w)
        h, w = round(h * scale), round(w * scale)
    h, w = h - h % patch_size, w - w % patch_size
    img = cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR) if (h, w) != frame.shape[:2] else frame
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div(255)
    x = (x - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return x.unsqueeze(0)


def ids_to_grid(ids, num_classes, h, w):
    """(H, W) ids -> (C, h, w) soft labels: one-hot, bilinearly (align_corners=True) resized to the grid.
    Ids outside 0..C-1 (void 255) count as background."""
    ids = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    ids = torch.where(ids < num_classes, ids, torch.zeros_like(ids))
    onehot = F.one_hot(ids, num_classes).permute(2, 0, 1).float().unsqueeze(0)  # (1, C, H, W)
    return F.interpolate(onehot, size=(h, w), mode="bilinear", align_corners=True)[0]


def grid_to_ids(seg, patch_size, out_hw):
    """(C, h, w) soft labels -> (H, W) uint8 ids: x patch bilinear upsampling, `norm_mask`, argmax, nearest
    resize to the original frame size."""
    up = F.interpolate(seg.unsqueeze(0).float(), scale_factor=patch_size, mode="bilinear", align_corners=False)[0]
    ids = norm_mask(up).argmax(0).to(torch.uint8).cpu().numpy()
    return cv2.resize(ids, (out_hw[1], out_hw[0]), interpolation=cv2.INTER_NEAREST)


@torch.no_grad()
def frame_features(backbone, frame, block, short_side, device, amp=False):
    """(H, W, 3) uint8 -> (h, w, D) L2-normalised patch features of block `block` (float32)."""
    x = frame_to_tensor(frame, short_side, backbone.patch_size).to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
        feats = backbone.block_features(x, block)[0]
    return F.normalize(feats.float(), dim=-1)


LATE_OBJECTS = ("chains", "inject")


@torch.no_grad()
def propagate_video(backbone, frames, first_ids, *, block=7, short_side=480, n_context=10, radius=40, topk=5,
                    temperature=0.1, chunk_size=1000, device="cpu", amp=False, num_classes=None,
                    injections=None, late_objects="chains", propagate=propagate_chunked):
    """Segment a video from its first-frame annotation (semi-supervised protocol).

    Args:
        frames: sequence of (H, W, 3) uint8 frames (read lazily if it is a lazy sequence).
        first_ids: (H, W) ids of frame 0 (0 background, 255 void).
        injections: {t: (H, W) ids} annotations of objects that first appear at frame t > 0 (YouTube-VOS).
        late_objects: how the objects of `injections` enter.
            "chains" (INO / DUL `infer_vos.py`, default): the ids first seen at frame t (ids already known are
            ignored there) start a new reference chain at t. The soft labels of t become
            (1 - s) * pred + s * gt, s the grid coverage of the new objects' bilinearly downsampled masks,
            and frame t is the chain's long-term context. Every chain propagates from its start frame plus the
            previous `n_context` frames after that start (all frames' stored labels are the merged ones);
            the frame's labels are the sum of the chains' predictions, each masked to the ids the chain owns
            (chain 0: the channels present in frame 0's grid labels, background included; chain t: its new
            ids). The output at t is the argmax of these blended labels.
            "inject": one chain; the given pixels of frame t overwrite the propagated ids exactly, the labels
            of t become gt + (1 - s) * pred, and frame t joins frame 0 as a long-term context.
            Either way memory stays bounded: the recent frames plus one start frame per chain are kept.
        propagate: `propagate_chunked` (default) or `propagate_dense` (same output, more memory).
    Returns a list of (H, W) uint8 id maps, frame 0 being `first_ids` (void set to 0).
    """
    if late_objects not in LATE_OBJECTS:
        raise ValueError(f"late_objects={late_objects!r} is not one of {', '.join(LATE_OBJECTS)}")
    device = torch.device(device)
    injections = injections or {}
    first_ids = np.asarray(first_ids)
    if num_classes is None:
        num_classes = 1 + max([int(a[a != 255].max(initial=0)) for a in (first_ids, *injections.values())])
    feat = frame_features(backbone, frames[0], block, short_side, device, amp)
    h, w, _ = feat.shape
    first = (feat.reshape(h * w, -1), ids_to_grid(first_ids, num_classes, h, w).to(device).reshape(-1, h * w))
    kw = dict(topk=topk, temperature=temperature, radius=radius,
              **({"chunk_size": chunk_size} if propagate is propagate_chunked else {}))

    def predict(query, ctx):  # ctx: list of (features (N, D), labels (C, N)) -> (C, N)
        return propagate(query, torch.stack([k for k, _ in ctx]), torch.stack([y for _, y in ctx]), h, w, **kw)

    def given_grid(given):  # (H, W) ids of newly given objects -> (C, N) grid labels, background channel 0
        gt = ids_to_grid(given, num_classes, h, w).to(device).reshape(-1, h * w)
        gt[0] = 0  # only the annotated objects overwrite; their background says nothing about others
        return gt

    out = [np.where(first_ids == 255, 0, first_ids).astype(np.uint8)]
    if late_objects == "inject":
        long_term, recent = [first], collections.deque(maxlen=n_context)
        for t in range(1, len(frames)):
            frame = frames[t]
            feat = frame_features(backbone, frame, block, short_side, device, amp).reshape(h * w, -1)
            seg = predict(feat, long_term + list(recent))
            ids = grid_to_ids(seg.reshape(-1, h, w), backbone.patch_size, frame.shape[:2])
            if t in injections:
                given = np.asarray(injections[t])
                ids = np.where((given > 0) & (given != 255), given, ids).astype(np.uint8)  # given masks kept
                gt = given_grid(given)
                seg = (1 - gt.sum(0, keepdim=True).clamp(max=1)) * seg + gt
                long_term.append((feat, seg))
            recent.append((feat, seg))
            out.append(ids)
        return out

    # chains: (start frame, its features, its labels, (C, 1) 0/1 mask of the channels the chain owns)
    chains = [(0, *first, (first[1].amax(1, keepdim=True) > 0).to(first[1].dtype))]
    known = set(np.unique(first_ids).tolist()) | {0, 255}
    recent = collections.deque(maxlen=n_context)  # (t, features, merged labels) of the last n_context frames
    for t in range(1, len(frames)):
        frame = frames[t]
        feat = frame_features(backbone, frame, block, short_side, device, amp).reshape(h * w, -1)
        seg = sum(owned * predict(feat, [(k0, y0)] + [(k, y) for tt, k, y in recent if tt > t0])
                  for t0, k0, y0, owned in chains)
        new = sorted(set(np.unique(injections[t]).tolist()) - known) if t in injections else []
        if new:  # these objects start a chain here
            known.update(new)
            given = np.asarray(injections[t])
            gt = given_grid(np.where(np.isin(given, new), given, 0))
            cover = gt.sum(0, keepdim=True)
            seg = (1 - cover) * seg + cover * gt
            owned = torch.zeros(num_classes, 1, dtype=seg.dtype, device=device)
            owned[[i for i in new if i < num_classes]] = 1
            chains.append((t, feat, seg, owned))
        recent.append((t, feat, seg))
        out.append(grid_to_ids(seg.reshape(-1, h, w), backbone.patch_size, frame.shape[:2]))
    return out


def overlay(frame, ids, alpha=0.5):
    """(H, W, 3) uint8 frame with ids painted in the DAVIS palette -> (H, W, 3) uint8 RGB."""
    colours = davis_palette()[ids]
    blend = np.where((ids > 0)[..., None], (1 - alpha) * frame + alpha * colours, frame).astype(np.uint8)
    edges = cv2.morphologyEx((ids > 0).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    blend[edges] = colours[edges]
    return blend
