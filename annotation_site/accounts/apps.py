from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


def _sync_roles(sender, **kwargs):
    # post_migrate is sent once per installed app, in INSTALLED_APPS order, and each app's
    # permissions are created at its own turn: only at the last app's turn do all exist.
    if sender is not list(apps.get_app_configs())[-1]:
        return
    from django.contrib.auth.models import Group, Permission

    from annotation_site.accounts.roles import sync_role_groups

    sync_role_groups(Group, Permission)


def _demo_notice_on_login(sender, request, user, **kwargs):
    from django.conf import settings
    from django.contrib import messages

    if settings.DEMO_NOTICE:
        messages.info(request, settings.DEMO_NOTICE)


class AccountsConfig(AppConfig):
    name = "annotation_site.accounts"
    label = "accounts"

    def ready(self):
        # After every migrate (and every flush of a test database), so models added later are granted too.
        post_migrate.connect(_sync_roles, dispatch_uid="accounts-sync-role-groups")
        from django.contrib.auth.signals import user_logged_in

        user_logged_in.connect(_demo_notice_on_login, dispatch_uid="accounts-demo-notice-on-login")
