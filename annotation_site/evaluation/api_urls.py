from django.urls import path

from annotation_site.evaluation.api import LeaderboardApi

urlpatterns = [
    path("leaderboard/", LeaderboardApi.as_view(), name="api-leaderboard"),
]
