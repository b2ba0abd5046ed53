"""Config = a dataclass schema + YAML defaults + command-line overrides.

Every entry point declares one dataclass (subclassing `RunConfig` for the shared run switches). A YAML file
given with `--config` only supplies defaults; flags on the command line win. Keys and flags are the same
snake_case names. An unknown key, in the file or on the command line, is a `ConfigError` that lists the
valid keys, and a value outside a field's declared `choices` is one too. So are values no run can use, checked by
field name for every schema: a float that is NaN or infinite (`--lr nan`), a `batch_size` (or `*_batch_size`)
below 1, and a negative count of `epochs`, `iters` or `steps` (or `*_epochs`, ...) or learning rate (`lr`, `*_lr`).

    @dataclass
    class TrainConfig(RunConfig):
        lr: float = option(5e-4, "Adam learning rate")
        features: str = option("all", "input features", choices=("all", "one_hot"))

    cfg = parse_config(TrainConfig, argv, config_dir=Path(__file__).parent)
"""
import argparse
import dataclasses
import math
import os
import re
import typing
from pathlib import Path

import yaml

from .errors import ConfigError


def option(default, help="", choices=None, resumable=False):
    """A dataclass field with a help text and optional named choices (lists and dicts get a factory).

    `resumable=True` declares that `--resume` may change the field and the change is applied from there on
    (e.g. `epochs` when no schedule depends on it, `progress`); any other field that differs from the run's
    config.yaml makes `--resume` refuse (`common.rundir.Run`), so config.yaml never records a value not used.
    """
    meta = {"help": help, "choices": tuple(choices) if choices else None, "resumable": resumable}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass
class RunConfig:
    """The switches every entry point shares."""
    out_dir: str = option("", "run directory; default runs/<method>/<config>-<timestamp>", resumable=True)
    seed: int = option(0, "random seed (python, numpy, torch)")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    deterministic: bool = option(False, "use deterministic algorithms (slower on CUDA)")
    amp: bool = option(False, "bf16 autocast on CUDA (no-op on CPU)")
    compile: bool = option(False, "torch.compile the model on CUDA (no-op on CPU)")
    resume: bool = option(False, "continue the run in --out_dir from its checkpoints (with the same config)",
                          resumable=True)
    overwrite: bool = option(False, "replace the results of the run already in --out_dir (without it, or "
                             "--resume, an existing run directory is refused)", resumable=True)
    progress: bool = option(True, "show tqdm progress bars", resumable=True)
    cpu_threads: int = option(0, "torch intra-op threads on CPU (0: torch's default); 1 is fastest for tiny "
                              "models on a busy machine", resumable=True)


def _base_type(tp):
    """(origin, args) with Optional[X] reduced to X."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return _base_type(rest[0]) if len(rest) == 1 else (tp, ())
    return origin or tp, args


def _coerce(name, value, tp):
    """Convert a YAML or command-line value to the field's declared type, or raise ConfigError."""
    if value is None:
        return None
    base, args = _base_type(tp)
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if base in (int, float):
            if isinstance(value, bool):
                raise ValueError(value)
            if isinstance(value, str):
                value = yaml.safe_load(value)
            if base is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return base(value)
        if base is str:
            return str(value)
        if base in (list, tuple):
            if isinstance(value, str):
                value = yaml.safe_load(value) if value.strip().startswith("[") else value.split(",")
            if not isinstance(value, (list, tuple)):
                value = [value]
            item_tp = args[0] if args else str
            return base(_coerce(name, v, item_tp) for v in value)
        if base is dict:
            value = yaml.safe_load(value) if isinstance(value, str) else value
            if not isinstance(value, dict):
                raise ValueError(value)
            return dict(value)
    except (ValueError, TypeError, yaml.YAMLError):
        raise ConfigError(f"{name}: cannot read {value!r} as {getattr(base, '__name__', base)}") from None
    return value


# Lower bounds every schema gets by field name: (name pattern, smallest allowed value, what the field counts).
NAMED_BOUNDS = (
    (re.compile(r"(.+_)?batch_size"), 1, "a batch size"),
    (re.compile(r"(.+_)?(epochs|iters|steps)"), 0, "a number of epochs, iterations or steps"),
    (re.compile(r"(.+_)?lr"), 0, "a learning rate"),
)


def _where(source, name):
    return f"--{name}" if source == "command line" else f"{source}: {name}"


def _check_value(name, value, source):
    """ConfigError for a NaN/inf float, or a value below its NAMED_BOUNDS (naming the flag or the file)."""
    items = value if isinstance(value, (list, tuple)) else [value]
    for v in items:
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{_where(source, name)} {v}: not a finite number")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for pattern, low, what in NAMED_BOUNDS:
            if pattern.fullmatch(name) and value < low:
                raise ConfigError(f"{_where(source, name)} {value}: must be >= {low} ({what})")


def _resolve_config_path(path, config_dir):
    """A relative path is read from the working directory, else from `config_dir`; where both hold it, with
    different contents, the choice would be silent, so it is a ConfigError naming both paths."""
    p = Path(path)
    if p.is_absolute() or config_dir is None:
        return p
    there = Path(config_dir) / p
    if p.is_file() and there.is_file() and p.read_bytes() != there.read_bytes():
        raise ConfigError(f"--config {path} is ambiguous: it exists in the working directory ({p.resolve()}) and "
                          f"in the method folder ({there.resolve()}); pass one of them as an absolute path")
    return p if p.exists() else there


def load_yaml(path):
    """Read a YAML mapping, with a ConfigError naming the file when it is missing or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of key: value at the top level")
    return data


def config_from_dict(schema, values, source="config"):
    """Build `schema` from a dict, type-checking each value; unknown keys are an error listing valid ones."""
    fields = {f.name: f for f in dataclasses.fields(schema)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(schema)
    kwargs = {}
    for name, value in values.items():
        value = _coerce(name, value, hints[name])
        choices = fields[name].metadata.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"{source}: {name}={value!r} is not one of {', '.join(map(str, choices))}")
        _check_value(name, value, source)
        kwargs[name] = value
    return schema(**kwargs)


def parse_config(schema, argv=None, config_dir=None, description=None):
    """Parse `--config FILE` plus `--key value` flags into an instance of `schema`.

    A relative `--config` path that does not exist from the working directory is looked up in `config_dir`
    (the method folder), so `bash <method>/train.sh --config configs/smoke.yaml` works from anywhere; one that
    exists in both places, with different contents, is refused as ambiguous.
    The chosen file's stem is kept on the returned object as `cfg._config_name` for run naming.
    """
    hints = typing.get_type_hints(schema)
    parser = argparse.ArgumentParser(description=description, allow_abbrev=False)
    parser.add_argument("--config", default=None, help="YAML file with defaults (flags win)")
    for f in dataclasses.fields(schema):
        base, _ = _base_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kw = {"default": argparse.SUPPRESS, "help": f"{f.metadata.get('help', '')} (default: {default!r})"}
        if f.metadata.get("choices"):
            kw["help"] += f"; one of {', '.join(map(str, f.metadata['choices']))}"
        if base is bool:  # `--resume` alone means true; `--resume false` also works
            kw.update(nargs="?", const="true")
        elif base in (list, tuple):
            kw.update(nargs="+")
        parser.add_argument(f"--{f.name}", **kw)
    args, unknown = parser.parse_known_args(None if argv is None else [str(a) for a in argv])
    if unknown:
        raise ConfigError(f"unknown argument(s) {' '.join(unknown)}; valid flags: --config, "
                          + ", ".join(f"--{f.name}" for f in dataclasses.fields(schema)))
    flags = vars(args)
    config_path = flags.pop("config")
    values = {}
    if config_path:
        config_path = _resolve_config_path(config_path, config_dir)
        values = load_yaml(config_path)
        config_from_dict(schema, values, source=str(config_path))  # blame the file for its own mistakes
    for name, value in flags.items():
        if isinstance(value, list) and len(value) == 1:  # `--seeds 0,1,2` as well as `--seeds 0 1 2`
            value = value[0]
        values[name] = value
    cfg = config_from_dict(schema, values, source="command line")
    cfg._config_name = Path(config_path).stem if config_path else "default"
    return cfg


def config_to_dict(cfg):
    """Plain dict of the dataclass fields (tuples become lists so YAML stays readable)."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def save_config(cfg, path):
    """Write the resolved config as YAML (atomically), so the run can be repeated with `--config path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    os.replace(tmp, path)
