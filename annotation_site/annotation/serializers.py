"""Input and output shapes of the annotation API, one pair per operation."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from django.conf import settings
from rest_framework import serializers

from annotation_site.annotation.markdown import render_markdown
from annotation_site.annotation.models import TIME_SPENT_MAX_MS, GuidelineKind, Rating, TaskKind


class TurnSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["user", "assistant"])
    content = serializers.CharField(trim_whitespace=False)


class ShownResponseSerializer(serializers.Serializer):
    label = serializers.CharField(help_text='"A" or "B", as shown to the annotator.')
    text = serializers.CharField(help_text="The response as the model wrote it.")
    html = serializers.CharField(help_text="The response's Markdown rendered to HTML, with any raw HTML escaped.")


class GuidelineRefSerializer(serializers.Serializer):
    kind = serializers.CharField()
    version = serializers.IntegerField()
    title = serializers.CharField()


class AssignmentOutputSerializer(serializers.Serializer):
    """An item as one annotator sees it: never which model wrote which response."""

    id = serializers.IntegerField()
    status = serializers.CharField()
    task_kind = serializers.CharField(source="item.task_kind")
    guideline_kind = serializers.CharField(source="item.guideline_kind")
    guideline = GuidelineRefSerializer(allow_null=True)
    dialogue = TurnSerializer(many=True, source="item.dialogue.turns")
    responses = serializers.SerializerMethodField()
    claimed_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()

    @extend_schema_field(ShownResponseSerializer(many=True))
    def get_responses(self, assignment) -> list[dict]:
        return shown_responses(assignment)


# The hot path builds the answers of AssignmentOutputSerializer and ComparisonOutputSerializer
# directly: each serializer instance deep-copies its declared fields, which cost about a tenth of a
# whole annotation cycle. The serializers stay the definition (the API schema is made from them);
# the tests check that both give the same.
_DATETIME = serializers.DateTimeField()


def shown_responses(assignment) -> list[dict]:
    """The two responses as this annotator sees them (in the assignment's drawn order); none for a
    demonstration item."""
    item = assignment.item
    if item.task_kind != TaskKind.COMPARISON:
        return []
    first, second = (item.sample_b, item.sample_a) if assignment.flipped else (item.sample_a, item.sample_b)
    return [_shown("A", first), _shown("B", second)]


def _shown(label: str, sample) -> dict:
    # Samples stored before their HTML was (or imported without it) are rendered here.
    return {"label": label, "text": sample.text, "html": sample.text_html or render_markdown(sample.text)}


def assignment_data(assignment) -> dict:
    """`AssignmentOutputSerializer(assignment).data`, built directly."""
    item, guideline = assignment.item, assignment.guideline
    return {
        "id": assignment.id,
        "status": assignment.status,
        "task_kind": item.task_kind,
        "guideline_kind": item.guideline_kind,
        "guideline": {"kind": guideline.kind, "version": guideline.version, "title": guideline.title} if guideline else None,
        "dialogue": [{"role": turn["role"], "content": turn["content"]} for turn in item.dialogue.turns],
        "responses": shown_responses(assignment),
        "claimed_at": _DATETIME.to_representation(assignment.claimed_at),
        "expires_at": _DATETIME.to_representation(assignment.expires_at),
    }


def chosen_label(comparison) -> str:
    """The chosen response as it was shown: "A" or "B"."""
    return comparison.chosen_as_shown


def comparison_data(comparison) -> dict:
    """`ComparisonOutputSerializer(comparison).data`, built directly."""
    return {
        "id": comparison.id,
        "assignment": comparison.assignment_id,
        "chosen": chosen_label(comparison),
        "rating": comparison.rating,
        "chosen_is_safe": comparison.chosen_is_safe,
        "rejected_is_safe": comparison.rejected_is_safe,
        "safety_bin": comparison.safety_bin,
        "time_spent_ms": comparison.time_spent_ms,
        "created_at": _DATETIME.to_representation(comparison.created_at),
    }


class QueueStatusSerializer(serializers.Serializer):
    ready_for_you = serializers.IntegerField(help_text="Items you can be given now.")
    ready = serializers.IntegerField(help_text="Items ready for annotators of your guideline kinds.")
    needs_samples = serializers.IntegerField(help_text="Prompts whose two responses are being generated.")
    cap = serializers.IntegerField(help_text="Counts stop at this number (shown as e.g. 1000+).")


class NextItemInputSerializer(serializers.Serializer):
    guideline_kind = serializers.ChoiceField(choices=GuidelineKind.choices, required=False)
    task_kind = serializers.ChoiceField(choices=TaskKind.choices, required=False)


class NextItemOutputSerializer(serializers.Serializer):
    assignment = AssignmentOutputSerializer(allow_null=True)
    queue = QueueStatusSerializer(allow_null=True, help_text="Given when there is no item for you (else null).")


def claim_next_input():
    return NextItemInputSerializer(
        required=False,
        allow_null=True,
        default=None,
        help_text='Also claim your next item (with these filters; {} for none) and return it as "next": '
        "one request per item instead of two.",
    )


def claim_next_output():
    # Absent from the answer unless "next" was asked for; the view adds it (the answer itself is a
    # model, the next item is claimed separately).
    return NextItemOutputSerializer(required=False, read_only=True, help_text='Your next item, when "next" was given.')


class ComparisonInputSerializer(serializers.Serializer):
    chosen = serializers.ChoiceField(choices=["A", "B"], help_text="The better response, as shown.")
    rating = serializers.ChoiceField(choices=Rating.choices, help_text="How much better it is (Llama 2, §3.2.1).")
    response_a_is_safe = serializers.BooleanField(required=False, allow_null=True, default=None)
    response_b_is_safe = serializers.BooleanField(required=False, allow_null=True, default=None)
    active_ms = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=0,
        max_value=TIME_SPENT_MAX_MS,
        help_text="Active time on the item, measured by the client.",
    )
    next = claim_next_input()


_COMPARISON_INPUT_KEYS = frozenset(ComparisonInputSerializer._declared_fields)
_CLAIM_NEXT_CHOICES = {"guideline_kind": frozenset(GuidelineKind.values), "task_kind": frozenset(TaskKind.values)}


def comparison_input(data) -> dict:
    """`ComparisonInputSerializer(data=data)`'s validated data (raising its ValidationError).

    The well-formed submit every rated item sends is checked here directly: the serializer costs
    ~0.35 ms a request (it deep-copies its fields, the nested "next" among them), a tenth of the
    site's CPU per item. Anything else (a string for a boolean, an unknown key, any error) goes
    through the serializer, so what it accepts and every error message stay the serializer's; the
    tests check both give the same.
    """
    if type(data) is dict and data.keys() <= _COMPARISON_INPUT_KEYS:
        chosen, rating, active_ms = data.get("chosen"), data.get("rating"), data.get("active_ms")
        labels = (data.get("response_a_is_safe"), data.get("response_b_is_safe"))
        claim_next = data.get("next")
        if (
            chosen in ("A", "B")
            and rating in Rating.values
            and all(label is None or type(label) is bool for label in labels)
            and (active_ms is None or (type(active_ms) is int and 0 <= active_ms <= TIME_SPENT_MAX_MS))
            and (
                claim_next is None
                or (
                    type(claim_next) is dict
                    and all(
                        type(value) is str and value in _CLAIM_NEXT_CHOICES.get(key, ())
                        for key, value in claim_next.items()
                    )
                )
            )
        ):
            return {
                "chosen": chosen,
                "rating": rating,
                "response_a_is_safe": labels[0],
                "response_b_is_safe": labels[1],
                "active_ms": active_ms,
                "next": None if claim_next is None else dict(claim_next),
            }
    serializer = ComparisonInputSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class ComparisonOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    assignment = serializers.IntegerField(source="assignment_id")
    chosen = serializers.SerializerMethodField(help_text='"A" or "B", as shown.')
    rating = serializers.CharField()
    chosen_is_safe = serializers.BooleanField(allow_null=True)
    rejected_is_safe = serializers.BooleanField(allow_null=True)
    safety_bin = serializers.CharField()
    time_spent_ms = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    next = claim_next_output()

    def get_chosen(self, comparison) -> str:
        return chosen_label(comparison)


class ComparisonAmendInputSerializer(serializers.Serializer):
    chosen = serializers.ChoiceField(choices=["A", "B"], help_text="The better response, as it was shown.")
    rating = serializers.ChoiceField(choices=Rating.choices)
    response_a_is_safe = serializers.BooleanField(required=False, allow_null=True, default=None)
    response_b_is_safe = serializers.BooleanField(required=False, allow_null=True, default=None)


class SkipInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500)
    next = claim_next_input()


class SkipOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    skip_reason = serializers.CharField()
    next = claim_next_output()


class DemonstrationInputSerializer(serializers.Serializer):
    text = serializers.CharField(trim_whitespace=False)
    active_ms = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=0, max_value=TIME_SPENT_MAX_MS)
    next = claim_next_input()


class DemonstrationOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    assignment = serializers.IntegerField(source="assignment_id")
    text = serializers.CharField()
    time_spent_ms = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    next = claim_next_output()


class ProgressOutputSerializer(serializers.Serializer):
    week = serializers.CharField(help_text='ISO week, e.g. "2026-W48" (from Monday 00:00 UTC).')
    week_start = serializers.DateTimeField()
    comparisons = serializers.IntegerField()
    demonstrations = serializers.IntegerField()
    done = serializers.IntegerField()
    quota = serializers.IntegerField()
    fraction = serializers.FloatField()


class PromptInputSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=settings.DIALOGUE_MAX_TURN_CHARS)
    guideline_kind = serializers.ChoiceField(choices=GuidelineKind.choices, default=GuidelineKind.HELPFULNESS)


class ContinueInputSerializer(serializers.Serializer):
    message = serializers.CharField(max_length=settings.DIALOGUE_MAX_TURN_CHARS, help_text="The next user message.")


class QueuedItemOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    task_kind = serializers.CharField()
    guideline_kind = serializers.CharField()
    priority = serializers.IntegerField()
    dialogue = TurnSerializer(many=True, source="dialogue.turns")


class QueuePromptSerializer(serializers.Serializer):
    turns = TurnSerializer(many=True)
    guideline_kind = serializers.ChoiceField(choices=GuidelineKind.choices)


class QueuePromptsInputSerializer(serializers.Serializer):
    prompts = QueuePromptSerializer(many=True, allow_empty=False)
    task_kind = serializers.ChoiceField(choices=TaskKind.choices, default=TaskKind.COMPARISON)
    source_name = serializers.CharField(max_length=200, required=False, default="")
    priority = serializers.IntegerField(required=False, default=0, min_value=-100, max_value=100)


class QueuePromptsOutputSerializer(serializers.Serializer):
    item_ids = serializers.ListField(child=serializers.IntegerField())
