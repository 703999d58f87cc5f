"""The weekly loop: its definition (versioned: every edit is a new version), and its iterations,
each a fixed list of steps, most of them an ordinary training run of the runs app (docs/loop.md)."""
from __future__ import annotations

from django.conf import settings
from django.db import models


class Trigger(models.TextChoices):
    BATCH_EXPORTED = "batch_exported", "A weekly batch's export finishing"
    SCHEDULE = "schedule", "A schedule (celery beat crontab)"
    MANUAL = "manual", '"Run now" by hand'


class RewardModelStart(models.TextChoices):
    CHAT_MODEL = "chat_model", "The chat model (the paper's choice)"
    LAST_REWARD_MODEL = "last_reward_model", "Continue the last reward model kept"


def paper_mixes() -> list[dict]:
    """§3.2.2's mixes from the weekly batches themselves: the helpfulness RM's data with a quarter
    of safety data (the shipped config's share of Meta Safety; add open-source sources beside it),
    the safety RM's with helpfulness data "in a 90/10 proportion"."""
    return [
        {"source": "batches", "reward_model": "helpfulness", "guidelines": ["safety"], "share": 0.25},
        {"source": "batches", "reward_model": "safety", "guidelines": ["helpfulness"], "share": 0.1},
    ]


class LoopDefinition(models.Model):
    """A named loop; what it runs is its newest version."""

    name = models.CharField(max_length=200, unique=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def current_version(self) -> LoopVersion | None:
        return self.versions.order_by("-number").first()


class LoopVersion(models.Model):
    """One version of a loop definition; never edited once saved (an edit saves the next number)."""

    definition = models.ForeignKey(LoopDefinition, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    # The guidelines whose reward models the loop trains and gates (both: the paper's two RMs).
    guidelines = models.JSONField(default=list)
    # The chat model the reward models start from, and the policy the first iteration improves when
    # no deployment serves yet (later iterations start from the deployed policy).
    chat_checkpoint = models.ForeignKey("generation.Checkpoint", on_delete=models.PROTECT, related_name="+")
    reward_model_start = models.CharField(max_length=20, choices=RewardModelStart.choices, default=RewardModelStart.CHAT_MODEL)
    # Shipped configs (training/configs/) and key=value overrides of each step's recipe.
    helpfulness_config = models.CharField(max_length=200, blank=True, default="reward_model_helpfulness.yaml")
    safety_config = models.CharField(max_length=200, blank=True, default="reward_model_safety.yaml")
    reward_model_overrides = models.JSONField(default=list, blank=True)
    reward_model_evaluation_overrides = models.JSONField(default=list, blank=True)
    rejection_sampling_config = models.CharField(max_length=200, blank=True, default="rejection_sampling.yaml")
    rejection_sampling_overrides = models.JSONField(default=list, blank=True)
    ppo = models.BooleanField(default=False)
    ppo_config = models.CharField(max_length=200, blank=True, default="ppo.yaml")
    ppo_overrides = models.JSONField(default=list, blank=True)
    evaluation_config = models.CharField(max_length=200, blank=True, default="evaluate_policy.yaml")
    evaluation_overrides = models.JSONField(default=list, blank=True)
    # Imported datasets mixed into each reward model's data (§3.2.2's mixes):
    # [{"source": name or "batches", "reward_model": guideline, "guidelines": [...], "share": 0.1}].
    sources = models.JSONField(default=paper_mixes, blank=True)
    # Gates. RM: refuse a new reward model whose accuracy on any held-out split is below the one it
    # would replace by more than this (negative: it must be better by at least that). Policy: win rate by the combined reward at least this, and
    # the share of safety answers below the safety threshold may rise by at most this.
    reward_model_max_drop = models.FloatField(default=0.02)
    min_win_rate = models.FloatField(default=0.5)
    max_unsafe_share_rise = models.FloatField(default=0.0)
    # Canary: the new policy's share of new pairs, votes needed, and its win rate to be promoted.
    canary_share = models.FloatField(default=0.2)
    canary_min_votes = models.PositiveIntegerField(default=50)
    canary_min_win_rate = models.FloatField(default=0.5)
    trigger = models.CharField(max_length=20, choices=Trigger.choices, default=Trigger.BATCH_EXPORTED)
    # Crontab "minute hour day-of-month month day-of-week" (UTC) when the trigger is a schedule.
    schedule = models.CharField(max_length=100, blank=True, default="0 6 * * 1")
    notes = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["definition", "-number"]
        constraints = [models.UniqueConstraint(fields=["definition", "number"], name="loop_version_number_unique")]

    def __str__(self) -> str:
        return f"{self.definition.name} v{self.number}"


class IterationState(models.TextChoices):
    RUNNING = "running", "Running"
    CANARY = "canary", "Canary: waiting for annotators' votes"
    PROMOTED = "promoted", "Promoted: the new policy serves"
    ROLLED_BACK = "rolled_back", "Rolled back by the canary"
    REJECTED = "rejected", "Stopped by a gate"
    FAILED = "failed", "Failed (retry from the failed step)"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATES = (IterationState.RUNNING, IterationState.CANARY)


class LoopIteration(models.Model):
    definition = models.ForeignKey(LoopDefinition, on_delete=models.CASCADE, related_name="iterations")
    version = models.ForeignKey(LoopVersion, on_delete=models.PROTECT, related_name="iterations")
    number = models.PositiveIntegerField()
    state = models.CharField(max_length=12, choices=IterationState.choices, default=IterationState.RUNNING, db_index=True)
    # What started it: the batch whose export finished (one iteration per batch and loop), or a person.
    trigger = models.CharField(max_length=20, choices=Trigger.choices)
    batch = models.ForeignKey("batches.Batch", null=True, blank=True, on_delete=models.SET_NULL, related_name="loop_iterations")
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # The policy deployed when it started (what the new policy must beat) and its deployment.
    baseline_checkpoint = models.ForeignKey("generation.Checkpoint", on_delete=models.PROTECT, related_name="+")
    baseline_deployment = models.ForeignKey("generation.Deployment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # What the steps decided: the reward models used, the new policy, the canary deployment.
    helpfulness_reward_model = models.ForeignKey("generation.Checkpoint", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    safety_reward_model = models.ForeignKey("generation.Checkpoint", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    policy_checkpoint = models.ForeignKey("generation.Checkpoint", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    canary_deployment = models.ForeignKey("generation.Deployment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # The outcome in one sentence (shown on the dashboard and logged) and a failed step's error.
    outcome = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["definition", "number"], name="loop_iteration_number_unique"),
            # A batch's export starts one iteration of each loop, however many ticks see it.
            models.UniqueConstraint(fields=["definition", "batch"], condition=models.Q(trigger="batch_exported"),
                                    name="loop_iteration_once_per_batch"),
        ]

    def __str__(self) -> str:
        return f"{self.definition.name} iteration {self.number} ({self.state})"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES


class StepKind(models.TextChoices):
    REWARD_MODEL_HELPFULNESS = "rm_helpfulness", "Helpfulness reward model"
    REWARD_MODEL_SAFETY = "rm_safety", "Safety reward model"
    GATE_HELPFULNESS = "rm_gate_helpfulness", "Gate: helpfulness RM vs the one it replaces"
    GATE_SAFETY = "rm_gate_safety", "Gate: safety RM vs the one it replaces"
    REJECTION_SAMPLING = "rejection_sampling", "Rejection sampling from the deployed policy"
    PPO = "ppo", "PPO from the rejection-sampling checkpoint"
    EVALUATION = "evaluation", "Evaluation: new policy vs deployed"
    POLICY_GATE = "policy_gate", "Gate: win rate and unsafe share"
    CANARY = "canary", "Canary deployment, then promote or roll back"


class StepState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    SKIPPED = "skipped", "Skipped"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


DONE_STEP_STATES = (StepState.SUCCEEDED, StepState.SKIPPED)


class LoopStep(models.Model):
    iteration = models.ForeignKey(LoopIteration, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=24, choices=StepKind.choices)
    state = models.CharField(max_length=12, choices=StepState.choices, default=StepState.PENDING)
    # The step's training run (none for the policy gate and the canary); a retry launches a new one,
    # the earlier attempts stay in /runs/.
    run = models.ForeignKey("runs.TrainingRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="loop_steps")
    attempts = models.PositiveSmallIntegerField(default=0)
    # The numbers a gate decided on, what a step produced, why it was skipped.
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["iteration", "position"]
        constraints = [models.UniqueConstraint(fields=["iteration", "position"], name="loop_step_position_unique")]

    def __str__(self) -> str:
        return f"{self.iteration} step {self.position} {self.kind} ({self.state})"
