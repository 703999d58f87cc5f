"""The checkpoint registry and the deployments that serve checkpoints to generate samples."""
from __future__ import annotations

from django.db import models

from annotation_site.runs.recipes import RECIPES


# A base chat model, or what a recipe of the site's table (runs/recipes.py) produces, labelled with
# the recipe's short name (CheckpointKind.REWARD_MODEL is "reward_model").
CheckpointKind = models.TextChoices("CheckpointKind", [("BASE", ("base", "Base chat model"))] + [
    (recipe.checkpoint_kind.upper(), (recipe.checkpoint_kind, recipe.name)) for recipe in RECIPES if recipe.checkpoint_kind
])


class Checkpoint(models.Model):
    name = models.CharField(max_length=200, unique=True)
    # A local folder loadable with from_pretrained, or a hub id on machines that can reach a hub.
    path = models.CharField(max_length=1000)
    kind = models.CharField(max_length=24, choices=CheckpointKind.choices)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    # Identifier of the training run that produced it (its output folder or run id).
    run = models.CharField(max_length=500, blank=True, default="")
    # The resolved training config found beside the weights (config.yaml), when registered from a run.
    training_config = models.JSONField(default=dict, blank=True)
    notes = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class Engine(models.TextChoices):
    VLLM = "vllm", "vLLM (OpenAI-compatible server)"
    LOCAL = "local", "Local transformers engine"


class Health(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    HEALTHY = "healthy", "Healthy"
    UNHEALTHY = "unhealthy", "Unhealthy"


# Shards a launched server may split a model over: what vLLM's tensor parallelism supports on one
# machine (the attention heads must divide evenly).
TENSOR_PARALLEL_SIZES = (1, 2, 4, 8)


class ServerStatus(models.TextChoices):
    """Life of a vLLM server the platform launches for a deployment (empty: none launched)."""

    LAUNCHING = "launching", "Launching"
    SERVING = "serving", "Serving"
    STOPPING = "stopping", "Stopping"
    STOPPED = "stopped", "Stopped"
    FAILED = "failed", "Failed to start"


class CanaryState(models.TextChoices):
    """Life of a canary deployment (empty: a normal deployment, never a canary)."""

    RUNNING = "running", "Serving its share, collecting votes"
    PROMOTED = "promoted", "Promoted (its baseline disabled)"
    ROLLED_BACK = "rolled_back", "Rolled back (disabled)"


class Deployment(models.Model):
    checkpoint = models.ForeignKey(Checkpoint, on_delete=models.PROTECT, related_name="deployments")
    engine = models.CharField(max_length=8, choices=Engine.choices, default=Engine.VLLM)
    # Base URL of the OpenAI-compatible server, e.g. http://127.0.0.1:8001/v1 (empty for local).
    endpoint_url = models.CharField(max_length=500, blank=True, default="")
    # Model name the server knows the checkpoint by (vLLM's --served-model-name); defaults to path.
    served_model_name = models.CharField(max_length=500, blank=True, default="")
    enabled = models.BooleanField(default=True)
    health = models.CharField(max_length=12, choices=Health.choices, default=Health.UNKNOWN)
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    last_checked_at = models.DateTimeField(null=True, blank=True)
    # GPUs one launched vLLM server shards the model over (--tensor-parallel-size).
    tensor_parallel_size = models.PositiveSmallIntegerField(default=1)
    # Set when the platform started the vLLM server itself (deploy with launch): where it is
    # (host, the serving worker's own queue, GPUs) and who it is (process group, its leader's start
    # time, the marker in its environment), so only the worker that started it stops it, and only
    # if the process is still the one it launched; its log explains failures.
    server_status = models.CharField(max_length=12, choices=ServerStatus.choices, blank=True, default="")
    server_pid = models.PositiveIntegerField(null=True, blank=True)
    server_host = models.CharField(max_length=255, blank=True, default="")
    server_queue = models.CharField(max_length=300, blank=True, default="")
    server_started_at = models.FloatField(null=True, blank=True)
    server_marker = models.CharField(max_length=100, blank=True, default="")
    server_gpus = models.CharField(max_length=100, blank=True, default="")
    server_log = models.CharField(max_length=1000, blank=True, default="")
    # A canary (generation/canary.py, docs/canary-and-selection.md): a new checkpoint answering
    # `canary_share` of new pairs, each against `canary_of`, until `canary_min_votes` annotator
    # votes between the two decide: promoted at a win rate of at least `canary_min_win_rate`,
    # else rolled back; the reason and the tally it was decided on are kept.
    canary_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="canaries")
    canary_share = models.FloatField(null=True, blank=True)
    canary_min_votes = models.PositiveIntegerField(null=True, blank=True)
    canary_min_win_rate = models.FloatField(null=True, blank=True)
    canary_state = models.CharField(max_length=12, choices=CanaryState.choices, blank=True, default="")
    canary_reason = models.TextField(blank=True, default="")
    canary_tally = models.JSONField(default=dict, blank=True)
    canary_decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    @property
    def is_running_canary(self) -> bool:
        return self.canary_state == CanaryState.RUNNING

    @property
    def model_name(self) -> str:
        """The model name requests ask for: the served name, else the checkpoint path (vLLM's default)."""
        return self.served_model_name or self.checkpoint.path

    def __str__(self) -> str:
        return f"{self.checkpoint.name} on {self.engine} {self.endpoint_url}".strip()


class ClaimState(models.TextChoices):
    GENERATING = "generating", "Generating"
    FAILED = "failed", "Failed"


class GenerationClaim(models.Model):
    """A worker's claim on an item that needs samples, so two workers never generate the same item.

    Claiming inserts a row; the one-to-one constraint lets exactly one insert win. The claim is
    deleted when the samples are stored (the item is then READY). When generation fails it is
    released (expired at once) and a claim whose worker died expires after its TTL; either is
    taken over by a conditional update that keeps the attempt count. An item whose own request
    keeps being refused (e.g. a prompt longer than the context) is marked failed after a few
    attempts, stays out of the queue, and shows up in the admin.
    """

    item = models.OneToOneField("annotation.Item", on_delete=models.CASCADE, related_name="generation_claim")
    state = models.CharField(max_length=12, choices=ClaimState.choices, default=ClaimState.GENERATING)
    worker = models.CharField(max_length=200)
    claimed_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    # Active selection: the K candidates generated, waiting for the reward models' choice on the
    # training worker ({"policy": asked, "candidates": [sample fields, ...]}); empty otherwise.
    selection = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [models.Index(fields=["state", "expires_at"])]

    def __str__(self) -> str:
        return f"Item {self.item_id} {self.state} by {self.worker}"
