"""Input and output shapes of the runs API, one pair per operation."""
from __future__ import annotations

from rest_framework import serializers

from annotation_site.batches.models import Batch
from annotation_site.generation.models import TENSOR_PARALLEL_SIZES, Checkpoint, Deployment, Engine
from annotation_site.runs.launchers import PROCESS_COUNTS
from annotation_site.runs.models import Recipe, TrainingRun
from annotation_site.runs.services import GUIDELINES


class RunOutputSerializer(serializers.ModelSerializer):
    launched_by = serializers.CharField(source="launched_by.username", read_only=True, default=None)
    batches = serializers.SlugRelatedField(slug_field="week", many=True, read_only=True)

    class Meta:
        model = TrainingRun
        fields = [
            "id", "name", "recipe", "config_name", "overrides", "config_text", "batches", "base_checkpoint", "status",
            "progress", "step", "total_steps", "output_dir", "log_path", "error", "notes", "launched_by", "checkpoint",
            "accelerate_config", "num_processes", "attempts", "resumed_from_step", "created_at", "started_at", "finished_at",
        ]


class RunProgressSerializer(serializers.Serializer):
    """The small document the run page polls for its live progress bar and log."""

    id = serializers.IntegerField()
    status = serializers.CharField()
    status_label = serializers.CharField(source="get_status_display", help_text='As the pages write it, e.g. "Running".')
    progress = serializers.FloatField()
    step = serializers.IntegerField()
    total_steps = serializers.IntegerField(allow_null=True)
    error = serializers.CharField()
    checkpoint = serializers.IntegerField(source="checkpoint_id", allow_null=True)
    finished = serializers.BooleanField(source="is_finished")
    log_tail = serializers.CharField()


class RunLaunchInputSerializer(serializers.Serializer):
    recipe = serializers.ChoiceField(choices=Recipe.choices)
    config_name = serializers.CharField(required=False, allow_blank=True, default="", help_text="A file of training/configs/.")
    overrides = serializers.ListField(child=serializers.CharField(), required=False, default=list, help_text="key=value strings.")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    notes = serializers.CharField(required=False, allow_blank=True, default="")
    base_checkpoint = serializers.PrimaryKeyRelatedField(queryset=Checkpoint.objects.all(), required=False, allow_null=True, default=None)
    helpfulness_reward_model = serializers.PrimaryKeyRelatedField(queryset=Checkpoint.objects.all(), required=False, allow_null=True, default=None)
    safety_reward_model = serializers.PrimaryKeyRelatedField(queryset=Checkpoint.objects.all(), required=False, allow_null=True, default=None)
    batches = serializers.SlugRelatedField(slug_field="week", queryset=Batch.objects.all(), many=True, required=False, default=list)
    guidelines = serializers.ListField(child=serializers.ChoiceField(choices=GUIDELINES), required=False, default=list)
    accelerate_config = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default="",
        help_text="File name of an accelerate config (GET /api/runs/accelerate-configs/); empty: one process.",
    )
    num_processes = serializers.ChoiceField(
        choices=PROCESS_COUNTS, required=False, allow_null=True, default=None,
        help_text="Processes over all machines (GPUs); empty: the accelerate config's own count.",
    )
    compare_with = serializers.PrimaryKeyRelatedField(queryset=Checkpoint.objects.all(), many=True, required=False, default=list,
                                                      help_text="Policy evaluation: checkpoints compared with base_checkpoint.")
    judge = serializers.PrimaryKeyRelatedField(queryset=Deployment.objects.all(), required=False, allow_null=True, default=None,
                                               help_text="Policy evaluation: a vLLM deployment asked as the judge.")


class RunDeployInputSerializer(serializers.Serializer):
    engine = serializers.ChoiceField(choices=Engine.choices)
    endpoint_url = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    served_model_name = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    launch = serializers.BooleanField(required=False, default=False)
    port = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1, max_value=65535)
    enforce_eager = serializers.BooleanField(required=False, default=False)
    tensor_parallel_size = serializers.ChoiceField(choices=TENSOR_PARALLEL_SIZES, required=False, default=1)
    only_this = serializers.BooleanField(required=False, default=False, help_text="Disable every other deployment.")


class AccelerateConfigSerializer(serializers.Serializer):
    name = serializers.CharField()
    distributed_type = serializers.CharField()
    num_machines = serializers.IntegerField()
    num_processes = serializers.IntegerField()
    description = serializers.CharField()


class ShippedConfigSerializer(serializers.Serializer):
    name = serializers.CharField()
    recipe = serializers.CharField()
    description = serializers.CharField()


class CompareInputSerializer(serializers.Serializer):
    run = serializers.ListField(child=serializers.IntegerField(), min_length=2, help_text="Ids of reward-model runs.")


class ComparisonRowSerializer(serializers.Serializer):
    run = serializers.IntegerField(source="run.pk")
    name = serializers.CharField(source="run.display_name")
    cells = serializers.ListField(child=serializers.FloatField(allow_null=True))
    average = serializers.FloatField(allow_null=True)
    pairs = serializers.IntegerField()


class ComparisonSerializer(serializers.Serializer):
    splits = serializers.ListField(child=serializers.CharField())
    rating_titles = serializers.ListField(child=serializers.CharField())
    by_split = ComparisonRowSerializer(many=True)
    by_rating = serializers.DictField(child=ComparisonRowSerializer(many=True))
    missing_eval = serializers.SerializerMethodField()

    def get_missing_eval(self, comparison) -> list[int]:
        return [run.pk for run in comparison.missing_eval]
