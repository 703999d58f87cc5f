from functools import partial

from django.core.management.base import BaseCommand, CommandError

from annotation_site.annotation.imports import parse_hh_pair, parse_jsonl_pair, preferences_import
from annotation_site.annotation.management.commands._importing import parse_with_progress, write_bar
from annotation_site.annotation.models import GuidelineKind
from annotation_site.errors import ApplicationError


class Command(BaseCommand):
    help = (
        "Import preference pairs (Anthropic HH-RLHF transcripts or the project's JSONL format) as completed "
        "comparisons from a named source, or with --as-items as items for annotators. All-or-nothing unless --skip-invalid."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--format", required=True, choices=["hh-rlhf", "jsonl"])
        parser.add_argument("--guideline", required=True, choices=GuidelineKind.values)
        parser.add_argument("--source", required=True, help="Name of the dataset, e.g. anthropic-hh-harmless.")
        parser.add_argument("--as-items", action="store_true", help="Queue the pairs for annotators instead.")
        parser.add_argument("--skip-invalid", action="store_true", help="Import the good lines and list the bad ones.")

    def handle(self, *args, path, format, guideline, source, as_items, skip_invalid, **options):
        parse = parse_hh_pair if format == "hh-rlhf" else partial(parse_jsonl_pair, guideline_kind=guideline)
        pairs = parse_with_progress(self, path, parse, skip_invalid=skip_invalid)
        try:
            with write_bar(self, len(pairs)) as bar:
                written = preferences_import(
                    pairs=pairs, guideline_kind=guideline, source_name=source, as_items=as_items, on_chunk=bar.update
                )
        except ApplicationError as error:
            raise CommandError(error.message) from None
        what = "items for annotators" if as_items else "comparisons"
        self.stdout.write(self.style.SUCCESS(f"Imported {written} {what} from {path} as source {source} ({guideline})."))
