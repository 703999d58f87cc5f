"""Users of the platform and their roles."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from annotation_site.accounts.models import ROLE_PRECEDENCE, AnnotatorProfile, Role
from annotation_site.accounts.roles import STAFF_ROLES
from annotation_site.errors import ApplicationError, Conflict


def user_role(user) -> str | None:
    """The user's role: the name of their role group (superusers count as admins)."""
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return Role.ADMIN
    cached = getattr(user, "_role_cache", None)
    if cached is None:
        names = set(user.groups.values_list("name", flat=True))
        cached = next((role for role in ROLE_PRECEDENCE if role in names), "")
        user._role_cache = cached
    return cached or None


def user_create(
    *, username: str, role: str, password: str, email: str = "", weekly_quota: int | None = None
):
    """Create a user in one role (idempotent: the same user and role again only resets the password).

    A user who already exists in another role is refused rather than silently moved.
    """
    if role not in Role.values:
        raise ApplicationError(f'Unknown role "{role}": use one of {", ".join(Role.values)}.')
    username = (username or "").strip()
    if not username:
        raise ApplicationError("A username is required.")
    User = get_user_model()
    with transaction.atomic():
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User(username=username, email=email)
        else:
            existing = user_role(user)
            if existing != role:
                raise Conflict(
                    f'User "{username}" already exists with role "{existing or "none"}"; '
                    f"change roles in the admin instead of creating the user again."
                )
        try:
            validate_password(password, user)
        except ValidationError as error:
            raise ApplicationError(f"Password refused: {' '.join(error.messages)}") from None
        user.set_password(password)
        user.is_staff = role in STAFF_ROLES
        if email:
            user.email = email
        user.save()
        user.groups.add(Group.objects.get(name=role))
        profile, _ = AnnotatorProfile.objects.get_or_create(user=user)
        if weekly_quota is not None:
            if weekly_quota < 0:
                raise ApplicationError("The weekly quota cannot be negative.")
            profile.weekly_quota = weekly_quota
            profile.save(update_fields=["weekly_quota"])
    return user
