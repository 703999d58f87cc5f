"""One application error type, mapped to HTTP in one place.

Services raise `ApplicationError` (or a subclass) with a message that says what was wrong and what
to do; API views let it propagate and `api_exception_handler` turns it into a JSON response.
"""
from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler


class ApplicationError(Exception):
    http_status = status.HTTP_400_BAD_REQUEST
    code = "invalid"

    def __init__(self, message: str, *, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        self.extra = extra or {}


class NotFound(ApplicationError):
    http_status = status.HTTP_404_NOT_FOUND
    code = "not_found"


class Forbidden(ApplicationError):
    http_status = status.HTTP_403_FORBIDDEN
    code = "forbidden"


class Conflict(ApplicationError):
    http_status = status.HTTP_409_CONFLICT
    code = "conflict"


def api_exception_handler(exc, context):
    if isinstance(exc, ApplicationError):
        return Response(
            {"error": exc.code, "message": exc.message, **exc.extra}, status=exc.http_status
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.APIException):
        detail = response.data
        message = detail.get("detail") if isinstance(detail, dict) and "detail" in detail else detail
        response.data = {"error": exc.default_code, "message": message}
        if isinstance(exc, exceptions.ValidationError):
            response.data = {"error": "invalid", "message": "The request was invalid.", "fields": detail}
    return response
