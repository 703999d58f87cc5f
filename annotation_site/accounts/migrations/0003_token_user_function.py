"""PostgreSQL function for token authentication: the token, its user, their profile and role in one
call whose plan the server keeps for the session (every API request authenticates; planning the
four-table query anew each time cost more than running it). Other databases use the ORM query in
`accounts.authentication`.

History: the current text lives in `accounts.authentication.TOKEN_USER`, installed by migration
0004; this is the first version.
"""
from django.db import migrations

from annotation_site.db_functions import on_postgresql

TOKEN_USER = """
CREATE OR REPLACE FUNCTION accounts_token_user(p_key text, p_roles text[]) RETURNS TABLE (
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
"""

DROP = "DROP FUNCTION IF EXISTS accounts_token_user(text, text[]);"


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_role_groups"), ("authtoken", "0004_alter_tokenproxy_options")]

    operations = [migrations.RunPython(on_postgresql(TOKEN_USER), on_postgresql(DROP))]
