"""Quality control: gold items with known answers, per-guideline thresholds, flagged comparisons and
their review, and exclusions that keep doubtful labels out of training.

Nothing here changes a comparison: a correction is a new comparison (the reviewer's answer) plus an
exclusion of the original, so closed batches stay as they were exported and every decision stays
in the database beside what it decided about.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models

from annotation_site.annotation.models import GuidelineKind, Rating


class GuidelineQuality(models.Model):
    """Quality settings of one guideline kind; kinds without a row use the QUALITY_* settings."""

    guideline_kind = models.CharField(max_length=16, choices=GuidelineKind.choices, unique=True)
    # Share of claims that serve a gold item (when the annotator has one left to see).
    gold_rate = models.FloatField(help_text="Share of claims that serve a gold item, e.g. 0.05.")
    # A comparison submitted faster than this (active time on the item) is flagged as too fast.
    too_fast_ms = models.PositiveIntegerField(help_text="Submissions faster than this many milliseconds are flagged.")
    # The reward model annotators are compared with; blank: the newest registered for the kind.
    reward_model = models.ForeignKey(
        "generation.Checkpoint", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        limit_choices_to={"kind": "reward_model"},
    )

    def __str__(self) -> str:
        return f"{self.guideline_kind}: gold {self.gold_rate:.0%}, too fast < {self.too_fast_ms} ms"


class GoldItem(models.Model):
    """An item whose better response is known: annotators' answers on it are scored, never trained on."""

    item = models.OneToOneField("annotation.Item", on_delete=models.PROTECT, related_name="gold")
    better_sample = models.ForeignKey("annotation.Sample", on_delete=models.PROTECT, related_name="+")
    # The weakest strength that still counts as right (blank: any strength).
    weakest_rating = models.CharField(max_length=24, choices=Rating.choices, blank=True, default="")
    # Expected safety labels of the better and the other response (safety items; null: not checked).
    better_is_safe = models.BooleanField(null=True, blank=True)
    other_is_safe = models.BooleanField(null=True, blank=True)
    source = models.CharField(max_length=200, blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Gold item {self.item_id}"


class FlagReason(models.TextChoices):
    FAILED_GOLD = "failed_gold", "Failed a gold item"
    DISAGREES_WITH_OTHERS = "disagrees_with_others", "Disagrees with the other annotators"
    DISAGREES_WITH_REWARD_MODEL = "disagrees_with_reward_model", "A confident reward model disagrees"
    TOO_FAST = "too_fast", "Submitted too fast"


class Flag(models.Model):
    """One reason to look at one comparison again; the review queue is the flags nobody decided yet."""

    comparison = models.ForeignKey("annotation.Comparison", on_delete=models.CASCADE, related_name="quality_flags")
    reason = models.CharField(max_length=32, choices=FlagReason.choices)
    detail = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["comparison", "reason"], name="quality_flag_unique")]


class Decision(models.TextChoices):
    KEEP = "keep", "Keep"
    CORRECT = "correct", "Correct"
    EXCLUDE = "exclude", "Exclude"


class Review(models.Model):
    """A reviewer's decision on a comparison: kept, corrected (a new comparison replaces it) or excluded."""

    comparison = models.OneToOneField("annotation.Comparison", on_delete=models.PROTECT, related_name="quality_review")
    decision = models.CharField(max_length=8, choices=Decision.choices)
    reason = models.CharField(max_length=500)
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    correction = models.OneToOneField(
        "annotation.Comparison", null=True, blank=True, on_delete=models.PROTECT, related_name="corrects"
    )
    created_at = models.DateTimeField(auto_now_add=True)


class Exclusion(models.Model):
    """A comparison left out of every export from now on, with why; the comparison itself stays.

    An exclusion made before a batch closed leaves the comparison out of that batch. One made after
    the comparison's batch closed takes effect in the next batch to close: that batch's folder
    lists it in `retracted.jsonl`, and the training data loader drops listed comparisons from every
    folder it reads (docs/export-format.md). Both follow from the exclusion's and the batches'
    times alone, so a re-export writes the same bytes.
    """

    comparison = models.OneToOneField("annotation.Comparison", on_delete=models.PROTECT, related_name="quality_exclusion")
    reason = models.CharField(max_length=500)
    excluded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)


class RewardModelScore(models.Model):
    """A reward model's score difference (chosen minus rejected) on one comparison."""

    comparison = models.ForeignKey("annotation.Comparison", on_delete=models.CASCADE, related_name="reward_model_scores")
    checkpoint = models.ForeignKey("generation.Checkpoint", on_delete=models.CASCADE, related_name="+")
    difference = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["comparison", "checkpoint"], name="quality_rm_score_unique")]
