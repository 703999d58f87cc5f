"""Guidelines: publishing a new version of a guideline kind."""
from __future__ import annotations

from django.db import transaction
from django.db.models import Max

from annotation_site.annotation.models import Guideline, GuidelineKind
from annotation_site.errors import ApplicationError
from annotation_site.text_rules import require_storable


def validate_kind(guideline_kind: str) -> None:
    if guideline_kind not in GuidelineKind.values:
        raise ApplicationError(
            f'Unknown guideline kind "{guideline_kind}": use one of {", ".join(GuidelineKind.values)}.'
        )


def guideline_publish(*, kind: str, title: str, text: str, overlap: int = 1) -> Guideline:
    """Publish a new version of a guideline; earlier versions stay, so old comparisons keep theirs."""
    validate_kind(kind)
    if not title.strip() or not text.strip():
        raise ApplicationError("A guideline needs a title and a text.")
    if overlap < 1:
        raise ApplicationError("Overlap must be at least 1 annotator per item.")
    require_storable(title, where="the title")
    require_storable(text, where="the guideline text")
    with transaction.atomic():
        latest = Guideline.objects.select_for_update().filter(kind=kind).aggregate(v=Max("version"))["v"] or 0
        return Guideline.objects.create(kind=kind, version=latest + 1, title=title.strip(), text=text, overlap=overlap)
