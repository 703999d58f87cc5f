from rest_framework import serializers

from annotation_site.loop.models import LoopIteration, LoopStep


class LoopStepOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = LoopStep
        fields = ["position", "kind", "state", "run", "attempts", "result", "error", "started_at", "finished_at"]


class LoopIterationOutputSerializer(serializers.ModelSerializer):
    definition = serializers.CharField(source="definition.name")
    version = serializers.IntegerField(source="version.number")
    steps = LoopStepOutputSerializer(many=True, read_only=True)

    class Meta:
        model = LoopIteration
        fields = ["id", "definition", "version", "number", "state", "trigger", "batch", "baseline_checkpoint",
                  "helpfulness_reward_model", "safety_reward_model", "policy_checkpoint", "canary_deployment",
                  "outcome", "error", "created_at", "finished_at", "steps"]


class CanaryDecisionInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, help_text="Why the canary is decided by hand (recorded with your name).")
