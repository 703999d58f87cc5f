"""One application error type, mapped to HTTP in one place.

Services raise `ApplicationError` (or a subclass) with a message that says what was wrong and what
to do; API views let it propagate and `api_exception_handler` turns it into a JSON response,
`{"error": code, "message": ...}`. `application_error_for` turns the failures that are no bug of
ours (a body over the size limit, a value past a column's range, the database or the broker
unreachable) into the same errors, for the API handler and for the site's error views alike.
"""
from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.db import DataError, InterfaceError, OperationalError
from django.http import Http404
from kombu.exceptions import OperationalError as BrokerError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)


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


class PayloadTooLarge(ApplicationError):
    http_status = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    code = "too_large"


class ServiceUnavailable(ApplicationError):
    """An outage of a service the site needs (the database, the task broker): try again shortly."""

    http_status = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "unavailable"


def body_too_large() -> PayloadTooLarge:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return PayloadTooLarge(
        f"The request body is larger than the site accepts ({limit:,} bytes, DATA_UPLOAD_MAX_MEMORY_SIZE): "
        "send less at a time."
    )


def application_error_for(exc: BaseException) -> ApplicationError | None:
    """The application error a known non-bug failure stands for; None for anything else (a bug: 500)."""
    if isinstance(exc, ApplicationError):
        return exc
    if isinstance(exc, RequestDataTooBig):
        return body_too_large()
    if isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        return ApplicationError(f"The request has too many fields or files: {exc}")
    if isinstance(exc, (OperationalError, InterfaceError)):
        logger.warning("database unavailable: %s", exc)
        return ServiceUnavailable("The database cannot be reached right now: try again in a few seconds.")
    if isinstance(exc, BrokerError):
        logger.warning("task broker unavailable: %s", exc)
        return ServiceUnavailable("The task queue cannot be reached right now: try again in a minute.")
    if isinstance(exc, DataError):
        # Serializers bound what they can; this is the net under a value they let through.
        logger.warning("value refused by the database: %s", exc)
        return ApplicationError(
            "A value cannot be stored: a number out of range, or a character the database refuses (such as NUL)."
        )
    return None


def error_headers(error: ApplicationError) -> dict[str, str]:
    if isinstance(error, ServiceUnavailable):
        return {"Retry-After": str(settings.SERVICE_RETRY_AFTER_S)}
    return {}


def error_body(error: ApplicationError) -> dict:
    return {"error": error.code, "message": error.message, **error.extra}


def api_exception_handler(exc, context):
    error = application_error_for(exc)
    if error is not None:
        return Response(error_body(error), status=error.http_status, headers=error_headers(error))
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
