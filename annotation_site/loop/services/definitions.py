"""A loop definition and its versions: every save is a new version (iterations keep the version
they ran), checked before it is stored, and its schedule kept in celery beat."""
from __future__ import annotations

import json

from django.db import transaction
from django.db.models import Max

from annotation_site.errors import ApplicationError
from annotation_site.generation.models import CheckpointKind
from annotation_site.loop.models import LoopDefinition, LoopVersion, Trigger
from annotation_site.runs.configs import ConfigInvalid, check_overrides, shipped_config_path
from annotation_site.runs.models import Recipe
from annotation_site.runs.services import GUIDELINES

SCHEDULE_TASK = "annotation_site.loop.tasks.loop_start_scheduled"

# Each version field naming a shipped config or overrides, and the recipe it belongs to.
CONFIG_FIELDS = {
    "helpfulness_config": Recipe.REWARD_MODEL,
    "safety_config": Recipe.REWARD_MODEL,
    "rejection_sampling_config": Recipe.REJECTION_SAMPLING,
    "ppo_config": Recipe.PPO,
    "evaluation_config": Recipe.EVALUATE_POLICY,
}
OVERRIDE_FIELDS = {
    "reward_model_overrides": Recipe.REWARD_MODEL,
    "reward_model_evaluation_overrides": Recipe.EVALUATE_REWARD_MODEL,
    "rejection_sampling_overrides": Recipe.REJECTION_SAMPLING,
    "ppo_overrides": Recipe.PPO,
    "evaluation_overrides": Recipe.EVALUATE_POLICY,
}
FRACTIONS = ("min_win_rate", "max_unsafe_share_rise", "canary_share", "canary_min_win_rate")


class DefinitionInvalid(ApplicationError):
    """A loop version that cannot run; `field` names the form field."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message, extra={"field": field, "errors": [message]})


def loop_version_save(*, definition: LoopDefinition | None = None, name: str = "", values: dict, actor=None) -> LoopVersion:
    """Check `values` (LoopVersion's fields) and store them as the definition's next version (a new
    definition named `name` when none is given)."""
    _check(values)
    with transaction.atomic():
        if definition is None:
            if not name.strip():
                raise DefinitionInvalid("Give the loop a name.", field="name")
            definition, _ = LoopDefinition.objects.get_or_create(name=name.strip())
        definition = LoopDefinition.objects.select_for_update().get(pk=definition.pk)
        number = (definition.versions.aggregate(n=Max("number"))["n"] or 0) + 1
        version = LoopVersion.objects.create(definition=definition, number=number, created_by=actor, **values)
        schedule_sync(definition=definition)
    return version


def _check(values: dict) -> None:
    checkpoint = values.get("chat_checkpoint")
    if checkpoint is None or checkpoint.kind == CheckpointKind.REWARD_MODEL:
        raise DefinitionInvalid("Choose the chat checkpoint the reward models start from (not a reward model).",
                                field="chat_checkpoint")
    guidelines = values.get("guidelines") or []
    if not guidelines or set(guidelines) - set(GUIDELINES):
        raise DefinitionInvalid(f"Choose the guidelines to train reward models for, among {', '.join(GUIDELINES)}.",
                                field="guidelines")
    for field, recipe in CONFIG_FIELDS.items():
        if values.get(field):
            try:
                shipped_config_path(values[field], recipe)
            except ConfigInvalid as error:
                raise DefinitionInvalid(error.message, field=field) from None
    for field, recipe in OVERRIDE_FIELDS.items():
        try:
            check_overrides(recipe, list(values.get(field) or []))
        except ConfigInvalid as error:
            raise DefinitionInvalid(" ".join(error.errors), field=field) from None
    for field in FRACTIONS:
        if not 0 <= float(values.get(field, 0)) <= 1:
            raise DefinitionInvalid(f"{field} is a share between 0 and 1.", field=field)
    # Negative: the new reward model must be better than the one in use by at least that much.
    if not -1 <= float(values.get("reward_model_max_drop", 0)) <= 1:
        raise DefinitionInvalid("The reward-model gate's allowed drop is an accuracy difference between -1 and 1.",
                                field="reward_model_max_drop")
    if not 0 < float(values.get("canary_share", 0.2)) < 1:
        raise DefinitionInvalid("The canary's share of new pairs is between 0 and 1 (exclusive).", field="canary_share")
    _check_sources(values.get("sources") or [], guidelines)
    if values.get("trigger") == Trigger.SCHEDULE:
        _crontab(values.get("schedule", LoopVersion._meta.get_field("schedule").default))


def _check_sources(sources, guidelines) -> None:
    from annotation_site.batches.selectors import source_names

    if not isinstance(sources, list):
        raise DefinitionInvalid("The mix is a list of sources.", field="sources")
    known = set(source_names())
    for entry in sources:
        shown = json.dumps(entry)
        if not isinstance(entry, dict) or set(entry) - {"source", "reward_model", "guidelines", "share"}:
            raise DefinitionInvalid(f"{shown}: a mix entry has source, reward_model, share and optional guidelines.",
                                    field="sources")
        if entry.get("reward_model") not in guidelines:
            raise DefinitionInvalid(f"{shown}: reward_model is one of {', '.join(guidelines)}.", field="sources")
        if entry.get("source") != "batches" and entry.get("source") not in known:
            raise DefinitionInvalid(f'{shown}: no imported dataset "{entry.get("source")}" (known: '
                                    f'{", ".join(sorted(known)) or "none"}; or "batches" for the weekly batches).',
                                    field="sources")
        share = entry.get("share")
        if not isinstance(share, int | float) or not 0 < share < 1:
            raise DefinitionInvalid(f"{shown}: share is the source's fraction of the mix, between 0 and 1.", field="sources")
        if set(entry.get("guidelines") or []) - set(GUIDELINES):
            raise DefinitionInvalid(f"{shown}: guidelines are among {', '.join(GUIDELINES)}.", field="sources")
    for guideline in guidelines:
        total = sum(entry["share"] for entry in sources if entry["reward_model"] == guideline)
        if total >= 1:
            raise DefinitionInvalid(f"The {guideline} reward model's shares add up to {total}; keep them below 1 "
                                    "(the rest is the weekly batches' own data).", field="sources")


def _crontab(text: str) -> dict:
    fields = text.split()
    if len(fields) != 5:
        raise DefinitionInvalid(f'"{text}" is not a crontab: give minute hour day-of-month month day-of-week, e.g. "0 6 * * 1".',
                                field="schedule")
    from celery.schedules import crontab

    keys = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
    try:
        crontab(**dict(zip(keys, fields)))
    except (ValueError, TypeError) as error:
        raise DefinitionInvalid(f'"{text}" is not a valid crontab: {error}.', field="schedule") from None
    return dict(zip(keys, fields))


def schedule_sync(*, definition: LoopDefinition) -> None:
    """Keep the definition's beat entry in step with its current version: enabled only while the
    definition is enabled and triggered by a schedule."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    version = definition.current_version
    name = f"loop {definition.pk}: scheduled iteration"
    wanted = definition.enabled and version is not None and version.trigger == Trigger.SCHEDULE
    if not wanted:
        PeriodicTask.objects.filter(name=name).update(enabled=False)
        return
    crontab, _ = CrontabSchedule.objects.get_or_create(**_crontab(version.schedule), timezone="UTC")
    PeriodicTask.objects.update_or_create(
        name=name, defaults={"task": SCHEDULE_TASK, "crontab": crontab, "interval": None, "args": json.dumps([definition.pk]),
                             "enabled": True},
    )


def loop_definition_set_enabled(*, definition: LoopDefinition, enabled: bool) -> LoopDefinition:
    definition.enabled = enabled
    definition.save(update_fields=["enabled"])
    schedule_sync(definition=definition)
    return definition
