"""The shipped run configs (training/configs/*.yaml) and resolving a launch into one recipe config.

Resolution is the recipes' own: `training.config.load_config` merges the recipe's Config defaults,
the shipped YAML and the key=value overrides, and rejects unknown keys and badly typed values with
a message naming the key. The web process imports the recipe module for its Config dataclass (the
first launch pays the torch import, a few seconds) but never trains: the worker runs the recipe.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from django.conf import settings

from annotation_site.errors import ApplicationError
from annotation_site.generation.models import CheckpointKind
from annotation_site.runs.models import Recipe

CONFIG_DIR = Path(settings.BASE_DIR) / "training" / "configs"

# The kind of checkpoint each recipe produces, as the generation app's registry names it (the
# evaluation recipe produces none: its run folder holds tables and plots).
CHECKPOINT_KIND = {
    Recipe.REWARD_MODEL: CheckpointKind.REWARD_MODEL,
    Recipe.SFT: CheckpointKind.SFT,
    Recipe.REJECTION_SAMPLING: CheckpointKind.REJECTION_SAMPLING,
    Recipe.PPO: CheckpointKind.PPO,
}
# Recipes that score answers with reward models (helpfulness_reward_model / safety_reward_model).
USES_REWARD_MODELS = (Recipe.REJECTION_SAMPLING, Recipe.PPO, Recipe.EVALUATE_POLICY)
# Keys the launch form sets itself; typing them as overrides too would be ambiguous.
PLATFORM_KEYS = ("out",)

_LAUNCH_COMMAND = re.compile(r"-m\s+training\.(\w+)")


class ConfigInvalid(ApplicationError):
    """A launch whose config cannot be used; `field` names the form field the error belongs to."""

    def __init__(self, message: str, *, field: str = "overrides"):
        super().__init__(message, extra={"field": field})
        self.field = field


@dataclass(frozen=True)
class ShippedConfig:
    name: str  # file name in training/configs/
    recipe: str
    description: str  # the header comment's first line


def shipped_configs(recipe: str | None = None) -> list[ShippedConfig]:
    """Shipped configs, by file name; each belongs to the recipe its header's launch command runs."""
    configs = []
    for path in sorted(CONFIG_DIR.glob("*.yaml")):
        text = path.read_text()
        header = [line.lstrip("# ").rstrip() for line in text.splitlines() if line.startswith("#")]
        match = _LAUNCH_COMMAND.search("\n".join(header))
        found = match.group(1) if match else path.stem
        config_recipe = next((value for value in Recipe.values if found == value or found.startswith(value)), None)
        if config_recipe is None or (recipe and config_recipe != recipe):
            continue
        configs.append(ShippedConfig(path.name, config_recipe, next((line for line in header if line), "")))
    return configs


def shipped_config_path(name: str, recipe: str) -> Path:
    by_name = {config.name: config for config in shipped_configs()}
    if name not in by_name:
        raise ConfigInvalid(f'There is no shipped config "{name}" in training/configs/.', field="config_name")
    if by_name[name].recipe != recipe:
        raise ConfigInvalid(
            f'{name} is a config of the {by_name[name].recipe} recipe, not of {recipe}: pick one of '
            f'{", ".join(c.name for c in shipped_configs(recipe)) or "none (use the defaults)"}.',
            field="config_name",
        )
    return CONFIG_DIR / name


def parse_overrides(text: str) -> list[str]:
    """One key=value per line; blank lines and lines starting with # are skipped."""
    overrides = []
    for number, line in enumerate((text or "").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, _ = line.partition("=")
        if not sep or not key.strip() or " " in key.strip():
            raise ConfigInvalid(f'Line {number} "{line}" is not of the form key=value (e.g. learning_rate=2e-5).')
        overrides.append(line)
    return overrides


def resolve_config(*, recipe: str, config_name: str, overrides: list[str], platform_values: dict) -> object:
    """The recipe's Config for this launch: defaults < shipped file < overrides < the form's choices.

    `platform_values` are what the launch form chose (model from a base checkpoint, data from
    batches, reward models, out); the user may not also set those keys as overrides.
    """
    if recipe not in Recipe.values:
        raise ConfigInvalid(f'Unknown recipe "{recipe}": use one of {", ".join(Recipe.values)}.', field="recipe")
    overridden = {line.partition("=")[0].strip() for line in overrides}
    reserved = sorted(overridden & set(PLATFORM_KEYS))
    if reserved:
        raise ConfigInvalid(f"Do not set {reserved[0]}=: every run writes to its own folder under CHECKPOINT_ROOT/runs/.")
    twice = sorted(overridden & (set(platform_values) - set(PLATFORM_KEYS)))
    if twice:
        raise ConfigInvalid(f"{', '.join(twice)} set twice: by the form's choices and by an override; keep one.")
    from training.config import ConfigError, load_config
    from training.data import parse_sources

    module = importlib.import_module(f"training.{recipe}")
    path = shipped_config_path(config_name, recipe) if config_name else None
    # JSON is YAML, so the form's values go through the same parser as typed overrides.
    platform = [f"{key}={json.dumps(value)}" for key, value in platform_values.items()]
    try:
        config = load_config(module.Config, path, overrides + platform)
        parse_sources(config.data)
    except ConfigError as error:
        message = str(error).replace(str(CONFIG_DIR) + "/", "")
        raise ConfigInvalid(f"The config does not load: {message}") from None
    return config


def config_yaml(config) -> str:
    """The resolved config as the YAML file the recipe is started with (as `save_config` writes it)."""
    return yaml.safe_dump(dataclasses.asdict(config), sort_keys=False, allow_unicode=True)
