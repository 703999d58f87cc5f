from django.urls import path

from annotation_site.runs import views

app_name = "runs"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("launch/", views.launch, name="launch"),
    path("compare/", views.compare, name="compare"),
    path("<id:run_id>/", views.detail, name="detail"),
    path("<id:run_id>/curves.png", views.curves, name="curves"),
    path("<id:run_id>/plots/<str:name>", views.plot, name="plot"),
    path("<id:run_id>/cancel/", views.cancel, name="cancel"),
    path("<id:run_id>/deploy/", views.deploy, name="deploy"),
]
