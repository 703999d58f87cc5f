"""The three roles as Django groups, with the model permissions each one gets.

- admin: staff, every permission on the platform's own apps, the beat schedule, users, groups and
  tokens, the login lockouts (django-axes: deleting an access attempt unlocks it), and read-only
  access to the audit log (django-auditlog).
- researcher: staff, reads checkpoints, deployments and batches, and works in their own area
  (the generation app and, once it exists, the runs app: view/add/change, no delete).
- annotator: not staff, no model permissions; annotators work only through /annotate/ and the API.

The groups are created by a data migration and re-synced after every `migrate` (post_migrate), so
models added later by other apps' migrations are granted without a new data migration here.
"""
from __future__ import annotations

from annotation_site.accounts.models import Role

PLATFORM_APPS = ("accounts", "annotation", "generation", "batches", "runs", "quality")
# Admins also manage the weekly schedule (django-celery-beat's periodic tasks).
ADMIN_APPS = PLATFORM_APPS + ("django_celery_beat",)
ADMIN_EXTRA = {
    "auth": ("user", "group"),
    "authtoken": ("token", "tokenproxy"),
    "axes": ("accessattempt", "accessfailurelog", "accesslog"),
}
# Models admins may only view: the audit log is written by the platform, never edited.
ADMIN_READ = {"auditlog": ("logentry",)}
RESEARCHER_OWN_APPS = ("generation", "runs")
RESEARCHER_READ_APPS = ("batches", "quality")
STAFF_ROLES = (Role.ADMIN, Role.RESEARCHER)


def _permission_filter_for(role: str, Q):
    if role == Role.ADMIN:
        query = Q(content_type__app_label__in=ADMIN_APPS)
        for app_label, models in ADMIN_EXTRA.items():
            query |= Q(content_type__app_label=app_label, content_type__model__in=models)
        for app_label, models in ADMIN_READ.items():
            query |= Q(content_type__app_label=app_label, content_type__model__in=models, codename__startswith="view_")
        return query
    if role == Role.RESEARCHER:
        own = Q(content_type__app_label__in=RESEARCHER_OWN_APPS) & ~Q(codename__startswith="delete_")
        read = Q(content_type__app_label__in=RESEARCHER_READ_APPS, codename__startswith="view_")
        return own | read
    return None


def sync_role_groups(Group, Permission) -> None:
    """Create the three groups and set their permissions (takes model classes so migrations can pass theirs)."""
    from django.db.models import Q

    for role in Role.values:
        group, _ = Group.objects.get_or_create(name=role)
        query = _permission_filter_for(role, Q)
        group.permissions.set(Permission.objects.filter(query) if query is not None else [])
