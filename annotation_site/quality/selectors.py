"""Reads of quality control: the quality report (per annotator and per guideline), the review queue,
what an exclusion would change, and the filters other apps apply to training data.

The report reads each comparison once, ordered by item, so the answers to one item arrive together
and agreement is tallied without holding the whole table: memory stays flat in the number of
comparisons (bench/quality.py measures it on a million).
"""
from __future__ import annotations

import datetime as dt
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Count, Exists, F, OuterRef, QuerySet

from annotation_site.annotation.models import Assignment, AssignmentStatus, Comparison, Demonstration, GuidelineKind
from annotation_site.generation.models import Checkpoint, CheckpointKind
from annotation_site.quality import metrics
from annotation_site.quality.models import Exclusion, Flag, FlagReason, GoldItem, GuidelineQuality, Review, RewardModelScore

# The paper's safety bins (Llama 2 §3.2.2): the share of each in Meta's safety data.
PAPER_SAFETY_BINS = {"chosen_safe_other_unsafe": 0.18, "both_safe": 0.47, "both_unsafe": 0.35}


@dataclass(frozen=True)
class Thresholds:
    gold_rate: float
    too_fast_ms: int


def thresholds_for(guideline_kind: str) -> Thresholds:
    """The gold rate and too-fast threshold of a guideline kind: its row, else the settings."""
    row = GuidelineQuality.objects.filter(guideline_kind=guideline_kind).first()
    if row is not None:
        return Thresholds(row.gold_rate, row.too_fast_ms)
    return Thresholds(settings.QUALITY_GOLD_RATE, settings.QUALITY_TOO_FAST_MS)


# The claim asks for the gold rates on every claim; they change when an admin edits them, so each
# process re-reads them at most this often instead of paying a query per claim.
GOLD_RATES_TTL_S = 30.0
_gold_rates_cache: dict = {"at": None, "rates": None}


def gold_rates() -> dict[str, float]:
    """Gold rate of each guideline kind that has gold items, read at most every GOLD_RATES_TTL_S
    seconds per process."""
    moment = time.monotonic()
    if _gold_rates_cache["at"] is not None and moment - _gold_rates_cache["at"] < GOLD_RATES_TTL_S:
        return _gold_rates_cache["rates"]
    rates = {kind: settings.QUALITY_GOLD_RATE for kind in GuidelineKind.values}
    rates.update(dict(GuidelineQuality.objects.values_list("guideline_kind", "gold_rate")))
    with_gold = set(GoldItem.objects.values_list("item__guideline_kind", flat=True).distinct())
    rates = {kind: rate for kind, rate in rates.items() if kind in with_gold}
    _gold_rates_cache.update(at=moment, rates=rates)
    return rates


def gold_rates_forget() -> None:
    """Make the next claim read the gold rates again (after an admin or a test changed them)."""
    _gold_rates_cache.update(at=None, rates=None)


def training_comparisons(comparisons: QuerySet, *, excluded_before: dt.datetime | None = None) -> QuerySet:
    """Leave out what must never be trained on: answers on gold items, and comparisons excluded
    (before `excluded_before`, a batch's close, when given)."""
    return comparisons.filter(item__gold__isnull=True).exclude(Exists(_exclusions(excluded_before)))


def _exclusions(excluded_before: dt.datetime | None) -> QuerySet:
    exclusions = Exclusion.objects.filter(comparison=OuterRef("pk"))
    return exclusions if excluded_before is None else exclusions.filter(created_at__lt=excluded_before)


def held_back_counts(comparisons: QuerySet, *, excluded_before: dt.datetime | None = None) -> dict:
    """What `training_comparisons` leaves out of these comparisons, for an export's manifest:
    gold answers, and exclusions counted by reason."""
    not_gold = comparisons.filter(item__gold__isnull=True)
    excluded = (
        Exclusion.objects.filter(comparison__in=not_gold)
        .filter(**({"created_at__lt": excluded_before} if excluded_before else {}))
        .order_by()
        .values_list("reason")
        .annotate(n=Count("id"))
    )
    return {"gold": comparisons.filter(item__gold__isnull=False).count(), "excluded": dict(sorted(excluded))}


def retracted_by(batch) -> list[dict]:
    """The exclusions the folder of `batch` announces (retracted.jsonl): comparisons of batches
    closed earlier, excluded after their batch closed, since the batch before this one closed."""
    from annotation_site.batches.models import Batch

    previous = Batch.objects.filter(closed_at__lt=batch.closed_at).order_by("-closed_at").first()
    exclusions = Exclusion.objects.filter(
        comparison__batch__closed_at__lt=batch.closed_at,
        created_at__gte=F("comparison__batch__closed_at"),
        created_at__lt=batch.closed_at,
    )
    if previous is not None:
        exclusions = exclusions.filter(created_at__gte=previous.closed_at)
    return [
        {"comparison_id": comparison_id, "reason": reason, "batch": week}
        for comparison_id, reason, week in exclusions.order_by("comparison_id").values_list(
            "comparison_id", "reason", "comparison__batch__week"
        )
    ]


def scoring_reward_model(guideline_kind: str) -> Checkpoint | None:
    """The reward model whose scores the report compares annotators with: the one an admin picked
    for the guideline kind, else the newest reward model registered for the kind."""
    picked = GuidelineQuality.objects.filter(guideline_kind=guideline_kind, reward_model__isnull=False).first()
    if picked is not None:
        return picked.reward_model
    return next(iter(reward_models_for(guideline_kind)), None)


def reward_models_for(guideline_kind: str) -> list[Checkpoint]:
    """The registered reward models trained for `guideline_kind`, newest first."""
    return [checkpoint for checkpoint in Checkpoint.objects.filter(kind=CheckpointKind.REWARD_MODEL).order_by("-created_at", "-id")
            if reward_model_guideline(checkpoint) == guideline_kind]


def reward_model_guideline(checkpoint: Checkpoint) -> str | None:
    """The guideline a reward model was trained for: the one guideline its run's data sources
    filter on (the resolved config stored at registration), else the kind named in its name."""
    config = checkpoint.training_config if isinstance(checkpoint.training_config, dict) else {}
    kinds = set()
    for source in config.get("data") or []:
        if isinstance(source, dict):
            kinds.update(source.get("guidelines") or [])
    if len(kinds) == 1 and next(iter(kinds)) in GuidelineKind.values:
        return next(iter(kinds))
    named = [kind for kind in GuidelineKind.values if kind in checkpoint.name]
    return named[0] if len(named) == 1 else None


@dataclass
class AnnotatorFigures:
    annotator_id: int
    username: str = ""
    comparisons: int = 0
    demonstrations: int = 0
    skips: int = 0
    days: set = field(default_factory=set)
    times_ms: list = field(default_factory=list)
    too_fast: int = 0
    chose_shown_a: int = 0
    ratings: Counter = field(default_factory=Counter)
    gold_answers: int = 0
    gold_correct: int = 0
    agreement: metrics.PairTally = field(default_factory=metrics.PairTally)
    rm_answers: int = 0
    rm_agreements: int = 0
    excluded: int = 0
    flags: list = field(default_factory=list)

    def as_dict(self) -> dict:
        assigned = self.comparisons + self.demonstrations + self.skips
        gold_interval = metrics.wilson_interval(self.gold_correct, self.gold_answers)
        return {
            "annotator_id": self.annotator_id,
            "username": self.username,
            "comparisons": self.comparisons,
            "demonstrations": self.demonstrations,
            "per_day": round(self.comparisons / len(self.days), 2) if self.days else 0.0,
            "median_active_ms": int(statistics.median(self.times_ms)) if self.times_ms else None,
            "too_fast": self.too_fast,
            "share_a": round(self.chose_shown_a / self.comparisons, 4) if self.comparisons else None,
            "ratings": dict(sorted(self.ratings.items())),
            "skip_rate": round(self.skips / assigned, 4) if assigned else None,
            "gold_answers": self.gold_answers,
            "gold_accuracy": round(self.gold_correct / self.gold_answers, 4) if self.gold_answers else None,
            "gold_interval": [round(bound, 4) for bound in gold_interval] if gold_interval else None,
            "agreement_with_others": _rounded(self.agreement.rate),
            "shared_pairs": self.agreement.pairs,
            "agreement_with_reward_model": _rounded(self.rm_agreements / self.rm_answers if self.rm_answers else None),
            "reward_model_answers": self.rm_answers,
            "excluded": self.excluded,
            "flags": self.flags,
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _week(moment: dt.datetime) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


_REPORT_COLUMNS = (
    "id", "annotator_id", "item_id", "guideline_kind", "chosen_id", "item__sample_a_id", "shown_order", "rating",
    "time_spent_ms", "created_at", "safety_bin", "chosen_is_safe", "rejected_is_safe", "item__gold__better_sample_id",
    "item__gold__weakest_rating", "item__gold__better_is_safe", "item__gold__other_is_safe", "quality_exclusion__id",
)  # fmt: skip


@dataclass
class Report:
    guideline_kind: str | None
    annotators: list[dict]
    summary: dict
    flagged: list[tuple[int, str, str]]  # (comparison id, reason, detail) for the review queue


def _comparisons_for(guideline_kind: str | None, since: dt.date | None, until: dt.date | None) -> QuerySet:
    comparisons = Comparison.objects.filter(annotator__isnull=False)
    if guideline_kind:
        comparisons = comparisons.filter(guideline_kind=guideline_kind)
    if since:
        comparisons = comparisons.filter(created_at__date__gte=since)
    if until:
        comparisons = comparisons.filter(created_at__date__lte=until)
    return comparisons


def quality_report(
    *, guideline_kind: str | None = None, since: dt.date | None = None, until: dt.date | None = None, chunk_size: int = 5000
) -> Report:
    """Every figure of the quality dashboard in one pass over the annotators' comparisons."""
    kinds = [guideline_kind] if guideline_kind else list(GuidelineKind.values)
    thresholds = {kind: thresholds_for(kind) for kind in kinds}
    rm_scores: dict[int, float] = {}
    rm_confident = settings.QUALITY_RM_CONFIDENT_DIFFERENCE
    for kind in kinds:
        checkpoint = scoring_reward_model(kind)
        if checkpoint is not None:
            rm_scores.update(
                RewardModelScore.objects.filter(checkpoint=checkpoint, comparison__guideline_kind=kind).values_list(
                    "comparison_id", "difference"
                )
            )
    comparisons = _comparisons_for(guideline_kind, since, until)
    figures: dict[int, AnnotatorFigures] = {}
    per_day: Counter = Counter()
    ratings: dict[str, Counter] = defaultdict(Counter)
    safety_bins: Counter = Counter()
    week_units: dict[tuple[str, str], list[list[int]]] = defaultdict(list)
    week_agreement: dict[tuple[str, str], metrics.PairTally] = defaultdict(metrics.PairTally)
    level_agreement: dict[str, metrics.PairTally] = defaultdict(metrics.PairTally)
    rm_level_agreement: dict[str, metrics.PairTally] = defaultdict(metrics.PairTally)
    flagged: list[tuple[int, str, str]] = []

    def close_item(answers: list[tuple]) -> None:
        # answers: (comparison id, annotator id, chose sample A, signed level, rating, week, kind)
        if len(answers) < 2:
            return
        sides = metrics.pairwise_side_agreement([(a[1], a[2]) for a in answers])
        by_week: dict[tuple[str, str], list[int]] = defaultdict(list)
        for comparison_id, annotator_id, _side, level, rating, week, kind in answers:
            agreements, pairs = sides[annotator_id]
            tally = figures[annotator_id].agreement
            tally.agreements += agreements
            tally.pairs += pairs
            week_agreement[(kind, week)].agreements += agreements
            week_agreement[(kind, week)].pairs += pairs
            if rating:
                level_agreement[rating].agreements += agreements
                level_agreement[rating].pairs += pairs
            if level is not None:
                by_week[(kind, week)].append(level)
            if pairs >= 2 and agreements * 2 < pairs:
                flagged.append((comparison_id, FlagReason.DISAGREES_WITH_OTHERS, f"agrees with {agreements} of {pairs} others"))
        for key, levels in by_week.items():
            week_units[key].append(levels)

    current_item, answers = None, []
    rows = comparisons.order_by("item_id", "id").values_list(*_REPORT_COLUMNS).iterator(chunk_size=chunk_size)
    for (
        comparison_id, annotator_id, item_id, kind, chosen_id, sample_a_id, shown_order, rating, time_ms, created_at,
        safety_bin, chosen_is_safe, rejected_is_safe, gold_better_id, gold_weakest, gold_better_safe, gold_other_safe,
        exclusion_id,
    ) in rows:  # fmt: skip
        if item_id != current_item:
            close_item(answers)
            current_item, answers = item_id, []
        person = figures.get(annotator_id)
        if person is None:
            person = figures[annotator_id] = AnnotatorFigures(annotator_id)
        chose_a = chosen_id == sample_a_id
        person.comparisons += 1
        person.days.add(created_at.date())
        person.ratings[rating or "unrated"] += 1
        if exclusion_id is not None:
            person.excluded += 1
        if (shown_order == "ab") == chose_a:
            person.chose_shown_a += 1
        if time_ms is not None:
            person.times_ms.append(time_ms)
            if time_ms < thresholds[kind].too_fast_ms:
                person.too_fast += 1
                flagged.append((comparison_id, FlagReason.TOO_FAST, f"{time_ms} ms on the item"))
        if gold_better_id is not None:
            verdict = metrics.gold_verdict(
                chose_better=chosen_id == gold_better_id, rating=rating, weakest_rating=gold_weakest,
                chosen_is_safe=chosen_is_safe, rejected_is_safe=rejected_is_safe,
                better_is_safe=gold_better_safe, other_is_safe=gold_other_safe,
            )  # fmt: skip
            person.gold_answers += 1
            person.gold_correct += verdict.correct
            if not verdict.correct:
                flagged.append((comparison_id, FlagReason.FAILED_GOLD, verdict.reason))
            continue  # gold answers are scored, not counted as data
        day = created_at.date()
        per_day[(day.isoformat(), kind)] += 1
        ratings[kind][rating or "unrated"] += 1
        if safety_bin:
            safety_bins[safety_bin] += 1
        difference = rm_scores.get(comparison_id)
        if difference is not None:
            agrees = difference > 0
            person.rm_answers += 1
            person.rm_agreements += agrees
            if rating:
                rm_level_agreement[rating].pairs += 1
                rm_level_agreement[rating].agreements += agrees
            if difference <= -rm_confident:
                flagged.append((comparison_id, FlagReason.DISAGREES_WITH_REWARD_MODEL, f"reward model prefers the other by {-difference:.2f}"))
        level = metrics.signed_level(chose_sample_a=chose_a, rating=rating)
        answers.append((comparison_id, annotator_id, chose_a, level, rating, _week(created_at), kind))
    close_item(answers)

    _add_counts(figures, guideline_kind)
    annotators = [_with_flags(person) for person in sorted(figures.values(), key=lambda p: p.annotator_id)]
    weeks = sorted({key for key in week_agreement} | {key for key in week_units})
    total_bins = sum(safety_bins.values())
    summary = {
        "guideline": guideline_kind,
        "comparisons": sum(per_day.values()),
        "annotators": len(annotators),
        "per_day": [{"day": day, "guideline": kind, "comparisons": n} for (day, kind), n in sorted(per_day.items())],
        "ratings": {kind: dict(sorted(counter.items())) for kind, counter in sorted(ratings.items())},
        "safety_bins": {
            name: {"count": safety_bins.get(name, 0), "share": round(safety_bins.get(name, 0) / total_bins, 4) if total_bins else None,
                   "paper_share": share}
            for name, share in PAPER_SAFETY_BINS.items()
        },  # fmt: skip
        "weeks": [
            {"guideline": kind, "week": week, "agreement": _rounded(week_agreement[(kind, week)].rate),
             "pairs": week_agreement[(kind, week)].pairs, "alpha": _rounded(metrics.krippendorff_alpha(week_units[(kind, week)])),
             "items": len(week_units[(kind, week)])}
            for kind, week in weeks
        ],  # fmt: skip
        "alpha": {
            kind: _rounded(metrics.krippendorff_alpha(units for (k, _), week_list in week_units.items() if k == kind for units in week_list))
            for kind in kinds
        },
        "agreement_by_rating": {
            rating: {"agreement": _rounded(level_agreement[rating].rate), "pairs": level_agreement[rating].pairs}
            for rating in metrics.RATING_LEVELS
        },
        "reward_model_agreement_by_rating": {
            rating: {"agreement": _rounded(rm_level_agreement[rating].rate), "answers": rm_level_agreement[rating].pairs}
            for rating in metrics.RATING_LEVELS
        },
        "flagged": dict(sorted(Counter(reason for _, reason, _ in flagged).items())),
    }
    return Report(guideline_kind=guideline_kind, annotators=annotators, summary=summary, flagged=flagged)


def _add_counts(figures: dict[int, AnnotatorFigures], guideline_kind: str | None) -> None:
    """Demonstrations, skips and user names, one grouped query each."""
    from django.contrib.auth import get_user_model

    demonstrations = Demonstration.objects.filter(annotator__isnull=False)
    skips = Assignment.objects.filter(status=AssignmentStatus.SKIPPED)
    if guideline_kind:
        demonstrations = demonstrations.filter(guideline_kind=guideline_kind)
        skips = skips.filter(item__guideline_kind=guideline_kind)
    for annotator_id, n in demonstrations.values_list("annotator_id").annotate(n=Count("id")):
        figures.setdefault(annotator_id, AnnotatorFigures(annotator_id)).demonstrations = n
    for annotator_id, n in skips.values_list("annotator_id").annotate(n=Count("id")):
        figures.setdefault(annotator_id, AnnotatorFigures(annotator_id)).skips = n
    names = dict(get_user_model().objects.filter(pk__in=list(figures)).values_list("pk", "username"))
    for annotator_id, person in figures.items():
        person.username = names.get(annotator_id, "")


def _with_flags(person: AnnotatorFigures) -> dict:
    """The annotator's figures with the flags they raise, each with its reason."""
    data = person.as_dict()
    flags = []
    interval = data["gold_interval"]
    if interval and person.gold_answers >= settings.QUALITY_MIN_GOLD_ANSWERS and interval[1] < settings.QUALITY_GOLD_MIN_ACCURACY:
        flags.append(f"gold accuracy {data['gold_accuracy']:.0%} (95% CI up to {interval[1]:.0%}) below {settings.QUALITY_GOLD_MIN_ACCURACY:.0%}")
    if person.comparisons >= settings.QUALITY_MIN_COMPARISONS:
        interval_a = metrics.wilson_interval(person.chose_shown_a, person.comparisons)
        if interval_a and (interval_a[0] > 0.5 + settings.QUALITY_POSITION_BIAS or interval_a[1] < 0.5 - settings.QUALITY_POSITION_BIAS):
            flags.append(f"chose the response shown as A {data['share_a']:.0%} of the time (position bias)")
        if person.too_fast * 5 > person.comparisons:
            flags.append(f"{person.too_fast} of {person.comparisons} comparisons submitted too fast")
    if person.agreement.pairs >= settings.QUALITY_MIN_COMPARISONS and person.agreement.rate < 0.5:
        flags.append(f"agrees with other annotators on {person.agreement.rate:.0%} of shared items")
    if person.rm_answers >= settings.QUALITY_MIN_COMPARISONS and person.rm_agreements * 2 < person.rm_answers:
        flags.append(f"agrees with the reward model on {person.rm_agreements / person.rm_answers:.0%} of comparisons")
    data["flags"] = flags
    return data


def review_queue(*, guideline_kind: str | None = None) -> QuerySet[Flag]:
    """Flags on comparisons nobody reviewed yet, oldest first, with what the reviewer needs loaded."""
    reviewed = Review.objects.filter(comparison=OuterRef("comparison"))
    flags = Flag.objects.filter(~Exists(reviewed)).select_related(
        "comparison__item__dialogue", "comparison__item__sample_a", "comparison__item__sample_b", "comparison__annotator"
    )
    if guideline_kind:
        flags = flags.filter(comparison__guideline_kind=guideline_kind)
    return flags.order_by("comparison_id", "reason")


def check_date_range(since: dt.date, until: dt.date) -> None:
    if until < since:
        from annotation_site.errors import ApplicationError

        raise ApplicationError("The end of the date range is before its start.")


def exclusion_preview(*, annotator_id: int, since: dt.date, until: dt.date) -> dict:
    """What excluding one annotator's comparisons in a date range would change, batch by batch."""
    check_date_range(since, until)
    candidates = _comparisons_for(None, since, until).filter(annotator_id=annotator_id, quality_exclusion__isnull=True)
    by_batch = Counter()
    for batch_week, n in candidates.values_list("batch__week").annotate(n=Count("id")):
        by_batch[batch_week or "open (next batch)"] += n
    totals = Counter()
    for batch_week, n in (
        Comparison.objects.filter(batch__week__in=[week for week in by_batch if week != "open (next batch)"])
        .values_list("batch__week")
        .annotate(n=Count("id"))
    ):
        totals[batch_week] = n
    return {
        "comparisons": sum(by_batch.values()),
        "batches": [
            {"batch": week, "excluded": n, "of": totals.get(week)} for week, n in sorted(by_batch.items())
        ],
    }


def flagged_annotator_ids(*, guideline_kind: str | None = None) -> set[int]:
    """Annotators the quality report raises a flag on (gold accuracy, position bias, speed,
    agreement): what "trusted annotators only" leaves out. Costs one report (bench/quality.py)."""
    return {row["annotator_id"] for row in quality_report(guideline_kind=guideline_kind).annotators if row["flags"]}
