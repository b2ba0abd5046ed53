"""Training clips and their multi-crop views (official `augs.py`, `dataset/`), and the smoke data set.

Each training sample is a clip of `clip_len` consecutive frames (every `frame_step`-th frame of a frame folder,
or of an mp4 resampled to `frame_rate` fps). Every frame is augmented independently into one global crop
(RandomResizedCrop scale (0.80, 0.95), bicubic, no colour augmentation) and `num_local` local crops
(RandomResizedCrop scale (0.05, 0.80), flip, colour jitter, grayscale, blur), all ImageNet-normalised.
"""
import os
from pathlib import Path

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as T

from common.data.davis import read_sequence_list, write_synthetic_davis
from common.data.video import VideoCollection

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SMOKE = "synthetic"  # --dataset name of the generated clips (DAVIS layout, in <out_dir>/data/DAVIS)


class MultiCrop:
    """frame (3, H, W) uint8 -> (global (3, G, G) float, locals (L, 3, l, l) float)."""

    def __init__(self, global_size=224, local_size=64, num_local=8, global_scale=(0.80, 0.95),
                 local_scale=(0.05, 0.80)):
        bicubic = InterpolationMode.BICUBIC
        norm = [T.ToDtype(torch.float32, scale=True), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
        self.global_t = T.Compose([T.RandomResizedCrop(global_size, scale=global_scale, interpolation=bicubic,
                                                       antialias=True), *norm])
        self.local_t = T.Compose([
            T.RandomResizedCrop(local_size, scale=local_scale, interpolation=bicubic, antialias=True),
            T.RandomHorizontalFlip(0.5),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
            T.RandomGrayscale(0.2),
            T.RandomApply([T.GaussianBlur(kernel_size=max(3, local_size // 8 * 2 + 1), sigma=(0.1, 2.0))], p=0.5),
            *norm])
        self.num_local = num_local

    def __call__(self, frame):
        return self.global_t(frame), torch.stack([self.local_t(frame) for _ in range(self.num_local)])


class ClipDataset(torch.utils.data.Dataset):
    """`clips_per_video` random clips per video and epoch (RandomClipSampler-like); item -> (globals (T, 3, G, G),
    locals (T, L, 3, l, l)). The clip start is drawn from the torch RNG, like the crops."""

    def __init__(self, videos, clip_len=4, frame_step=1, clips_per_video=5, transform=None):
        self.videos, self.clip_len, self.frame_step = videos, clip_len, frame_step
        self.clips_per_video, self.transform = clips_per_video, transform or MultiCrop()

    def __len__(self):
        return len(self.videos) * self.clips_per_video

    def __getitem__(self, idx):
        v = idx // self.clips_per_video
        span = (self.clip_len - 1) * self.frame_step + 1
        start = int(torch.randint(0, self.videos.num_frames(v) - span + 1, ()))
        clip = torch.from_numpy(self.videos.read_clip(v, start, self.clip_len, self.frame_step))  # (T, H, W, 3)
        views = [self.transform(f.permute(2, 0, 1)) for f in clip]
        return torch.stack([g for g, _ in views]), torch.stack([loc for _, loc in views])


def smoke_data_dir(out_dir, seed, num_train=6, num_val=3, num_frames=12, height=64, width=96):
    """Generate (once) the smoke clips in the DAVIS layout: train and val splits of moving textured objects."""
    root = Path(out_dir) / "data" / "DAVIS"
    if not (root / "ImageSets" / "2017" / "val.txt").exists():
        write_synthetic_davis(root, num_train, num_frames, height, width, seed=seed, split="train")
        write_synthetic_davis(root, num_val, num_frames, height, width, seed=seed + 1000, split="val")
    return root


def training_videos(cfg):
    """The training `VideoCollection` of `cfg.dataset` (+ the folder, recorded in checkpoints)."""
    span = (cfg.clip_len - 1) * cfg.frame_step + 1
    if cfg.dataset == SMOKE:
        root = smoke_data_dir(cfg.out_dir, cfg.seed)
        names = read_sequence_list(root / "ImageSets" / "2017" / "train.txt")
        return VideoCollection(root / "JPEGImages" / "480p", names=names, min_frames=span), root
    root = Path(cfg.data_root or os.environ.get("DATA_ROOT", "data")) / cfg.dataset
    return VideoCollection(root, frame_rate=cfg.frame_rate, min_frames=span), root

