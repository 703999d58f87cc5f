"""Input and output shapes of the checkpoint, deployment and generation API, one pair per operation."""
from __future__ import annotations

from rest_framework import serializers

from annotation_site.generation.models import TENSOR_PARALLEL_SIZES, Checkpoint, CheckpointKind, Deployment, Engine


class CheckpointOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Checkpoint
        fields = ["id", "name", "path", "kind", "parent", "run", "training_config", "notes", "created_at"]


class CheckpointRegisteredSerializer(serializers.ModelSerializer):
    """What a client needs back from a registration; the config.yaml read is not echoed."""

    class Meta:
        model = Checkpoint
        fields = ["id", "name", "path", "kind", "parent", "run", "created_at"]


class CheckpointCreateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    path = serializers.CharField(
        max_length=1000, help_text="Checkpoint folder inside the checkpoint roots, or a hub id where CHECKPOINT_HUB_IDS allows.",
    )
    kind = serializers.ChoiceField(choices=CheckpointKind.choices)
    parent = serializers.PrimaryKeyRelatedField(queryset=Checkpoint.objects.all(), required=False, allow_null=True)
    run = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    notes = serializers.CharField(required=False, allow_blank=True, default="")


class CheckpointRegisterInputSerializer(serializers.Serializer):
    path = serializers.CharField(
        max_length=1000, help_text="A training run's output folder (weights + config.yaml) inside the checkpoint roots.",
    )
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    kind = serializers.ChoiceField(
        choices=CheckpointKind.choices, required=False, allow_blank=True, default="",
        help_text="Needed for policies; a reward model is recognised from its weights.",
    )
    parent = serializers.PrimaryKeyRelatedField(queryset=Checkpoint.objects.all(), required=False, allow_null=True)
    notes = serializers.CharField(required=False, allow_blank=True, default="")


class CheckpointUpdateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    parent = serializers.PrimaryKeyRelatedField(queryset=Checkpoint.objects.all(), required=False, allow_null=True)
    notes = serializers.CharField(required=False, allow_blank=True)


class DeploymentOutputSerializer(serializers.ModelSerializer):
    checkpoint_name = serializers.CharField(source="checkpoint.name", read_only=True)

    class Meta:
        model = Deployment
        fields = [
            "id", "checkpoint", "checkpoint_name", "engine", "endpoint_url", "served_model_name", "enabled",
            "health", "consecutive_failures", "last_error", "last_checked_at", "tensor_parallel_size", "server_status",
            "server_host", "server_pid", "server_gpus", "server_log", "canary_of", "canary_share", "canary_min_votes",
            "canary_min_win_rate", "canary_state", "canary_reason", "canary_tally", "canary_decided_at", "created_at",
        ]


class DeploymentCreateInputSerializer(serializers.Serializer):
    checkpoint = serializers.PrimaryKeyRelatedField(queryset=Checkpoint.objects.all())
    engine = serializers.ChoiceField(choices=Engine.choices)
    endpoint_url = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    served_model_name = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    enabled = serializers.BooleanField(required=False, default=True)
    launch = serializers.BooleanField(
        required=False, default=False, help_text="Start a vLLM server for the checkpoint on a serving worker's GPUs."
    )
    port = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1, max_value=65535)
    enforce_eager = serializers.BooleanField(required=False, default=False)
    tensor_parallel_size = serializers.ChoiceField(
        choices=TENSOR_PARALLEL_SIZES, required=False, default=1, help_text="Launch only: GPUs the server shards over."
    )


class DeploymentUpdateInputSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(required=False)
    endpoint_url = serializers.CharField(max_length=500, required=False, allow_blank=True)
    served_model_name = serializers.CharField(max_length=500, required=False, allow_blank=True)


class GuidelineQueueSerializer(serializers.Serializer):
    guideline_kind = serializers.CharField()
    ready = serializers.IntegerField()
    needs_samples = serializers.IntegerField()
    generating = serializers.IntegerField()
    failed = serializers.IntegerField()
    target = serializers.IntegerField()
    short_by = serializers.IntegerField()


class GenerationStatusSerializer(serializers.Serializer):
    guidelines = GuidelineQueueSerializer(many=True)
    deployments_usable = serializers.IntegerField()
    deployments_unhealthy = serializers.IntegerField()


class FillEnqueuedSerializer(serializers.Serializer):
    task_id = serializers.CharField()
