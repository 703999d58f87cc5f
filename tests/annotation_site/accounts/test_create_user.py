"""`manage.py create_user` and the role groups it puts users in."""
import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from annotation_site.accounts.services import user_role

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("role", "is_staff"), [("annotator", False), ("admin", True), ("researcher", True)])
def test_create_user_puts_the_user_in_the_role_group(role, is_staff, capsys):
    call_command("create_user", "alice", role=role, password="secret-pw", quota=7)
    user = get_user_model().objects.get(username="alice")
    assert user_role(user) == role and user.is_staff is is_staff
    assert user.check_password("secret-pw") and user.profile.weekly_quota == 7
    assert user.profile.pseudonym.startswith("annotator-") and "alice" in capsys.readouterr().out


def test_running_it_again_for_the_same_role_only_resets_the_password():
    call_command("create_user", "bob", role="annotator", password="first-pw")
    call_command("create_user", "bob", role="annotator", password="second-pw")
    user = get_user_model().objects.get(username="bob")
    assert get_user_model().objects.filter(username="bob").count() == 1 and user.check_password("second-pw")
    assert list(user.groups.values_list("name", flat=True)) == ["annotator"]


def test_a_duplicate_user_in_another_role_is_refused_with_a_clear_error():
    call_command("create_user", "carol", role="annotator", password="first-pw")
    with pytest.raises(CommandError, match='already exists with role "annotator"'):
        call_command("create_user", "carol", role="admin", password="first-pw")
    assert not get_user_model().objects.get(username="carol").is_staff


def test_a_too_short_password_is_refused():
    with pytest.raises(CommandError, match="Password refused"):
        call_command("create_user", "dan", role="annotator", password="abc")
    assert not get_user_model().objects.filter(username="dan").exists()


def test_the_three_role_groups_exist_after_migrate():
    from django.contrib.auth.models import Group

    assert set(Group.objects.values_list("name", flat=True)) >= {"annotator", "admin", "researcher"}
    assert not Group.objects.get(name="annotator").permissions.exists()
    assert Group.objects.get(name="admin").permissions.filter(codename="change_guideline").exists()
