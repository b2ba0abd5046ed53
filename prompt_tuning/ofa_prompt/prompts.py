"""Which parameters train: prompt tuning and the paper's baselines, as the official flags define them.

* `prompt` (`--encoder-prompt --decoder-prompt`, UT:430-442): the whole encoder and decoder frozen (token
  embeddings included), only `encoder.encoder_prompt_encoder` / `decoder.decoder_prompt_encoder` train.
* `adapter` (`--adapter`, UTL:49-93): only the Adapter_Layers after every FFN train.
* `bitfit` (`--bitfit`, train.py:101-107): only the biases of `layer_norm` and `fc*` parameters train.
* `finetune`: everything trains.

Freezing is `requires_grad_(False)` only: the model still runs in train mode, so dropout, drop-path and the
ResNet's BatchNorm batch statistics stay active during prompt tuning, as in the official run (research note §6.12).
"""
PEFT_MODES = ("prompt", "adapter", "bitfit", "finetune")


def _trainable(name, mode):
    if mode == "prompt":
        return "prompt_encoder." in name
    if mode == "adapter":
        return ".adapter." in name
    if mode == "bitfit":
        return name.endswith(".bias") and ("layer_norm" in name or ".fc" in name)
    return True


def set_trainable(model, mode):
    """Set requires_grad for `mode`; returns the names of the trainable parameters."""
    if mode not in PEFT_MODES:
        raise ValueError(f"unknown tuning mode {mode!r}; choose one of {PEFT_MODES}")
    names = []
    for name, p in model.named_parameters():
        p.requires_grad_(_trainable(name, mode))
        if p.requires_grad:
            names.append(name)
    if not names:
        raise ValueError(f"mode {mode!r} leaves no trainable parameter (prompt length 0 or adapter_dim 0?)")
    return names
