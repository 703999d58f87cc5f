"""Token authentication that loads the user's role and annotator profile in the same query.

DRF's TokenAuthentication reads the token and user in one query; every annotation request then
asked for the user's groups (the role check) and their profile (the guideline kinds they rate):
three round trips before any work. This subclass does it in one, so the hot annotation endpoints
(next item, submit) pay for authentication once. On PostgreSQL that one query is the function
`accounts_token_user` (`TOKEN_USER` below, installed by migration 0004), whose plan the server
keeps for the session; elsewhere (SQLite) it is the ORM query beside it.
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
from annotation_site.db_functions import DatabaseFunction, RowReads, uses_database_functions

# The user's strongest role group. Raw SQL: the same subquery composed with the ORM (Subquery, Case)
# cost more CPU to compile on every request than the database spent running it.
_ROLE_SQL = RawSQL(
    """SELECT g.name FROM auth_group g JOIN auth_user_groups ug ON ug.group_id = g.id
        WHERE ug.user_id = authtoken_token.user_id AND g.name IN (%s, %s, %s)
        ORDER BY CASE g.name WHEN %s THEN 0 WHEN %s THEN 1 ELSE 2 END LIMIT 1""",
    (*ROLE_PRECEDENCE, *ROLE_PRECEDENCE[:2]),
)

TOKEN_USER = DatabaseFunction(
    name="accounts_token_user",
    create="""
CREATE FUNCTION accounts_token_user(p_key text, p_roles text[]) RETURNS TABLE (
    t_key text, t_user_id integer, t_created timestamptz,
    u_id integer, u_password text, u_last_login timestamptz, u_is_superuser boolean, u_username text,
    u_first_name text, u_last_name text, u_email text, u_is_staff boolean, u_is_active boolean,
    u_date_joined timestamptz,
    p_id bigint, p_user_id integer, p_weekly_quota integer, p_pseudonym text, p_guideline_kinds jsonb,
    p_created_at timestamptz,
    role text
) LANGUAGE plpgsql STABLE AS $$
BEGIN
    -- p_roles: the role group names, strongest first; the user's strongest one is their role.
    RETURN QUERY
    SELECT t.key::text, t.user_id, t.created,
           u.id, u.password::text, u.last_login, u.is_superuser, u.username::text, u.first_name::text,
           u.last_name::text, u.email::text, u.is_staff, u.is_active, u.date_joined,
           p.id, p.user_id, p.weekly_quota, p.pseudonym::text, p.guideline_kinds, p.created_at,
           (SELECT g.name::text FROM auth_group g JOIN auth_user_groups ug ON ug.group_id = g.id
             WHERE ug.user_id = t.user_id AND g.name = ANY(p_roles)
             ORDER BY array_position(p_roles, g.name::text) LIMIT 1)
      FROM authtoken_token t
      JOIN auth_user u ON u.id = t.user_id
      LEFT JOIN accounts_annotatorprofile p ON p.user_id = u.id
     WHERE t.key = p_key;
END
$$;
""",
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
        cursor.execute(f"SELECT * FROM {TOKEN_USER.name}(%s, %s)", [key, list(ROLE_PRECEDENCE)])
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
