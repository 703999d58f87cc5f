from django.urls import path

from annotation_site.accounts.api import TokenObtainApi
from annotation_site.annotation import api

urlpatterns = [
    path("auth/token/", TokenObtainApi.as_view(), name="api-token"),
    path("annotate/next/", api.NextItemApi.as_view(), name="api-next-item"),
    path("assignments/<id:assignment_id>/", api.AssignmentDetailApi.as_view(), name="api-assignment"),
    path("assignments/<id:assignment_id>/comparison/", api.ComparisonSubmitApi.as_view(), name="api-submit-comparison"),
    path(
        "assignments/<id:assignment_id>/demonstration/",
        api.DemonstrationSubmitApi.as_view(),
        name="api-submit-demonstration",
    ),
    path("assignments/<id:assignment_id>/skip/", api.SkipApi.as_view(), name="api-skip"),
    path("me/progress/", api.ProgressApi.as_view(), name="api-progress"),
    path("queue/status/", api.QueueStatusApi.as_view(), name="api-queue-status"),
    path("prompts/", api.PromptWriteApi.as_view(), name="api-write-prompt"),
    path("prompts/queue/", api.QueuePromptsApi.as_view(), name="api-queue-prompts"),
    path("comparisons/<id:comparison_id>/amend/", api.ComparisonAmendApi.as_view(), name="api-amend-comparison"),
    path("comparisons/<id:comparison_id>/continue/", api.DialogueContinueApi.as_view(), name="api-continue-dialogue"),
]
