"""Login throttling: what a client locked out by django-axes is told, and when it may try again.

axes counts failed logins per username and client address (settings: AXES_*). Its lockout page
says "try again later"; this says when: the pair's last counted failure plus the cool-off
(attempts while locked out are not counted, so the time does not move).
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import math

from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_cool_off
from django.conf import settings
from django.db.models import Max
from django.http import JsonResponse
from django.shortcuts import render
from django.utils import timezone


def client_address(request) -> str | None:
    """AXES_CLIENT_IP_CALLABLE: the client's address, as the outermost of TRUSTED_PROXY_COUNT proxies
    saw it, else the socket's peer.

    By hand rather than through django-ipware: unconfigured, ipware prefers the first globally
    routable hop of X-Forwarded-For, which the client can write itself; here only the entries the
    trusted proxies appended count.
    """
    count = settings.TRUSTED_PROXY_COUNT
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    if count and len(hops) >= count:
        try:
            return str(ipaddress.ip_address(hops[-count]))
        except ValueError:
            pass
    return request.META.get("REMOTE_ADDR")


def lockout_ends_at(request, credentials: dict | None) -> dt.datetime:
    """When the username and address of this request may log in again."""
    handler = AxesProxyHandler.get_implementation()
    last = max(
        (found for attempts in handler.get_user_attempts(request, credentials)
         if (found := attempts.aggregate(last=Max("attempt_time"))["last"]) is not None),
        default=timezone.now(),
    )  # fmt: skip
    return last + get_cool_off(request)


def lockout_message(ends_at: dt.datetime, *, now: dt.datetime | None = None) -> tuple[str, int]:
    """The message and the Retry-After seconds for a lockout ending at `ends_at`."""
    seconds = max(1, math.ceil((ends_at - (now or timezone.now())).total_seconds()))
    minutes = math.ceil(seconds / 60)
    message = (
        f"Too many failed logins for this username from your address. Try again in "
        f"{minutes} minute{'s' if minutes != 1 else ''} (after {ends_at:%H:%M} UTC), or ask an admin to unlock it."
    )
    return message, seconds


def _lockout(request, credentials: dict | None) -> tuple[dt.datetime, str, int]:
    ends_at = lockout_ends_at(request, credentials)
    return ends_at, *lockout_message(ends_at)


def lockout_json(request, credentials: dict | None) -> JsonResponse:
    """The API's answer to a locked-out pair: 429, Retry-After, the error shape of the API."""
    ends_at, message, seconds = _lockout(request, credentials)
    response = JsonResponse(
        {"error": "locked_out", "message": message, "retry_after": seconds, "locked_until": ends_at.isoformat()},
        status=429,
    )
    response["Retry-After"] = str(seconds)
    return response


def lockout_response(request, original_response, credentials: dict | None):
    """AXES_LOCKOUT_CALLABLE: the lockout page of the login forms (site and admin), HTTP 429."""
    ends_at, message, seconds = _lockout(request, credentials)
    response = render(request, "registration/locked_out.html", {"message": message, "ends_at": ends_at}, status=429)
    response["Retry-After"] = str(seconds)
    return response
