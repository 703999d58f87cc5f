"""Token authentication that loads the user's role and annotator profile in the same query.

DRF's TokenAuthentication reads the token and user in one query; every annotation request then
asked for the user's groups (the role check) and their profile (the guideline kinds they rate):
three round trips before any work. This subclass does it in one, so the hot annotation endpoints
(next item, submit) pay for authentication once.
"""
from __future__ import annotations

from django.db.models.expressions import RawSQL
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from annotation_site.accounts.models import ROLE_PRECEDENCE

# The user's strongest role group. Raw SQL: the same subquery composed with the ORM (Subquery, Case)
# cost more CPU to compile on every request than the database spent running it.
_ROLE_SQL = RawSQL(
    """SELECT g.name FROM auth_group g JOIN auth_user_groups ug ON ug.group_id = g.id
        WHERE ug.user_id = authtoken_token.user_id AND g.name IN (%s, %s, %s)
        ORDER BY CASE g.name WHEN %s THEN 0 WHEN %s THEN 1 ELSE 2 END LIMIT 1""",
    (*ROLE_PRECEDENCE, *ROLE_PRECEDENCE[:2]),
)


class RoleTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`, as DRF's, with the role and profile loaded alongside the user."""

    def authenticate_credentials(self, key):
        model = self.get_model()
        try:
            token = model.objects.select_related("user__profile").annotate(role_name=_ROLE_SQL).get(key=key)
        except model.DoesNotExist:
            raise exceptions.AuthenticationFailed(_("Invalid token.")) from None
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        # `services.user_role` reads this cache instead of querying the groups again.
        token.user._role_cache = token.role_name or ""
        return token.user, token
