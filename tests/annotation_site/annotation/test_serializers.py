"""The hot path's hand-built answers are the serializers' answers (the serializers define the schema)."""
import pytest
from django.db import connection
from rest_framework.exceptions import ValidationError

from annotation_site.accounts.authentication import TOKEN_USER_ROW
from annotation_site.annotation import services
from annotation_site.annotation.models import Assignment, Guideline
from annotation_site.annotation.serializers import (
    AssignmentOutputSerializer,
    ComparisonInputSerializer,
    ComparisonOutputSerializer,
    assignment_data,
    comparison_data,
    comparison_input,
)
from tests.annotation_site.annotation.factories import make_annotator, make_demonstration_item, make_ready_item

pytestmark = pytest.mark.django_db

SUBMITS_ACCEPTED = [
    {"chosen": "A", "rating": "better"},
    {"chosen": "B", "rating": "negligibly_better", "response_a_is_safe": True, "response_b_is_safe": False, "active_ms": 0, "next": {}},
    {"chosen": "A", "rating": "slightly_better", "active_ms": 1000, "next": {"guideline_kind": "safety", "task_kind": "comparison"}},
    {"chosen": "A", "rating": "significantly_better", "next": None, "active_ms": None, "response_a_is_safe": None},
    # shapes the direct check leaves to the serializer, which accepts them
    {"chosen": "A", "rating": "better", "response_a_is_safe": "true", "response_b_is_safe": 0, "active_ms": "15"},
    {"chosen": "A", "rating": "better", "unknown": 1, "next": {"other": "x"}},
]
SUBMITS_REFUSED = [
    {"chosen": "C", "rating": "better"},
    {"chosen": "a", "rating": "better"},
    {"chosen": "A"},
    {"chosen": "A", "rating": "best"},
    {"chosen": "A", "rating": "better", "active_ms": -1},
    {"chosen": "A", "rating": "better", "active_ms": 2**31},
    {"chosen": "A", "rating": "better", "active_ms": True},
    {"chosen": "A", "rating": "better", "response_b_is_safe": "maybe"},
    {"chosen": "A", "rating": "better", "next": {"guideline_kind": ["safety"]}},
    {"chosen": "A", "rating": "better", "next": {"task_kind": "essay"}},
    {"chosen": "A", "rating": "better", "next": "soon"},
    [],
]


@pytest.mark.parametrize("data", SUBMITS_ACCEPTED)
def test_the_direct_submit_check_accepts_what_the_serializer_accepts(data):
    serializer = ComparisonInputSerializer(data=data)
    assert serializer.is_valid(), serializer.errors
    assert comparison_input(data) == serializer.validated_data


@pytest.mark.parametrize("data", SUBMITS_REFUSED)
def test_the_direct_submit_check_refuses_what_the_serializer_refuses_with_its_errors(data):
    serializer = ComparisonInputSerializer(data=data)
    assert not serializer.is_valid()
    with pytest.raises(ValidationError) as refused:
        comparison_input(data)
    assert refused.value.detail == serializer.errors


@pytest.mark.parametrize("flipped", [False, True])
@pytest.mark.parametrize("chosen", ["A", "B"])
def test_comparison_and_next_item_answers_match_their_serializers(flipped, chosen):
    make_ready_item(guideline_kind="safety")
    make_ready_item()
    annotator = make_annotator()
    claimed = services.assignment_claim_next(annotator=annotator)
    Assignment.objects.filter(pk=claimed.pk).update(flipped=flipped)
    claimed = services.assignment_claim_next(annotator=annotator)  # the live claim, reloaded
    assert claimed.flipped is flipped
    assert assignment_data(claimed) == AssignmentOutputSerializer(claimed).data

    labels = {"response_a_is_safe": True, "response_b_is_safe": chosen == "B"} if claimed.item.guideline_kind == "safety" else {}
    comparison = services.comparison_submit(assignment=claimed, annotator=annotator, chosen=chosen, rating="better", **labels)
    assert comparison_data(comparison) == ComparisonOutputSerializer(comparison).data
    assert comparison_data(comparison)["chosen"] == chosen
    again = services.comparison_submit(assignment=claimed, annotator=annotator, chosen=chosen, rating="better", **labels)
    assert comparison_data(again) == comparison_data(comparison)


def test_demonstration_item_without_guideline_matches_its_serializer():
    Guideline.objects.all().delete()
    make_demonstration_item()
    claimed = services.assignment_claim_next(annotator=make_annotator())
    assert claimed.guideline is None
    data = assignment_data(claimed)
    assert data == AssignmentOutputSerializer(claimed).data
    assert data["responses"] == [] and data["guideline"] is None


@pytest.mark.postgres
def test_the_hot_path_functions_return_the_columns_the_code_reads(postgres):
    """The PostgreSQL functions' output columns are what `RowReads` maps, in the same order."""
    expected = {
        "annotation_claim_next": services.CLAIM_ROW.column_names(),
        "annotation_submit_comparison": ["outcome", "detail", *services.SUBMIT_ROW.column_names()],
        "accounts_token_user": [*TOKEN_USER_ROW.column_names(), "role"],
    }
    with connection.cursor() as cursor:
        for function, columns in expected.items():
            cursor.execute(
                "SELECT array_agg(name ORDER BY ordinality) FROM pg_proc, unnest(proargnames, proargmodes) "
                "WITH ORDINALITY AS a(name, mode, ordinality) WHERE proname = %s AND mode = 't'",
                [function],
            )
            assert cursor.fetchone()[0] == columns
