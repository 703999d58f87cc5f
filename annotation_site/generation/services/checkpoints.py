"""The checkpoint registry: registering a training run's output folder, creating and editing a
checkpoint's record."""
from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction

from annotation_site.errors import ApplicationError, Conflict
from annotation_site.generation.models import Checkpoint, CheckpointKind
from annotation_site.generation.paths import CheckpointPathRefused, checkpoint_path
from annotation_site.text_rules import require_storable

# Keys of a training run's config.yaml that name the checkpoint it started from.
PARENT_CONFIG_KEYS = ("model", "policy", "base_model", "init_from")
# A checkpoint's config.json and config.yaml are a few kilobytes; larger ones are refused unread.
CONFIG_MAX_BYTES = 1_000_000


def _checkpoint_folder(path: str) -> Path:
    """The checkpoint folder at `path`: inside the checkpoint roots (else one message for every
    refusal, see generation/paths.py) and holding a Hugging Face config.json."""
    folder = Path(checkpoint_path(path))
    if not folder.is_dir():  # a hub id: there is no folder here to read
        raise CheckpointPathRefused()
    if not (folder / "config.json").is_file():
        raise ApplicationError(f"{folder} has no config.json: it is not a Hugging Face checkpoint folder.")
    return folder


def _validate_kind(kind: str) -> None:
    if kind not in CheckpointKind.values:
        raise ApplicationError(f'Unknown checkpoint kind "{kind}": use one of {", ".join(CheckpointKind.values)}.')


def checkpoint_create(
    *, name: str, path: str, kind: str, parent: Checkpoint | None = None, run: str = "", notes: str = "",
    training_config: dict | None = None,
) -> Checkpoint:
    name = (name or "").strip()
    if not name:
        raise ApplicationError("A checkpoint needs a name.")
    _validate_kind(kind)
    for where, value in (("the name", name), ("the notes", notes), ("the training config", training_config or {})):
        require_storable(value, where=where)
    if Checkpoint.objects.filter(name=name).exists():
        raise Conflict(f'A checkpoint named "{name}" exists already: choose another name.')
    path = checkpoint_path(path)
    try:
        with transaction.atomic():
            return Checkpoint.objects.create(
                name=name, path=path, kind=kind, parent=parent, run=run, notes=notes,
                training_config=training_config or {},
            )
    except IntegrityError:
        raise Conflict(f'A checkpoint named "{name}" exists already: choose another name.') from None


def checkpoint_register(
    *, path: str, name: str = "", kind: str = "", parent: Checkpoint | None = None, notes: str = ""
) -> Checkpoint:
    """Register a training run's output folder: reads its config.yaml (when present) for the run's
    settings and parent checkpoint, and its model config to recognise a reward model."""
    folder = _checkpoint_folder(path)
    try:
        text = (folder / "config.json").read_bytes()
        model_config = json.loads(text) if len(text) <= CONFIG_MAX_BYTES else None
    except (OSError, ValueError):  # unreadable, not JSON, or not UTF-8
        model_config = None
    if not isinstance(model_config, dict):
        raise ApplicationError(f"{folder}/config.json is not a Hugging Face model config (a JSON object).")
    architectures = model_config.get("architectures")
    if not isinstance(architectures, list):
        architectures = []
    is_reward_model = any(isinstance(name_, str) and name_.endswith("ForSequenceClassification") for name_ in architectures)
    training_config = _read_training_config(folder)
    if not kind:
        if not is_reward_model:
            raise ApplicationError(
                f"{folder} holds a causal language model: say which kind it is "
                f"(one of {', '.join(k for k in CheckpointKind.values if k != CheckpointKind.REWARD_MODEL)})."
            )
        kind = CheckpointKind.REWARD_MODEL
    _validate_kind(kind)
    if is_reward_model != (kind == CheckpointKind.REWARD_MODEL):
        raise ApplicationError(
            f"{folder} is a {'reward model (sequence classifier)' if is_reward_model else 'causal language model'}, "
            f'not a "{kind}" checkpoint.'
        )
    if parent is None:
        parent = _parent_from_config(training_config)
    return checkpoint_create(
        name=name or folder.name,
        path=str(folder),
        kind=kind,
        parent=parent,
        run=str(folder) if training_config else "",
        notes=notes,
        training_config=training_config,
    )


def _read_training_config(folder: Path) -> dict:
    from training.config import ConfigError, parse_yaml

    config_file = folder / "config.yaml"
    if not config_file.is_file():
        return {}
    try:
        text = config_file.read_bytes()
        if len(text) > CONFIG_MAX_BYTES:
            raise ConfigError(f"larger than {CONFIG_MAX_BYTES} bytes")
        config = parse_yaml(text.decode(), "config.yaml")
    except (ConfigError, UnicodeDecodeError) as error:
        raise ApplicationError(f"{config_file} is not a training config ({error}).") from None
    if not isinstance(config, dict):
        raise ApplicationError(f"{config_file} is not a mapping of settings.")
    # Round-trip through JSON so the stored copy holds only JSON types (dates become strings).
    return json.loads(json.dumps(config, default=str))


def _parent_from_config(config: dict) -> Checkpoint | None:
    for key in PARENT_CONFIG_KEYS:
        value = config.get(key)
        if isinstance(value, str) and value:
            try:
                resolved = str((Path(settings.BASE_DIR) / value).resolve())
            except (OSError, RuntimeError):
                resolved = value
            parent = Checkpoint.objects.filter(path__in={value, resolved}).order_by("-created_at").first()
            if parent is not None:
                return parent
    return None


def checkpoint_update(*, checkpoint: Checkpoint, data: dict) -> Checkpoint:
    """Change a checkpoint's name, parent or notes (its weights and kind are what they are)."""
    allowed = {"name", "parent", "notes"}
    unknown = set(data) - allowed
    if unknown:
        raise ApplicationError(f"These fields cannot be changed: {', '.join(sorted(unknown))}.")
    if "name" in data:
        name = (data["name"] or "").strip()
        if not name:
            raise ApplicationError("A checkpoint needs a name.")
        if Checkpoint.objects.filter(name=name).exclude(pk=checkpoint.pk).exists():
            raise Conflict(f'A checkpoint named "{name}" exists already: choose another name.')
        checkpoint.name = name
    if "parent" in data:
        if data["parent"] is not None and data["parent"].pk == checkpoint.pk:
            raise ApplicationError("A checkpoint cannot be its own parent.")
        checkpoint.parent = data["parent"]
    if "notes" in data:
        require_storable(data["notes"], where="the notes")
        checkpoint.notes = data["notes"]
    checkpoint.save()
    return checkpoint
