"""Who may see quality figures (admins and researchers) and who may act on them (admins)."""
from __future__ import annotations

from rest_framework.permissions import BasePermission

from annotation_site.accounts.models import Role
from annotation_site.accounts.services import user_role

READ_ROLES = (Role.ADMIN, Role.RESEARCHER)
MANAGE_ROLES = (Role.ADMIN,)


class CanReadQuality(BasePermission):
    message = "Only admins and researchers can see quality figures."

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and user_role(request.user) in READ_ROLES)
