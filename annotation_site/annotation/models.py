"""The annotation domain: guidelines, dialogues, samples, items, assignments, comparisons.

An *item* is one task for annotators: a dialogue context and two sampled responses (a comparison
task) or a prompt to answer (a demonstration task, the paper's SFT annotation). An *assignment*
is one annotator's claim on an item; submitting it creates a *comparison* (or a demonstration).
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotation_site.annotation.markdown import render_markdown
from annotation_site.errors import Conflict


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


class ExportedOnce(models.Model):
    """Base of the rows whose content a closed batch's files hold: once exported, saving or deleting
    one raises ClosedBatchError (on PostgreSQL, triggers refuse it too: migration 0009)."""

    class Meta:
        abstract = True

    def refuse_if_exported(self, action: str) -> None:
        """Raise ClosedBatchError if a closed batch holds this row (`action`: "changed" or "deleted")."""
        raise NotImplementedError

    def save(self, *args, **kwargs):
        # The stored row decides, not this instance's fields: one read before the close does not know.
        if self.pk is not None and not self._state.adding:
            self.refuse_if_exported("changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if self.pk is not None:
            self.refuse_if_exported("deleted")
        return super().delete(*args, **kwargs)


class ExportedContent(ExportedOnce):
    """A dialogue or sample: a closed batch exported it when one of its comparisons or
    demonstrations uses it."""

    class Meta:
        abstract = True

    def closed_batch_weeks(self) -> list[str]:
        """Weeks of the closed batches whose files hold this row's text."""
        raise NotImplementedError

    def refuse_if_exported(self, action: str) -> None:
        weeks = self.closed_batch_weeks()
        if weeks:
            raise ClosedBatchError(
                f"{self._meta.verbose_name} {self.pk} cannot be {action}: closed batch {', '.join(weeks)} "
                f"exported it, and a closed batch never changes. Leave it as it is."
            )


class Dialogue(ExportedContent):
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

    def closed_batch_weeks(self) -> list[str]:
        weeks = {
            *Comparison.objects.filter(item__dialogue_id=self.pk, batch__isnull=False).values_list("batch__week", flat=True),
            *Demonstration.objects.filter(item__dialogue_id=self.pk, batch__isnull=False).values_list("batch__week", flat=True),
        }
        return sorted(weeks)


class Sample(ExportedContent):
    """One model response to a dialogue, with everything needed to reproduce how it was sampled."""

    dialogue = models.ForeignKey(Dialogue, on_delete=models.CASCADE, related_name="samples")
    text = models.TextField()
    # `text` rendered from Markdown to safe HTML (annotation.markdown) when the sample is stored, so
    # showing it costs the claim nothing; empty for imported pairs no annotator will see.
    text_html = models.TextField(blank=True, default="", editable=False)
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
    # Characters of the engine's answer removed or replaced before it was stored (control
    # characters, lone surrogates, bytes that were not UTF-8, carriage returns; serving/text.py).
    cleaned_chars = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    def save(self, *args, **kwargs):
        self.text_html = render_markdown(self.text)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "text" in update_fields:
            kwargs["update_fields"] = {*update_fields, "text_html"}
        super().save(*args, **kwargs)

    def __str__(self) -> str:
        return f"Sample {self.pk} by {self.model_name}"

    def closed_batch_weeks(self) -> list[str]:
        used = Comparison.objects.filter(Q(chosen_id=self.pk) | Q(rejected_id=self.pk), batch__isnull=False)
        return sorted(set(used.values_list("batch__week", flat=True)))


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
    # How the generation app chose the pair when active selection is on for the guideline
    # (generation/selection.py): the policy applied, the reward models, each candidate's variant
    # and scores, the chosen two; empty for the random pairs of a fill without selection.
    selection = models.JSONField(default=dict, blank=True)
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


class ImportSplit(models.TextChoices):
    TRAIN = "train", "Training split"
    TEST = "test", "Test split (never trained on)"


class ClosedBatchError(Conflict):
    """A change or deletion of a row that belongs to a closed batch (every batch is closed)."""


def closed_batch_message(model: type[models.Model], rows: list[tuple[int, str]], action: str) -> str:
    """What an admin, a caller of the ORM or the API is told; `rows` are (id, batch week) pairs."""
    name = model._meta.verbose_name
    listed = ", ".join(f"{name} {pk} (batch {week})" for pk, week in rows[:5]) + (", ..." if len(rows) > 5 else "")
    return (
        f"{listed} cannot be {action}: {'it belongs' if len(rows) == 1 else 'they belong'} to a closed batch, "
        f"and a closed batch never changes, so "
        f"that every export of it writes the same files. Leave it as it is; to leave it out of training, "
        f"filter it when you train."
    )


class BatchedQuerySet(models.QuerySet):
    """Refuses `update()` and `delete()` on rows that are in a batch.

    Assigning unbatched rows to a batch (the close's `filter(batch__isnull=True).update(batch=...)`)
    is allowed: none of its rows is in a batch yet. On PostgreSQL a trigger enforces the same rule
    (migration 0009), also for raw SQL.
    """

    def closed_rows(self) -> list[tuple[int, str]]:
        """(id, batch week) of the first few rows here that are in a batch, for a message."""
        return list(self.filter(batch__isnull=False).order_by("pk").values_list("pk", "batch__week")[:6])

    def refuse_closed(self, action: str) -> None:
        """Raise ClosedBatchError if any row here is in a batch (`action`: "changed" or "deleted")."""
        rows = self.closed_rows()
        if rows:
            raise ClosedBatchError(closed_batch_message(self.model, rows, action))

    def update(self, **kwargs):
        self.refuse_closed("changed")
        return super().update(**kwargs)

    def delete(self):
        self.refuse_closed("deleted")
        return super().delete()

    delete.queryset_only = True


class BatchedRecord(ExportedOnce):
    """A comparison or demonstration: exported once its batch is closed."""

    objects = BatchedQuerySet.as_manager()

    class Meta:
        abstract = True

    def refuse_if_exported(self, action: str) -> None:
        type(self).objects.filter(pk=self.pk).refuse_closed(action)


class Comparison(BatchedRecord):
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
    # The split an imported file was declared to be (`import_preferences --split`): a "test" pair is
    # never trained on. Empty for the platform's own comparisons, whose hold-out is drawn at export.
    # The database default keeps the claim-and-submit function's INSERT unchanged.
    split = models.CharField(max_length=5, choices=ImportSplit.choices, blank=True, default="", db_default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(chosen_is_safe=False, rejected_is_safe=True), name="comparison_no_chosen_unsafe_other_safe"
            ),
            models.CheckConstraint(condition=Q(split__in=["", "train", "test"]), name="comparison_split_known"),
        ]
        indexes = [
            models.Index(fields=["batch", "source"]),
            models.Index(fields=["source", "id"]),
            models.Index(fields=["annotator", "created_at"]),
        ]

    @property
    def chosen_as_shown(self) -> str:
        """The chosen response as the annotator saw it: "A" or "B" (reads only the item's sample ids)."""
        item = self.item
        shown_a = item.sample_b_id if self.shown_order == "ba" else item.sample_a_id
        return "A" if self.chosen_id == shown_a else "B"

    def labels_as_shown(self) -> tuple[bool | None, bool | None]:
        """(Response A is safe, Response B is safe) as labelled; (None, None) on a helpfulness comparison."""
        if self.chosen_as_shown == "A":
            return self.chosen_is_safe, self.rejected_is_safe
        return self.rejected_is_safe, self.chosen_is_safe

    def __str__(self) -> str:
        return f"Comparison {self.pk} ({self.guideline_kind}, {self.rating or 'unrated'})"


class Demonstration(BatchedRecord):
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


class ComparisonAmendment(models.Model):
    """One change an annotator made to their own comparison after submitting it: who, when, old and new.

    Written by `services.comparison_amend` in the same transaction as the change; the comparison
    then holds the new answer and these rows its history, oldest first.
    """

    comparison = models.ForeignKey(Comparison, on_delete=models.PROTECT, related_name="amendments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    amended_at = models.DateTimeField()
    old_chosen = models.ForeignKey(Sample, on_delete=models.PROTECT, related_name="+")
    old_rating = models.CharField(max_length=24, choices=Rating.choices, blank=True, default="")
    old_chosen_is_safe = models.BooleanField(null=True, blank=True)
    old_rejected_is_safe = models.BooleanField(null=True, blank=True)
    old_safety_bin = models.CharField(max_length=32, choices=SafetyBin.choices, blank=True, default="")
    new_chosen = models.ForeignKey(Sample, on_delete=models.PROTECT, related_name="+")
    new_rating = models.CharField(max_length=24, choices=Rating.choices, blank=True, default="")
    new_chosen_is_safe = models.BooleanField(null=True, blank=True)
    new_rejected_is_safe = models.BooleanField(null=True, blank=True)
    new_safety_bin = models.CharField(max_length=32, choices=SafetyBin.choices, blank=True, default="")

    class Meta:
        ordering = ["comparison", "amended_at", "id"]

    def __str__(self) -> str:
        return f"Amendment of comparison {self.comparison_id} at {self.amended_at:%Y-%m-%d %H:%M}"
