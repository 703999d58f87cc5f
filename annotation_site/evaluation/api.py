"""The leaderboard API (researchers and admins)."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation_site.accounts.models import Role
from annotation_site.accounts.permissions import HasRole
from annotation_site.evaluation import selectors
from annotation_site.evaluation.serializers import LeaderboardInputSerializer, LeaderboardSerializer


class CanReadLeaderboard(HasRole):
    roles = (Role.RESEARCHER, Role.ADMIN)
    message = "Only researchers and admins see the leaderboard."


class LeaderboardApi(APIView):
    permission_classes = [CanReadLeaderboard]

    @extend_schema(parameters=[LeaderboardInputSerializer], responses=LeaderboardSerializer,
                   summary="Bradley-Terry strengths of the checkpoints (and of named imported models) from the human votes")
    def get(self, request):
        query = LeaderboardInputSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        board = selectors.leaderboard(guideline=data["guideline"] or None, week=data["week"] or None,
                                      trusted=data["trusted"], bootstrap_rounds=data["bootstrap"])
        return Response(LeaderboardSerializer(board).data)
