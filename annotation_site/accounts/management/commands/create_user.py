from django.core.management.base import BaseCommand, CommandError

from annotation_site.accounts.models import Role
from annotation_site.accounts.services import user_create
from annotation_site.errors import ApplicationError


class Command(BaseCommand):
    help = "Create a user in one role (annotator, admin or researcher). Running it again for the same user and role resets the password."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--password", required=True)
        parser.add_argument("--email", default="")
        parser.add_argument("--quota", type=int, default=None, help="Weekly quota of comparisons (default: DEFAULT_WEEKLY_QUOTA).")

    def handle(self, *args, username, role, password, email, quota, **options):
        try:
            user = user_create(username=username, role=role, password=password, email=email, weekly_quota=quota)
        except ApplicationError as error:
            raise CommandError(error.message) from None
        self.stdout.write(f"{user.username}: {role} (pseudonym {user.profile.pseudonym})")
