"""What every DS-Net supernet shares (DS-MBNet, DS-ResNet, DS-ViT++): the gate's straight-through Gumbel decision,
the per-call gate records, the Stage II parameter set and the official weight initialisation.

Source: official code, changlin31/DS-Net @ 15cd303, `dyn_slim/models/dyn_slim_blocks.py` (`MultiHeadGate`,
`gumbel_softmax`) and `dyn_slim_net.py` (`get_gate`, `efficientnet_init_weights`); read, rewritten here.
"""
import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from .ops import SoftChoice, gumbel_softmax_st


@dataclasses.dataclass
class GateOutput:
    logits: torch.Tensor   # (B, K) slimming-head logits
    soft: torch.Tensor     # (B, K) Gumbel-softmax probabilities (official `keep_gate`)
    hard: torch.Tensor     # (B, K) straight-through one-hot
    index: torch.Tensor    # (B,) chosen route (0 = slimmest of the routing space)


class SlimmableNet(nn.Module):
    """What the supernets share: the gate decision, the MAdds/gate records, the slimming-head parameters.

    A gate module marks itself with `has_gate = True` and keeps its slimming head in `.gate` (official module
    name `gate.0`); `gate_parameters` collects those heads.
    """

    num_routes = 4
    route_start = 0
    forced_routes = None  # (B, G) long: gate g of sample b takes route forced_routes[b, g] (the gates still run)

    def configure_gate(self, tau=1.0, eval_noise=True):
        """tau: Gumbel temperature; eval_noise: add Gumbel noise in eval too (official quirk, default True).
        `gumbel_noise`, when set to a (B, K) tensor, is the noise of the next call (per-sample, reproducible)."""
        self.tau, self.eval_noise, self.gumbel_noise = tau, eval_noise, None

    def make_decide(self, width):
        """The gate decision of a "dynamic" / "dynamic_sliced" call (records a GateOutput per gate)."""
        def decide(logits):
            noise = self.training or self.eval_noise
            if noise and self.gumbel_noise is not None:
                noise = self.gumbel_noise
            soft, hard, index = gumbel_softmax_st(logits, self.tau, noise=noise)
            if self.forced_routes is not None:  # the random-gate control of evaluation.py
                index = self.forced_routes[:, len(self.gates)].to(logits.device)
                hard = F.one_hot(index, logits.shape[1]).to(soft.dtype)
            self.gates.append(GateOutput(logits, soft, hard, index))
            if width == "dynamic":
                return SoftChoice(hard, self.route_start)
            if (index != index[0]).any():
                raise ValueError("dynamic_sliced needs one route for the whole batch: run it with batch size 1")
            return self.route_start + int(index[0])
        return decide

    def gate_parameters(self):
        """The slimming heads (official `get_gate`): the only parameters Stage II trains."""
        return [p for m in self.modules() if getattr(m, "has_gate", False) for p in m.gate.parameters()]

    def init_weights(self):
        """Official `efficientnet_init_weights` (timm `_init_weight_goog`)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d) and m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                r = 1.0 / math.sqrt(m.weight.shape[0])
                nn.init.uniform_(m.weight, -r, r)
                nn.init.zeros_(m.bias)
