"""Table pretraining (Pretrained IPT): learns the generated topic task, trains only the rows it reads, writes a
table that `train.py --table_init` loads row for row, and reports bad JSONL lines with file and line."""
import dataclasses
import json
from pathlib import Path

import pytest
import torch
import yaml
from ipt import pretrain_table
from ipt import train as train_module

from common.config import RunConfig, parse_config
from common.errors import DataError

HERE = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain")
    pretrain_table.main(["--config", "configs/pretrain_table_smoke.yaml", "--out_dir", out, "--progress", "false"])
    return out


def test_pretraining_learns_the_topics_and_trains_only_the_rows_read(pretrained):
    metrics = json.loads((pretrained / "metrics.json").read_text())
    assert metrics["val_accuracy"] >= 0.8 and metrics["test_accuracy"] >= 0.7, metrics  # 4 classes: chance 0.25
    table = torch.load(pretrained / "table.pt", weights_only=True)
    assert table.dtype == torch.float32 and table.shape == (56, 128)  # random_tiny vocab x 2d (ipt_prefix)
    torch.manual_seed(0)  # the smoke seed; the table is the first thing drawn after seeding
    init = torch.empty(56, 128).uniform_(-0.5, 0.5)
    vocab = (pretrained / "backbone" / "vocab.txt").read_text().split()
    unused, topic = vocab.index("?"), vocab.index("goal")  # "?" never occurs in the generated texts
    assert torch.equal(table[unused], init[unused])
    assert not torch.allclose(table[topic], init[topic])
    best = torch.load(pretrained / "checkpoints" / "best.pt", weights_only=False)
    assert best["val_accuracy"] == metrics["val_accuracy"] and "table.weight" not in best["model"]


def test_saved_table_loads_through_table_init_row_for_row(pretrained, tmp_path, monkeypatch):
    saved = torch.load(pretrained / "table.pt", weights_only=True)
    seen = {}
    real_build = train_module.build_model

    def build(cfg, backbone):
        model, tok = real_build(cfg, backbone)
        seen["table"] = model.prompt.table.weight.detach().clone()
        ids = torch.tensor([[5, 9, 2, 40, 17, 3, 0, 1, 55]])
        seen["rows"] = (model.prompt.table(ids).detach().clone(), ids)
        return model, tok

    monkeypatch.setattr(train_module, "build_model", build)
    train_module.main(["--config", "configs/smoke.yaml", "--out_dir", tmp_path, "--table_init", pretrained / "table.pt",
                       "--epochs", "1", "--synthetic_train", "64", "--synthetic_test", "32", "--progress", "false"])
    assert torch.equal(seen["table"], saved)
    rows, ids = seen["rows"]
    assert torch.equal(rows[0], saved[ids[0, :8]])  # smoke config: the first ipt_tokens = 8 ids
    assert (tmp_path / "metrics.json").is_file()


@pytest.mark.parametrize("line, expected", [
    ('{"text": "a b", "label": 1', "not valid JSON"),
    ('["a b", 1]', "expected a JSON object"),
    ('{"text": "a b", "idx": 3}', "no field 'label'"),
    ('{"text": 5, "label": 1}', "'text' must be a string"),
    ('{"text": "a b", "label": 13}', "integer class id in 0..12"),
    ('{"text": "a b", "label": "1"}', "integer class id"),
])
def test_bad_jsonl_line_is_a_data_error_with_file_and_line(tmp_path, line, expected):
    path = tmp_path / "train.jsonl"
    path.write_text('{"text": "fine", "idx": 0, "label": 12}\n\n' + line + "\n")
    with pytest.raises(DataError, match=expected) as err:
        pretrain_table.read_topic_jsonl(path, 13)
    assert err.value.line == 3 and err.value.path == str(path) and f"{path}:3:" in str(err.value)


def test_official_fields_and_a_bad_file_through_main(tmp_path, capsys):
    good = tmp_path / "data"
    good.mkdir()
    (good / "train.jsonl").write_text('{"text": "goal match", "idx": 7, "label": 0}\n')
    (good / "dev.jsonl").write_text('{"text": "market", "idx": 8, "label": 2}\n{"text": "x"}\n')
    assert pretrain_table.read_topic_jsonl(good / "train.jsonl", 13) == (["goal match"], [0])
    with pytest.raises(SystemExit) as exit_:
        pretrain_table.main(["--config", "configs/pretrain_table_smoke.yaml", "--data", "jsonl", "--data_dir", good,
                             "--out_dir", tmp_path / "run", "--progress", "false"])
    assert exit_.value.code == 2
    assert f"{good / 'dev.jsonl'}:2: no field 'label'" in capsys.readouterr().err


def test_table_width_matches_the_method_that_loads_it():
    assert pretrain_table.table_width("ipt_prompt", 64) == 64
    assert pretrain_table.table_width("ipt_encoder", 64) == 64
    assert pretrain_table.table_width("ipt_prefix", 64) == 128


@pytest.mark.parametrize("config", ["pretrain_table.yaml", "pretrain_table_smoke.yaml"])
def test_pretrain_configs_parse_and_are_complete(config):
    cfg = parse_config(pretrain_table.PretrainConfig, ["--config", HERE / "configs" / config])
    keys = set(yaml.safe_load((HERE / "configs" / config).read_text()))
    own = {f.name for f in dataclasses.fields(cfg)} - {f.name for f in dataclasses.fields(RunConfig)}
    assert own <= keys, sorted(own - keys)


@pytest.mark.parametrize("flag", ["--amp", "--compile"])
def test_unsupported_run_switches_are_refused(flag, capsys):
    with pytest.raises(SystemExit) as err:
        pretrain_table.main(["--config", "configs/pretrain_table_smoke.yaml", flag, "true"])
    assert err.value.code == 2 and "not supported" in capsys.readouterr().err
