"""Print the leaderboard: Bradley-Terry strengths of the checkpoints (and named models) from the votes."""
from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from annotation_site.annotation.models import GuidelineKind
from annotation_site.errors import ApplicationError
from annotation_site.evaluation import selectors
from annotation_site.evaluation.serializers import LeaderboardSerializer


class Command(BaseCommand):
    help = "Bradley-Terry leaderboard from the human votes (per model: name, strength, lower, upper, votes, wins)."

    def add_arguments(self, parser):
        parser.add_argument("--guideline", choices=GuidelineKind.values, help="only this guideline's comparisons")
        parser.add_argument("--week", help='only comparisons of this ISO week, e.g. "2026-W48"')
        parser.add_argument("--trusted", action="store_true", help="leave out annotators quality control flags")
        parser.add_argument("--bootstrap", type=int, default=selectors.DEFAULT_BOOTSTRAP_ROUNDS,
                            help="bootstrap rounds of the 95%% intervals")
        parser.add_argument("--json", action="store_true", dest="as_json", help="the API's document instead of a table")

    def handle(self, *args, guideline=None, week=None, trusted=False, bootstrap=selectors.DEFAULT_BOOTSTRAP_ROUNDS, as_json=False,
               **options):
        try:
            board = selectors.leaderboard(guideline=guideline, week=week, trusted=trusted, bootstrap_rounds=bootstrap)
        except ApplicationError as error:
            raise CommandError(error.message) from None
        if as_json:
            self.stdout.write(json.dumps(LeaderboardSerializer(board).data, indent=2))
            return
        for kind, result in board.boards.items():
            title = "checkpoints" if kind == selectors.CHECKPOINTS else "named models (imported votes)"
            self.stdout.write(f"{title}: {result.votes} votes ({guideline or 'all guidelines'}, {week or 'all time'})")
            self.stdout.write(f"{'rank':>4}  {'name':<40} {'strength':>8} {'lower':>8} {'upper':>8} {'votes':>7} {'wins':>7}")
            for row in result.standings:
                self.stdout.write(f"{row.rank:>4}  {row.name:<40} {row.strength:>8.3f} {row.lower:>8.3f} {row.upper:>8.3f} "
                                  f"{row.votes:>7} {row.wins:>7}")

