"""Rows for batch tests, built with the ORM: users with pseudonyms, dialogues, samples, comparisons."""
from __future__ import annotations

import datetime as dt
import itertools

from django.contrib.auth import get_user_model
from django.utils import timezone

from annotation_site.accounts.models import AnnotatorProfile
from annotation_site.annotation.models import Comparison, Demonstration, Dialogue, Item, Sample, TaskKind
from annotation_site.generation.models import Checkpoint, CheckpointKind

_counter = itertools.count(1)


def make_annotator(name: str | None = None):
    # No password: hashing one costs half a second; tests log in with force_login.
    user = get_user_model().objects.create_user(username=name or f"annotator{next(_counter)}")
    AnnotatorProfile.objects.create(user=user)
    return user


def make_checkpoint(name: str = "sft-v1") -> Checkpoint:
    checkpoint, _ = Checkpoint.objects.get_or_create(name=name, defaults={"path": f"/ckpt/{name}", "kind": CheckpointKind.SFT})
    return checkpoint


def make_item(*, guideline_kind: str = "helpfulness", turns: list[dict] | None = None, task_kind=TaskKind.COMPARISON) -> Item:
    n = next(_counter)
    dialogue = Dialogue.objects.create(
        turns=turns or [{"role": "user", "content": f"Question {n}: how do I boil an egg?"}],
        guideline_kind=guideline_kind,
    )
    if task_kind == TaskKind.DEMONSTRATION:
        return Item.objects.create(dialogue=dialogue, guideline_kind=guideline_kind, task_kind=task_kind)
    checkpoint = make_checkpoint()
    sample_a = Sample.objects.create(
        dialogue=dialogue,
        text=f"Answer A{n}: boil it for 8 minutes.",
        model_name="sft-v1",
        checkpoint=checkpoint,
        sampling_params={"temperature": 0.7, "top_p": 0.9, "max_tokens": 128, "seed": n},
    )
    sample_b = Sample.objects.create(
        dialogue=dialogue,
        text=f"Answer B{n}: eggs \u00e9clatent \U0001f95a if you forget them.",
        model_name="rlhf-v2",
        sampling_params={"temperature": 1.2, "top_p": 1.0, "max_tokens": 64},
    )
    return Item.objects.create(dialogue=dialogue, guideline_kind=guideline_kind, sample_a=sample_a, sample_b=sample_b)


def make_comparison(
    *,
    item: Item | None = None,
    annotator=None,
    guideline_kind: str = "helpfulness",
    rating: str = "better",
    chosen_is_safe: bool | None = None,
    rejected_is_safe: bool | None = None,
    safety_bin: str = "",
    source: str = "annotation",
    split: str = "",
    created_at: dt.datetime | None = None,
    flip: bool = False,
) -> Comparison:
    item = item or make_item(guideline_kind=guideline_kind)
    chosen, rejected = (item.sample_b, item.sample_a) if flip else (item.sample_a, item.sample_b)
    comparison = Comparison.objects.create(
        item=item,
        annotator=annotator,
        guideline_kind=guideline_kind,
        chosen=chosen,
        rejected=rejected,
        rating=rating,
        chosen_is_safe=chosen_is_safe,
        rejected_is_safe=rejected_is_safe,
        safety_bin=safety_bin,
        source=source,
        split=split,
    )
    if created_at is not None:
        Comparison.objects.filter(pk=comparison.pk).update(created_at=created_at)
        comparison.created_at = created_at
    return comparison


def make_demonstration(*, annotator=None, guideline_kind: str = "helpfulness", text: str = "The ideal answer.", source="annotation") -> Demonstration:
    item = make_item(guideline_kind=guideline_kind, task_kind=TaskKind.DEMONSTRATION)
    return Demonstration.objects.create(
        item=item, annotator=annotator, guideline_kind=guideline_kind, text=text, source=source
    )


def make_mixed_week(*, annotators: int = 3, per_annotator: int = 4, created_at: dt.datetime | None = None) -> list[Comparison]:
    """A realistic mix: helpfulness ratings of every level and the three safety bins, multi-turn too."""
    people = [make_annotator() for _ in range(annotators)]
    ratings = ["significantly_better", "better", "slightly_better", "negligibly_better"]
    bins = [(True, False, "chosen_safe_other_unsafe"), (True, True, "both_safe"), (False, False, "both_unsafe")]
    made = []
    for index in range(annotators * per_annotator):
        person = people[index % annotators]
        if index % 3 == 2:
            safe_chosen, safe_rejected, bin_name = bins[(index // 3) % 3]
            made.append(
                make_comparison(
                    annotator=person,
                    guideline_kind="safety",
                    rating=ratings[index % 4],
                    chosen_is_safe=safe_chosen,
                    rejected_is_safe=safe_rejected,
                    safety_bin=bin_name,
                    created_at=created_at,
                )
            )
        else:
            turns = None
            if index % 4 == 1:
                turns = [
                    {"role": "user", "content": f"Hi {index}"},
                    {"role": "assistant", "content": "Hello! How can I help?"},
                    {"role": "user", "content": "Tell me a \"quoted\" joke\nwith a newline."},
                ]
            item = make_item(turns=turns)
            made.append(make_comparison(item=item, annotator=person, rating=ratings[index % 4], created_at=created_at, flip=bool(index % 2)))
    return made


def a_while_ago(days: float = 1) -> dt.datetime:
    return timezone.now() - dt.timedelta(days=days)


def submit_through_annotation(annotator, *, chosen: str = "A", rating: str = "better") -> Comparison:
    """An annotator claims their next ready item and submits a comparison, as the annotate page does."""
    from annotation_site.annotation.services import assignment_claim_next, comparison_submit

    assignment = assignment_claim_next(annotator=annotator, guideline_kind="helpfulness")
    assert assignment is not None, "no ready item left for this annotator"
    return comparison_submit(assignment=assignment, annotator=annotator, chosen=chosen, rating=rating)


def make_user(role: str, name: str | None = None):
    """A user in one of the three role groups (admins and researchers are staff), no password."""
    from django.contrib.auth.models import Group

    user = get_user_model().objects.create_user(
        username=name or f"{role}{next(_counter)}", is_staff=role in ("admin", "researcher")
    )
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    AnnotatorProfile.objects.create(user=user)
    return user
