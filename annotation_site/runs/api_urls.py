from django.urls import path

from annotation_site.runs import api

urlpatterns = [
    path("runs/", api.RunListApi.as_view(), name="api-runs"),
    path("runs/configs/", api.ShippedConfigListApi.as_view(), name="api-run-configs"),
    path("runs/accelerate-configs/", api.AccelerateConfigListApi.as_view(), name="api-run-accelerate-configs"),
    path("runs/compare/", api.RewardModelCompareApi.as_view(), name="api-runs-compare"),
    path("runs/<id:run_id>/", api.RunDetailApi.as_view(), name="api-run"),
    path("runs/<id:run_id>/progress/", api.RunProgressApi.as_view(), name="api-run-progress"),
    path("runs/<id:run_id>/eval/", api.RunEvalApi.as_view(), name="api-run-eval"),
    path("runs/<id:run_id>/cancel/", api.RunCancelApi.as_view(), name="api-run-cancel"),
    path("runs/<id:run_id>/deploy/", api.RunDeployApi.as_view(), name="api-run-deploy"),
]
