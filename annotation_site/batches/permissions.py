"""Who may see and act on batches: admins close and re-export; admins and researchers read and download."""
from __future__ import annotations

from rest_framework.permissions import BasePermission

from annotation_site.accounts.models import Role
from annotation_site.accounts.services import user_role


def can_read_batches(user) -> bool:
    return user_role(user) in (Role.ADMIN, Role.RESEARCHER)


def can_manage_batches(user) -> bool:
    return user_role(user) == Role.ADMIN and user.is_staff


class CanReadBatches(BasePermission):
    message = "Only admins and researchers can see batches."

    def has_permission(self, request, view):
        return can_read_batches(request.user)


class CanManageBatches(BasePermission):
    message = "Only admins can close or re-export batches."

    def has_permission(self, request, view):
        return can_manage_batches(request.user)
