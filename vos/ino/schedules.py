"""Per-iteration schedules (DINO's `cosine_scheduler`): learning rate, weight decay, EMA momentum, teacher tau."""
import numpy as np


def cosine_schedule(base, final, epochs, iters_per_epoch, warmup_epochs=0, start_warmup=0.0):
    """(epochs * iters_per_epoch,) values: linear warm-up from `start_warmup`, then a cosine from base to final."""
    warmup = np.linspace(start_warmup, base, int(warmup_epochs * iters_per_epoch), endpoint=False) \
        if warmup_epochs > 0 else np.array([])
    n = epochs * iters_per_epoch - len(warmup)
    cosine = final + 0.5 * (base - final) * (1 + np.cos(np.pi * np.arange(n) / max(n, 1)))
    return np.concatenate([warmup, cosine])


def teacher_temp_schedule(warmup_temp, temp, warmup_epochs, epochs, iters_per_epoch):
    """Linear warm-up of the teacher temperature over `warmup_epochs`, then constant (INO: 0 warm-up, 0.04)."""
    per_epoch = np.concatenate([np.linspace(warmup_temp, temp, warmup_epochs), np.full(epochs - warmup_epochs, temp)])
    return np.repeat(per_epoch, iters_per_epoch)


def peak_learning_rate(base_lr, clips_per_gpu, frames_per_clip, world_size):
    """INO's linear scaling rule: base_lr * (clips per GPU * frames per clip * GPUs) / 1024."""
    return base_lr * clips_per_gpu * frames_per_clip * world_size / 1024
