from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation_site.batches import selectors, services
from annotation_site.batches.management.commands._progress import progress_line
from annotation_site.errors import ApplicationError


class Command(BaseCommand):
    help = "Write an existing batch again into a new folder, byte-identical to its first export."

    def add_arguments(self, parser):
        parser.add_argument("batch", help="the batch's week (2026-W48) or id")
        parser.add_argument("--out", required=True, type=Path, help="folder to create (must not exist)")

    def handle(self, *args, batch, out, **options):
        try:
            found = selectors.batch_get(batch)
            with progress_line(self.stderr, f"export {found.week}") as update:
                manifest = services.batch_write_copy(batch=found, out_dir=out, on_progress=update)
        except ApplicationError as error:
            raise CommandError(error.message) from None
        self.stderr.write(f"{manifest['comparisons']} comparisons, {manifest['demonstrations']} demonstrations")
        self.stdout.write(str(out))
