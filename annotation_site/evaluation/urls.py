from django.urls import path

from annotation_site.evaluation import views

app_name = "evaluation"
urlpatterns = [
    path("leaderboard/", views.leaderboard, name="leaderboard"),
    path("checkpoints/<id:checkpoint_id>/", views.checkpoint, name="checkpoint"),
    path("progress/", views.progress_page, name="progress"),
    path("progress/<slug:name>.png", views.progress_figure, name="progress-figure"),
]
