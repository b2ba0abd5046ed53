"""Exponential moving average of the tuned weights, as OFA's VQA script runs fairseq's EMA.

`run_scripts/vqa/train_vqa_distributed.sh:52-56` passes `--uses-ema --store-ema --ema-fp32 --ema-decay 0.9999
--ema-start-update 0`, and validation uses the EMA weights (`--ema-eval`). fairseq's `EMA._step_internal`
(fairseq/models/ema/ema.py) updates, after every optimizer step, each floating-point entry of the state dict
(parameters *and* buffers such as BatchNorm running statistics) as

    ema = decay * ema + (1 - decay) * value              (decay = 0 before `ema_start_update` updates: a copy)

in fp32, copies integer entries (`num_batches_tracked`), and starts from the model as it is when training
begins. Here the average covers what training changes (the tuned parameters and the buffers, `train.tuned_state`);
frozen weights are constant, so their average is themselves (fairseq recomputes it, up to float rounding).
"""
import torch


class EMA:
    def __init__(self, state, decay, start_update=0):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must lie in [0, 1), got {decay}")
        self.decay, self.start_update = decay, start_update
        self.shadow = {k: v.detach().float().clone() if v.is_floating_point() else v.detach().clone()
                       for k, v in state.items()}

    @torch.no_grad()
    def step(self, state, updates):
        """Fold in the weights after `updates` optimizer steps (fairseq's `EMA.step(model, num_updates)`)."""
        decay = 0.0 if updates < self.start_update else self.decay
        for k, value in state.items():
            avg = self.shadow[k]
            if avg.is_floating_point():
                avg.mul_(decay).add_(value.detach().to(avg), alpha=1.0 - decay)
            else:
                avg.copy_(value)

    def averaged(self, like):
        """The averaged weights in the dtype and device of `like` (a state dict with the same keys)."""
        return {k: self.shadow[k].to(like[k]) for k in like}

    def state_dict(self):
        return {"decay": self.decay, "start_update": self.start_update,
                "shadow": {k: v.clone() for k, v in self.shadow.items()}}

    def load_state_dict(self, state):
        if set(state["shadow"]) != set(self.shadow):
            raise ValueError("EMA state holds other tensors than the model's tuned state")
        self.decay, self.start_update = state["decay"], state["start_update"]
        self.shadow = {k: v.clone() for k, v in state["shadow"].items()}
