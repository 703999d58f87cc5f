"""The annotation domain: guidelines, dialogues, samples, items, assignments, comparisons.

An *item* is one task for annotators: a dialogue context and two sampled responses (a comparison
task) or a prompt to answer (a demonstration task, the paper's SFT annotation). An *assignment*
is one annotator's claim on an item; submitting it creates a *comparison* (or a demonstration).
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class GuidelineKind(models.TextChoices):
    HELPFULNESS = "helpfulness", "Helpfulness"
    SAFETY = "safety", "Safety"


class Rating(models.TextChoices):
    """How much better the chosen response is (Llama 2, §3.2.1), strongest first."""

    SIGNIFICANTLY_BETTER = "significantly_better", "Significantly better"
    BETTER = "better", "Better"
    SLIGHTLY_BETTER = "slightly_better", "Slightly better"
    NEGLIGIBLY_BETTER = "negligibly_better", "Negligibly better / unsure"


class SafetyBin(models.TextChoices):
    """The three bins of safety comparisons the paper uses; "chosen unsafe, other safe" is refused."""

    CHOSEN_SAFE_OTHER_UNSAFE = "chosen_safe_other_unsafe", "Chosen safe, other unsafe"
    BOTH_SAFE = "both_safe", "Both safe"
    BOTH_UNSAFE = "both_unsafe", "Both unsafe"


class TaskKind(models.TextChoices):
    COMPARISON = "comparison", "Compare two responses"
    DEMONSTRATION = "demonstration", "Write the ideal response"


class Guideline(models.Model):
    """Versioned instructions shown beside a task; each comparison records the version it was made under."""

    kind = models.CharField(max_length=16, choices=GuidelineKind.choices)
    version = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    text = models.TextField(help_text="Markdown-like plain text shown to annotators.")
    # How many different annotators rate each item of this kind (>1 lets agreement be measured).
    overlap = models.PositiveSmallIntegerField(default=1)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "version"], name="guideline_kind_version_unique"),
            models.CheckConstraint(condition=Q(overlap__gte=1), name="guideline_overlap_positive"),
        ]
        ordering = ["kind", "-version"]

    def __str__(self) -> str:
        return f"{self.kind} v{self.version}: {self.title}"


class DialogueSource(models.TextChoices):
    POOL = "pool", "Prompt pool"
    ANNOTATOR = "annotator", "Written by an annotator"
    CONTINUATION = "continuation", "Continued dialogue"
    IMPORT = "import", "Imported dataset"
    DEMO = "demo", "Demo seed"


class Dialogue(models.Model):
    """The conversation so far: a list of {"role": "user"|"assistant", "content": str}, ending with a user turn."""

    turns = models.JSONField()
    guideline_kind = models.CharField(max_length=16, choices=GuidelineKind.choices)
    source = models.CharField(max_length=16, choices=DialogueSource.choices, default=DialogueSource.POOL)
    # Name of the imported dataset or prompt file, e.g. "anthropic-hh-harmless".
    source_name = models.CharField(max_length=200, blank=True, default="")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="dialogues"
    )
    # The comparison whose chosen response this dialogue continues.
    continues = models.ForeignKey(
        "Comparison", null=True, blank=True, on_delete=models.SET_NULL, related_name="continuations"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["source", "source_name"])]

    def __str__(self) -> str:
        first = self.turns[0]["content"] if self.turns else ""
        return f"Dialogue {self.pk}: {first[:60]}"


class Sample(models.Model):
    """One model response to a dialogue, with everything needed to reproduce how it was sampled."""

    dialogue = models.ForeignKey(Dialogue, on_delete=models.CASCADE, related_name="samples")
    text = models.TextField()
    # Name of the model or checkpoint that wrote it ("import:<dataset>" for imported responses).
    model_name = models.CharField(max_length=200)
    checkpoint = models.ForeignKey(
        "generation.Checkpoint", null=True, blank=True, on_delete=models.SET_NULL, related_name="samples"
    )
    # temperature, top_p, max_tokens, seed, ... exactly as sent to the engine.
    sampling_params = models.JSONField(default=dict, blank=True)
    finish_reason = models.CharField(max_length=32, blank=True, default="")
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Sample {self.pk} by {self.model_name}"


class ItemStatus(models.TextChoices):
    NEEDS_SAMPLES = "needs_samples", "Needs samples"
    READY = "ready", "Ready"
    DONE = "done", "Done"
    RETIRED = "retired", "Retired"
    # A gold item (quality app): served to each annotator once by the gold claim, never by the
    # ordinary one, and never closed by a submit.
    GOLD = "gold", "Gold"


class Item(models.Model):
    """One task: a dialogue and, for comparisons, the two samples to compare."""

    task_kind = models.CharField(max_length=16, choices=TaskKind.choices, default=TaskKind.COMPARISON)
    dialogue = models.ForeignKey(Dialogue, on_delete=models.CASCADE, related_name="items")
    guideline_kind = models.CharField(max_length=16, choices=GuidelineKind.choices)
    sample_a = models.ForeignKey(Sample, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    sample_b = models.ForeignKey(Sample, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=16, choices=ItemStatus.choices, default=ItemStatus.READY)
    overlap = models.PositiveSmallIntegerField(default=1)
    # Slots left for new claims: overlap minus live claims and submissions. Claims decrement it
    # under the item's row lock, so it never goes below zero however many annotators claim at once.
    open_slots = models.PositiveSmallIntegerField(default=1)
    # Higher first: annotator-written prompts and continued dialogues are generated and served first.
    priority = models.SmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["guideline_kind", "task_kind", "-priority", "id"],
                name="item_claimable_idx",
                condition=Q(status="ready", open_slots__gt=0),
            ),
            # The claim's scan order when an annotator rates several guideline kinds: walked from the
            # top under LIMIT 1, so a claim reads a handful of rows however long the queue is.
            models.Index(
                fields=["-priority", "id"],
                name="item_claim_order_idx",
                condition=Q(status="ready", open_slots__gt=0),
            ),
            models.Index(fields=["status", "guideline_kind"]),
        ]

    def __str__(self) -> str:
        return f"Item {self.pk} ({self.guideline_kind}, {self.status})"


class AssignmentStatus(models.TextChoices):
    CLAIMED = "claimed", "Claimed"
    SUBMITTED = "submitted", "Submitted"
    SKIPPED = "skipped", "Skipped"
    EXPIRED = "expired", "Expired"


class Assignment(models.Model):
    """One annotator's claim on one item; an annotator is never given the same item twice."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    status = models.CharField(max_length=16, choices=AssignmentStatus.choices, default=AssignmentStatus.CLAIMED)
    # True when item.sample_b is shown as "Response A"; randomized per assignment.
    flipped = models.BooleanField(default=False)
    claimed_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    skip_reason = models.CharField(max_length=500, blank=True, default="")
    # The guideline version current when the item was claimed: the one the annotator was shown.
    guideline = models.ForeignKey(Guideline, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "annotator"], name="assignment_item_annotator_unique"),
        ]
        indexes = [
            models.Index(fields=["annotator", "status"]),
            models.Index(fields=["status", "expires_at"]),
        ]

    @property
    def shown_order(self) -> str:
        return "ba" if self.flipped else "ab"

    def __str__(self) -> str:
        return f"Assignment {self.pk}: item {self.item_id} to {self.annotator_id} ({self.status})"


class Comparison(models.Model):
    """A preference between two samples: the unit the reward models train on.

    Annotator comparisons come from an assignment; imported ones (from open datasets) have no
    assignment or annotator and may have no rating.
    """

    assignment = models.OneToOneField(
        Assignment, null=True, blank=True, on_delete=models.PROTECT, related_name="comparison"
    )
    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="comparisons")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="comparisons"
    )
    guideline = models.ForeignKey(Guideline, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    guideline_kind = models.CharField(max_length=16, choices=GuidelineKind.choices)
    chosen = models.ForeignKey(Sample, on_delete=models.PROTECT, related_name="+")
    rejected = models.ForeignKey(Sample, on_delete=models.PROTECT, related_name="+")
    rating = models.CharField(max_length=24, choices=Rating.choices, blank=True, default="")
    # "ab" when item.sample_a was shown as Response A, "ba" when it was shown as Response B.
    shown_order = models.CharField(max_length=2, default="ab")
    chosen_is_safe = models.BooleanField(null=True, blank=True)
    rejected_is_safe = models.BooleanField(null=True, blank=True)
    safety_bin = models.CharField(max_length=32, choices=SafetyBin.choices, blank=True, default="")
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    # "annotation" for the platform's own comparisons, else the imported dataset's name.
    source = models.CharField(max_length=200, default="annotation")
    batch = models.ForeignKey(
        "batches.Batch", null=True, blank=True, on_delete=models.PROTECT, related_name="comparisons"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(chosen_is_safe=False, rejected_is_safe=True), name="comparison_no_chosen_unsafe_other_safe"
            ),
        ]
        indexes = [
            models.Index(fields=["batch", "source"]),
            models.Index(fields=["source", "id"]),
            models.Index(fields=["annotator", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"Comparison {self.pk} ({self.guideline_kind}, {self.rating or 'unrated'})"


class Demonstration(models.Model):
    """An annotator-written ideal response to a prompt (the paper's SFT annotation, §3.1)."""

    assignment = models.OneToOneField(
        Assignment, null=True, blank=True, on_delete=models.PROTECT, related_name="demonstration"
    )
    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="demonstrations")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="demonstrations"
    )
    guideline = models.ForeignKey(Guideline, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    guideline_kind = models.CharField(max_length=16, choices=GuidelineKind.choices)
    text = models.TextField()
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    source = models.CharField(max_length=200, default="annotation")
    batch = models.ForeignKey(
        "batches.Batch", null=True, blank=True, on_delete=models.PROTECT, related_name="demonstrations"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["batch", "source"])]
