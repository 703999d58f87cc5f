from rest_framework import serializers

from annotation_site.annotation.models import GuidelineKind


class QualityQuery(serializers.Serializer):
    guideline = serializers.ChoiceField(choices=GuidelineKind.choices, required=False)
    since = serializers.DateField(required=False)
    until = serializers.DateField(required=False)


class AnnotatorQualityOutput(serializers.Serializer):
    annotator_id = serializers.IntegerField()
    username = serializers.CharField()
    comparisons = serializers.IntegerField()
    demonstrations = serializers.IntegerField()
    per_day = serializers.FloatField(help_text="Comparisons per day the annotator worked.")
    median_active_ms = serializers.IntegerField(allow_null=True)
    too_fast = serializers.IntegerField()
    share_a = serializers.FloatField(allow_null=True, help_text="Share of comparisons where the response shown as A was chosen.")
    ratings = serializers.DictField(child=serializers.IntegerField())
    skip_rate = serializers.FloatField(allow_null=True)
    gold_answers = serializers.IntegerField()
    gold_accuracy = serializers.FloatField(allow_null=True)
    gold_interval = serializers.ListField(child=serializers.FloatField(), allow_null=True, help_text="95% Wilson interval.")
    agreement_with_others = serializers.FloatField(allow_null=True)
    shared_pairs = serializers.IntegerField()
    agreement_with_reward_model = serializers.FloatField(allow_null=True)
    reward_model_answers = serializers.IntegerField()
    excluded = serializers.IntegerField()
    flags = serializers.ListField(child=serializers.CharField())
