from django.urls import path

from annotation_site.loop import views

app_name = "loop"

urlpatterns = [
    path("", views.loop_list, name="list"),
    path("new/", views.definition_new, name="new"),
    path("<id:definition_id>/", views.definition_detail, name="definition"),
    path("<id:definition_id>/run/", views.run_now, name="run-now"),
    path("iterations/<id:iteration_id>/", views.iteration_detail, name="iteration"),
    path("iterations/<id:iteration_id>/retry/", views.iteration_retry, name="retry"),
    path("iterations/<id:iteration_id>/cancel/", views.iteration_cancel, name="cancel"),
    path("iterations/<id:iteration_id>/canary/promote/", views.canary_promote, name="canary-promote"),
    path("iterations/<id:iteration_id>/canary/rollback/", views.canary_rollback, name="canary-rollback"),
]
