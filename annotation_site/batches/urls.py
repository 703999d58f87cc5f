from django.urls import path

from annotation_site.batches import views

app_name = "batches"

urlpatterns = [
    path("<id:batch_id>/download/", views.batch_download, name="download"),
]
