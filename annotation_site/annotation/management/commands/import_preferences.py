from functools import partial

from django.core.management.base import BaseCommand, CommandError

from annotation_site.annotation.imports import pair_report, preferences_import
from annotation_site.annotation.management.commands._importing import parse_with_progress, write_bar
from annotation_site.annotation.models import GuidelineKind, ImportSplit
from annotation_site.annotation.preference_formats import FORMATS
from annotation_site.errors import ApplicationError


class Command(BaseCommand):
    help = (
        "Import preference pairs (Anthropic HH-RLHF transcripts, TRL preference rows, or judge-benchmark rows; "
        "docs/imports.md) as completed comparisons from a named source, or with --as-items as items for "
        "annotators. All-or-nothing unless --skip-invalid."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--format", required=True, choices=list(FORMATS))
        parser.add_argument("--guideline", required=True, choices=GuidelineKind.values)
        parser.add_argument("--source", required=True, help="Name of the dataset, e.g. anthropic-hh-harmless.")
        parser.add_argument(
            "--split", choices=ImportSplit.values, default=None,
            help="Which split the file is (default train); test pairs are evaluated on, never trained on. "
            "A dataset's train and test files can be imported under one --source, one file per split.",
        )
        parser.add_argument("--as-items", action="store_true", help="Queue the pairs for annotators instead.")
        parser.add_argument(
            "--as-gold", action="store_true",
            help="Make the pairs gold items (quality control): chosen is the known better response, an optional "
            "rating the weakest strength that counts as right, optional safety labels the expected ones.",
        )
        parser.add_argument("--skip-invalid", action="store_true", help="Import the good lines and list the bad ones.")

    def handle(self, *args, path, format, guideline, source, split, as_items, as_gold, skip_invalid, **options):
        if (as_items or as_gold) and split:
            raise CommandError("--split applies to imported comparisons; items rated by annotators go to the weekly batches.")
        pairs = parse_with_progress(self, path, partial(FORMATS[format], guideline_kind=guideline), skip_invalid=skip_invalid)
        try:
            with write_bar(self, len(pairs)) as bar:
                written = preferences_import(
                    pairs=pairs, guideline_kind=guideline, source_name=source, as_items=as_items, as_gold=as_gold,
                    split=split or ImportSplit.TRAIN, on_chunk=bar.update,
                )
        except ApplicationError as error:
            raise CommandError(error.message) from None
        report = pair_report(pairs)
        for note, count in sorted(report["normalised"].items()):
            self.stdout.write(f"  {count} record(s) with {note}")
        for key, count in sorted(report["ignored_keys"].items()):
            self.stdout.write(f'  column "{key}" not read ({count} line(s))')
        what = "gold items" if as_gold else "items for annotators" if as_items else f"comparisons ({split or ImportSplit.TRAIN} split)"
        self.stdout.write(self.style.SUCCESS(f"Imported {written} {what} from {path} as source {source} ({guideline})."))
