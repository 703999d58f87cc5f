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
        parser.add_argument(
            "--test-size", default="0",
            help="Hold out more of the training pairs: a count >= 1, a fraction in (0, 1), 0 (default: only the pairs "
            "imported with --split test are the test split) or all (every pair is test data).",
        )

    def handle(self, *args, name, out, test_size, **options):
        try:
            with progress_line(self.stderr, f"export {name}") as update:
                manifest = services.source_export(name=name, out_dir=out, test_size=test_size, on_progress=update)
        except ApplicationError as error:
            raise CommandError(error.message) from None
        split = manifest["counts"]["split"]
        self.stderr.write(
            f"{manifest['comparisons']} comparisons (train {split.get('train', 0)}, test {split.get('test', 0)}), "
            f"{manifest['demonstrations']} demonstrations"
        )
        self.stdout.write(str(out))
