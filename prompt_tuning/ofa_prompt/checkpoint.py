"""Load the official fairseq OFA checkpoints (`ofa_base.pt`, `ofa_large.pt`, fine-tuned task files).

Checkpoint format (research note §6.11; fairseq `trainer.py:383-427`): a dict whose `model` entry is the state
dict (or `extra_state["ema"]` for EMA evaluation); weights may be fp16 and are cast to fp32. Sizes are taken from
the tensor shapes, never from the arch string (OFA#77: an early `ofa_large.pt` named itself `m6_unify_large`).
Buffers that fairseq recomputes (`*.version`, `*_rp_bucket`, `decoder.image_position_idx`) are skipped, the
output projection is the shared token matrix, and parameters the checkpoint lacks (prompt encoders, adapters)
keep their fresh N(0, 0.02) initialisation, as fairseq's `upgrade_state_dict_named` leaves them.
"""
from pathlib import Path

import torch

from common.errors import DataError

from .model import OFA, OFAConfig

SKIPPED_SUFFIXES = (".version", "_rp_bucket", "decoder.image_position_idx", "decoder.output_projection.weight")
NEW_PARAMETER_MARKERS = ("prompt_encoder.", ".adapter.")        # created by prompt/adapter flags, not pretrained
RESNET_PREFIX = "encoder.embed_images."


def official_state_dict(path, ema=False):
    """The model state dict of a fairseq OFA checkpoint file, fp32."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "expected an OFA checkpoint file",
                        hint="released checkpoints are listed in OFA-Sys/OFA checkpoints.md (ofa_base.pt, ...)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:                                      # noqa: BLE001 - any unpickling failure
        raise DataError(path, f"expected a torch checkpoint ({type(e).__name__}: {e})") from None
    if ema:
        state = (ckpt.get("extra_state") or {}).get("ema")
        if state is None:
            raise DataError(path, "expected extra_state['ema'] (the run was not trained with --store-ema)")
    else:
        state = ckpt.get("model") if isinstance(ckpt, dict) else None
        if state is None:
            raise DataError(path, "expected a fairseq checkpoint with a 'model' state dict")
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def config_from_state_dict(state, **overrides):
    """OFAConfig whose sizes match the tensors of an official state dict."""
    def count(prefix):
        ids = {int(k[len(prefix):].split(".")[0]) for k in state if k.startswith(prefix)}
        return max(ids) + 1 if ids else 0

    vocab, d = state["encoder.embed_tokens.weight"].shape
    heads = state["encoder.layers.0.self_attn.c_attn"].shape[0]
    cfg = dict(vocab_size=vocab, embed_dim=d, heads=heads, encoder_layers=count("encoder.layers."),
               decoder_layers=count("decoder.layers."), ffn_dim=state["encoder.layers.0.fc1.weight"].shape[0],
               resnet_layers=tuple(count(f"{RESNET_PREFIX}layer{i}.") for i in (1, 2, 3)),
               max_positions=state["encoder.embed_positions.weight"].shape[0] - 2,
               token_bucket_size=(state["encoder.token_rel_pos_table_list.0.weight"].shape[0] + 1) // 2,
               image_bucket_size=round((state["encoder.embed_image_positions.weight"].shape[0] - 1) ** 0.5))
    return OFAConfig(**{**cfg, **overrides})


def load_official(model, state):
    """Copy an official state dict into `model` by name. Returns the list of keys left at their initial value
    (prompt/adapter parameters); raises on any other missing or unexpected key or shape mismatch."""
    state = {k: v for k, v in state.items() if not k.endswith(SKIPPED_SUFFIXES)}
    own = model.state_dict()
    unexpected = sorted(set(state) - set(own))
    missing = sorted(k for k in set(own) - set(state) if not k.endswith("num_batches_tracked"))
    fresh = [k for k in missing if any(m in k for m in NEW_PARAMETER_MARKERS)]
    missing = [k for k in missing if k not in fresh]
    if unexpected or missing:
        raise ValueError(f"checkpoint does not match the OFA model: {len(missing)} missing (e.g. {missing[:5]}), "
                         f"{len(unexpected)} unexpected (e.g. {unexpected[:5]})")
    bad = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state.items() if v.shape != own[k].shape]
    if bad:
        raise ValueError(f"shape mismatch for {len(bad)} tensors, e.g. {bad[:3]} (checkpoint, model)")
    model.load_state_dict(state, strict=False)
    return fresh


def build_from_official(path, ema=False, **overrides):
    """OFA with the checkpoint's sizes and weights; `overrides` set prompt/dropout options."""
    state = official_state_dict(path, ema=ema)
    model = OFA(config_from_state_dict(state, **overrides))
    load_official(model, state)
    return model
