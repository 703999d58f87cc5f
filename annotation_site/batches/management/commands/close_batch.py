from django.core.management.base import BaseCommand, CommandError

from annotation_site.batches import services
from annotation_site.batches.management.commands._progress import progress_line
from annotation_site.errors import ApplicationError


class Command(BaseCommand):
    help = (
        "Close an ISO week into a batch and export it, printing the batch folder. Without --week, the "
        "current week is closed now (early). Closing a week again only exports it if it is not yet."
    )

    def add_arguments(self, parser):
        parser.add_argument("--week", help="ISO week to close, e.g. 2026-W48 (default: the current week, now)")

    def handle(self, *args, week, **options):
        try:
            batch, created = services.batch_close(week=week, enqueue_export=False)
            verb = "Closed" if created else "Already closed:"
            self.stderr.write(f"{verb} batch {batch.week} ({batch.counts.get('comparisons', 0)} comparisons)")
            # The export runs here, not on a worker (none is enqueued): a management command is
            # not a web request, and the caller wants the folder when the command returns.
            with progress_line(self.stderr, f"export {batch.week}") as update:
                batch = services.batch_export(batch_id=batch.id, on_progress=update)
        except ApplicationError as error:
            raise CommandError(error.message) from None
        self.stdout.write(batch.export_path)
