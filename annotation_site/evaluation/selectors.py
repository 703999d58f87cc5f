"""The leaderboard, read from the annotation stream: every comparison between two models is a vote.

Two boards, fitted apart:
- **checkpoints**: comparisons whose two samples come from two different registered checkpoints
  (the platform's own stream: annotators rating pairs the generation app sampled);
- **named models**: comparisons where a sample has no checkpoint but a model name that an
  imported JSONL gave (`chosen_model` / `rejected_model`), e.g. an arena dump or known models
  beside the platform's; samples named only by their dataset (`import:<name>`) are no model and
  cast no vote.

The vote table is counted by PostgreSQL (one GROUP BY of winner, loser and rating), so the cost in
Python depends on the number of models, not of votes.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

import numpy as np
from django.db.models import Count, F, Q, QuerySet

from annotation_site.annotation.models import Comparison, GuidelineKind, Rating
from annotation_site.errors import ApplicationError
from annotation_site.evaluation import bradley_terry
from annotation_site.generation.models import Checkpoint
from annotation_site.quality import selectors as quality_selectors

CHECKPOINTS, NAMED = "checkpoints", "named"
IMPORT_PREFIX = "import:"  # model_name of imported samples that name no model (annotation/imports.py)
WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
DEFAULT_BOOTSTRAP_ROUNDS = 200
MAX_BOOTSTRAP_ROUNDS = 2000
# Rating levels strongest first; imported comparisons may have none.
RATING_LEVELS = [*Rating.values, "unrated"]


@dataclass
class Standing:
    rank: int  # 1 + the models whose interval lies wholly above this one's (the Arena's rank)
    name: str
    strength: float  # Bradley-Terry log-strength, mean 0 over the board
    lower: float
    upper: float
    rating: float  # the strength on the Arena's Elo-like scale
    votes: int
    wins: int
    checkpoint_id: int | None = None


@dataclass
class PairVotes:
    a: str
    b: str
    votes: int
    a_wins: int
    # Votes by rating level for each side: {"significantly_better": n, ...}; unrated imports as "unrated".
    a_wins_by_rating: dict[str, int]
    b_wins_by_rating: dict[str, int]

    @property
    def a_win_rate(self) -> float:
        return self.a_wins / self.votes if self.votes else 0.0

    def rating_split(self) -> list[tuple[str, int, int]]:
        """(rating level, votes for a, votes for b), strongest level first."""
        return [(level, self.a_wins_by_rating.get(level, 0), self.b_wins_by_rating.get(level, 0)) for level in RATING_LEVELS]


@dataclass
class Board:
    kind: str  # CHECKPOINTS or NAMED
    standings: list[Standing]
    # win_rates[i][j]: share of the votes between models i and j (standings' order) that i won; None without votes.
    win_rates: list[list[float | None]]
    votes_matrix: list[list[int]]
    pairs: list[PairVotes]
    votes: int

    def matrix_rows(self) -> list[tuple[str, list[tuple[float | None, int]]]]:
        """For the page: each model's name with (win rate, votes) against every model."""
        return [(standing.name, list(zip(rates, counts)))
                for standing, rates, counts in zip(self.standings, self.win_rates, self.votes_matrix)]


@dataclass
class Leaderboard:
    guideline: str | None
    week: str | None
    bootstrap_rounds: int
    boards: dict[str, Board] = field(default_factory=dict)


def week_range(week: str) -> tuple[dt.datetime, dt.datetime]:
    """The UTC start and end of an ISO week "2026-W48"; an ApplicationError for anything else."""
    match = WEEK.match(week or "")
    try:
        start = dt.datetime.combine(dt.date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1), dt.time(),
                                    tzinfo=dt.UTC) if match else None
    except ValueError:
        start = None
    if start is None:
        raise ApplicationError(f'"{week}" is not an ISO week: write it as 2026-W48.', extra={"field": "week"})
    return start, start + dt.timedelta(days=7)


def votes(*, guideline: str | None = None, week: str | None = None, trusted: bool = False) -> QuerySet[Comparison]:
    """The comparisons that vote: quality control's exclusions left out, and with `trusted` also
    every comparison by an annotator the quality report flags."""
    if guideline is not None and guideline not in GuidelineKind.values:
        raise ApplicationError(f'Unknown guideline "{guideline}": use {" or ".join(GuidelineKind.values)}.',
                               extra={"field": "guideline"})
    # Quality control's exclusions are respected, and answers on gold items are no votes.
    comparisons = quality_selectors.training_comparisons(Comparison.objects.all())
    if guideline:
        comparisons = comparisons.filter(guideline_kind=guideline)
    if week:
        start, end = week_range(week)
        comparisons = comparisons.filter(created_at__gte=start, created_at__lt=end)
    if trusted:
        comparisons = comparisons.exclude(annotator_id__in=quality_selectors.flagged_annotator_ids(guideline_kind=guideline))
    return comparisons


def vote_table(comparisons: QuerySet[Comparison], kind: str) -> list[dict]:
    """Rows {winner, loser, rating_level, n} (and winner_id, loser_id on the checkpoints' board):
    one board's votes, counted by the database."""
    if kind == NAMED:
        comparisons = comparisons.filter(Q(chosen__checkpoint__isnull=True) | Q(rejected__checkpoint__isnull=True)).exclude(
            Q(chosen__model_name__startswith=IMPORT_PREFIX) | Q(rejected__model_name__startswith=IMPORT_PREFIX)
            | Q(chosen__model_name=F("rejected__model_name")) | Q(chosen__model_name="") | Q(rejected__model_name=""))
        rows = comparisons.values(winner=F("chosen__model_name"), loser=F("rejected__model_name"), rating_level=F("rating"))
        return [dict(row) for row in rows.annotate(n=Count("id"))]
    comparisons = comparisons.filter(chosen__checkpoint__isnull=False, rejected__checkpoint__isnull=False).exclude(
        chosen__checkpoint=F("rejected__checkpoint"))
    # Grouped by id and named afterwards: two joins fewer over every vote (3.4 s instead of 9.2 s
    # for a million votes on the loaded 2-core machine, bench/evaluate_policy.py).
    rows = comparisons.values(winner_id=F("chosen__checkpoint_id"), loser_id=F("rejected__checkpoint_id"),
                              rating_level=F("rating")).annotate(n=Count("id"))
    table = [dict(row) for row in rows]
    names = dict(Checkpoint.objects.filter(pk__in={row["winner_id"] for row in table} | {row["loser_id"] for row in table})
                 .values_list("pk", "name"))
    for row in table:
        row["winner"], row["loser"] = names[row["winner_id"]], names[row["loser_id"]]
    return table


def board_from_votes(kind: str, table: list[dict], *, rounds: int, seed: int = 0) -> Board:
    """Fit Bradley-Terry on a vote table and lay out the board (pure: no database)."""
    names = sorted({row["winner"] for row in table} | {row["loser"] for row in table})
    index = {name: i for i, name in enumerate(names)}
    wins = np.zeros((len(names), len(names)))
    by_rating: dict[tuple[int, int], dict[str, int]] = {}
    ids: dict[str, int | None] = {}
    for row in table:
        i, j = index[row["winner"]], index[row["loser"]]
        wins[i, j] += row["n"]
        level = row["rating_level"] or "unrated"
        cell = by_rating.setdefault((i, j), {})
        cell[level] = cell.get(level, 0) + row["n"]
        ids.setdefault(row["winner"], row.get("winner_id"))
        ids.setdefault(row["loser"], row.get("loser_id"))
    theta = bradley_terry.fit_strengths(wins)
    intervals = bradley_terry.bootstrap_intervals(wins, rounds=rounds, seed=seed)
    order = sorted(range(len(names)), key=lambda i: -theta[i])
    standings = [
        Standing(
            rank=1 + int(sum(intervals.lower[j] > intervals.upper[i] for j in range(len(names)))),
            name=names[i], strength=float(theta[i]), lower=float(intervals.lower[i]), upper=float(intervals.upper[i]),
            rating=float(bradley_terry.elo(theta[i])), votes=int(wins[i].sum() + wins[:, i].sum()),
            wins=int(wins[i].sum()), checkpoint_id=ids.get(names[i]),
        )
        for i in order
    ]
    played = wins + wins.T
    win_rates = [[float(wins[i, j] / played[i, j]) if played[i, j] else None for j in order] for i in order]
    pairs = [
        PairVotes(names[i], names[j], int(played[i, j]), int(wins[i, j]), by_rating.get((i, j), {}), by_rating.get((j, i), {}))
        for a, i in enumerate(order) for j in order[a + 1:] if played[i, j]
    ]
    return Board(kind, standings, win_rates, [[int(played[i, j]) for j in order] for i in order], pairs, int(wins.sum()))


def leaderboard(*, guideline: str | None = None, week: str | None = None, trusted: bool = False,
                bootstrap_rounds: int = DEFAULT_BOOTSTRAP_ROUNDS, seed: int = 0) -> Leaderboard:
    """Both boards for a guideline (None: all) and an ISO week (None: all time)."""
    if not 0 <= bootstrap_rounds <= MAX_BOOTSTRAP_ROUNDS:
        raise ApplicationError(f"bootstrap must be between 0 and {MAX_BOOTSTRAP_ROUNDS} rounds, got {bootstrap_rounds}.",
                               extra={"field": "bootstrap"})
    comparisons = votes(guideline=guideline, week=week, trusted=trusted)
    result = Leaderboard(guideline, week, bootstrap_rounds)
    for kind in (CHECKPOINTS, NAMED):
        result.boards[kind] = board_from_votes(kind, vote_table(comparisons, kind), rounds=bootstrap_rounds, seed=seed)
    return result

