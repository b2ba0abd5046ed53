"""`torchrun` DDP plumbing: set-up and tear-down, rank-0 helpers, a distributed sampler.

Launch with `torchrun --standalone --nproc_per_node N -m <method>.train ...` (what `NPROC=N bash train.sh`
does). Without torchrun's environment variables everything here degrades to a single process.
"""
import dataclasses
import datetime
import os

import torch
import torch.distributed as dist
from torch.utils.data.distributed import DistributedSampler

from .runtime import select_device


@dataclasses.dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def enabled(self):
        return self.world_size > 1


def init_distributed(device="auto", cpu_threads=0):
    """Read torchrun's RANK/WORLD_SIZE/LOCAL_RANK, pick the device, and join the process group.

    Backend: NCCL on CUDA, gloo on CPU. On CPU, `cpu_threads` > 0 sets torch's intra-op thread count.
    Returns (DistInfo, torch.device).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    info = DistInfo(rank=int(os.environ.get("RANK", "0")), world_size=world_size,
                    local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    dev = select_device(device, info.local_rank)
    if dev.type == "cpu" and cpu_threads > 0:
        torch.set_num_threads(cpu_threads)
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs = {"device_id": dev} if dev.type == "cuda" else {}
        # generous timeout: rank 0 alone may run a long evaluation (e.g. COCO val) while the others wait
        dist.init_process_group(backend=backend, rank=info.rank, world_size=world_size,
                                timeout=datetime.timedelta(hours=2), **kwargs)
    return info, dev


def cleanup_distributed():
    """Leave the process group (safe to call when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def distributed_sampler(dataset, shuffle=True, seed=0, drop_last=False):
    """A DistributedSampler for this rank (also correct with one process); call `.set_epoch(e)` each epoch."""
    world = dist.get_world_size() if dist.is_initialized() else 1
    rank = dist.get_rank() if dist.is_initialized() else 0
    return DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=seed,
                              drop_last=drop_last)


def wrap_ddp(model, info, device, **kwargs):
    """DistributedDataParallel around `model` when running under torchrun, the model itself otherwise."""
    if not info.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, **kwargs)


def all_reduce_mean(tensor):
    """Mean of `tensor` over ranks (returns a new tensor; identity with one process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / dist.get_world_size()


def broadcast_object(obj, src=0):
    """Rank `src`'s python object on every rank (identity with one process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def barrier():
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
