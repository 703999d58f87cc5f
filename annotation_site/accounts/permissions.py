"""Who may do what: role checks for API views and pages."""
from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission

from annotation_site.accounts.models import Role
from annotation_site.accounts.services import user_role

# Admins may also annotate (to try a guideline out); researchers do not rate.
ANNOTATING_ROLES = (Role.ANNOTATOR, Role.ADMIN)
QUEUEING_ROLES = (Role.ADMIN, Role.RESEARCHER)


class HasRole(BasePermission):
    roles: tuple[str, ...] = ()
    message = "Your role may not do this."

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and user_role(request.user) in self.roles)


class CanAnnotate(HasRole):
    roles = ANNOTATING_ROLES
    message = "Only annotators (and admins) annotate."


class CanQueuePrompts(HasRole):
    roles = QUEUEING_ROLES
    message = "Only admins and researchers queue prompts."


def role_required(*roles: str):
    """Page decorator: anonymous users go to the login page, other roles get 403."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if user_role(request.user) not in roles:
                raise PermissionDenied("Your role may not open this page.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
