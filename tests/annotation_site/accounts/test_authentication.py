"""Token authentication loads the user's role and profile with the user, in one query."""
import pytest
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.test import APIClient

from annotation_site.accounts.authentication import RoleTokenAuthentication
from annotation_site.accounts.services import user_create, user_role

pytestmark = pytest.mark.django_db


def token_for(username: str, role: str) -> str:
    return Token.objects.create(user=user_create(username=username, role=role, password="pw-123456")).key


def test_one_query_authenticates_and_loads_the_role_and_profile(django_assert_num_queries):
    key = token_for("ann", "annotator")
    with django_assert_num_queries(1):
        user, token = RoleTokenAuthentication().authenticate_credentials(key)
        assert (user.username, token.key) == ("ann", key)
        assert user_role(user) == "annotator"
        assert user.profile.guideline_kinds == ["helpfulness", "safety"]


@pytest.mark.parametrize("role", ["annotator", "admin", "researcher"])
def test_each_role_comes_back_as_its_group(role):
    user, _ = RoleTokenAuthentication().authenticate_credentials(token_for("someone", role))
    assert user_role(user) == role


def test_a_user_in_two_role_groups_gets_the_stronger_role():
    from django.contrib.auth.models import Group

    key = token_for("both", "researcher")
    Token.objects.get(key=key).user.groups.add(Group.objects.get(name="admin"))
    user, _ = RoleTokenAuthentication().authenticate_credentials(key)
    assert user_role(user) == "admin"


def test_a_user_without_a_role_or_profile_has_neither():
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create(username="plain")
    loaded, _ = RoleTokenAuthentication().authenticate_credentials(Token.objects.create(user=user).key)
    assert user_role(loaded) is None
    assert getattr(loaded, "profile", None) is None


def test_an_unknown_token_and_an_inactive_user_are_refused():
    with pytest.raises(AuthenticationFailed, match="Invalid token"):
        RoleTokenAuthentication().authenticate_credentials("0" * 40)
    key = token_for("gone", "annotator")
    user = Token.objects.get(key=key).user
    user.is_active = False
    user.save(update_fields=["is_active"])
    with pytest.raises(AuthenticationFailed, match="inactive"):
        RoleTokenAuthentication().authenticate_credentials(key)


def test_the_role_it_loads_gates_the_api():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for('res', 'researcher')}")
    assert client.post("/api/annotate/next/", {}, format="json").status_code == 403
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    refused = client.post("/api/annotate/next/", {}, format="json")
    assert refused.status_code == 401 and "Invalid token" in refused.json()["message"]
    assert refused["WWW-Authenticate"] == "Token"
