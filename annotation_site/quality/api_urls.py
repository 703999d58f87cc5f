from django.urls import path

from annotation_site.quality import api

urlpatterns = [
    path("quality/annotators/", api.AnnotatorQualityApi.as_view(), name="api-quality-annotators"),
    path("quality/summary/", api.QualitySummaryApi.as_view(), name="api-quality-summary"),
]
