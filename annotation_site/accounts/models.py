from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models


class Role(models.TextChoices):
    """The three doors of the platform; each is a Django group of the same name."""

    ANNOTATOR = "annotator", "Annotator"
    ADMIN = "admin", "Admin"
    RESEARCHER = "researcher", "Researcher"


# A user in several role groups takes the strongest role.
ROLE_PRECEDENCE = (Role.ADMIN, Role.RESEARCHER, Role.ANNOTATOR)


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
            digest = hashlib.sha256(f"{settings.SECRET_KEY}:{self.user_id}".encode()).hexdigest()
            self.pseudonym = f"annotator-{digest[:10]}"
        super().save(*args, **kwargs)

    def __str__(self) -> str:
        return f"{self.user} ({self.pseudonym})"
