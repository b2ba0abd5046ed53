"""Semi-supervised VOS by label propagation with INO (or DINO) features; DAVIS J&F as the official tool.

    bash eval.sh --checkpoint runs/ino/<run>/checkpoints/last.pt --out_dir runs/ino-eval    # smoke: its own data
    bash eval.sh --checkpoint ino_checkpoint.pth --dataset davis --data_root /data/DAVIS --out_dir runs/davis
    bash eval.sh --checkpoint dino_deitsmall8_pretrain.pth --dataset davis --data_root /data/DAVIS --block 12
    bash eval.sh --checkpoint ino_checkpoint.pth --dataset youtube_vos --data_root /data/ytvos2018 \
        --n_context 20 --radius 50 --out_dir runs/ytvos                                         # CodaLab zip

Writes `results/<seq>/<frame>.png` (DAVIS palette PNGs, ids as the first frame's; the official
`davis2017-evaluation` can score this folder), `overlays/*.jpg`, and for DAVIS `metrics.json` (jf_mean,
j_mean, f_mean, recalls and decays, fractions) plus `per_object.json`. YouTube-VOS is scored only by its
server: `results/` is then `Annotations/` to zip, and metrics.json holds counts and speed.
"""
import dataclasses
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from common.checkpoint import load_checkpoint
from common.config import RunConfig, option, parse_config
from common.data.coco import read_image
from common.data.davis import load_davis, write_annotation
from common.data.youtube_vos import load_youtube_vos
from common.distributed import init_distributed
from common.errors import ConfigError, DataError, exit_on_user_error
from common.metrics.davis import davis_summary, evaluate_sequence
from common.rundir import Run

from .checkpoints import load_backbone
from .data import SMOKE
from .model import VisionTransformer
from .propagation import LATE_OBJECTS, overlay, propagate_chunked, propagate_dense, propagate_video

HERE = Path(__file__).resolve().parent


@dataclasses.dataclass
class EvalConfig(RunConfig):
    checkpoint: str = option("", "ours (last.pt), the official INO checkpoint.pth, or a DINO ViT checkpoint")
    weights: str = option("student", "which network of a checkpoint (INO evaluates the student)",
                          choices=("student", "teacher"))
    dataset: str = option("", "davis or youtube_vos; empty: the smoke data recorded in the checkpoint, else davis",
                          choices=("", "davis", "youtube_vos"))
    data_root: str = option("", "DAVIS: the folder holding JPEGImages/ (default $DATA_ROOT/DAVIS); "
                            "YouTube-VOS: the folder holding valid/")
    split: str = option("", "DAVIS ImageSets split (default val) / YouTube-VOS split folder (default valid)")
    year: str = option("2017", "DAVIS ImageSets year")
    sequences: list[str] = option([], "only these sequences / videos")
    block: int = option(0, "ViT block (1-based) of the features; 0: the checkpoint's eval_block, else 7")
    short_side: int = option(-1, "resize frames to this shorter side (0 native); -1: the checkpoint's, else 480")
    n_context: int = option(10, "previous frames used as context besides the first (DAVIS 10, YT-VOS 20)")
    radius: int = option(40, "square window radius in tokens (DAVIS 40, YT-VOS 50; negative: none)")
    topk: int = option(5, "affinities kept per query token")
    temperature: float = option(0.1, "softmax temperature of the affinities")
    chunk_size: int = option(1000, "query tokens per affinity chunk (memory bound)")
    propagation: str = option("chunked", "chunked (bounded memory) or dense (DINO's full affinity)",
                              choices=("chunked", "dense"))
    feature_control: str = option("none", "negative controls: shuffled = permute the token positions of every "
                                  "frame's features (must fail); untrained = the checkpoint's architecture with "
                                  "the initial weights a training run of --seed starts from (what INO training "
                                  "must beat)", choices=("none", "shuffled", "untrained"))
    late_objects: str = option("chains", "YouTube-VOS objects first annotated after the first frame: chains (as "
                               "INO/DUL: each starts its own reference chain, chains merged by summing their "
                               "predictions masked to the ids they own) or inject (one chain: the given mask "
                               "overwrites the propagated ids and its frame joins frame 0 as a long-term context)",
                               choices=LATE_OBJECTS)
    all_frames: bool = option(False, "YouTube-VOS: propagate over <split>_all_frames (30 fps) and write only the "
                              "frames of <split>/JPEGImages (every 5th), as STM/INO-style evaluations do")
    overlay_every: int = option(4, "write an overlay picture every this many frames (0: none)")


class ShuffledTokens(torch.nn.Module):
    """Wraps a backbone; its block features have their token positions randomly permuted per frame."""

    def __init__(self, backbone, seed=0):
        super().__init__()
        self.backbone, self.patch_size, self.gen = backbone, backbone.patch_size, torch.Generator().manual_seed(seed)

    def block_features(self, x, block):
        f = self.backbone.block_features(x, block)  # (B, h, w, D)
        b, h, w, d = f.shape
        perm = torch.randperm(h * w, generator=self.gen).to(f.device)
        return f.reshape(b, h * w, d)[:, perm].reshape(b, h, w, d)


def speed_text(frames, seconds):
    """'12.3 frames/s', or 's/frame' when under one frame per second (so that a slow run never reads as
    '0.0 frames/s')."""
    if frames and seconds > frames:
        return f"{seconds / frames:.3g} s/frame"
    return f"{frames / max(seconds, 1e-9):.3g} frames/s"


def untrained_like(backbone, seed):
    """A freshly initialised ViT of `backbone`'s architecture: the weights `train.py` starts from with this
    seed (it seeds torch and then builds the student's backbone first)."""
    torch.manual_seed(seed)
    grid = int(round((backbone.pos_embed.shape[1] - 1) ** 0.5))
    heads = backbone.blocks[0].attn.num_heads
    return VisionTransformer(backbone.patch_size, backbone.embed_dim, backbone.depth, heads, pos_grid=grid).eval()


class LazyFrames:
    """Frames read on access (a video need not fit in memory)."""

    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, t):
        return read_image(self.paths[t])        # bytes decoded in Python: any file name, truncated files named


def resolve(cfg, ckpt_config):
    """Fill the settings left to the checkpoint: dataset + folder, feature block, input size."""
    train = ckpt_config or {}
    block = cfg.block or train.get("eval_block", 7)
    short_side = cfg.short_side if cfg.short_side >= 0 else train.get("eval_short_side", 480)
    dataset, root = cfg.dataset, cfg.data_root
    if not dataset and train.get("dataset") == SMOKE:
        dataset, root = "davis", root or train.get("_data_dir", "")
    dataset = dataset or "davis"
    if not root:
        root = str(Path(os.environ.get("DATA_ROOT", "data")) / ("DAVIS" if dataset == "davis" else "youtube_vos"))
    return dataset, root, block, short_side


def write_outputs(run, name, frame_names, frames, preds, every):
    for t, (fname, ids) in enumerate(zip(frame_names, preds, strict=True)):
        write_annotation(run.dir / "results" / name / f"{fname}.png", ids)
        if every and t % every == 0:
            pic = overlay(frames[t], ids)
            (run.dir / "overlays").mkdir(exist_ok=True)
            cv2.imwrite(str(run.dir / "overlays" / f"{name}_{fname}.jpg"), cv2.cvtColor(pic, cv2.COLOR_RGB2BGR))


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(EvalConfig, argv, config_dir=HERE, description=__doc__)
    if not cfg.checkpoint:
        raise ConfigError("--checkpoint is required (ours, the official INO checkpoint.pth, or a DINO ViT-S/8 .pth)")
    _, device = init_distributed(cfg.device, cfg.cpu_threads)
    run = Run(cfg, "ino_eval")
    raw = load_checkpoint(cfg.checkpoint)  # DataError naming the file when it is missing or unreadable
    train_cfg = dict(raw.get("config") or {}, _data_dir=raw.get("data_dir", "")) if isinstance(raw, dict) else {}
    backbone = load_backbone(cfg.checkpoint, cfg.weights).to(device)
    del raw
    dataset, root, block, short_side = resolve(cfg, train_cfg)
    if cfg.feature_control == "shuffled":
        backbone = ShuffledTokens(backbone, cfg.seed)
    elif cfg.feature_control == "untrained":
        backbone = untrained_like(backbone, cfg.seed).to(device)
    propagate = propagate_chunked if cfg.propagation == "chunked" else propagate_dense
    kw = dict(block=block, short_side=short_side, n_context=cfg.n_context, radius=cfg.radius, topk=cfg.topk,
              temperature=cfg.temperature, chunk_size=cfg.chunk_size, device=device, amp=cfg.amp,
              late_objects=cfg.late_objects, propagate=propagate)
    run.log.info("%s in %s, block %d, short side %s, device %s", dataset, root, block, short_side, device)
    frames_done, start = 0, time.perf_counter()
    if dataset == "davis":
        seqs = load_davis(root, split=cfg.split or "val", year=cfg.year, sequences=cfg.sequences or None) \
            if (Path(root) / "ImageSets").is_dir() or cfg.sequences else load_davis(root)
        per_sequence = {}
        for seq in run.progress(seqs, desc="sequences"):
            frames = LazyFrames(seq.frames)
            preds = propagate_video(backbone, frames, seq.annotation(0), **kw)
            frames_done += len(frames)
            write_outputs(run, seq.name, [Path(f).stem for f in seq.frames], frames, preds, cfg.overlay_every)
            if all(a is not None for a in seq.annotations):
                gt = np.stack([seq.annotation(t) for t in range(len(seq))])
                per_sequence[seq.name] = evaluate_sequence(gt, np.stack(preds))
        seconds = time.perf_counter() - start
        if not per_sequence:
            raise DataError(root, "no sequence has annotations for every frame, so nothing can be scored")
        glob, per_object = davis_summary(per_sequence)
        (run.dir / "per_object.json").write_text(json.dumps(per_object, indent=2) + "\n")
        run.log.info("J&F %.4f  J %.4f  F %.4f  (%d frames, %s)", glob["jf_mean"], glob["j_mean"],
                     glob["f_mean"], frames_done, speed_text(frames_done, seconds))
        run.write_metrics(glob)
    else:
        videos = load_youtube_vos(root, cfg.split or "valid", all_frames=cfg.all_frames)
        if cfg.sequences:
            videos = [v for v in videos if v.name in cfg.sequences]
        for video in run.progress(videos, desc="videos"):
            first = video.first_appearances()
            t0 = min(first)
            names = video.frame_names()[t0:]
            frames = LazyFrames(video.frames[t0:])
            injections = {t - t0: video.annotation(video.frame_names()[t]) for t in first if t != t0}
            num_classes = 1 + max(video.objects)
            preds = propagate_video(backbone, frames, video.annotation(video.frame_names()[t0]),
                                    injections=injections, num_classes=num_classes, **kw)
            frames_done += len(frames)
            before = LazyFrames(video.frames[:t0])  # no object yet: background
            empty = [np.zeros(before[t].shape[:2], np.uint8) for t in range(t0)]
            names, frames, preds = video.frame_names()[:t0] + names, before.paths + frames.paths, empty + preds
            if cfg.all_frames:  # write only the frames the server scores (those of <split>/JPEGImages)
                keep = {p.stem for p in (Path(root) / (cfg.split or "valid") / "JPEGImages" / video.name).glob("*.jpg")}
                sel = [i for i, n in enumerate(names) if n in keep]
                names, frames, preds = [names[i] for i in sel], [frames[i] for i in sel], [preds[i] for i in sel]
            write_outputs(run, video.name, names, LazyFrames(frames), preds, cfg.overlay_every)
        seconds = time.perf_counter() - start
        run.write_metrics({"videos": len(videos), "frames": frames_done, "frames_per_second": frames_done / seconds})
    run.close()


if __name__ == "__main__":
    main()
