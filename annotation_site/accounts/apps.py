from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_roles(sender, **kwargs):
    from django.contrib.auth.models import Group, Permission

    from annotation_site.accounts.roles import sync_role_groups

    sync_role_groups(Group, Permission)


class AccountsConfig(AppConfig):
    name = "annotation_site.accounts"
    label = "accounts"

    def ready(self):
        # After every migrate (permissions exist by then), so models added later are granted too.
        post_migrate.connect(_sync_roles, sender=self, dispatch_uid="accounts-sync-role-groups")
