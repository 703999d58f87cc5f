"""python manage.py quality_report [--guideline K] [--since DATE] [--until DATE] [--json] [--flag]"""
from __future__ import annotations

import datetime as dt
import json

from django.core.management.base import BaseCommand, CommandError

from annotation_site.annotation.models import GuidelineKind
from annotation_site.quality import selectors, services


class Command(BaseCommand):
    help = "Print the quality report: per-annotator signals and the per-guideline summary."

    def add_arguments(self, parser):
        parser.add_argument("--guideline", choices=GuidelineKind.values)
        parser.add_argument("--since", help="first day, YYYY-MM-DD")
        parser.add_argument("--until", help="last day, YYYY-MM-DD")
        parser.add_argument("--json", action="store_true", dest="as_json", help="print {summary, annotators} as JSON")
        parser.add_argument("--flag", action="store_true", help="also store the flags raised, for the review queue")

    def handle(self, *args, guideline=None, since=None, until=None, as_json=False, flag=False, **options):
        try:
            since_day = dt.date.fromisoformat(since) if since else None
            until_day = dt.date.fromisoformat(until) if until else None
        except ValueError as error:
            raise CommandError(f"Dates are YYYY-MM-DD: {error}") from None
        report = selectors.quality_report(guideline_kind=guideline, since=since_day, until=until_day)
        if flag:
            services.flags_sync(guideline_kind=guideline)
        if as_json:
            self.stdout.write(json.dumps({"summary": report.summary, "annotators": report.annotators}, indent=2, sort_keys=True, default=str))
            return
        summary = report.summary
        self.stdout.write(f"{summary['comparisons']} comparisons by {summary['annotators']} annotators"
                          f" (guideline: {guideline or 'all'})")  # fmt: skip
        for kind, alpha in summary["alpha"].items():
            self.stdout.write(f"  Krippendorff's alpha ({kind}, ordinal, 8 levels): {_fmt(alpha)}")
        self.stdout.write("  agreement on the chosen response by rating: " + ", ".join(
            f"{rating} {_fmt(entry['agreement'])} ({entry['pairs']} pairs)" for rating, entry in summary["agreement_by_rating"].items()
        ))  # fmt: skip
        header = f"{'annotator':<20} {'comp':>6} {'/day':>6} {'med ms':>7} {'fast':>5} {'A':>5} {'skip':>5} {'gold':>11} {'agree':>6} {'RM':>6}"
        self.stdout.write(header)
        for row in report.annotators:
            gold = f"{_fmt(row['gold_accuracy'])}/{row['gold_answers']}" if row["gold_answers"] else "-"
            self.stdout.write(
                f"{row['username'][:20]:<20} {row['comparisons']:>6} {row['per_day']:>6} {row['median_active_ms'] or '-':>7} "
                f"{row['too_fast']:>5} {_fmt(row['share_a']):>5} {_fmt(row['skip_rate']):>5} {gold:>11} "
                f"{_fmt(row['agreement_with_others']):>6} {_fmt(row['agreement_with_reward_model']):>6}"
            )
            for reason in row["flags"]:
                self.stdout.write(f"{'':<20} flag: {reason}")


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.2f}"

