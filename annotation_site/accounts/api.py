"""The API door of accounts: a token for a username and password, throttled like the login forms."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.response import Response

from rest_framework.settings import api_settings

from annotation_site.accounts.throttling import lockout_json


class TokenObtainApi(ObtainAuthToken):
    """Failed attempts are counted per username and address, with the login forms'; after
    AXES_FAILURE_LIMIT of them the pair gets 429, with Retry-After, until the cool-off has passed."""

    # DRF's token view names its own parsers (the standard library's JSON among them): use the site's.
    parser_classes = api_settings.DEFAULT_PARSER_CLASSES

    # DRF's token view: its `authenticate` call carries the request, which is what django-axes needs.
    @extend_schema(
        auth=[],
        request=inline_serializer("TokenObtainInput", {"username": serializers.CharField(), "password": serializers.CharField()}),
        responses={
            200: inline_serializer("TokenObtainOutput", {"token": serializers.CharField()}),
            400: OpenApiResponse(description="Wrong username or password."),
            429: OpenApiResponse(description="Locked out after too many failures; says when to try again."),
        },
        summary="Exchange a username and password for an API token",
    )
    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        if not serializer.is_valid():
            # axes marks the (DRF) request when it refused this attempt, or when this failure locked it out.
            if getattr(request, "axes_locked_out", False):
                return lockout_json(request, getattr(request, "axes_credentials", None))
            raise exceptions.ValidationError(serializer.errors)
        token, _ = Token.objects.get_or_create(user=serializer.validated_data["user"])
        return Response({"token": token.key})
