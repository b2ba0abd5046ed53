"""Prompt modules: input prompts, deep prompts (prefix / P-tuning v2) and IPT's instance-wise prompts.

Notation: B batch, n prompt length, L layers, d hidden size, H heads, d_h = d / H, V vocabulary size.
A deep prompt is a list over layers of (K_p, V_p), each [B, H, n, d_h], consumed by `encoder.SelfAttention`.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class InputPrompt(nn.Module):
    """Prompt tuning (Lester et al.): a task-level table P in R^{n x d} prepended to the token embeddings."""

    def __init__(self, length, dim, init_range=0.5):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(length, dim).uniform_(-init_range, init_range))

    def forward(self, batch_size):
        return self.weight.unsqueeze(0).expand(batch_size, -1, -1)          # [B, n, d]


class DeepPrompt(nn.Module):
    """P-tuning v2 / prefix tuning: per-layer prompt keys and values.

    Without reparameterisation: W = Embedding(n, 2 L d) (P-tuning v2 `PrefixEncoder`, `prefix_projection=False`).
    With it: W = MLP(Embedding(n, d)) = Linear(proj_dim, 2Ld)(tanh(Linear(d, proj_dim)(E))) (P-tuning v2 / PEFT).
    `prompt_kv(extra=...)` adds an instance-dependent term to the flat [B, n, 2Ld] output first (IPT prefix mode).
    The layout follows P-tuning v2: view [B, n, 2L, H, d_h] -> dropout -> permute -> layer i takes slots
    (2i, 2i+1) as (K, V).
    """

    def __init__(self, length, num_layers, dim, num_heads, projection=False, proj_dim=512, dropout=0.1):
        super().__init__()
        self.length, self.num_layers, self.dim, self.num_heads = length, num_layers, dim, num_heads
        self.projection = projection
        if projection:
            self.embedding = nn.Embedding(length, dim)
            self.mlp = nn.Sequential(nn.Linear(dim, proj_dim), nn.Tanh(), nn.Linear(proj_dim, 2 * num_layers * dim))
        else:
            self.embedding = nn.Embedding(length, 2 * num_layers * dim)
        self.dropout = nn.Dropout(dropout)

    def flat(self, batch_size):
        """The per-position vectors [B, n, 2 L d] (layer-major: layer 0's K then V occupy the first 2d)."""
        w = self.embedding.weight
        if self.projection:
            w = self.mlp(w)
        return w.unsqueeze(0).expand(batch_size, -1, -1)

    def prompt_kv(self, batch_size, extra=None):
        flat = self.flat(batch_size)
        if extra is not None:
            flat = flat + extra
        return split_kv(self.dropout, flat, self.num_layers, self.num_heads)


def split_kv(dropout, flat, num_layers, num_heads):
    """[B, n, 2 L d] -> list over L layers of (K, V), each [B, H, n, d_h] (P-tuning v2's `get_prompt`)."""
    B, n, width = flat.shape
    d = width // (2 * num_layers)
    x = flat.view(B, n, 2 * num_layers, num_heads, d // num_heads)
    x = dropout(x).permute(2, 0, 3, 1, 4)                                  # [2L, B, H, n, d_h]
    return [(x[2 * i], x[2 * i + 1]) for i in range(num_layers)]


class InstanceTable(nn.Module):
    """IPT's token-indexed prompt table E_I in R^{V x w}: the prompt of input x is E_I[x_1 .. x_n].

    The official code indexes the first n ids of the templated input padded to max_seq_length, so a short input
    also reads the pad token's row; `forward` pads to n with `pad_id` to do the same. Initialised U(-0.5, 0.5)
    (`random_range`), or from a pretrained table ("Pretrained IPT"), optionally frozen (`fix_emb`).
    """

    def __init__(self, vocab_size, width, num_tokens, pad_id=0, init_range=0.5, pretrained=None, freeze=False,
                 sparse_grad=False):
        super().__init__()
        self.num_tokens, self.pad_id = num_tokens, pad_id
        self.sparse_grad = sparse_grad  # --table_update lazy: a sparse gradient holding only the rows read
        weight = torch.empty(vocab_size, width).uniform_(-init_range, init_range)
        if pretrained is not None:
            if tuple(pretrained.shape) != (vocab_size, width):
                raise ValueError(f"pretrained table is {tuple(pretrained.shape)}, expected {(vocab_size, width)}")
            weight = pretrained.detach().clone().float()
        self.weight = nn.Parameter(weight, requires_grad=not freeze)

    def token_ids(self, input_ids):
        """First n ids, padded with pad_id to n: [B, T] -> [B, n]."""
        ids = input_ids[:, : self.num_tokens]
        if ids.shape[1] < self.num_tokens:
            ids = torch.cat([ids, ids.new_full((ids.shape[0], self.num_tokens - ids.shape[1]), self.pad_id)], 1)
        return ids

    def forward(self, input_ids):
        return F.embedding(self.token_ids(input_ids), self.weight, sparse=self.sparse_grad)  # [B, n, w]


class MLPGenerator(nn.Module):
    """IPT Encoder (MLP): mean over the n looked-up vectors -> Linear(w, m * out) -> ReLU -> Dropout -> [B, m, out]."""

    def __init__(self, width, length, out_dim, dropout=0.5):
        super().__init__()
        self.length, self.out_dim = length, out_dim
        self.fc = nn.Linear(width, length * out_dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, e):                                                   # e [B, n, w]
        return self.drop(torch.relu(self.fc(e.mean(1)))).view(-1, self.length, self.out_dim)


class TextCNNGenerator(nn.Module):
    """IPT Encoder (CNN): Conv2d(1, 1, (k, w)) for k in {3, 4, 5} -> ReLU -> max over time -> 3 features
    -> Linear(3, m * out) -> [B, m, out] (official `model/TextCNN.py`). Needs n >= 5 looked-up tokens."""

    def __init__(self, width, length, out_dim, kernel_sizes=(3, 4, 5)):
        super().__init__()
        self.length, self.out_dim = length, out_dim
        self.convs = nn.ModuleList(nn.Conv2d(1, 1, (k, width)) for k in kernel_sizes)
        self.fc = nn.Linear(len(kernel_sizes), length * out_dim)

    def features(self, e):                                                  # e [B, n, w]
        """The max-pooled conv features [B, 3] (the official pretraining head classifies these)."""
        x = e.unsqueeze(1)                                                  # [B, 1, n, w]
        return torch.cat([torch.relu(conv(x)).squeeze(3).amax(dim=2) for conv in self.convs], dim=1)

    def forward(self, e):                                                   # e [B, n, w]
        return self.fc(self.features(e)).view(-1, self.length, self.out_dim)


class BiLSTMGenerator(nn.Module):
    """IPT Encoder (RNN): 2-layer BiLSTM(w -> hidden) over the n vectors -> Linear(2 hidden, m * out).

    The official `model/LSTM.py` feeds [B, n, w] to a sequence-first nn.LSTM (batch and time swapped) and reads
    `lstm_out[0]`; here the LSTM is batch-first and the summary is [last forward state; first backward state].
    """

    def __init__(self, width, length, out_dim, hidden=64, num_layers=2):
        super().__init__()
        self.length, self.out_dim = length, out_dim
        self.lstm = nn.LSTM(width, hidden, num_layers=num_layers, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(2 * hidden, length * out_dim)

    def forward(self, e):                                                   # e [B, n, w]
        out, _ = self.lstm(e)                                               # [B, n, 2 hidden]
        hidden = out.shape[-1] // 2
        summary = torch.cat([out[:, -1, :hidden], out[:, 0, hidden:]], dim=1)
        return self.fc(summary).view(-1, self.length, self.out_dim)


GENERATORS = {"mlp": MLPGenerator, "cnn": TextCNNGenerator, "lstm": BiLSTMGenerator}


class InstancePrompt(nn.Module):
    """IPT prompt mode: P(x) = E_I[x_1..x_n] (Random / Pretrained IPT) or G(E_I[x_1..x_n]) (Encoder IPT),
    prepended to the token embeddings as the whole soft prompt (no task-level prompt in this mode)."""

    def __init__(self, table, generator=None):
        super().__init__()
        self.table, self.generator = table, generator

    def forward(self, input_ids):
        e = self.table(input_ids)                                           # [B, n, w]
        return e if self.generator is None else self.generator(e)           # [B, n or m, d]


class InstancePrefix(nn.Module):
    """IPT prefix mode: a deep task prefix W [n, 2Ld] plus an instance term on layer 0's keys and values:

        PKV[:, :, layer 0] = W[:, layer 0] + scale * I(x),   I(x) = E_I[x_1..x_n] in R^{n x 2d}
                                                              (or G(E_I[x_1..x_n]) for Encoder IPT)

    with scale 0.05 (official `soft_template.py`); layer 0's K takes the first d of I(x), V the second d.
    """

    def __init__(self, deep, table, scale=0.05, generator=None):
        super().__init__()
        self.deep, self.table, self.scale, self.generator = deep, table, scale, generator

    def forward(self, input_ids):
        e = self.table(input_ids)                                           # [B, n, w]
        inst = e if self.generator is None else self.generator(e)           # [B, n, 2d]
        B, n, two_d = inst.shape
        if n != self.deep.length or two_d != 2 * self.deep.dim:
            raise ValueError(f"instance prompt is [{n}, {two_d}], the prefix needs [{self.deep.length}, "
                             f"{2 * self.deep.dim}]")
        if self.training and self.deep.dropout.p > 0:  # dropout acts on (W + scale I) as one tensor
            rest = inst.new_zeros(B, n, 2 * self.deep.dim * (self.deep.num_layers - 1))
            return self.deep.prompt_kv(B, extra=self.scale * torch.cat([inst, rest], dim=2))
        # no dropout (the official case): layers 1..L-1 stay batch-broadcast views of W; only layer 0 is per example
        kv = self.deep.prompt_kv(B)
        k_i, v_i = split_kv(self.deep.dropout, self.scale * inst, 1, self.deep.num_heads)[0]  # [B, H, n, d_h]
        kv[0] = (kv[0][0] + k_i, kv[0][1] + v_i)
        return kv
