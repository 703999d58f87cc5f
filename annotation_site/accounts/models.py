from __future__ import annotations

import hashlib
import hmac

from django.conf import settings
from django.db import models


class Role(models.TextChoices):
    """The three doors of the platform; each is a Django group of the same name."""

    ANNOTATOR = "annotator", "Annotator"
    ADMIN = "admin", "Admin"
    RESEARCHER = "researcher", "Researcher"


# A user in several role groups takes the strongest role.
ROLE_PRECEDENCE = (Role.ADMIN, Role.RESEARCHER, Role.ANNOTATOR)


def pseudonym_for(user_id: int) -> str:
    """The name exports give an annotator: an HMAC of the user id under EXPORT_PSEUDONYM_KEY, a key
    of its own (not SECRET_KEY) that production must set, so nobody without it can tell which
    user id is behind a pseudonym."""
    digest = hmac.new(settings.EXPORT_PSEUDONYM_KEY.encode(), str(user_id).encode(), hashlib.sha256).hexdigest()
    return f"annotator-{digest[:10]}"


def _default_quota() -> int:
    return settings.DEFAULT_WEEKLY_QUOTA


def _default_guideline_kinds() -> list[str]:
    return ["helpfulness", "safety"]


class AnnotatorProfile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    weekly_quota = models.PositiveIntegerField(default=_default_quota, help_text="Comparisons expected per ISO week.")
    # Exports name annotators by pseudonym only, so batches can be shared without personal data.
    pseudonym = models.CharField(max_length=32, unique=True, editable=False)
    guideline_kinds = models.JSONField(
        default=_default_guideline_kinds, help_text="Guideline kinds this annotator rates: helpfulness, safety."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def save(self, *args, **kwargs):
        if not self.pseudonym:
            self.pseudonym = pseudonym_for(self.user_id)
        super().save(*args, **kwargs)

    def __str__(self) -> str:
        return f"{self.user} ({self.pseudonym})"
