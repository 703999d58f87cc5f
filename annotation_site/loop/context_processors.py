"""The weekly loop's latest outcomes for the researchers' pages (the runs dashboard shows them)."""
from __future__ import annotations

from django.utils.functional import SimpleLazyObject

from annotation_site.accounts.models import Role
from annotation_site.accounts.services import user_role


def loop_outcomes(request) -> dict:
    """`loop_outcomes`: the newest iterations, queried only when a page of a researcher or admin
    shows them."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or user_role(user) not in (Role.RESEARCHER, Role.ADMIN):
        return {}
    from annotation_site.loop.selectors import latest_outcomes

    return {"loop_outcomes": SimpleLazyObject(lambda: list(latest_outcomes(limit=3)))}
