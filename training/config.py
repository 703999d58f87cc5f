"""Recipe configuration: a dataclass with commented defaults, a YAML file, and `key=value` overrides.

Every recipe (`training/<recipe>.py`) declares a `Config` dataclass. A run is launched as

    python -m training.<recipe> --config training/configs/X.yaml key=value ...

and `load_config` merges the dataclass defaults, the YAML file and the overrides, in that order.
Unknown keys and values of the wrong type are errors that name the key, so a typo never trains
a model on a silently ignored setting. The resolved config is written beside each checkpoint
(`save_config`) and can be loaded back with `load_config(Config, "<checkpoint>/config.yaml")`.

Written by hand because the libraries that do this (Hydra/OmegaConf, simple-parsing) would be a
new dependency for some forty lines, and HfArgumentParser accepts neither nested lists of data
sources nor `key=value` overrides on top of a YAML file.

YAML is read with `StrictLoader`: plain data only. Anchors and aliases (`&a`, `*a`) are refused,
because they let a few hundred bytes expand into megabytes (the "billion laughs"), and so are
tags (`!!python/object`, `!!binary`), which no setting needs; nesting is capped too.

Each recipe also names its `TUNABLE_KEYS`: the settings a researcher may override from the site.
`untunable_keys` checks a mapping against such a list; everything else (the model and data paths,
`out`, launchers, engine arguments, extra trainer arguments) comes from the shipped configs, the
launch form's choices or the operator's settings, never from text typed into a web form.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

C = TypeVar("C")


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message says which key and why.

    `errors` holds one message per problem when several were found (the message joins them)."""

    def __init__(self, message: str, errors: list[str] | None = None):
        super().__init__(message)
        self.errors = errors or [message]


# Deeper nesting than this is no setting's (PyYAML's composer recurses once per level).
MAX_YAML_DEPTH = 20


class StrictLoader(yaml.SafeLoader):
    """A SafeLoader for plain data: no anchors, aliases or tags, at most MAX_YAML_DEPTH levels."""

    _depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise ConfigError("YAML anchors and aliases (&name, *name) are not allowed: write the value out")
        if getattr(event, "tag", None) not in (None, "!"):
            raise ConfigError(f"YAML tags ({event.tag}) are not allowed: write a plain value")
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise ConfigError(f"the value is nested deeper than {MAX_YAML_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def parse_yaml(text: str, what: str = "value") -> Any:
    """Parse plain YAML data with `StrictLoader`; any problem is a ConfigError naming `what`."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - StrictLoader is a SafeLoader
    except ConfigError as error:
        raise ConfigError(f"{what}: {error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{what} is not valid YAML: {_yaml_problem(error)}") from None


def _yaml_problem(error: yaml.YAMLError) -> str:
    """What PyYAML found wrong and where, without its echo of the text."""
    mark = getattr(error, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{getattr(error, 'problem', None) or str(error).splitlines()[0]}{where}"


def untunable_keys(values: dict, tunable, prefix: str = "") -> list[str]:
    """The keys of `values` a researcher may not set, dotted for nested mappings (`sft.out`).

    `tunable` lists the allowed keys; `sft.epochs` in it allows a mapping under `sft` holding
    `epochs` (and only the listed keys)."""
    refused = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        if name in tunable:
            continue
        if isinstance(value, dict) and any(allowed.startswith(f"{name}.") for allowed in tunable):
            refused += untunable_keys(value, tunable, prefix=f"{name}.")
        else:
            refused.append(name)
    return refused


def load_config(config_class: type[C], path: str | Path | None = None, overrides: list[str] | None = None) -> C:
    """Build `config_class` from its defaults, the YAML file at `path`, then `key=value` overrides.

    Override values are parsed as YAML, so `lr=2e-5`, `bf16=false`, `guidelines=[safety]` and
    `data=[{path: exports/2026-W48}]` all work. A dotted key changes one part of a list or mapping
    and keeps the rest: `data.0.guidelines=[safety]` filters the first data source only.
    """
    values: dict[str, Any] = {}
    if path is not None:
        values.update(_read_yaml(Path(path)))
    for override in overrides or []:
        key, sep, raw = override.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {override!r} is not of the form key=value")
        value = parse_yaml(raw, key.strip()) if raw.strip() else None
        if "." in key:
            _set_nested(config_class, values, key.strip(), value)
        else:
            values[key.strip()] = value
    return build_config(config_class, values, origin=str(path) if path else "overrides")


def _set_nested(config_class: type, values: dict[str, Any], key: str, value: Any) -> None:
    """Apply `a.0.b=value`: index into the list or mapping already set for `a` (file or default)."""
    name, *path = key.split(".")
    fields = {field.name: field for field in dataclasses.fields(config_class)}
    if name not in fields:
        raise ConfigError(f"override {key}: unknown key {name}; known keys: {', '.join(sorted(fields))}")
    if name in values:
        node = copy.deepcopy(values[name])
    elif fields[name].default_factory is not dataclasses.MISSING:
        node = fields[name].default_factory()
    else:
        raise ConfigError(f"override {key}: {name} is not set by the config file, so there is nothing to change in it")
    values[name] = node
    for depth, part in enumerate(path):
        where = ".".join([name, *path[:depth]])
        last = depth == len(path) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"override {key}: {where} has {len(node)} entries, numbered from 0; {part!r} is not one")
            index = int(part)
            if last:
                node[index] = value
            else:
                if isinstance(node[index], str):
                    node[index] = {"path": node[index]}  # a data source written as its bare path
                node = node[index]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise ConfigError(f"override {key}: {where} is {node!r}, not a list or mapping to index into")


def default_values(config_class: type, path: str | Path | None = None) -> dict[str, Any]:
    """The values a run gets without overrides: each field's default, then the YAML file at
    `path` (unchecked; required fields without a value are absent)."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(config_class):
        if field.default is not dataclasses.MISSING:
            values[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            values[field.name] = field.default_factory()
    if path is not None:
        values.update(_read_yaml(Path(path)))
    return values


def build_config(config_class: type[C], values: dict[str, Any], origin: str = "config") -> C:
    """Check every key and value against the dataclass fields and build the config."""
    fields = {field.name: field for field in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"{origin}: unknown key(s) {', '.join(unknown)} for {config_class.__module__}.{config_class.__name__}; "
            f"known keys: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(config_class)
    checked, errors = {}, []
    for key, value in values.items():
        try:
            checked[key] = _check_type(key, value, hints[key], origin)
        except ConfigError as error:
            errors.append(str(error))
    if errors:
        raise ConfigError("; ".join(errors), errors)
    missing = [
        name
        for name, field in fields.items()
        if name not in checked
        and field.default is dataclasses.MISSING
        and field.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{origin}: required key(s) {', '.join(missing)} not set")
    try:
        return config_class(**checked)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{origin}: {error}") from error


def dump_config(config: Any) -> str:
    """The resolved config as YAML, in field order, loadable again with `load_config` (asdict copies
    every container, so the dump never needs an alias, which StrictLoader would refuse)."""
    return yaml.safe_dump(dataclasses.asdict(config), sort_keys=False, allow_unicode=True)


def save_config(config: Any, path: str | Path) -> None:
    Path(path).write_text(dump_config(config))


def parse_args(config_class: type[C], argv: list[str] | None, description: str) -> C:
    """The command line every recipe shares: `--config FILE` followed by `key=value` overrides."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", type=Path, help="YAML file with the run's settings (training/configs/)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="settings that replace the file's")
    args = parser.parse_args(argv)
    try:
        return load_config(config_class, args.config, args.overrides)
    except ConfigError as error:
        parser.error(str(error))


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    data = parse_yaml(path.read_text(), str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of key: value, not a {type(data).__name__}")
    return data


def _check_type(key: str, value: Any, hint: Any, origin: str) -> Any:
    """Accept `value` for a field annotated `hint` (ints where floats go), else raise ConfigError."""
    if isinstance(value, str) and _matches(1.0, hint) and not _matches(value, hint):
        # YAML 1.1 reads `2e-5` (no dot) as a string; a float field takes it as the number it is.
        try:
            value = float(value)
        except ValueError:
            pass
    if _matches(value, hint):
        return float(value) if hint is float and isinstance(value, int) else value
    raise ConfigError(f"{origin}: {key} must be {_describe(hint)}, got {value!r}")


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in args)
    if origin is typing.Literal:
        return value in args
    if origin in (list, tuple):
        return isinstance(value, list | tuple) and all(_matches(item, args[0]) for item in value) if args else True
    if origin is dict:
        return isinstance(value, dict) and all(_matches(v, args[1]) for v in value.values()) if args else True
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + ", ".join(repr(arg) for arg in typing.get_args(hint))
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
