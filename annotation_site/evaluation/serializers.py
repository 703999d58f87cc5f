"""Input and output shapes of the leaderboard API."""
from __future__ import annotations

from rest_framework import serializers

from annotation_site.annotation.models import GuidelineKind
from annotation_site.evaluation.selectors import DEFAULT_BOOTSTRAP_ROUNDS, MAX_BOOTSTRAP_ROUNDS


class LeaderboardInputSerializer(serializers.Serializer):
    guideline = serializers.ChoiceField(choices=GuidelineKind.choices, required=False, allow_blank=True, default="",
                                        help_text="helpfulness or safety; empty: every comparison.")
    week = serializers.CharField(required=False, allow_blank=True, default="", help_text='ISO week, e.g. "2026-W48".')
    trusted = serializers.BooleanField(required=False, default=False,
                                       help_text="Leave out every comparison by an annotator quality control flags.")
    bootstrap = serializers.IntegerField(required=False, default=DEFAULT_BOOTSTRAP_ROUNDS, min_value=0,
                                         max_value=MAX_BOOTSTRAP_ROUNDS, help_text="Bootstrap rounds of the intervals.")


class StandingSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    name = serializers.CharField()
    strength = serializers.FloatField()
    lower = serializers.FloatField()
    upper = serializers.FloatField()
    rating = serializers.FloatField()
    votes = serializers.IntegerField()
    wins = serializers.IntegerField()
    checkpoint_id = serializers.IntegerField(allow_null=True)


class PairVotesSerializer(serializers.Serializer):
    a = serializers.CharField()
    b = serializers.CharField()
    votes = serializers.IntegerField()
    a_wins = serializers.IntegerField()
    a_win_rate = serializers.FloatField()
    a_wins_by_rating = serializers.DictField(child=serializers.IntegerField())
    b_wins_by_rating = serializers.DictField(child=serializers.IntegerField())


class BoardSerializer(serializers.Serializer):
    kind = serializers.CharField()
    votes = serializers.IntegerField()
    standings = StandingSerializer(many=True)
    win_rates = serializers.ListField(child=serializers.ListField(child=serializers.FloatField(allow_null=True)))
    votes_matrix = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()))
    pairs = PairVotesSerializer(many=True)


class LeaderboardSerializer(serializers.Serializer):
    guideline = serializers.CharField(allow_null=True)
    week = serializers.CharField(allow_null=True)
    bootstrap_rounds = serializers.IntegerField()
    boards = serializers.DictField(child=BoardSerializer())
