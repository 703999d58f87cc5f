"""Which text the platform can store: the one rule the API, the admin, the services and the importers share.

PostgreSQL refuses the NUL character in `text` and `jsonb` (COPY fails with
CharacterNotInRepertoire, an INSERT with "A string literal cannot contain NUL"), and a lone UTF-16
surrogate (which `json.loads` accepts from "\\ud800") cannot be encoded as UTF-8 at all. The API's
400 for these comes from the two validators that every DRF `CharField` carries: Django's
`ProhibitNullCharactersValidator` and DRF's `ProhibitSurrogateCharactersValidator`. This module
reuses exactly those two, so that text arriving any other way (an import file, an admin's JSON
field, a checkpoint's config.yaml, a service called from code) is refused by the same rule with the
same words. Other control characters are stored as they are: PostgreSQL takes them, and the
browser shows them escaped.
"""
from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import ProhibitNullCharactersValidator
from django.db import models
from django.utils.deconstruct import deconstructible
from rest_framework.exceptions import ValidationError as APIValidationError
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from annotation_site.errors import ApplicationError

TEXT_VALIDATORS = (ProhibitNullCharactersValidator(), ProhibitSurrogateCharactersValidator())
# What those two refuse, found in one scan at C speed: DRF's validator walks the text a character
# at a time in Python (~40 us for 300 characters, seconds over an HH file), so the validators, and
# their words, run only on text that holds such a character.
_MAYBE_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable_reason(value: Any, *, where: str = "the text") -> str | None:
    """Why `value` (a string, or any string in a JSON value, keys included) cannot be stored; None if it can."""
    if isinstance(value, str):
        if not _MAYBE_UNSTORABLE.search(value):
            return None
        for validator in TEXT_VALIDATORS:
            try:
                validator(value)
            except (ValidationError, APIValidationError) as error:  # Django's type, DRF's type
                messages = error.messages if isinstance(error, ValidationError) else error.detail
                return f"{where}: {' '.join(map(str, messages))} PostgreSQL cannot store it; remove the character and try again."
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            reason = unstorable_reason(key, where=f"{where} (a key)") or unstorable_reason(item, where=f"{where}.{key}")
            if reason:
                return reason
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            reason = unstorable_reason(item, where=f"{where}[{index}]")
            if reason:
                return reason
    return None


def require_storable(value: Any, *, where: str) -> None:
    """Raise the application's error (a 400 in the API) when `value` breaks the text rule."""
    reason = unstorable_reason(value, where=where)
    if reason:
        raise ApplicationError(reason[0].upper() + reason[1:])


@deconstructible
class StorableJSONValidator:
    """A form or model validator for JSON values: every string inside follows the text rule above.

    A form's JSONField runs Django's NUL validator on `str(value)` of the parsed value, where a NUL
    inside a string is shown as the four characters "\\x00", so it never fires; this one walks the value.
    """

    def __call__(self, value: Any) -> None:
        reason = unstorable_reason(value, where="a value")
        if reason:
            raise ValidationError(reason, code="unstorable_text")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StorableJSONValidator)


# An admin's `formfield_overrides`: its JSON fields refuse what the text rule refuses (text fields
# already do, through Django's form CharField).
STORABLE_JSON_FIELDS = {models.JSONField: {"validators": [StorableJSONValidator()]}}
