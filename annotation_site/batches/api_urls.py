from django.urls import path

from annotation_site.batches import api_views

urlpatterns = [
    path("batches/", api_views.BatchListApi.as_view(), name="api-batch-list"),
    path("batches/close/", api_views.BatchCloseApi.as_view(), name="api-batch-close"),
    path("batches/<id:batch_id>/", api_views.BatchDetailApi.as_view(), name="api-batch-detail"),
    path("batches/<id:batch_id>/export/", api_views.BatchReexportApi.as_view(), name="api-batch-reexport"),
]
