"""Exports name annotators by a pseudonym keyed by EXPORT_PSEUDONYM_KEY, not by SECRET_KEY."""
import hashlib
import hmac

import pytest

from annotation_site.accounts.services import user_create

pytestmark = pytest.mark.django_db


def test_the_pseudonym_is_the_hmac_of_the_user_id_under_the_export_key(settings):
    settings.EXPORT_PSEUDONYM_KEY = "export-key-one"
    user = user_create(username="ann", role="annotator", password="pw-123456")
    expected = hmac.new(b"export-key-one", str(user.pk).encode(), hashlib.sha256).hexdigest()[:10]
    assert user.profile.pseudonym == f"annotator-{expected}"


def test_the_site_secret_key_alone_does_not_give_the_pseudonym_back(settings):
    settings.EXPORT_PSEUDONYM_KEY = "export-key-one"
    user = user_create(username="ann", role="annotator", password="pw-123456")
    from_secret_key = hashlib.sha256(f"{settings.SECRET_KEY}:{user.pk}".encode()).hexdigest()[:10]
    from_dev_key = hmac.new(settings.DEV_EXPORT_PSEUDONYM_KEY.encode(), str(user.pk).encode(), hashlib.sha256).hexdigest()[:10]
    assert user.profile.pseudonym not in (f"annotator-{from_secret_key}", f"annotator-{from_dev_key}")


def test_another_key_gives_the_same_user_id_another_pseudonym(settings):
    settings.EXPORT_PSEUDONYM_KEY = "export-key-one"
    first = user_create(username="ann", role="annotator", password="pw-123456").profile
    settings.EXPORT_PSEUDONYM_KEY = "export-key-two"
    user_id, old = first.user_id, first.pseudonym
    first.delete()
    from annotation_site.accounts.models import AnnotatorProfile

    again = AnnotatorProfile.objects.create(user_id=user_id)
    assert again.pseudonym != old and again.pseudonym.startswith("annotator-")
