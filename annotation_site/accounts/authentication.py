"""Token authentication that loads the user's role and annotator profile in the same query.

DRF's TokenAuthentication reads the token and user in one query; every annotation request then
asked for the user's groups (the role check) and their profile (the guideline kinds they rate):
three round trips before any work. This subclass does it in one, so the hot annotation endpoints
(next item, submit) pay for authentication once. On PostgreSQL that one query is the function
`accounts_token_user` (migration 0003), whose plan the server keeps for the session.
"""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models.expressions import RawSQL
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from annotation_site.accounts.models import ROLE_PRECEDENCE, AnnotatorProfile
from annotation_site.db_functions import RowReads, uses_database_functions

# The user's strongest role group. Raw SQL: the same subquery composed with the ORM (Subquery, Case)
# cost more CPU to compile on every request than the database spent running it.
_ROLE_SQL = RawSQL(
    """SELECT g.name FROM auth_group g JOIN auth_user_groups ug ON ug.group_id = g.id
        WHERE ug.user_id = authtoken_token.user_id AND g.name IN (%s, %s, %s)
        ORDER BY CASE g.name WHEN %s THEN 0 WHEN %s THEN 1 ELSE 2 END LIMIT 1""",
    (*ROLE_PRECEDENCE, *ROLE_PRECEDENCE[:2]),
)

# What `accounts_token_user` returns, in order, before the role.
TOKEN_USER_ROW = RowReads(
    ("t", Token, ("key", "user", "created")),
    ("u", get_user_model(), (
        "id", "password", "last_login", "is_superuser", "username", "first_name", "last_name", "email", "is_staff",
        "is_active", "date_joined",
    )),  # fmt: skip
    ("p", AnnotatorProfile, ("id", "user", "weekly_quota", "pseudonym", "guideline_kinds", "created_at")),
)


def _token_with_role(key: str):
    """The token with its user and their profile loaded and `role_name` set, or None."""
    if not uses_database_functions():
        found = Token.objects.select_related("user__profile").annotate(role_name=_ROLE_SQL).filter(key=key)[:1]
        return found[0] if found else None
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_token_user(%s, %s)", [key, list(ROLE_PRECEDENCE)])
        row = cursor.fetchone()
    if row is None:
        return None
    loaded = TOKEN_USER_ROW.instances(row)
    token, user = loaded["t"], loaded["u"]
    # Cached even when missing (None), as select_related does, so `user.profile` costs no query.
    type(user).profile.related.set_cached_value(user, loaded["p"])
    token.user, token.role_name = user, row[-1]
    return token


class RoleTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`, as DRF's, with the role and profile loaded alongside the user."""

    def authenticate_credentials(self, key):
        token = _token_with_role(key)
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        # `services.user_role` reads this cache instead of querying the groups again.
        token.user._role_cache = token.role_name or ""
        return token.user, token
