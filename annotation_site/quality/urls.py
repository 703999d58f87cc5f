from django.urls import path

from annotation_site.quality import views

app_name = "quality"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("annotators/<id:annotator_id>/", views.annotator, name="annotator"),
    path("review/", views.review, name="review"),
    path("review/refresh/", views.flags_refresh, name="flags-refresh"),
]
