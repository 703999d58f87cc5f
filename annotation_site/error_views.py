"""The site's error views (handler400/403/404/500) and the middleware that refuses NUL characters.

Under /api/ every error is the API's JSON shape (`annotation_site.errors`), also for what Django
answers before or outside a view: an unknown URL or an id out of range (404), a body over the size
limit (413), a database or broker outage (503 with Retry-After). Elsewhere they are plain pages.
"""
from __future__ import annotations

import sys

from django.http import HttpResponse, JsonResponse
from django.utils.html import escape
from django.views import defaults

from annotation_site.errors import ApplicationError, Forbidden, NotFound, application_error_for, error_body, error_headers


def _is_api(request) -> bool:
    return request.path_info.startswith("/api/")


def _answer(request, error: ApplicationError) -> HttpResponse:
    if _is_api(request):
        response = JsonResponse(error_body(error), status=error.http_status)
    else:
        # No template: this page must render with the database down.
        page = f"<!doctype html><title>{error.http_status}</title><h1>{escape(error.message)}</h1>"
        response = HttpResponse(page, status=error.http_status)
    for name, value in error_headers(error).items():
        response[name] = value
    return response


def bad_request(request, exception=None):
    error = application_error_for(exception) if exception is not None else None
    if error is not None:
        return _answer(request, error)
    if _is_api(request):
        return _answer(request, ApplicationError("The request was malformed or refused."))
    return defaults.bad_request(request, exception)


def permission_denied(request, exception=None):
    if _is_api(request):
        return _answer(request, Forbidden("You do not have permission to do this."))
    return defaults.permission_denied(request, exception)


def page_not_found(request, exception=None):
    if _is_api(request):
        return _answer(request, NotFound("No such API endpoint or object: check the URL and the id."))
    return defaults.page_not_found(request, exception)


def server_error(request):
    # Django calls this inside its `except` block, so the exception is the one being handled.
    error = application_error_for(sys.exc_info()[1]) if sys.exc_info()[1] is not None else None
    if error is not None:
        return _answer(request, error)
    if _is_api(request):
        return JsonResponse({"error": "server_error", "message": "Something went wrong on our side; it was logged."}, status=500)
    return defaults.server_error(request)


class RefuseNulCharactersMiddleware:
    """A NUL character in the path, the query string or form fields is refused with a 400.

    PostgreSQL text cannot hold NUL, so such a value reaching a query (an admin list filter, a
    search box, a string primary key) raised ValueError inside psycopg2: a 500.
    """

    FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if self._has_nul(request):
            return _answer(request, ApplicationError("The request contains a NUL character (%00): remove it."))
        return self.get_response(request)

    def _has_nul(self, request) -> bool:
        query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path_info or "%00" in query or "\x00" in query:
            return True
        if request.method == "POST" and request.content_type in self.FORM_TYPES:
            return any("\x00" in key or any("\x00" in value for value in values) for key, values in request.POST.lists())
        return False
