from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("annotation_site.accounts.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/", include("annotation_site.annotation.api_urls")),
    path("api/", include("annotation_site.generation.api_urls")),
    path("api/", include("annotation_site.batches.api_urls")),
    path("api/", include("annotation_site.runs.api_urls")),
    path("api/", include("annotation_site.quality.api_urls")),
    path("batches/", include("annotation_site.batches.urls")),
    path("runs/", include("annotation_site.runs.urls")),
    path("quality/", include("annotation_site.quality.urls")),
    path("", include("annotation_site.annotation.urls")),
]
