"""A BERT / RoBERTa encoder in plain PyTorch whose self-attention takes prompt keys/values directly.

Prompts enter where the papers put them:
* input prompts (Lester et al. prompt tuning, IPT prompt mode): `n` vectors placed before the word embeddings
  of the sequence. By default (`prompt_position="embeddings"`) as IPT's OpenPrompt `SoftTemplate.process_batch`
  does: `[P; E_word(x)]` is given to the model as `inputs_embeds`, so position embeddings 0..n+T-1 (the real
  tokens shift by n), token-type 0 for the prompt slots, the embedding LayerNorm and dropout apply to all n+T
  vectors. `prompt_position="after_layernorm"` is the older behaviour: the prompts join after the embedding
  LayerNorm and get no position or token-type embedding (the real tokens keep positions 0..T-1);
* deep prompts (prefix tuning / P-tuning v2, IPT prefix mode): per layer a key block `K_p` and a value block
  `V_p` ([B, H, n, d/H]) concatenated before the layer's own keys and values:

      Attn(Q, [K_p; K], [V_p; V]) = softmax(Q [K_p; K]^T / sqrt(d_h) + M) [V_p; V]

  where the additive mask M is 0 on prompt columns (never masked) and -inf on padded real columns. BERT has
  absolute position embeddings only, so prompt slots carry no position information.

Checkpoints are read from a local Hugging Face folder (config.json, model.safetensors or pytorch_model.bin,
tokenizer.json or vocab.txt / vocab.json + merges.txt) by `load_pretrained`.
"""
import dataclasses
import json
import re
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from common.errors import DataError


@dataclasses.dataclass
class EncoderConfig:
    """The fields of a Hugging Face BERT / RoBERTa config.json this encoder uses."""
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    pad_token_id: int = 0
    model_type: str = "bert"  # bert | roberta (RoBERTa: positions start at pad_token_id + 1)

    @classmethod
    def from_json(cls, path):
        data = json.loads(Path(path).read_text())
        if data.get("model_type", "bert") not in ("bert", "roberta"):
            raise DataError(path, f"model_type {data.get('model_type')!r}: this encoder reads bert or roberta")
        if data.get("hidden_act", "gelu") != "gelu":
            raise DataError(path, f"hidden_act {data['hidden_act']!r}: only gelu is implemented")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_json(self):
        return dict(dataclasses.asdict(self), hidden_act="gelu", architectures=["BertForMaskedLM"])


PROMPT_POSITIONS = ("embeddings", "after_layernorm")


class SelfAttention(nn.Module):
    """Multi-head self-attention with optional prompt keys/values before the real ones."""

    def __init__(self, cfg):
        super().__init__()
        d = cfg.hidden_size
        self.heads, self.head_dim = cfg.num_attention_heads, d // cfg.num_attention_heads
        self.query, self.key, self.value, self.out = (nn.Linear(d, d) for _ in range(4))
        self.attn_drop = cfg.attention_probs_dropout_prob

    def forward(self, x, key_mask, prompt_kv=None):
        """x [B, T, d]; key_mask [B, 1, 1, n + T] additive (0 keep, -inf drop); prompt_kv (K_p, V_p) [B, H, n, d_h]."""
        B, T, d = x.shape
        split = lambda t: t.view(B, T, self.heads, self.head_dim).transpose(1, 2)  # noqa: E731  [B, H, T, d_h]
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        if prompt_kv is not None:
            k = torch.cat([prompt_kv[0].to(k.dtype), k], dim=2)  # [B, H, n + T, d_h]
            v = torch.cat([prompt_kv[1].to(v.dtype), v], dim=2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask.to(q.dtype),
                                           dropout_p=self.attn_drop if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(B, T, d))


class Layer(nn.Module):
    """Post-LN transformer layer (BERT): x = LN(x + Attn(x)); x = LN(x + FFN(x))."""

    def __init__(self, cfg):
        super().__init__()
        d = cfg.hidden_size
        self.attn = SelfAttention(cfg)
        self.ln1 = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.ffn_in = nn.Linear(d, cfg.intermediate_size)
        self.ffn_out = nn.Linear(cfg.intermediate_size, d)
        self.ln2 = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.drop = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, x, key_mask, prompt_kv=None):
        x = self.ln1(x + self.drop(self.attn(x, key_mask, prompt_kv)))
        return self.ln2(x + self.drop(self.ffn_out(F.gelu(self.ffn_in(x)))))


class MLMHead(nn.Module):
    """BERT/RoBERTa masked-LM head: dense -> gelu -> LN -> decoder (tied to the word embeddings) + bias."""

    def __init__(self, cfg, word_embeddings):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.ln = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.word_embeddings = word_embeddings  # tied weight [V, d]
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))

    def forward(self, h, vocab_ids=None):
        """h [B, d] -> logits [B, V] (or [B, len(vocab_ids)] for a verbalizer's label words)."""
        h = self.ln(F.gelu(self.dense(h)))
        w, b = self.word_embeddings.weight, self.bias
        if vocab_ids is not None:
            w, b = w[vocab_ids], b[vocab_ids]
        return F.linear(h, w, b)


class Encoder(nn.Module):
    """BERT / RoBERTa encoder (+ pooler, + MLM head when `mlm_head`), prompt-aware."""

    def __init__(self, cfg, mlm_head=False, pooler=True):
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden_size
        self.word_embeddings = nn.Embedding(cfg.vocab_size, d, padding_idx=cfg.pad_token_id)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, d)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, d)
        self.emb_ln = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.drop = nn.Dropout(cfg.hidden_dropout_prob)
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.num_hidden_layers))
        self.pooler = nn.Linear(d, d) if pooler else None
        self.mlm = MLMHead(cfg, self.word_embeddings) if mlm_head else None
        self.apply(self._init)

    def _init(self, m):
        """BERT's initialisation (normal 0.02, zero biases, unit LayerNorm), for randomly initialised encoders."""
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def position_ids(self, input_ids, attention_mask):
        """BERT: 0..T-1. RoBERTa: pad + cumsum(mask) on real tokens, pad id on padding (HF convention)."""
        if self.cfg.model_type == "roberta":
            pad = self.cfg.pad_token_id
            return (torch.cumsum(attention_mask, dim=1) * attention_mask + pad).long()
        return torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)

    def embeds_position_ids(self, embeds):
        """Position ids of an `inputs_embeds` sequence [B, L, d] as Hugging Face makes them (no ids to find the
        padding in): BERT 0..L-1; RoBERTa pad+1..pad+L (`create_position_ids_from_inputs_embeds`)."""
        B, L = embeds.shape[:2]
        pos = torch.arange(L, device=embeds.device).expand(B, L)
        if self.cfg.model_type == "roberta":
            pos = pos + self.cfg.pad_token_id + 1
        if int(pos.max()) >= self.cfg.max_position_embeddings:
            raise ValueError(f"{L} positions (input prompts + tokens) exceed max_position_embeddings "
                             f"{self.cfg.max_position_embeddings}: shorten max_length or the prompt")
        return pos

    def forward(self, input_ids, attention_mask, token_type_ids=None, input_prompts=None, prompt_kv=None,
                prompt_position="embeddings"):
        """Hidden states of the real tokens.

        input_ids, attention_mask, token_type_ids: [B, T] (mask 1 = token, 0 = padding).
        input_prompts: [B, n_in, d] vectors prepended to the sequence (prompt tuning), or None.
        prompt_kv: list over layers of (K_p, V_p) [B, H, n_kv, d_h] (prefix / P-tuning v2), or None.
        prompt_position: where input prompts join, "embeddings" (official IPT / OpenPrompt) or "after_layernorm"
            (see the module docstring).
        Returns [B, T, d] (the input prompts' own output positions are dropped).
        """
        if prompt_position not in PROMPT_POSITIONS:
            raise ValueError(f"prompt_position {prompt_position!r} is not one of {PROMPT_POSITIONS}")
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        token_type_ids = token_type_ids.clamp(max=self.cfg.type_vocab_size - 1)  # RoBERTa has one type
        mask = attention_mask.bool()
        n_in = 0 if input_prompts is None else input_prompts.shape[1]
        words = self.word_embeddings(input_ids)                               # [B, T, d]
        if n_in and prompt_position == "embeddings":
            # OpenPrompt: inputs_embeds = [P; E(x)], then the model's own embedding module on all n + T vectors
            words = torch.cat([input_prompts.to(words.dtype), words], dim=1)  # [B, n + T, d]
            mask = torch.cat([mask.new_ones(mask.shape[0], n_in), mask], dim=1)
            token_type_ids = torch.cat([token_type_ids.new_zeros(token_type_ids.shape[0], n_in), token_type_ids], 1)
            pos = self.embeds_position_ids(words)
        else:
            pos = self.position_ids(input_ids, attention_mask)
        x = self.emb_ln(words + self.position_embeddings(pos) + self.token_type_embeddings(token_type_ids))
        if n_in and prompt_position == "after_layernorm":
            x = torch.cat([input_prompts.to(x.dtype), x], dim=1)              # [B, n_in + T, d]
            mask = torch.cat([mask.new_ones(mask.shape[0], n_in), mask], dim=1)
        x = self.drop(x)
        for i, layer in enumerate(self.layers):
            kv = prompt_kv[i] if prompt_kv is not None else None
            key_mask = mask
            if kv is not None:  # prompt columns are never masked
                key_mask = torch.cat([mask.new_ones(mask.shape[0], kv[0].shape[2]), mask], dim=1)
            additive = torch.zeros(key_mask.shape, dtype=x.dtype, device=x.device)
            additive = additive.masked_fill(~key_mask, float("-inf"))[:, None, None, :]  # [B, 1, 1, n + T]
            x = layer(x, additive, kv)
        return x[:, n_in:]

    def pool(self, h):
        """BERT pooler: tanh(W h_[CLS] + b) -> [B, d]."""
        return torch.tanh(self.pooler(h[:, 0]))


# -- loading Hugging Face checkpoints ------------------------------------------------------------------------

_RENAMES = [  # (HF key pattern, our key), applied after the bert./roberta. prefix is stripped
    (r"^embeddings\.word_embeddings\.", "word_embeddings."),
    (r"^embeddings\.position_embeddings\.", "position_embeddings."),
    (r"^embeddings\.token_type_embeddings\.", "token_type_embeddings."),
    (r"^embeddings\.LayerNorm\.", "emb_ln."),
    (r"^encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)\.", r"layers.\1.attn.\2."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"layers.\1.attn.out."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.", r"layers.\1.ln1."),
    (r"^encoder\.layer\.(\d+)\.intermediate\.dense\.", r"layers.\1.ffn_in."),
    (r"^encoder\.layer\.(\d+)\.output\.dense\.", r"layers.\1.ffn_out."),
    (r"^encoder\.layer\.(\d+)\.output\.LayerNorm\.", r"layers.\1.ln2."),
    (r"^pooler\.dense\.", "pooler."),
    (r"^cls\.predictions\.transform\.dense\.", "mlm.dense."),      # BERT MLM head
    (r"^cls\.predictions\.transform\.LayerNorm\.", "mlm.ln."),
    (r"^cls\.predictions\.bias$", "mlm.bias"),
    (r"^lm_head\.dense\.", "mlm.dense."),                           # RoBERTa MLM head
    (r"^lm_head\.layer_norm\.", "mlm.ln."),
    (r"^lm_head\.bias$", "mlm.bias"),
]
_IGNORED = re.compile(r"(position_ids|cls\.predictions\.decoder\.|lm_head\.decoder\.|cls\.seq_relationship\.)")


def convert_hf_state_dict(state):
    """Hugging Face BERT/RoBERTa parameter names -> this encoder's (old gamma/beta LayerNorm names too)."""
    out = {}
    for key, value in state.items():
        key = re.sub(r"^(bert|roberta)\.", "", key)
        key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        if _IGNORED.search(key):
            continue  # buffers and the decoder tied to the word embeddings
        for pattern, repl in _RENAMES:
            new = re.sub(pattern, repl, key)
            if new != key:
                out[new] = value
                break
    return out


def _read_weights(folder):
    if (folder / "model.safetensors").is_file():
        from safetensors.torch import load_file
        return load_file(str(folder / "model.safetensors"))
    if (folder / "pytorch_model.bin").is_file():
        return torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise DataError(folder, "no model.safetensors or pytorch_model.bin",
                    hint="point --backbone at a Hugging Face model folder")


def load_pretrained(folder, mlm_head="auto"):
    """Build an `Encoder` from a local Hugging Face folder. mlm_head: auto (if the weights have one) | True | False.

    Returns the encoder in eval mode; raises DataError naming the folder on missing/unexpected weights.
    """
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise DataError(folder, "no config.json: not a Hugging Face model folder",
                        hint="pass --backbone with a folder holding config.json and model.safetensors")
    cfg = EncoderConfig.from_json(folder / "config.json")
    state = convert_hf_state_dict(_read_weights(folder))
    has_mlm = any(k.startswith("mlm.") for k in state)
    use_mlm = has_mlm if mlm_head == "auto" else bool(mlm_head)
    if use_mlm and not has_mlm:
        raise DataError(folder, "the checkpoint has no MLM head (cls.predictions / lm_head)",
                        hint="use head: linear for encoders without one")
    model = Encoder(cfg, mlm_head=use_mlm, pooler="pooler.weight" in state)
    if not use_mlm:
        state = {k: v for k, v in state.items() if not k.startswith("mlm.")}
    expected = set(model.state_dict()) - {"mlm.word_embeddings.weight"}
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        raise DataError(folder, f"weights do not fit a {cfg.model_type} encoder: missing {sorted(missing)[:5]}, "
                                f"unexpected {sorted(unexpected)[:5]}")
    model.load_state_dict(state, strict=False)
    return model.eval()


def save_pretrained(model, folder, vocab=None):
    """Write an `Encoder` as a Hugging Face-named folder (config.json + model.safetensors [+ vocab.txt])."""
    from safetensors.torch import save_file
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    inverse = {"word_embeddings.": "bert.embeddings.word_embeddings.",
               "position_embeddings.": "bert.embeddings.position_embeddings.",
               "token_type_embeddings.": "bert.embeddings.token_type_embeddings.",
               "emb_ln.": "bert.embeddings.LayerNorm.", "pooler.": "bert.pooler.dense.",
               "mlm.dense.": "cls.predictions.transform.dense.", "mlm.ln.": "cls.predictions.transform.LayerNorm.",
               "mlm.bias": "cls.predictions.bias"}
    layer = {"attn.query.": "attention.self.query.", "attn.key.": "attention.self.key.",
             "attn.value.": "attention.self.value.", "attn.out.": "attention.output.dense.",
             "ln1.": "attention.output.LayerNorm.", "ffn_in.": "intermediate.dense.", "ffn_out.": "output.dense.",
             "ln2.": "output.LayerNorm."}
    state = {}
    for key, value in model.state_dict().items():
        if key == "mlm.word_embeddings.weight":
            continue
        m = re.match(r"layers\.(\d+)\.(.*)", key)
        if m:
            rest = m.group(2)
            for ours, hf in layer.items():
                if rest.startswith(ours):
                    state[f"bert.encoder.layer.{m.group(1)}.{hf}{rest[len(ours):]}"] = value.contiguous()
        else:
            for ours, hf in inverse.items():
                if key.startswith(ours):
                    state[hf + key[len(ours):]] = value.contiguous()
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(model.cfg.to_json(), indent=2))
    if vocab is not None:
        (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")


def count_parameters(module):
    return sum(p.numel() for p in module.parameters())
