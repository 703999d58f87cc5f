"""Training runs launched from the researchers' dashboard: a recipe, its resolved config, the
batches it trains on, and what became of it (status, progress, log, the checkpoint it produced)."""
from __future__ import annotations

from django.conf import settings
from django.db import models

from annotation_site.runs.recipes import RECIPES


# The recipes of training/ a run can launch, from the site's table (runs/recipes.py); each is
# `python -m training.<value>`, its member named after the value (Recipe.PPO is "ppo").
Recipe = models.TextChoices("Recipe", [(recipe.value.upper(), (recipe.value, recipe.label)) for recipe in RECIPES])


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class TrainingRun(models.Model):
    # Optional label; it also names the checkpoint the run registers (default "<recipe>-run-<id>").
    name = models.CharField(max_length=200, blank=True, default="")
    recipe = models.CharField(max_length=24, choices=Recipe.choices)
    # Shipped config it started from (a file name in training/configs/, empty: the recipe's
    # defaults), and the key=value overrides typed at launch, kept to show how the run was asked for.
    config_name = models.CharField(max_length=200, blank=True, default="")
    overrides = models.JSONField(default=list, blank=True)
    # The fully resolved config (YAML) the recipe is started with: what actually trains, even if the
    # shipped file changes later.
    config_text = models.TextField()
    # How the training worker starts the recipe: an accelerate config of runs.launchers (a file
    # name, empty: plain Python or RUN_LAUNCHER) and the processes over all machines (empty: the
    # config's own count).
    accelerate_config = models.CharField(max_length=200, blank=True, default="")
    num_processes = models.PositiveSmallIntegerField(null=True, blank=True)
    batches = models.ManyToManyField("batches.Batch", blank=True, related_name="training_runs")
    # The checkpoint the run starts from; it becomes the parent of the checkpoint the run produces.
    base_checkpoint = models.ForeignKey(
        "generation.Checkpoint", null=True, blank=True, on_delete=models.SET_NULL, related_name="training_runs"
    )
    status = models.CharField(max_length=12, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    # CHECKPOINT_ROOT/runs/<id>: launch.yaml, run.log and the recipe's `checkpoint/` folder.
    output_dir = models.CharField(max_length=1000, blank=True, default="")
    log_path = models.CharField(max_length=1000, blank=True, default="")
    progress = models.FloatField(default=0.0)
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    notes = models.TextField(blank=True, default="")
    launched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="training_runs"
    )
    checkpoint = models.ForeignKey(
        "generation.Checkpoint", null=True, blank=True, on_delete=models.SET_NULL, related_name="produced_by_runs"
    )
    # Bookkeeping of the worker that runs it: attempts made, which worker (host:pid:task), the
    # recipe's process group (to cancel it, or kill it if its worker died), the cancel request.
    attempts = models.PositiveSmallIntegerField(default=0)
    # The step the current attempt continued from: the newest state the recipe had saved
    # (training/resume.py) when its worker was lost; None: it started from step 0.
    resumed_from_step = models.PositiveIntegerField(null=True, blank=True)
    # The newest state saved when the current attempt was claimed, and how many attempts in a row
    # lost their worker without saving a newer one: RUN_MAX_ATTEMPTS bounds those, so a run that
    # moves forward on every (preempted) attempt is not written off while it makes progress.
    attempt_started_at_step = models.PositiveIntegerField(null=True, blank=True)
    stalled_attempts = models.PositiveSmallIntegerField(default=0)
    worker = models.CharField(max_length=300, blank=True, default="")
    worker_host = models.CharField(max_length=255, blank=True, default="")
    process_group = models.PositiveIntegerField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    # Set once the task was handed to the broker; a QUEUED run without it never reached a worker.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # Touched by the worker every RUN_POLL_INTERVAL_S while the run is RUNNING.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "heartbeat_at"])]

    def __str__(self) -> str:
        return f"Run {self.pk} {self.display_name} ({self.status})"

    @property
    def display_name(self) -> str:
        return self.name or f"{self.recipe}-run-{self.pk}"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES
