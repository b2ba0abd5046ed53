"""Backbone + prompt method + classification head, and the bookkeeping of what is trained.

Methods (named constructors via `build_method`):
  finetune    every encoder weight trains, no prompt
  prompt      input prompt tuning (Lester et al.): P in R^{n x d} before the token embeddings
  ptuning_v2  deep prompts (P-tuning v2 / prefix tuning), optional reparameterisation MLP
  ipt_prompt  IPT prompt mode, Random / Pretrained IPT: P(x) = E_I[x_1..x_n]
  ipt_prefix  IPT prefix mode: deep prefix + 0.05 * E_I[x_1..x_n] on layer 0's K/V
  ipt_encoder IPT Encoder variants: P(x) = G(E_I[x_1..x_n]), G in {mlp, cnn, lstm}, in prompt or prefix mode
Heads: `linear` (dropout + Linear on the pooled sequence: cls | mean | pooler) or `mlm` (the checkpoint's MLM
head at the <mask> position scored on the verbalizer's label words, as IPT / OpenPrompt do).
"""
import torch
import torch.nn as nn

from .prompts import GENERATORS, DeepPrompt, InputPrompt, InstancePrefix, InstancePrompt, InstanceTable

METHODS = ("finetune", "prompt", "ptuning_v2", "ipt_prompt", "ipt_prefix", "ipt_encoder")
TABLE_UPDATES = ("dense", "lazy")  # the token table's gradient / optimiser update (optim.py)


def build_method(method, encoder, *, prompt_length=100, projection=False, proj_dim=512, prompt_dropout=0.1,
                 ipt_tokens=100, ipt_scale=0.05, ipt_base="prompt", generator="mlp", pad_id=0,
                 pretrained_table=None, freeze_table=False, table_update="dense"):
    """The prompt module of `method` for `encoder` (None for finetune)."""
    cfg = encoder.cfg
    d, L, H, V = cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.vocab_size
    deep = lambda: DeepPrompt(prompt_length, L, d, H, projection=projection, proj_dim=proj_dim,  # noqa: E731
                              dropout=prompt_dropout)
    if method == "finetune":
        return None
    if method == "prompt":
        return InputPrompt(prompt_length, d)
    if method == "ptuning_v2":
        return deep()
    base = "prefix" if method == "ipt_prefix" else ("prompt" if method == "ipt_prompt" else ipt_base)
    out_dim = d if base == "prompt" else 2 * d
    gen = None
    if method == "ipt_encoder":
        width = d  # the generator reads a d-wide table and writes prompt_length vectors of out_dim
        gen = GENERATORS[generator](width, prompt_length, out_dim)
    else:
        width = out_dim
        if base == "prompt" and ipt_tokens != prompt_length:
            raise ValueError("ipt_prompt: the prompt is E_I[x_1..x_n], so ipt_tokens must equal prompt_length")
        if base == "prefix" and ipt_tokens != prompt_length:
            raise ValueError("ipt_prefix: E_I[x_1..x_n] is added to the n prefix slots: ipt_tokens = prompt_length")
    if table_update not in TABLE_UPDATES:
        raise ValueError(f"table_update {table_update!r} is not one of {TABLE_UPDATES}")
    table = InstanceTable(V, width, ipt_tokens, pad_id=pad_id, pretrained=pretrained_table, freeze=freeze_table,
                          sparse_grad=table_update == "lazy")
    if base == "prompt":
        return InstancePrompt(table, gen)
    return InstancePrefix(deep(), table, scale=ipt_scale, generator=gen)


class PromptClassifier(nn.Module):
    """Encoder + prompt method + head -> class logits [B, C]."""

    def __init__(self, encoder, prompt, num_classes, head="linear", pooling="cls", head_dropout=0.1,
                 label_word_ids=None, train_encoder=False, prompt_position="embeddings"):
        super().__init__()
        self.encoder, self.prompt, self.head_type, self.pooling = encoder, prompt, head, pooling
        self.prompt_position = prompt_position  # where input prompts join (encoder.Encoder.forward)
        if head == "mlm":
            if encoder.mlm is None:
                raise ValueError("head mlm needs a checkpoint with an MLM head; use head linear")
            if label_word_ids is None or len(label_word_ids) != num_classes:
                raise ValueError(f"head mlm needs {num_classes} label word ids")
            self.register_buffer("label_word_ids", torch.as_tensor(label_word_ids, dtype=torch.long))
            self.head = None
        else:
            if pooling == "pooler" and encoder.pooler is None:
                raise ValueError("pooling pooler needs a checkpoint with pooler weights")
            self.head = nn.Sequential(nn.Dropout(head_dropout), nn.Linear(encoder.cfg.hidden_size, num_classes))
        encoder.requires_grad_(train_encoder)

    def forward(self, input_ids, attention_mask, token_type_ids=None, mask_pos=None):
        """input_ids/attention_mask/token_type_ids [B, T]; mask_pos [B] position of <mask> (head mlm)."""
        input_prompts = prompt_kv = None
        B = input_ids.shape[0]
        if isinstance(self.prompt, InputPrompt):
            input_prompts = self.prompt(B)
        elif isinstance(self.prompt, InstancePrompt):
            input_prompts = self.prompt(input_ids)
        elif isinstance(self.prompt, DeepPrompt):
            prompt_kv = self.prompt.prompt_kv(B)
        elif isinstance(self.prompt, InstancePrefix):
            prompt_kv = self.prompt(input_ids)
        h = self.encoder(input_ids, attention_mask, token_type_ids, input_prompts=input_prompts,
                         prompt_kv=prompt_kv, prompt_position=self.prompt_position)  # [B, T, d]
        if self.head is None:
            return self.encoder.mlm(h[torch.arange(B, device=h.device), mask_pos], self.label_word_ids)
        return self.head(pool(self.encoder, h, attention_mask, self.pooling))

    # -- what is trained, saved and counted ----------------------------------------------------------------
    def trainable_state_dict(self):
        """Only the parameters that train (prompt + head; everything for finetune), detached copies."""
        return {k: p.detach().clone() for k, p in self.named_parameters() if p.requires_grad}

    def load_trainable_state_dict(self, state):
        expected = {k for k, p in self.named_parameters() if p.requires_grad}
        if set(state) != expected:
            raise KeyError(f"trainable state mismatch: missing {sorted(expected - set(state))[:5]}, "
                           f"unexpected {sorted(set(state) - expected)[:5]}")
        self.load_state_dict(state, strict=False)

    def parameter_report(self):
        """Trained-parameter counts and ratios to the backbone, with and without IPT's token table.

        The table E_I is |V| x w dense, but a step only touches the rows of the ids it reads; the paper's
        0.5%-1.5% claim holds only without it (research notes, section 1.2).
        """
        backbone = sum(p.numel() for p in self.encoder.parameters())
        trained = sum(p.numel() for p in self.parameters() if p.requires_grad)
        table = sum(p.numel() for m in self.modules() if isinstance(m, InstanceTable)
                    for p in m.parameters() if p.requires_grad)
        return {"backbone_params": backbone, "trainable_params": trained, "table_params": table,
                "trainable_ratio": trained / backbone, "trainable_ratio_without_table": (trained - table) / backbone}


class TrainableParams:
    """Adapter so `common.checkpoint.training_state` saves (and restores) only the trained parameters."""

    def __init__(self, model):
        self.model = model

    def state_dict(self):
        return self.model.trainable_state_dict()

    def load_state_dict(self, state):
        self.model.load_trainable_state_dict(state)


def pool(encoder, h, attention_mask, pooling):
    """[B, T, d] -> [B, d]: first token ([CLS] / <s>), masked mean, or BERT's pooler."""
    if pooling == "mean":
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
    if pooling == "pooler":
        return encoder.pool(h)
    return h[:, 0]
