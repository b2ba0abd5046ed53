import dataclasses

import pytest
import yaml

from common.config import RunConfig, config_from_dict, config_to_dict, load_yaml, option, parse_config, save_config
from common.errors import ConfigError


@dataclasses.dataclass
class Cfg(RunConfig):
    lr: float = option(0.1, "learning rate")
    layers: int = option(2, "depth")
    features: str = option("all", "inputs", choices=("all", "one_hot"))
    seeds: list[int] = option([0], "seeds")
    note: str | None = option(None, "free text")


def test_option_gives_help_choices_and_fresh_list_defaults():
    a, b = Cfg(), Cfg()
    a.seeds.append(5)
    assert b.seeds == [0]
    f = {f.name: f for f in dataclasses.fields(Cfg)}
    assert f["features"].metadata["choices"] == ("all", "one_hot")
    assert f["lr"].metadata["help"] == "learning rate"


def test_yaml_defaults_then_flags_win(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("lr: 0.01\nlayers: 3\nseeds: [1, 2]\n")
    cfg = parse_config(Cfg, ["--config", str(path), "--layers", "5", "--amp"])
    assert (cfg.lr, cfg.layers, cfg.seeds, cfg.amp, cfg.resume) == (0.01, 5, [1, 2], True, False)
    assert cfg._config_name == "x"
    assert parse_config(Cfg, ["--seeds", "3", "4"]).seeds == [3, 4]
    assert parse_config(Cfg, ["--seeds", "3,4"]).seeds == [3, 4]
    assert parse_config(Cfg, ["--amp", "false"]).amp is False


def test_relative_config_is_looked_up_in_config_dir(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "smoke.yaml").write_text("layers: 7\n")
    monkeypatch.chdir(tmp_path.parent)
    assert parse_config(Cfg, ["--config", "configs/smoke.yaml"], config_dir=tmp_path).layers == 7


def test_unknown_yaml_key_lists_valid_keys(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("lr: 0.1\nlearning_rate: 0.2\n")
    with pytest.raises(ConfigError) as e:
        parse_config(Cfg, ["--config", str(path)])
    msg = str(e.value)
    assert "learning_rate" in msg and "valid keys" in msg and "lr" in msg and str(path) in msg


def test_unknown_flag_lists_valid_flags():
    with pytest.raises(ConfigError, match=r"--nope.*valid flags.*--lr"):
        parse_config(Cfg, ["--nope", "1"])


def test_bad_values_and_choices():
    with pytest.raises(ConfigError, match="layers"):
        config_from_dict(Cfg, {"layers": "three"})
    with pytest.raises(ConfigError, match="layers"):
        config_from_dict(Cfg, {"layers": 2.5})
    with pytest.raises(ConfigError, match="one_hot"):
        parse_config(Cfg, ["--features", "zeros"])
    with pytest.raises(ConfigError, match="amp"):
        config_from_dict(Cfg, {"amp": "maybe"})


def test_load_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(tmp_path / "list.yaml")
    (tmp_path / "empty.yaml").write_text("")
    assert load_yaml(tmp_path / "empty.yaml") == {}


def test_save_config_round_trips(tmp_path):
    cfg = parse_config(Cfg, ["--lr", "0.5", "--seeds", "1", "2", "--note", "hi"])
    save_config(cfg, tmp_path / "config.yaml")
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == config_to_dict(cfg)
    again = parse_config(Cfg, ["--config", str(tmp_path / "config.yaml")])
    assert config_to_dict(again) == config_to_dict(cfg)
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]  # no temp file left


def test_values_no_run_can_use_are_refused_by_field_name(tmp_path):
    @dataclasses.dataclass
    class Sched(RunConfig):
        eval_batch_size: int = option(8, "")
        warmup_iters: int = option(0, "")
        base_lr: float = option(0.1, "")
        scales: list[float] = option([0.4, 1.0], "")
        short_side: int = option(-1, "-1: the checkpoint's (not a count: no bound)")

    assert parse_config(Sched, ["--warmup_iters", "0"]).short_side == -1
    for argv, message in ((["--eval_batch_size", "0"], "--eval_batch_size 0: must be >= 1"),
                          (["--warmup_iters", "-1"], "--warmup_iters -1: must be >= 0"),
                          (["--base_lr", "-0.001"], "--base_lr -0.001: must be >= 0"),
                          (["--scales", "0.4", "nan"], "--scales nan: not a finite number"),
                          (["--seed", "1", "--base_lr", ".inf"], "--base_lr inf: not a finite number")):
        with pytest.raises(ConfigError, match=message):
            parse_config(Sched, argv)
    (tmp_path / "s.yaml").write_text("base_lr: .nan\n")
    with pytest.raises(ConfigError, match=r"s.yaml: base_lr nan: not a finite number"):
        parse_config(Sched, ["--config", str(tmp_path / "s.yaml")])
    fields = {f.name: f.metadata["resumable"] for f in dataclasses.fields(Sched)}
    assert fields["progress"] and fields["out_dir"] and not fields["base_lr"] and not fields["seed"]
