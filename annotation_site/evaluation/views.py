"""The leaderboard page (both boards for a guideline and a week) and the checkpoint lineage page.
Researchers and admins only."""
from __future__ import annotations

from django import forms
from django.http import Http404
from django.shortcuts import render

from annotation_site.accounts.models import Role
from annotation_site.accounts.permissions import role_required
from annotation_site.annotation.models import GuidelineKind, Rating
from annotation_site.errors import ApplicationError, NotFound
from annotation_site.evaluation import selectors
from annotation_site.evaluation.lineage import checkpoint_lineage


class LeaderboardForm(forms.Form):
    guideline = forms.ChoiceField(choices=[("", "all guidelines"), *GuidelineKind.choices], required=False)
    week = forms.CharField(required=False, help_text="ISO week, e.g. 2026-W48; empty: all time.",
                           widget=forms.TextInput(attrs={"placeholder": "2026-W48"}))


@role_required(Role.RESEARCHER, Role.ADMIN)
def leaderboard(request):
    form = LeaderboardForm(request.GET or {"guideline": GuidelineKind.HELPFULNESS})
    board = error = None
    if form.is_valid():
        try:
            board = selectors.leaderboard(guideline=form.cleaned_data["guideline"] or None,
                                          week=form.cleaned_data["week"].strip() or None)
        except ApplicationError as exc:
            error = exc.message
    ratings = [(level, label) for level, label in Rating.choices] + [("unrated", "unrated")]
    return render(request, "evaluation/leaderboard.html", {"form": form, "board": board, "error": error,
                                                            "ratings": ratings},
                  status=400 if error or form.errors else 200)


@role_required(Role.RESEARCHER, Role.ADMIN)
def checkpoint(request, checkpoint_id: int):
    try:
        lineage = checkpoint_lineage(checkpoint_id=checkpoint_id)
    except NotFound as error:
        raise Http404(error.message) from None
    return render(request, "evaluation/checkpoint.html", {"lineage": lineage, "checkpoint": lineage.checkpoint})
