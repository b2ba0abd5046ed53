"""Choices that follow the official IPT code (IPT-Prompttuning/IPT 25f4937, its vendored OpenPrompt) and
P-tuning v2 (THUDM/P-tuning-v2 b1520c9) by default: FewGLUE splits, metrics, the one-sequence template, the
BoolQ verbalizer, the baselines' configs and loading a pretrained prompt generator. (The input-prompt position
is tested against transformers in test_ipt_encoder.py.)"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from ipt import pretrain_table
from ipt import train as train_module
from ipt.data import Collate, label_words, load_splits
from ipt.tokenizer import Tokenizer

from common.config import parse_config
from common.data.text_classification import TASKS, TextExample, synthetic_vocab
from common.errors import DataError

HERE = Path(__file__).resolve().parent.parent


def _rte_rows(n, offset, labelled=True):
    return [{"premise": f"premise {offset + i}", "hypothesis": f"hypothesis {offset + i}", "idx": i,
             **({"label": "entailment" if i % 2 else "not_entailment"} if labelled else {})} for i in range(n)]


def _write(folder, name, rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_selection_on_val_jsonl_and_report_on_test_jsonl_by_default(tmp_path):
    """Official FewGLUEDataProcessor: get_dev_examples reads val.jsonl, get_test_examples test.jsonl."""
    assert parse_config(train_module.IPTConfig, []).selection == "val_file"
    _write(tmp_path, "train.jsonl", _rte_rows(10, 0))
    _write(tmp_path, "val.jsonl", _rte_rows(4, 100))
    _write(tmp_path, "test.jsonl", _rte_rows(6, 200))
    train, dev, test = load_splits("rte", tmp_path, selection="val_file")
    assert [e.text_a for e in train] == [f"premise {i}" for i in range(10)]  # all of train trains
    assert [e.text_a for e in dev] == [f"premise {100 + i}" for i in range(4)]
    assert [e.text_a for e in test] == [f"premise {200 + i}" for i in range(6)]
    _, held, reported = load_splits("rte", tmp_path, selection="holdout")  # the other protocol
    assert len(held) == 1 and [e.text_a for e in reported] == [e.text_a for e in dev]
    _write(tmp_path, "test.jsonl", _rte_rows(6, 200, labelled=False))  # public SuperGLUE test: no labels
    with pytest.raises(DataError, match="test.jsonl"):
        load_splits("rte", tmp_path, selection="val_file")


def test_official_metrics_are_micro_f1_and_accuracy_multirc_per_answer_option():
    """Official yaml classification.metric [micro-f1, accuracy]; MultiRC examples are answer options."""
    from sklearn.metrics import accuracy_score, f1_score
    cfg = parse_config(train_module.IPTConfig, ["--task", "multirc"])
    assert cfg.metrics == "official" and train_module.metric_names(cfg) == ("micro_f1", "accuracy")

    class Fixed(torch.nn.Module):  # returns preset logits, batch by batch
        def __init__(self, preds):
            super().__init__()
            self.preds = iter(preds)

        def forward(self, **kw):
            return torch.nn.functional.one_hot(next(self.preds), 2).float()

    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 2, 40), rng.integers(0, 2, 40)
    groups = np.repeat(np.arange(10), 4)  # 10 questions x 4 answer options
    batches = [{"input_ids": torch.zeros(8, 3, dtype=torch.long), "attention_mask": torch.ones(8, 3, dtype=torch.long),
                "token_type_ids": torch.zeros(8, 3, dtype=torch.long), "labels": torch.as_tensor(y[i:i + 8]),
                "groups": torch.as_tensor(groups[i:i + 8])} for i in range(0, 40, 8)]
    model = Fixed([torch.as_tensor(p[i:i + 8]) for i in range(0, 40, 8)])
    out = train_module.evaluate(model, batches, TASKS["multirc"], torch.device("cpu"),
                                names=train_module.metric_names(cfg))
    assert set(out) == {"micro_f1", "accuracy"}
    assert out["micro_f1"] == pytest.approx(f1_score(y, p, average="micro"))
    assert out["accuracy"] == pytest.approx(accuracy_score(y, p))


@pytest.fixture
def vocab_tok(tmp_path):
    vocab = synthetic_vocab() + ["question", ":", "?", "answer", "was", "."]
    (tmp_path / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    return Tokenizer(tmp_path, max_length=16), list(dict.fromkeys(vocab))


def test_template_is_one_sequence_truncated_from_text_a_as_openprompt(vocab_tok):
    """OpenPrompt ManualTemplate + MLMTokenizerWrapper: one segment `[CLS] a Question: b ? The answer was
    [MASK] . [SEP]` (BoolQ soft_template.txt), token type 0, text_a shortened from its end first."""
    tok, vocab = vocab_tok
    ex = TextExample("goal match vote bank", "team league", 1)
    batch = Collate(tok, "boolq", template=True)([ex])
    words = [vocab[i] for i in batch["input_ids"][0].tolist()]
    assert words == ["[CLS]", "goal", "match", "vote", "bank", "question", ":", "team", "league", "?", "the", "answer",
                     "was", "[MASK]", ".", "[SEP]"]
    assert batch["token_type_ids"].sum() == 0 and words[batch["mask_pos"][0]] == "[MASK]"
    long = Collate(tok, "boolq", template=True)([TextExample("goal match vote bank team", "team league", 1)])
    words = [vocab[i] for i in long["input_ids"][0].tolist()]
    assert words[:6] == ["[CLS]", "goal", "match", "vote", "bank", "question"]  # text_a lost its last word
    pair = Collate(tok, "boolq", template=True, segments="pair")([ex])  # the older encoding
    assert pair["token_type_ids"].sum() > 0


def test_boolq_label_words_follow_the_official_processor():
    """BoolQProcessor labels [True, False] + verbalizer file "no", "yes": True -> no, False -> yes."""
    classes = TASKS["boolq"].labels
    words = dict(zip(classes, label_words("boolq"), strict=True))
    assert words == {True: "no", False: "yes"}
    assert dict(zip(classes, label_words("boolq", "semantic"), strict=True)) == {True: "yes", False: "no"}
    assert label_words("multirc") == ("No", "Yes")


def _cfg(name):
    return yaml.safe_load((HERE / "configs" / name).read_text())


@pytest.mark.parametrize("task,psl,lr", [("rte", 128, 5e-3), ("boolq", 8, 7e-3)])
def test_ptuning_v2_configs_use_its_published_settings(task, psl, lr):
    """THUDM/P-tuning-v2 run_script/run_<task>_roberta.sh: bs 32, epochs 100, max_seq_length 128, dropout 0.1,
    its linear head on the pooler."""
    c = _cfg(f"{task}_ptuning_v2.yaml")
    assert (c["prompt_length"], c["lr"], c["batch_size"], c["epochs"], c["max_length"]) == (psl, lr, 32, 100, 128)
    assert (c["head"], c["pooling"], c["prompt_dropout"], c["warmup_steps"], c["grad_accum"]) == \
        ("linear", "pooler", 0.1, 0, 1)


@pytest.mark.parametrize("task", ["rte", "boolq", "cb", "multirc"])
def test_ipt_prefix_baseline_has_no_prompt_dropout(task):
    """The official SoftTemplate creates Dropout(0.1) but never applies it to the prefix."""
    c, ipt = _cfg(f"{task}_prefix.yaml"), _cfg(f"{task}_ipt_prefix.yaml")
    assert c["method"] == "ptuning_v2" and c["prompt_dropout"] == 0.0
    same = ("head", "prompt_length", "lr", "batch_size", "grad_accum", "epochs", "max_length", "warmup_steps")
    assert {k: c[k] for k in same} == {k: ipt[k] for k in same}  # IPT minus its instance term


def test_pretrained_generator_loads_through_generator_init(tmp_path, monkeypatch):
    pre = tmp_path / "pre"
    pretrain_table.main(["--config", "configs/pretrain_table_smoke.yaml", "--out_dir", pre, "--table_for",
                         "ipt_encoder", "--epochs", "1", "--synthetic_train", "64", "--progress", "false"])
    saved = torch.load(pre / "checkpoints" / "best.pt", weights_only=False)["model"]
    seen = {}
    real_build = train_module.build_model

    def build(cfg, backbone):
        model, tok = real_build(cfg, backbone)
        seen.update({k: v.detach().clone() for k, v in model.prompt.generator.state_dict().items()})
        return model, tok

    monkeypatch.setattr(train_module, "build_model", build)
    train_module.main(["--config", "configs/smoke.yaml", "--out_dir", tmp_path / "run", "--method", "ipt_encoder",
                       "--ipt_base", "prompt", "--generator", "cnn", "--table_init", pre / "table.pt",
                       "--generator_init", pre / "checkpoints" / "best.pt", "--epochs", "1", "--synthetic_train",
                       "64", "--synthetic_test", "32", "--progress", "false"])
    assert seen and all(torch.equal(v, saved[f"generator.{k}"]) for k, v in seen.items())
    with pytest.raises(SystemExit):  # a generator of another kind is refused with the file named
        train_module.main(["--config", "configs/smoke.yaml", "--out_dir", tmp_path / "bad", "--method", "ipt_encoder",
                           "--generator", "mlp", "--generator_init", pre / "checkpoints" / "best.pt",
                           "--progress", "false"])
