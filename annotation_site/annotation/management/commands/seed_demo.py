from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from annotation_site.annotation.demo.seed import demo_seed


class Command(BaseCommand):
    help = "Demo users for the three roles, the helpfulness and safety guidelines, and items to rate (idempotent)."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError(
                "seed_demo creates an admin and other users with passwords printed in the README, and resets "
                "them when they exist: it runs only with DEBUG=true (a demo or development site). On a "
                "production site create users with `manage.py create_user NAME --role ROLE --password ...`."
            )
        seed = demo_seed()
        self.stdout.write(
            f"Guidelines created: {seed.guidelines_created}; comparison items: {seed.comparison_items_created}; "
            f"demonstration items: {seed.demonstration_items_created} (0 when already seeded)."
        )
        self.stdout.write("Demo logins (for this machine only):")
        for username, role, password in seed.users:
            self.stdout.write(f"  {role:<11} {username:<11} password: {password}")
