"""Pages of the annotation site; the annotate page's actions go through the API (api.py)."""
from __future__ import annotations

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.cache import never_cache

from annotation_site.accounts.models import Role
from annotation_site.accounts.permissions import ANNOTATING_ROLES, role_required
from annotation_site.accounts.services import user_role
from annotation_site.annotation import selectors, services
from annotation_site.annotation.api import next_item_payload
from annotation_site.annotation.models import GuidelineKind, Rating


def home(request):
    """Send each role to its door: annotators to /annotate/, researchers to the runs dashboard, admins to the admin."""
    if not request.user.is_authenticated:
        return redirect_to_login("/")
    role = user_role(request.user)
    if role == Role.ANNOTATOR:
        return redirect("annotate")
    if role == Role.RESEARCHER:
        try:
            return redirect(reverse("runs:dashboard"))
        except NoReverseMatch:  # the runs app is optional; the admin always exists
            pass
    return redirect("admin:index")


@never_cache  # Cache-Control: no-store: Back or a second tab never shows an answered item as open
@role_required(*ANNOTATING_ROLES)
def annotate(request):
    kinds = selectors.annotator_guideline_kinds(annotator=request.user)
    guidelines = [g for g in (selectors.guideline_current(kind=kind) for kind in kinds) if g is not None]
    return render(
        request,
        "annotation/annotate.html",
        {
            "initial": next_item_payload(annotator=request.user),
            "progress": selectors.annotator_progress(annotator=request.user),
            "guidelines": guidelines,
            "ratings": Rating.choices,
            "guideline_kinds": [(k, label) for k, label in GuidelineKind.choices if k in kinds],
            "poll_ms": settings.ANNOTATE_POLL_MS,
            # The page asks for safety labels on the kinds the submit asks them for (one rule).
            "safety_label_kinds": ",".join(k for k in GuidelineKind if k.asks_safety_labels),
            "prompt_max_chars": settings.DIALOGUE_MAX_TURN_CHARS,
        },
    )
