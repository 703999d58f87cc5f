"""The shipped run configs (training/configs/*.yaml) and resolving a launch into one recipe config.

Resolution is the recipes' own: `training.config.load_config` merges the recipe's Config defaults,
the shipped YAML and the key=value overrides, and rejects unknown keys and badly typed values with
a message naming the key. The web process imports the recipe module for its Config dataclass (the
first launch pays the torch import, a few seconds) but never trains: the worker runs the recipe.

What a researcher types is data, never a command line, a path or a code-loading switch: an
override may set only the keys its recipe lists in `TUNABLE_KEYS` (next to its Config in
training/), its value is plain YAML (no anchors, aliases or tags), and overrides and the resolved
config are capped in size. `check_overrides` says what is wrong with every line at once, and the
training worker checks a stored run again before it starts anything (`stored_run_problems`).
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from annotation_site.errors import ApplicationError
from annotation_site.runs.recipes import BY_VALUE, RECIPES, SiteRecipe

CONFIG_DIR = Path(settings.BASE_DIR) / "training" / "configs"

# Checkpoint paths the launch form's choices set from the registry (none is tunable from the site).
PATH_KEYS = ("model", "helpfulness_reward_model", "safety_reward_model")

_LAUNCH_COMMAND = re.compile(r"-m\s+training\.(\w+)")


class ConfigInvalid(ApplicationError):
    """A launch whose config cannot be used; `field` names the form field the error belongs to and
    `errors` lists every problem found (the message joins them)."""

    def __init__(self, message: str = "", *, field: str = "overrides", errors: list[str] | None = None):
        errors = list(errors or [message])
        super().__init__(message or " ".join(errors), extra={"field": field, "errors": errors})
        self.field = field
        self.errors = errors


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
        config_recipe = next((recipe.value for recipe in RECIPES if found == recipe.value or found.startswith(recipe.value)), None)
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
    """The form's overrides: one key=value per line; blank lines and lines starting with # are skipped."""
    lines = (line.strip() for line in (text or "").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def launchable(recipe: str) -> SiteRecipe:
    """The row of the recipe a launch names (runs/recipes.py); ConfigInvalid for one it does not name."""
    if recipe not in BY_VALUE:
        raise ConfigInvalid(f'Unknown recipe "{recipe}": use one of {", ".join(BY_VALUE)}.', field="recipe")
    return BY_VALUE[recipe]


def recipe_module(recipe: str):
    return importlib.import_module(launchable(recipe).module)


def tunable_keys() -> list[tuple[str, list[str]]]:
    """(recipe, the keys a researcher may override) for every recipe, for the launch page."""
    return [(recipe.value, sorted(recipe_module(recipe.value).TUNABLE_KEYS)) for recipe in RECIPES]


def check_overrides(recipe: str, overrides: list[str]) -> None:
    """Refuse overrides that are too long, malformed, not plain YAML or not tunable for the recipe;
    the ConfigInvalid lists every bad line, each naming its key."""
    from training.config import ConfigError, parse_yaml, untunable_keys

    module = recipe_module(recipe)
    size = sum(len(line.encode()) + 1 for line in overrides)
    if len(overrides) > settings.RUN_OVERRIDES_MAX_LINES or size > settings.RUN_OVERRIDES_MAX_BYTES:
        raise ConfigInvalid(
            f"The overrides are {len(overrides)} lines and {size} bytes; at most {settings.RUN_OVERRIDES_MAX_LINES} "
            f"lines and {settings.RUN_OVERRIDES_MAX_BYTES} bytes are accepted. Put a longer config in a shipped config "
            "file (training/configs/)."
        )
    fields = {field.name for field in dataclasses.fields(module.Config)}
    errors, refused_any = [], False
    for line in overrides:
        key, sep, raw = line.partition("=")
        key = key.strip()
        if not sep or not key or " " in key:
            shown = line if len(line) <= 60 else line[:57] + "..."
            errors.append(f'"{shown}" is not of the form key=value (e.g. learning_rate=2e-5).')
            continue
        if key == "out":
            errors.append("Do not set out=: every run writes to its own folder under CHECKPOINT_ROOT/runs/.")
            continue
        if key not in fields:
            errors.append(f"{key}: unknown key for the {recipe} recipe (a typo?).")
            continue
        try:
            value = parse_yaml(raw, key) if raw.strip() else None
        except ConfigError as error:
            errors.append(f"{error}.")
            continue
        refused = untunable_keys({key: value}, module.TUNABLE_KEYS)
        if refused:
            refused_any = True
            errors.append(
                f"{', '.join(map(str, refused))} cannot be set from the site: paths, launchers, engine and trainer "
                "arguments come from the shipped config and the launch form's choices."
            )
    if refused_any:
        errors.append(f"Keys you can set for {recipe}: {', '.join(sorted(module.TUNABLE_KEYS))}.")
    if errors:
        raise ConfigInvalid(errors=errors)


def resolve_config(*, recipe: str, config_name: str, overrides: list[str], platform_values: dict) -> object:
    """The recipe's Config for this launch: defaults < shipped file < overrides < the form's choices.

    `platform_values` are what the launch form chose (model from a base checkpoint, data from
    batches, reward models, out); none of those keys is tunable, so overrides cannot set them.
    """
    module = recipe_module(recipe)
    check_overrides(recipe, overrides)
    from training.config import ConfigError, load_config
    from training.data import parse_sources

    path = shipped_config_path(config_name, recipe) if config_name else None
    # JSON is YAML, so the form's values go through the same parser as typed overrides.
    platform = [f"{key}={json.dumps(value)}" for key, value in platform_values.items()]
    try:
        config = load_config(module.Config, path, overrides + platform)
        parse_sources(config.data)
    except ConfigError as error:
        errors = [str(message).replace(str(CONFIG_DIR) + "/", "") for message in error.errors]
        raise ConfigInvalid(errors=[f"The config does not load: {message}" for message in errors]) from None
    size = len(config_yaml(config).encode())
    if size > settings.RUN_CONFIG_MAX_BYTES:
        raise ConfigInvalid(
            f"The resolved config is {size} bytes, more than RUN_CONFIG_MAX_BYTES ({settings.RUN_CONFIG_MAX_BYTES}): "
            "train on fewer batches per run, or ask an admin to raise the limit."
        )
    return config


def stored_run_problems(run) -> list[str]:
    """Why a stored run must not start (empty: it may). The launch checked all of this already;
    the training worker asks again before it runs anything, so a run row written another way (the
    ORM, a restored backup) cannot run a command, load code or write outside its own folder."""
    from annotation_site.generation.models import Deployment
    from annotation_site.generation.paths import is_checkpoint_path
    from training.config import ConfigError, default_values, parse_yaml, untunable_keys

    expected_root = Path(settings.CHECKPOINT_ROOT).resolve() / "runs" / str(run.pk)
    if run.output_dir and Path(run.output_dir) != expected_root:
        return [f"The run's folder is {run.output_dir}, not its own {expected_root}."]
    if not isinstance(run.overrides, list) or not all(isinstance(line, str) for line in run.overrides):
        return ["The run's overrides are not a list of key=value lines."]
    try:
        module = recipe_module(run.recipe)
        check_overrides(run.recipe, run.overrides)
        if len(run.config_text.encode()) > settings.RUN_CONFIG_MAX_BYTES:
            return [f"The run's config is larger than RUN_CONFIG_MAX_BYTES ({settings.RUN_CONFIG_MAX_BYTES})."]
        stored = parse_yaml(run.config_text, "the run's config")
        shipped = default_values(module.Config, shipped_config_path(run.config_name, run.recipe) if run.config_name else None)
    except (ConfigInvalid, ConfigError) as error:
        return list(error.errors)
    if not isinstance(stored, dict):
        return ["The run's config is not a mapping of settings."]
    problems = []
    for key, value in stored.items():
        if value == shipped.get(key, dataclasses.MISSING):
            continue
        if key == "out":
            allowed = value == str(expected_root / "checkpoint")
        elif key in PATH_KEYS:
            allowed = is_checkpoint_path(value)
        elif key == "against":  # a policy evaluation's checkpoints, from the registry
            allowed = isinstance(value, list) and all(isinstance(path, str) and is_checkpoint_path(path) for path in value)
        elif key == "labels":  # the registry's names of those checkpoints
            allowed = isinstance(value, list) and all(isinstance(label, str) for label in value)
        elif key in ("judge_url", "judge_model"):  # a vLLM deployment's endpoint, itself checked when it was saved
            allowed = Deployment.objects.filter(**{"endpoint_url" if key == "judge_url" else "model_name": value}).exists()
        elif key == "data":
            allowed = isinstance(value, list) and all(is_batch_source(source) for source in value)
        elif key == "previous_pools":  # pool.jsonl files of earlier runs of this site
            allowed = isinstance(value, list) and all(_is_run_pool(path) for path in value)
        else:
            allowed = not untunable_keys({key: value}, module.TUNABLE_KEYS)
        if not allowed:
            problems.append(f"{key} is not the shipped config's and cannot be set from the site.")
    return problems


# The keys of a data source the platform may write (training/data.py DataSource), with their types.
_SOURCE_KEYS = {"path": str, "name": str, "guidelines": list, "share": (int, float), "weight": (int, float), "evaluate": bool}


def is_batch_source(source) -> bool:
    """A data source as the platform writes it: an exported folder under EXPORT_ROOT, maybe with a
    name, guidelines, a share or weight of the mix (the weekly loop's mixes), and whether to evaluate."""
    if not isinstance(source, dict) or set(source) - set(_SOURCE_KEYS) or not isinstance(source.get("path"), str):
        return False
    if not all(isinstance(value, _SOURCE_KEYS[key]) for key, value in source.items()):
        return False
    try:
        folder = Path(source["path"]).resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    return folder.is_dir() and folder.is_relative_to(Path(settings.EXPORT_ROOT).resolve())


def _is_run_pool(path) -> bool:
    if not isinstance(path, str) or Path(path).name != "pool.jsonl":
        return False
    try:
        resolved = Path(path).resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    return resolved.is_file() and resolved.is_relative_to(Path(settings.CHECKPOINT_ROOT).resolve() / "runs")


# The form field that fixes a missing path of each config key, when the form did not set it by an
# override: the model comes from "Start from checkpoint", the data from the batches.
_PATH_FIELDS = {
    "model": "base_checkpoint",
    "helpfulness_reward_model": "helpfulness_reward_model",
    "safety_reward_model": "safety_reward_model",
    "data": "batches",
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def check_paths_exist(config, *, overrides: list[str]) -> None:
    """The model (a checkpoint folder or a hub id), the reward models and every data path must exist
    where the run will read them: the worker runs the recipe in BASE_DIR, so relative paths are
    resolved there. The error goes on the form field that fixes it (the overrides when an override
    set the key). A config that loads can still name a folder no one created; without this check
    the run would fail seconds after the launch, with a traceback in its log."""
    overridden = {line.partition("=")[0].strip() for line in overrides}

    def refuse(key: str, message: str):
        raise ConfigInvalid(f"{key}: {message}", field="overrides" if key in overridden else _PATH_FIELDS[key])

    base = Path(settings.BASE_DIR)
    for key in ("model", "helpfulness_reward_model", "safety_reward_model"):
        value = getattr(config, key, None)
        if value is None:
            continue
        where = (base / Path(value).expanduser()).resolve()
        if where.is_dir() and (where / "config.json").is_file():
            continue
        if where.exists():
            refuse(key, f"{where} is not a checkpoint folder (it has no config.json).")
        if key == "model" and _HUB_ID.match(value) and _hub_model_exists(value):
            continue
        refuse(
            key,
            f'"{value}" does not exist where the run reads it ({where})'
            + (" and is not a model on the Hugging Face hub" if _HUB_ID.match(value) else "")
            + ": choose a registered checkpoint, or set it to a checkpoint folder"
            + (" or a hub id." if key == "model" else "."),
        )
    from training.data import parse_sources

    for source in parse_sources(config.data):
        where = (base / Path(source.path).expanduser()).resolve()
        if not where.exists():
            refuse("data", f'"{source.path}" does not exist where the run reads it ({where}): choose exported batches, or fix the path.')


def _hub_model_exists(repo_id: str) -> bool:
    """In the local Hugging Face cache, or found on the hub (a machine without network: False)."""
    import huggingface_hub

    if isinstance(huggingface_hub.try_to_load_from_cache(repo_id, "config.json"), str):
        return True
    try:
        huggingface_hub.model_info(repo_id, timeout=10)
    except Exception:  # not found, no network, or the hub is down: the run could not read it either
        return False
    return True


def config_yaml(config) -> str:
    """The resolved config as the YAML file the recipe is started with (as `save_config` writes it)."""
    from training.config import dump_config

    return dump_config(config)
