"""Prompts and dialogues queued as items, and the samples that open them to annotators
(docs/architecture.md, contract §1): pool prompts, prompts annotators write, continued dialogues."""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from annotation_site.annotation import selectors
from annotation_site.annotation.models import Comparison, Dialogue, DialogueSource, Item, ItemStatus, Sample, TaskKind
from annotation_site.annotation.services.guidelines import validate_kind
from annotation_site.annotation.signals import items_need_samples
from annotation_site.errors import ApplicationError, NotFound
from annotation_site.text_rules import require_storable

# Annotator-written prompts and continued dialogues are generated and served before pool prompts.
ANNOTATOR_PRIORITY = 10
BULK_CHUNK = 2_000


def validate_turns(turns) -> list[dict]:
    """A dialogue context: alternating user/assistant turns with text, starting and ending with a user turn."""
    if not isinstance(turns, list) or not turns:
        raise ApplicationError("A dialogue must be a non-empty list of turns.")
    if len(turns) > settings.DIALOGUE_MAX_TURNS:
        raise ApplicationError(
            f"The dialogue has {len(turns)} turns, more than the {settings.DIALOGUE_MAX_TURNS} allowed "
            "(DIALOGUE_MAX_TURNS): shorten it."
        )
    clean = []
    for index, turn in enumerate(turns):
        if not isinstance(turn, dict) or set(turn) - {"role", "content"} or not {"role", "content"} <= set(turn):
            raise ApplicationError(f'Turn {index + 1} must be an object with exactly "role" and "content".')
        role, content = turn["role"], turn["content"]
        expected = "user" if index % 2 == 0 else "assistant"
        if role != expected:
            raise ApplicationError(
                f'Turn {index + 1} has role "{role}" but "{expected}" was expected: turns alternate user/assistant, starting with user.'
            )
        if not isinstance(content, str) or not content.strip():
            raise ApplicationError(f"Turn {index + 1} has no text.")
        if len(content) > settings.DIALOGUE_MAX_TURN_CHARS:
            raise ApplicationError(
                f"Turn {index + 1} is longer than {settings.DIALOGUE_MAX_TURN_CHARS} characters (DIALOGUE_MAX_TURN_CHARS): shorten it."
            )
        require_storable(content, where=f"turn {index + 1}")
        clean.append({"role": role, "content": content})
    total = sum(len(turn["content"]) for turn in clean)
    if total > settings.DIALOGUE_MAX_CHARS:
        raise ApplicationError(
            f"The dialogue has {total} characters, more than the {settings.DIALOGUE_MAX_CHARS} allowed "
            "(DIALOGUE_MAX_CHARS): shorten it."
        )
    if clean[-1]["role"] != "user":
        raise ApplicationError("A dialogue to answer must end with a user turn.")
    return clean


def _overlap_for(guideline_kind: str) -> int:
    guideline = selectors.guideline_current(kind=guideline_kind)
    return guideline.overlap if guideline else 1


def _announce_needs_samples(items: list[Item]) -> None:
    item_ids = [item.pk for item in items if item.status == ItemStatus.NEEDS_SAMPLES]
    if item_ids:
        transaction.on_commit(lambda: items_need_samples.send(sender=Item, item_ids=item_ids))


@dataclass(frozen=True)
class PromptSpec:
    """One prompt to queue: its dialogue turns and guideline kind (as validated by the caller)."""

    turns: list[dict]
    guideline_kind: str


def prompts_queue(
    *,
    prompts: list[PromptSpec],
    source: str = DialogueSource.POOL,
    source_name: str = "",
    task_kind: str = TaskKind.COMPARISON,
    author=None,
    priority: int = 0,
    continues: Comparison | None = None,
) -> list[Item]:
    """Queue prompts as items, in bulk and in one transaction.

    Comparison items wait in NEEDS_SAMPLES until the generator attaches two samples (the signal
    `items_need_samples` tells it); demonstration items need no samples and are READY at once.
    """
    if task_kind not in TaskKind.values:
        raise ApplicationError(f'Unknown task kind "{task_kind}": use one of {", ".join(TaskKind.values)}.')
    for prompt in prompts:
        validate_kind(prompt.guideline_kind)
        validate_turns(prompt.turns)
    overlaps = {kind: _overlap_for(kind) for kind in {p.guideline_kind for p in prompts}}
    status = ItemStatus.READY if task_kind == TaskKind.DEMONSTRATION else ItemStatus.NEEDS_SAMPLES
    items: list[Item] = []
    with transaction.atomic():
        for start in range(0, len(prompts), BULK_CHUNK):
            chunk = prompts[start : start + BULK_CHUNK]
            dialogues = Dialogue.objects.bulk_create(
                [
                    Dialogue(
                        turns=p.turns,
                        guideline_kind=p.guideline_kind,
                        source=source,
                        source_name=source_name,
                        author=author,
                        continues=continues,
                    )
                    for p in chunk
                ]
            )
            items += Item.objects.bulk_create(
                [
                    Item(
                        task_kind=task_kind,
                        dialogue=dialogue,
                        guideline_kind=dialogue.guideline_kind,
                        status=status,
                        overlap=overlaps[dialogue.guideline_kind],
                        open_slots=overlaps[dialogue.guideline_kind],
                        priority=priority,
                    )
                    for dialogue in dialogues
                ]
            )
        _announce_needs_samples(items)
    return items


def item_attach_samples(*, item: Item, sample_a: Sample, sample_b: Sample) -> Item:
    """Put two stored samples on a NEEDS_SAMPLES item and open it to annotators (docs/architecture.md, contract §1)."""
    if sample_a.pk is None or sample_b.pk is None:
        raise ApplicationError("Both samples must be saved before they are attached to an item.")
    if sample_a.pk == sample_b.pk:
        raise ApplicationError("An item compares two different samples; the same sample was given twice.")
    with transaction.atomic():
        locked = Item.objects.select_for_update().get(pk=item.pk)
        if locked.status != ItemStatus.NEEDS_SAMPLES:
            raise ApplicationError(f"Item {locked.pk} is {locked.status}, not waiting for samples.")
        if locked.task_kind != TaskKind.COMPARISON:
            raise ApplicationError(f"Item {locked.pk} is a {locked.task_kind} task and takes no samples.")
        for sample in (sample_a, sample_b):
            if sample.dialogue_id != locked.dialogue_id:
                raise ApplicationError(
                    f"Sample {sample.pk} answers dialogue {sample.dialogue_id}, not item {locked.pk}'s dialogue {locked.dialogue_id}."
                )
        locked.sample_a, locked.sample_b = sample_a, sample_b
        locked.status = ItemStatus.READY
        locked.open_slots = locked.overlap
        locked.save(update_fields=["sample_a", "sample_b", "status", "open_slots"])
    return locked


def prompt_write(*, annotator, text: str, guideline_kind: str, task_kind: str = TaskKind.COMPARISON) -> Item:
    """An annotator writes a brand-new prompt; it is queued ahead of the pool."""
    text = (text or "").strip()
    if not text:
        raise ApplicationError("Write a prompt before sending it.")
    (item,) = prompts_queue(
        prompts=[PromptSpec(turns=[{"role": "user", "content": text}], guideline_kind=guideline_kind)],
        source=DialogueSource.ANNOTATOR,
        task_kind=task_kind,
        author=annotator,
        priority=ANNOTATOR_PRIORITY,
    )
    return item


def dialogue_continue(*, comparison: Comparison, annotator, message: str) -> Item:
    """Continue a rated dialogue: the chosen response becomes the assistant turn, then the new user message."""
    if comparison.annotator_id != annotator.pk:
        raise NotFound("No such comparison of yours.")
    message = (message or "").strip()
    if not message:
        raise ApplicationError("Write the next user message to continue the dialogue.")
    item = comparison.item
    turns = list(item.dialogue.turns) + [
        {"role": "assistant", "content": comparison.chosen.text},
        {"role": "user", "content": message},
    ]
    (queued,) = prompts_queue(
        prompts=[PromptSpec(turns=turns, guideline_kind=item.guideline_kind)],
        source=DialogueSource.CONTINUATION,
        author=annotator,
        priority=ANNOTATOR_PRIORITY,
        continues=comparison,
    )
    return queued

