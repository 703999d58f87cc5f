from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation_site.batches import services
from annotation_site.batches.management.commands._progress import progress_line
from annotation_site.errors import ApplicationError


class Command(BaseCommand):
    help = "Write an imported preference dataset (by its source name) in the batch files and formats."

    def add_arguments(self, parser):
        parser.add_argument("name", help='the imported dataset\'s source name, e.g. "anthropic-hh-harmless"')
        parser.add_argument("--out", required=True, type=Path, help="folder to create (must not exist)")

    def handle(self, *args, name, out, **options):
        try:
            with progress_line(self.stderr, f"export {name}") as update:
                manifest = services.source_export(name=name, out_dir=out, on_progress=update)
        except ApplicationError as error:
            raise CommandError(error.message) from None
        self.stderr.write(f"{manifest['comparisons']} comparisons, {manifest['demonstrations']} demonstrations")
        self.stdout.write(str(out))
