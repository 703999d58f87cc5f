from django.urls import path

from annotation_site.loop import api

urlpatterns = [
    path("loop/iterations/", api.IterationListApi.as_view(), name="api-loop-iterations"),
    path("loop/iterations/<id:iteration_id>/", api.IterationDetailApi.as_view(), name="api-loop-iteration"),
    path("loop/iterations/<id:iteration_id>/retry/", api.IterationRetryApi.as_view(), name="api-loop-iteration-retry"),
    path("loop/iterations/<id:iteration_id>/cancel/", api.IterationCancelApi.as_view(), name="api-loop-iteration-cancel"),
    path("loop/iterations/<id:iteration_id>/canary/promote/", api.CanaryPromoteApi.as_view(), name="api-loop-canary-promote"),
    path("loop/iterations/<id:iteration_id>/canary/rollback/", api.CanaryRollbackApi.as_view(), name="api-loop-canary-rollback"),
    path("loop/<id:definition_id>/run/", api.RunNowApi.as_view(), name="api-loop-run-now"),
]
