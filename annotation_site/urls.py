from django.contrib import admin
from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.templatetags.static import static
from django.urls import include, path, register_converter
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from annotation_site.converters import DatabaseIdConverter

# Registered before the apps' URL modules are included: their id routes use `<id:...>`.
register_converter(DatabaseIdConverter, "id")

# The admin's branding (its header, the browser tab's title and the index page's heading).
admin.site.site_header = "RLHF loop administration"
admin.site.site_title = "RLHF loop admin"
admin.site.index_title = "Guidelines, items, comparisons, users, batches, checkpoints"

urlpatterns = [
    # Pages link the icon; browsers (and pages that do not, like the API docs) still ask for this one.
    path("favicon.ico", RedirectView.as_view(url=static("annotation/favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("accounts/", include("annotation_site.accounts.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Signed-in users only: the page goes to the login page, the schema answers 403 (SERVE_PERMISSIONS).
    path("api/docs/", login_required(SpectacularSwaggerView.as_view(url_name="api-schema")), name="api-docs"),
    path("api/", include("annotation_site.annotation.api_urls")),
    path("api/", include("annotation_site.generation.api_urls")),
    path("api/", include("annotation_site.batches.api_urls")),
    path("api/", include("annotation_site.runs.api_urls")),
    path("api/", include("annotation_site.quality.api_urls")),
    path("api/", include("annotation_site.loop.api_urls")),
    path("batches/", include("annotation_site.batches.urls")),
    path("runs/", include("annotation_site.runs.urls")),
    path("api/", include("annotation_site.evaluation.api_urls")),
    path("", include("annotation_site.evaluation.urls")),
    path("quality/", include("annotation_site.quality.urls")),
    path("loop/", include("annotation_site.loop.urls")),
    path("", include("annotation_site.annotation.urls")),
]

# Errors outside the API views (unknown URLs, refused requests, outages) in the API's JSON shape
# under /api/, as plain pages elsewhere.
handler400 = "annotation_site.error_views.bad_request"
handler403 = "annotation_site.error_views.permission_denied"
handler404 = "annotation_site.error_views.page_not_found"
handler500 = "annotation_site.error_views.server_error"
