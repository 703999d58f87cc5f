"""Rows for quality tests: annotators, items whose better response is known, gold items."""
from __future__ import annotations

import itertools

from annotation_site.accounts.services import user_create
from annotation_site.annotation.models import Dialogue, Item, ItemStatus, Sample
from annotation_site.quality import services
from annotation_site.quality.models import GuidelineQuality

_counter = itertools.count(1)


def make_annotator(username: str | None = None):
    return user_create(username=username or f"quality-ann{next(_counter)}", role="annotator", password="pw-123456")


def make_admin(username: str = "quality-admin"):
    return user_create(username=username, role="admin", password="pw-123456")


def make_item(*, guideline_kind: str = "helpfulness", overlap: int = 1) -> Item:
    """A ready item whose sample_a ("good ...") is the better response."""
    n = next(_counter)
    dialogue = Dialogue.objects.create(turns=[{"role": "user", "content": f"Question {n}?"}], guideline_kind=guideline_kind)
    return Item.objects.create(
        dialogue=dialogue,
        guideline_kind=guideline_kind,
        sample_a=Sample.objects.create(dialogue=dialogue, text=f"good answer {n}", model_name="m1"),
        sample_b=Sample.objects.create(dialogue=dialogue, text=f"bad answer {n}", model_name="m2"),
        status=ItemStatus.READY,
        overlap=overlap,
        open_slots=overlap,
    )


def make_gold(*, guideline_kind: str = "helpfulness", weakest_rating: str = "", **labels) -> Item:
    item = make_item(guideline_kind=guideline_kind)
    services.gold_mark(item=item, better_sample=item.sample_a, weakest_rating=weakest_rating, **labels)
    item.refresh_from_db()
    return item


def set_gold_rate(rate: float, *, guideline_kind: str = "helpfulness", too_fast_ms: int = 0) -> None:
    GuidelineQuality.objects.update_or_create(
        guideline_kind=guideline_kind, defaults={"gold_rate": rate, "too_fast_ms": too_fast_ms}
    )
    from annotation_site.quality.selectors import gold_rates_forget

    gold_rates_forget()


def shown_letter_of(assignment, sample_id: int) -> str:
    """Which letter ("A"/"B") the annotator sees `sample_id` as on this assignment."""
    item = assignment.item
    shown_a = item.sample_b_id if assignment.flipped else item.sample_a_id
    return "A" if sample_id == shown_a else "B"
