"""The quality pages: the dashboard (admins and researchers), an annotator's page, the review queue
and the bulk exclusion of an annotator's work (admins)."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse

from annotation_site.accounts.permissions import role_required
from annotation_site.accounts.services import user_role
from annotation_site.annotation.models import Comparison, GuidelineKind
from annotation_site.errors import ApplicationError
from annotation_site.quality import plots, selectors, services
from annotation_site.quality.forms import ExclusionForm, ReviewForm
from annotation_site.quality.permissions import MANAGE_ROLES, READ_ROLES

SORTABLE = (
    "username", "comparisons", "per_day", "median_active_ms", "too_fast", "share_a", "skip_rate", "gold_accuracy",
    "agreement_with_others", "agreement_with_reward_model", "excluded",
)  # fmt: skip


def _guideline(request) -> str | None:
    kind = request.GET.get("guideline") or None
    return kind if kind in GuidelineKind.values else None


@role_required(*READ_ROLES)
def dashboard(request):
    kind = _guideline(request)
    report = selectors.quality_report(guideline_kind=kind)
    sort = request.GET.get("sort") if request.GET.get("sort") in SORTABLE else "username"
    descending = request.GET.get("order") == "desc"
    annotators = sorted(
        report.annotators, key=lambda row: (row[sort] is None, row[sort] if row[sort] is not None else 0), reverse=descending
    )
    return render(request, "quality/dashboard.html", {
        "guideline": kind,
        "guidelines": GuidelineKind.values,
        "summary": report.summary,
        "annotators": annotators,
        "sort": sort,
        "descending": descending,
        "figures": plots.summary_svgs(report.summary),
        "review_count": selectors.review_queue(guideline_kind=kind).count(),
    })


@role_required(*READ_ROLES)
def annotator(request, annotator_id: int):
    user = get_user_model().objects.filter(pk=annotator_id).first()
    if user is None:
        raise Http404("No such annotator.")
    report = selectors.quality_report()
    figures = next((row for row in report.annotators if row["annotator_id"] == annotator_id), None)
    flagged = selectors.review_queue().filter(comparison__annotator_id=annotator_id)[:200]
    gold = (
        Comparison.objects.filter(annotator_id=annotator_id, item__gold__isnull=False)
        .select_related("item__gold")
        .order_by("-created_at")[:200]
    )
    timeline = (
        Comparison.objects.filter(annotator_id=annotator_id)
        .order_by("-created_at")
        .values("id", "created_at", "guideline_kind", "rating", "time_spent_ms")[:100]
    )
    form = ExclusionForm(request.POST or None)
    preview = None
    if request.method == "POST":
        if user_role(request.user) not in MANAGE_ROLES:
            raise PermissionDenied("Only admins exclude comparisons.")
        if form.is_valid():
            data = form.cleaned_data
            try:
                if data["confirm"]:
                    count = services.annotator_exclude_range(
                        annotator_id=annotator_id, since=data["since"], until=data["until"], reason=data["reason"],
                        excluded_by=request.user,
                    )  # fmt: skip
                    messages.success(request, f"Excluded {count} comparisons of {user.username}.")
                    return redirect("quality:annotator", annotator_id=annotator_id)
                preview = selectors.exclusion_preview(annotator_id=annotator_id, since=data["since"], until=data["until"])
            except ApplicationError as error:
                form.add_error(None, error.message)
    return render(request, "quality/annotator.html", {
        "person": user, "figures": figures, "flagged": flagged, "gold": gold, "timeline": timeline,
        "form": form, "preview": preview, "can_manage": user_role(request.user) in MANAGE_ROLES,
    }, status=400 if form.errors else 200)  # fmt: skip


@role_required(*MANAGE_ROLES)
def review(request):
    kind = _guideline(request)
    if request.method == "POST":
        comparison = Comparison.objects.select_related("item").filter(pk=request.POST.get("comparison")).first()
        if comparison is None:
            raise Http404("No such comparison.")
        form = ReviewForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            better = {"a": comparison.item.sample_a, "b": comparison.item.sample_b}.get(data["better"])
            try:
                services.review_decide(
                    comparison=comparison, decision=data["decision"], reason=data["reason"], reviewer=request.user,
                    chosen_sample=better, rating=data["rating"], chosen_is_safe=data["chosen_is_safe"],
                    rejected_is_safe=data["rejected_is_safe"],
                )  # fmt: skip
            except ApplicationError as error:
                messages.error(request, f"Comparison {comparison.pk}: {error.message}")
            else:
                messages.success(request, f"Comparison {comparison.pk}: {data['decision']}.")
        else:
            messages.error(request, f"Comparison {comparison.pk}: give a decision and a reason.")
        return redirect(reverse("quality:review") + (f"?guideline={kind}" if kind else ""))
    flags = list(selectors.review_queue(guideline_kind=kind)[:50])
    by_comparison: dict[int, dict] = {}
    for flag in flags:
        entry = by_comparison.setdefault(flag.comparison_id, {"comparison": flag.comparison, "flags": []})
        entry["flags"].append(flag)
    return render(request, "quality/review.html", {
        "entries": list(by_comparison.values()), "guideline": kind, "guidelines": GuidelineKind.values,
        "form": ReviewForm(), "total": selectors.review_queue(guideline_kind=kind).count(),
    })  # fmt: skip


@role_required(*MANAGE_ROLES)
def flags_refresh(request):
    if request.method != "POST":
        raise Http404()
    count = services.flags_sync(guideline_kind=_guideline(request))
    messages.success(request, f"{count} new comparisons flagged for review.")
    return redirect("quality:review")

