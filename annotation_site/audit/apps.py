"""The audit log: who closed, exported and downloaded batches, launched and cancelled runs,
registered checkpoints, changed deployments, users and roles.

django-auditlog keeps it. Model changes are recorded by its registry (below); actions that are not
a model save of their own (a batch close or download, a run launch or cancel) are recorded by the
service or view that does them, through `annotation_site.audit.services.audit_record`. Admins read
the log in the admin under "Auditlog > Log entries", read-only; other roles cannot see it.
"""
from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "annotation_site.audit"
    label = "audit"

    def ready(self):
        from auditlog.registry import auditlog
        from django.contrib.auth import get_user_model

        from annotation_site.generation.models import Checkpoint, Deployment

        # Users: created, edited, (de)activated, made staff or superuser, password changed (masked),
        # moved between role groups (`groups` is the role: accounts.roles). last_login is not an
        # action of anyone's.
        auditlog.register(
            get_user_model(),
            exclude_fields=["last_login"],
            mask_fields=["password"],
            mask_callable="annotation_site.audit.services.mask_secret",
            m2m_fields={"groups", "user_permissions"},
        )
        # Checkpoints: registration (a create) and edits.
        auditlog.register(Checkpoint)
        # Deployments: create, enable/disable and endpoint changes. The health checker's bookkeeping
        # (health, failure counts, server pid) changes every minute and is not an action: left out.
        auditlog.register(
            Deployment, include_fields=["checkpoint", "engine", "endpoint_url", "served_model_name", "enabled"]
        )
        # Batches and training runs are saved many times by their workers (progress, heartbeats);
        # their actions are recorded explicitly instead (audit_record in their services and views).
        # Quality control: when annotator exclusions exist, record each one here too (audit_record
        # in the exclusion service, event "annotator.exclude").
