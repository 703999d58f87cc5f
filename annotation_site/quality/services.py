"""Writes of quality control: gold items, the gold claim, flags, reviews, exclusions, reward-model scores.

Functions take keyword-only arguments and raise `ApplicationError` with a message that says what was
wrong; views, the admin, tasks and commands call one of them.
"""
from __future__ import annotations

import datetime as dt
import random

from django.db import IntegrityError, connection, transaction
from django.db.models import F

from annotation_site.annotation.models import (
    Assignment,
    Comparison,
    GuidelineKind,
    Item,
    ItemStatus,
    Rating,
    Sample,
    TaskKind,
)
from annotation_site.audit.services import AuditEvent, audit_record
from annotation_site.errors import ApplicationError, Conflict
from annotation_site.quality import selectors
from annotation_site.quality.models import Decision, Exclusion, Flag, GoldItem, Review, RewardModelScore

# A gold item is served to every annotator once, so it never runs out of slots; claims still take
# and give back a slot like any other item's, keeping the count balanced.
GOLD_OPEN_SLOTS = 10_000


def gold_mark(
    *,
    item: Item,
    better_sample: Sample,
    weakest_rating: str = "",
    better_is_safe: bool | None = None,
    other_is_safe: bool | None = None,
    source: str = "",
    created_by=None,
) -> GoldItem:
    """Make a comparison item gold: its known better response is `better_sample`.

    The item leaves the ordinary queue (status GOLD) and is served by `gold_claim_next` instead;
    answers already given on it stay, and are scored like any later answer.
    """
    if weakest_rating and weakest_rating not in Rating.values:
        raise ApplicationError(f'Unknown rating "{weakest_rating}": use one of {", ".join(Rating.values)}, or none.')
    with transaction.atomic():
        locked = Item.objects.select_for_update().get(pk=item.pk)
        if locked.task_kind != TaskKind.COMPARISON or locked.sample_a_id is None or locked.sample_b_id is None:
            raise ApplicationError(f"Item {locked.pk} is not a comparison with two responses; only those can be gold.")
        if better_sample.pk not in (locked.sample_a_id, locked.sample_b_id):
            raise ApplicationError(f"Sample {better_sample.pk} is not one of item {locked.pk}'s two responses.")
        if locked.status == ItemStatus.RETIRED:
            raise ApplicationError(f"Item {locked.pk} is retired; gold items must be servable.")
        if better_is_safe is False and other_is_safe is True:
            raise ApplicationError("A better response that is unsafe while the other is safe is never a right answer.")
        gold, _ = GoldItem.objects.update_or_create(
            item=locked,
            defaults=dict(
                better_sample=better_sample, weakest_rating=weakest_rating, better_is_safe=better_is_safe,
                other_is_safe=other_is_safe, source=source, created_by=created_by,
            ),
        )  # fmt: skip
        locked.status = ItemStatus.GOLD
        locked.open_slots = GOLD_OPEN_SLOTS
        locked.save(update_fields=["status", "open_slots"])
    selectors.gold_rates_forget()
    audit_record(event=AuditEvent.QUALITY_GOLD, obj=gold, actor=created_by, item=locked.pk)
    return gold


def gold_bulk_create(*, golds: list[dict], source: str) -> int:
    """Make freshly imported comparison items gold in bulk (`import_preferences --as-gold`): each
    dict names the item, its better sample, the weakest rating and the expected safety labels."""
    GoldItem.objects.bulk_create([GoldItem(source=source, **gold) for gold in golds], batch_size=2000)
    Item.objects.filter(pk__in=[gold["item_id"] for gold in golds]).update(status=ItemStatus.GOLD, open_slots=GOLD_OPEN_SLOTS)
    selectors.gold_rates_forget()
    return len(golds)


def gold_unmark(*, item: Item) -> None:
    """Return a gold item to the ordinary queue as done (its answers were never training data)."""
    with transaction.atomic():
        GoldItem.objects.filter(item=item).delete()
        Item.objects.filter(pk=item.pk, status=ItemStatus.GOLD).update(status=ItemStatus.DONE, open_slots=0)


def gold_draw(*, guideline_kinds: list[str], rates: dict[str, float] | None = None, rng=random) -> bool:
    """Whether this claim serves a gold item: drawn at the gold rate of the annotator's guideline
    kinds that have gold items (their mean, for an annotator of several kinds)."""
    rates = rates if rates is not None else selectors.gold_rates()
    relevant = [rates[kind] for kind in guideline_kinds if kind in rates]
    if not relevant:
        return False
    return rng.random() < sum(relevant) / len(relevant)


def gold_claim_next(
    *, annotator, guideline_kinds: list[str], task_kind: str | None, now: dt.datetime, expires: dt.datetime, flipped: bool,
) -> int | None:
    """Claim a gold item this annotator has never been given; the new assignment's id, or None.

    The assignment is the same as any other claim's: the annotation app's claim draws the shown
    order (`flipped`) and sets the TTL (`expires`) for both, and the guideline is the current one,
    so nothing an annotator sees tells a gold item apart.
    """
    if task_kind not in (None, TaskKind.COMPARISON):
        return None
    for _attempt in range(3):
        with transaction.atomic():
            candidates = (
                Item.objects.filter(status=ItemStatus.GOLD, guideline_kind__in=guideline_kinds, open_slots__gt=0)
                .exclude(assignments__annotator=annotator)
                .order_by("id")
            )
            if connection.features.has_select_for_update_skip_locked:
                candidates = candidates.select_for_update(skip_locked=True, of=("self",))
            item = candidates.first()
            if item is None:
                return None
            from annotation_site.annotation.selectors import guideline_current

            guideline = guideline_current(kind=item.guideline_kind)
            try:
                with transaction.atomic():
                    assignment = Assignment.objects.create(
                        item=item,
                        annotator=annotator,
                        flipped=flipped,
                        guideline=guideline,
                        claimed_at=now,
                        expires_at=expires,
                    )
            except IntegrityError:
                continue  # a second tab of the same annotator took it in between
            Item.objects.filter(pk=item.pk).update(open_slots=F("open_slots") - 1)
            return assignment.pk
    return None


def flags_sync(*, guideline_kind: str | None = None) -> int:
    """Store the flags the quality report raises on comparisons (new ones only); how many were new."""
    report = selectors.quality_report(guideline_kind=guideline_kind)
    existing = set(Flag.objects.values_list("comparison_id", "reason"))
    new = [
        Flag(comparison_id=comparison_id, reason=reason, detail=detail[:500])
        for comparison_id, reason, detail in report.flagged
        if (comparison_id, reason) not in existing
    ]
    Flag.objects.bulk_create(new, batch_size=2000, ignore_conflicts=True)
    return len(new)


def _require_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError("Say why: a reason is required for every review decision and exclusion.")
    if "\x00" in reason:
        raise ApplicationError("The reason contains a NUL character; remove it.")
    return reason[:500]


def comparison_exclude(*, comparison: Comparison, reason: str, excluded_by) -> Exclusion:
    """Leave a comparison out of every export from now on (it stays in the database)."""
    reason = _require_reason(reason)
    exclusion, created = Exclusion.objects.get_or_create(
        comparison=comparison, defaults={"reason": reason, "excluded_by": excluded_by}
    )
    if not created:
        raise Conflict(f"Comparison {comparison.pk} is already excluded ({exclusion.reason}).")
    audit_record(event=AuditEvent.QUALITY_EXCLUDE, obj=comparison, actor=excluded_by, reason=reason)
    return exclusion


def review_decide(
    *,
    comparison: Comparison,
    decision: str,
    reason: str,
    reviewer,
    chosen_sample: Sample | None = None,
    rating: str = "",
    chosen_is_safe: bool | None = None,
    rejected_is_safe: bool | None = None,
) -> Review:
    """Keep, correct or exclude a flagged comparison, with a reason.

    A correction is stored as a new comparison by the reviewer on the same item (the Review links
    the two), and the original is excluded: the original stays as it was, in its batch if it has one, and the
    correction goes out with the next batch.
    """
    reason = _require_reason(reason)
    if decision not in Decision.values:
        raise ApplicationError(f'Unknown decision "{decision}": use keep, correct or exclude.')
    with transaction.atomic():
        if Review.objects.filter(comparison=comparison).exists():
            raise Conflict(f"Comparison {comparison.pk} was already reviewed.")
        correction = None
        if decision == Decision.CORRECT:
            correction = _correction_for(
                comparison, chosen_sample=chosen_sample, rating=rating, chosen_is_safe=chosen_is_safe,
                rejected_is_safe=rejected_is_safe, reviewer=reviewer,
            )  # fmt: skip
        if decision in (Decision.CORRECT, Decision.EXCLUDE) and not hasattr(comparison, "quality_exclusion"):
            Exclusion.objects.create(comparison=comparison, reason=f"review: {reason}", excluded_by=reviewer)
        review = Review.objects.create(
            comparison=comparison, decision=decision, reason=reason, reviewer=reviewer, correction=correction
        )
        audit_record(event=AuditEvent.QUALITY_REVIEW, obj=comparison, actor=reviewer, decision=decision, reason=reason)
        return review


def _correction_for(comparison: Comparison, *, chosen_sample, rating, chosen_is_safe, rejected_is_safe, reviewer) -> Comparison:
    from annotation_site.annotation.services import safety_bin_for

    item = comparison.item
    if chosen_sample is None or chosen_sample.pk not in (item.sample_a_id, item.sample_b_id):
        raise ApplicationError("A correction names which of the item's two responses is better.")
    if rating and rating not in Rating.values:
        raise ApplicationError(f'Unknown rating "{rating}".')
    rejected_id = item.sample_b_id if chosen_sample.pk == item.sample_a_id else item.sample_a_id
    safety_bin = ""
    if GuidelineKind(comparison.guideline_kind).asks_safety_labels:
        if chosen_is_safe is None or rejected_is_safe is None:
            raise ApplicationError("A correction of a safety comparison gives both safety labels.")
        safety_bin = safety_bin_for(chosen_is_safe=chosen_is_safe, rejected_is_safe=rejected_is_safe)
    return Comparison.objects.create(
        item=item, annotator=reviewer, guideline=comparison.guideline, guideline_kind=comparison.guideline_kind,
        chosen=chosen_sample, rejected_id=rejected_id, rating=rating, shown_order="ab",
        chosen_is_safe=chosen_is_safe if safety_bin else None, rejected_is_safe=rejected_is_safe if safety_bin else None,
        safety_bin=safety_bin,
    )  # fmt: skip


def annotator_exclude_range(*, annotator_id: int, since: dt.date, until: dt.date, reason: str, excluded_by) -> int:
    """Exclude every comparison of one annotator made in [since, until]; how many were excluded."""
    reason = _require_reason(reason)
    selectors.check_date_range(since, until)
    comparisons = Comparison.objects.filter(
        annotator_id=annotator_id, created_at__date__gte=since, created_at__date__lte=until, quality_exclusion__isnull=True
    ).values_list("id", flat=True)
    rows = [Exclusion(comparison_id=pk, reason=reason, excluded_by=excluded_by) for pk in comparisons.iterator(chunk_size=5000)]
    Exclusion.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)
    from django.contrib.auth import get_user_model

    audit_record(
        event=AuditEvent.QUALITY_EXCLUDE_RANGE, obj=get_user_model().objects.get(pk=annotator_id), actor=excluded_by,
        since=since.isoformat(), until=until.isoformat(), reason=reason, comparisons=len(rows),
    )
    return len(rows)


def reward_model_scores_store(*, checkpoint_id: int, differences: dict[int, float]) -> int:
    """Store a reward model's score differences (chosen minus rejected) by comparison id."""
    rows = [RewardModelScore(comparison_id=pk, checkpoint_id=checkpoint_id, difference=float(d)) for pk, d in differences.items()]
    RewardModelScore.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)
    return len(rows)


def reward_model_agreement_update(*, guideline_kind: str, limit: int = 512, batch_size: int = 16) -> int:
    """Score the two responses of comparisons the guideline's reward model has not scored yet, and
    store chosen minus rejected; how many were scored. Runs on the training worker (torch), never
    in the web process."""
    from training.scoring import cached_reward_model

    checkpoint = selectors.scoring_reward_model(guideline_kind)
    if checkpoint is None:
        return 0
    pending = list(
        Comparison.objects.filter(guideline_kind=guideline_kind, annotator__isnull=False)
        .exclude(reward_model_scores__checkpoint=checkpoint)
        .order_by("id")
        .values_list("id", "item__dialogue__turns", "chosen__text", "rejected__text")[:limit]
    )
    if not pending:
        return 0
    model = cached_reward_model(checkpoint.path)
    prompts = [turns for _, turns, _, _ in pending]
    chosen = model.score(prompts, [text for _, _, text, _ in pending], batch_size=batch_size)
    rejected = model.score(prompts, [text for _, _, _, text in pending], batch_size=batch_size)
    differences = {pk: float(c - r) for (pk, _, _, _), c, r in zip(pending, chosen, rejected)}
    return reward_model_scores_store(checkpoint_id=checkpoint.pk, differences=differences)
