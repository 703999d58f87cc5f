from django.urls import path

from annotation_site.batches import api

urlpatterns = [
    path("batches/", api.BatchListApi.as_view(), name="api-batch-list"),
    path("batches/close/", api.BatchCloseApi.as_view(), name="api-batch-close"),
    path("batches/<id:batch_id>/", api.BatchDetailApi.as_view(), name="api-batch-detail"),
    path("batches/<id:batch_id>/export/", api.BatchReexportApi.as_view(), name="api-batch-reexport"),
]
