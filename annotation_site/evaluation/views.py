"""The leaderboard page (both boards for a guideline and a week), the checkpoint lineage page and
the progress figures. Researchers and admins only."""
from __future__ import annotations

from django import forms
from django.http import Http404, HttpResponse
from django.shortcuts import render

from annotation_site.accounts.models import Role
from annotation_site.accounts.permissions import role_required
from annotation_site.annotation.models import GuidelineKind, Rating
from annotation_site.errors import ApplicationError, NotFound
from annotation_site.evaluation import progress, selectors
from annotation_site.evaluation.lineage import checkpoint_lineage
from annotation_site.runs import artifacts


class LeaderboardForm(forms.Form):
    guideline = forms.ChoiceField(choices=[("", "all guidelines"), *GuidelineKind.choices], required=False)
    week = forms.CharField(required=False, help_text="ISO week, e.g. 2026-W48; empty: all time.",
                           widget=forms.TextInput(attrs={"placeholder": "2026-W48"}))
    trusted = forms.BooleanField(required=False, label="Trusted annotators only",
                                 help_text="Leave out annotators the quality dashboard flags.")


@role_required(Role.RESEARCHER, Role.ADMIN)
def leaderboard(request):
    form = LeaderboardForm(request.GET or {"guideline": GuidelineKind.HELPFULNESS})
    board = error = None
    if form.is_valid():
        try:
            board = selectors.leaderboard(guideline=form.cleaned_data["guideline"] or None,
                                          week=form.cleaned_data["week"].strip() or None,
                                          trusted=form.cleaned_data["trusted"])
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


@role_required(Role.RESEARCHER, Role.ADMIN)
def progress_page(request):
    evaluations = progress.evaluation_runs()
    reference = request.GET.get("reference") or progress.default_reference(evaluations)
    latest = evaluations[-1][0] if evaluations else None
    return render(request, "evaluation/progress.html", {
        "accuracy_points": progress.reward_model_accuracy_points(),
        "win_rate_points": progress.win_rates_against(reference, evaluations) if reference else [],
        "reference": reference,
        "references": sorted({v["path"] for _, report in evaluations for v in report["versions"]}),
        "latest_evaluation": latest,
        "latest_has_distribution": latest is not None and "reward_distribution.png" in artifacts.plot_names(latest),
    })


@role_required(Role.RESEARCHER, Role.ADMIN)
def progress_figure(request, name: str):
    if name == "reward-model-accuracy":
        png = progress.accuracy_png(progress.reward_model_accuracy_points())
    elif name == "win-rate":
        evaluations = progress.evaluation_runs()
        reference = request.GET.get("reference") or progress.default_reference(evaluations)
        png = progress.win_rate_png(progress.win_rates_against(reference, evaluations), reference) if reference else None
    else:
        png = None
    if png is None:
        raise Http404("Nothing to draw yet.")
    response = HttpResponse(png, content_type="image/png")
    response["Cache-Control"] = "no-store"
    return response
