from django.core.management.base import BaseCommand

from annotation_site.annotation.demo.seed import demo_seed


class Command(BaseCommand):
    help = "Demo users for the three roles, the helpfulness and safety guidelines, and items to rate (idempotent)."

    def handle(self, *args, **options):
        seed = demo_seed()
        self.stdout.write(
            f"Guidelines created: {seed.guidelines_created}; comparison items: {seed.comparison_items_created}; "
            f"demonstration items: {seed.demonstration_items_created} (0 when already seeded)."
        )
        self.stdout.write("Demo logins (for this machine only):")
        for username, role, password in seed.users:
            self.stdout.write(f"  {role:<11} {username:<11} password: {password}")
