from django.urls import path

from annotation_site.generation import api

urlpatterns = [
    path("checkpoints/", api.CheckpointListApi.as_view(), name="api-checkpoints"),
    path("checkpoints/register/", api.CheckpointRegisterApi.as_view(), name="api-checkpoint-register"),
    path("checkpoints/<id:checkpoint_id>/", api.CheckpointDetailApi.as_view(), name="api-checkpoint"),
    path("deployments/", api.DeploymentListApi.as_view(), name="api-deployments"),
    path("deployments/<id:deployment_id>/", api.DeploymentDetailApi.as_view(), name="api-deployment"),
    path(
        "deployments/<id:deployment_id>/health-check/",
        api.DeploymentHealthCheckApi.as_view(),
        name="api-deployment-health-check",
    ),
    path("deployments/<id:deployment_id>/stop-server/", api.DeploymentStopServerApi.as_view(), name="api-deployment-stop"),
    path("generation/status/", api.GenerationStatusApi.as_view(), name="api-generation-status"),
    path("generation/fill/", api.GenerationFillApi.as_view(), name="api-generation-fill"),
]
