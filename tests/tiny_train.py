"""A tiny training entry point built only from `common/`, for the plumbing tests.

It trains a 2-layer MLP on a fixed regression set with SGD, checkpointing every epoch, and supports what a
method's train.py must: --resume, torchrun DDP, non-finite-loss guard, metrics.json. The tests run it in a
subprocess (1 process, 2 processes under torchrun, killed with SIGKILL and resumed).
"""
import dataclasses
import time

import torch
from torch import nn

from common.checkpoint import load_checkpoint, restore_training_state, save_checkpoint, training_state
from common.config import RunConfig, config_to_dict, option, parse_config
from common.distributed import cleanup_distributed, distributed_sampler, init_distributed, wrap_ddp
from common.errors import exit_on_user_error
from common.rundir import Run, check_finite
from common.runtime import seed_everything


@dataclasses.dataclass
class TinyConfig(RunConfig):
    epochs: int = option(4, "passes over the 64 samples")
    batch_size: int = option(8, "global batch size (split evenly over ranks)")
    lr: float = option(0.05, "SGD learning rate")
    dropout: float = option(0.0, "dropout, to exercise RNG-state restore")
    step_sleep: float = option(0.0, "seconds to sleep per step, so a test can kill the run mid-way")
    nan_at_step: int = option(-1, "make the loss NaN at this step (guard test)")


def make_data(n=64):
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(n, 4, generator=g)
    y = (x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(n, generator=g)).unsqueeze(1)
    return torch.utils.data.TensorDataset(x, y)


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(TinyConfig, argv)
    dist, device = init_distributed(cfg.device, cfg.cpu_threads)
    seed_everything(cfg.seed, cfg.deterministic)
    run = Run(cfg, "tiny", dist)
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Dropout(cfg.dropout), nn.Linear(16, 1)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    step = start_epoch = 0
    if cfg.resume and run.last_checkpoint.exists():
        step, start_epoch = restore_training_state(load_checkpoint(run.last_checkpoint), model, opt, sched)
        run.log.info("resumed from %s at epoch %d", run.last_checkpoint, start_epoch)
    ddp_model = wrap_ddp(model, dist, device)
    data = make_data()
    sampler = distributed_sampler(data, shuffle=True, seed=cfg.seed)
    loader = torch.utils.data.DataLoader(data, batch_size=cfg.batch_size // dist.world_size, sampler=sampler)
    for epoch in range(start_epoch, cfg.epochs):
        sampler.set_epoch(epoch)
        for x, y in run.progress(loader, desc=f"epoch {epoch}"):
            loss = nn.functional.mse_loss(ddp_model(x.to(device)), y.to(device))
            if step == cfg.nan_at_step:
                loss = loss * float("nan")
            check_finite(loss, step, run.last_checkpoint)
            opt.zero_grad()
            loss.backward()
            opt.step()
            run.scalars(step, **{"train/loss": loss.item()})
            step += 1
            time.sleep(cfg.step_sleep)
        sched.step()
        if run.is_main:
            save_checkpoint(run.last_checkpoint, training_state(model, opt, sched, step=step, epoch=epoch + 1,
                                                                config=config_to_dict(cfg)))
            run.log.info("checkpointed epoch %d", epoch + 1)  # the kill test waits for this line
    if run.is_main:
        torch.save(model.state_dict(), run.dir / "final_weights.pt")
        run.write_metrics({"train_loss": loss.item(), "steps": step})
    run.close()
    cleanup_distributed()


if __name__ == "__main__":
    main()
