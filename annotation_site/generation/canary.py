"""Canary deployments: a new checkpoint answers a share of new pairs against the deployed one, and
the annotators' votes between the two promote it or roll it back (issue 15, step 6 of the loop;
docs/canary-and-selection.md).

A canary is a `Deployment` whose `canary_of` is its baseline. While it runs, the queue filling
(generation/policy.py) makes `canary_share` of new pairs canary-vs-baseline and keeps it out of the
other pairs. Its votes are the leaderboard's (evaluation/selectors.py: quality control's exclusions
and gold answers left out), narrowed to comparisons whose two samples the two deployments wrote
(each sample records its deployment in `sampling_params["deployment"]`); with CANARY_TRUSTED_ONLY
set, the leaderboard's "trusted" filter also leaves out the annotators quality control flags.

Ties: a vote rated "negligibly better / unsure" is a tie and counts half a win to each side (the
annotator could not tell them apart, so it is evidence of neither being better); every other
rating, and an unrated vote, is a win for the chosen side.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from annotation_site.annotation.models import Rating
from annotation_site.audit.services import AuditEvent, audit_record
from annotation_site.errors import ApplicationError, Conflict
from annotation_site.evaluation.selectors import CHECKPOINTS, vote_table, votes
from annotation_site.generation import services
from annotation_site.generation.models import CanaryState, Checkpoint, Deployment, Engine

logger = logging.getLogger(__name__)

PROMOTE, ROLLBACK = "promote", "rollback"
TIE_RATING = Rating.NEGLIGIBLY_BETTER


@dataclass(frozen=True)
class CanaryTally:
    """The votes between a canary and its baseline."""

    wins: int  # the canary chosen, rated more than negligibly better (or unrated)
    losses: int  # the baseline chosen, likewise
    ties: int  # "negligibly better / unsure", whichever side was chosen
    votes: int

    @property
    def win_rate(self) -> float:
        """The canary's share of the votes, a tie counting half: (wins + ties / 2) / votes."""
        return (self.wins + self.ties / 2) / self.votes if self.votes else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "win_rate": round(self.win_rate, 4)}


@dataclass(frozen=True)
class CanaryDecision:
    decision: str  # PROMOTE or ROLLBACK
    reason: str
    tally: CanaryTally


def canary_start(
    *, checkpoint: Checkpoint, baseline: Deployment, share: float, min_votes: int, min_win_rate: float,
    engine: str | None = None, endpoint_url: str = "", served_model_name: str = "", launch: bool | None = None,
    actor=None,
) -> Deployment:
    """Deploy `checkpoint` as a canary of `baseline`: it answers `share` of new pairs, each against
    the baseline, until `min_votes` votes between the two decide.

    The canary runs on the baseline's engine unless `engine` says otherwise; a vLLM canary without
    an `endpoint_url` gets a server launched for it (deployment_create's `launch`)."""
    if not 0 < share < 1:
        raise ApplicationError(f"A canary's share of new pairs must be between 0 and 1 (exclusive), got {share}.",
                               extra={"field": "share"})
    if min_votes < 1:
        raise ApplicationError(f"A canary needs at least one vote to be decided, got min_votes={min_votes}.",
                               extra={"field": "min_votes"})
    if not 0 <= min_win_rate <= 1:
        raise ApplicationError(f"min_win_rate must be between 0 and 1, got {min_win_rate}.",
                               extra={"field": "min_win_rate"})
    if checkpoint.pk == baseline.checkpoint_id:
        raise ApplicationError(f'"{checkpoint.name}" is the baseline\'s own checkpoint: a canary compares a new '
                               "checkpoint with the deployed one.")
    engine = engine or baseline.engine
    if launch is None:
        launch = engine == Engine.VLLM and not endpoint_url
    with transaction.atomic():
        baseline = Deployment.objects.select_for_update().select_related("checkpoint").get(pk=baseline.pk)
        if not baseline.enabled or baseline.is_running_canary:
            raise Conflict(f"Deployment {baseline.pk} ({baseline.checkpoint.name}) is "
                           f"{'disabled' if not baseline.enabled else 'a canary itself'}: "
                           "a canary's baseline is an enabled, normal deployment.")
        running = Deployment.objects.filter(canary_state=CanaryState.RUNNING)
        taken = running.aggregate(total=Sum("canary_share"))["total"] or 0.0
        if taken + share > 1:
            raise Conflict(f"Running canaries take {taken:.0%} of new pairs already; {share:.0%} more would exceed all of them.")
        canary = services.deployment_create(
            checkpoint=checkpoint, engine=engine, endpoint_url=endpoint_url, served_model_name=served_model_name,
            launch=launch,
        )
        canary.canary_of = baseline
        canary.canary_share, canary.canary_min_votes, canary.canary_min_win_rate = share, min_votes, min_win_rate
        canary.canary_state = CanaryState.RUNNING
        canary.save(update_fields=["canary_of", "canary_share", "canary_min_votes", "canary_min_win_rate", "canary_state"])
        audit_record(event=AuditEvent.CANARY_START, obj=canary, actor=actor, baseline=baseline.pk, share=share,
                     min_votes=min_votes, min_win_rate=min_win_rate)
    logger.info("canary %s (%s) started against deployment %s at %.0f%% of new pairs",
                canary.pk, checkpoint.name, baseline.pk, share * 100)
    return canary


def canary_votes(*, canary: Deployment):
    """The comparisons that vote between a canary and its baseline: the leaderboard's votes whose
    two samples those two deployments wrote (with CANARY_TRUSTED_ONLY, its trusted annotators' only)."""
    pair = [canary.pk, canary.canary_of_id]
    return votes(trusted=settings.CANARY_TRUSTED_ONLY).filter(chosen__sampling_params__deployment__in=pair,
                                                              rejected__sampling_params__deployment__in=pair)


def canary_tally(*, canary: Deployment) -> CanaryTally:
    """Wins, losses and ties of the canary against its baseline (counted by the leaderboard's vote table)."""
    _require_canary(canary)
    wins = losses = ties = 0
    for row in vote_table(canary_votes(canary=canary), CHECKPOINTS):
        if row["rating_level"] == TIE_RATING:
            ties += row["n"]
        elif row["winner_id"] == canary.checkpoint_id:
            wins += row["n"]
        else:
            losses += row["n"]
    return CanaryTally(wins=wins, losses=losses, ties=ties, votes=wins + losses + ties)


def canary_decide(*, canary: Deployment) -> CanaryDecision | None:
    """Promote or roll back, with the reason; None while the canary has fewer than its minimum votes.

    A canary decided already returns the decision it was given."""
    _require_canary(canary)
    if canary.canary_state != CanaryState.RUNNING:
        decision = PROMOTE if canary.canary_state == CanaryState.PROMOTED else ROLLBACK
        return CanaryDecision(decision, canary.canary_reason, CanaryTally(**{
            key: canary.canary_tally.get(key, 0) for key in ("wins", "losses", "ties", "votes")}))
    tally = canary_tally(canary=canary)
    if tally.votes < canary.canary_min_votes:
        return None
    figures = (f"won {tally.win_rate:.1%} of {tally.votes} votes against {canary.canary_of.checkpoint.name} "
               f"({tally.wins} wins, {tally.losses} losses, {tally.ties} ties counted half)")
    if tally.win_rate >= canary.canary_min_win_rate:
        return CanaryDecision(PROMOTE, f"{figures}: at least the {canary.canary_min_win_rate:.1%} required.", tally)
    return CanaryDecision(ROLLBACK, f"{figures}: below the {canary.canary_min_win_rate:.1%} required.", tally)


def canary_promote(*, canary: Deployment, reason: str = "", actor=None) -> Deployment:
    """The canary becomes a normal deployment serving every pair; its baseline is disabled (and its
    server stopped, when the platform launched it)."""
    with transaction.atomic():
        canary = _lock_running(canary)
        tally = canary_tally(canary=canary)
        _decided(canary, CanaryState.PROMOTED, reason or f"promoted after {tally.votes} votes", tally)
        _retire(canary.canary_of)
        audit_record(event=AuditEvent.CANARY_PROMOTE, obj=canary, actor=actor, baseline=canary.canary_of_id,
                     reason=canary.canary_reason, tally=tally.as_dict())
    logger.info("canary %s promoted over deployment %s: %s", canary.pk, canary.canary_of_id, canary.canary_reason)
    return canary


def canary_rollback(*, canary: Deployment, reason: str, actor=None) -> Deployment:
    """The canary is disabled (its server stopped, when launched); the baseline serves on."""
    if not (reason or "").strip():
        raise ApplicationError("Say why the canary is rolled back.", extra={"field": "reason"})
    with transaction.atomic():
        canary = _lock_running(canary)
        tally = canary_tally(canary=canary)
        _decided(canary, CanaryState.ROLLED_BACK, reason, tally)
        _retire(canary)
        audit_record(event=AuditEvent.CANARY_ROLLBACK, obj=canary, actor=actor, baseline=canary.canary_of_id,
                     reason=reason, tally=tally.as_dict())
    canary.refresh_from_db()
    logger.info("canary %s rolled back: %s", canary.pk, reason)
    return canary


def canaries_decide() -> dict[str, list[int]]:
    """Decide every running canary that has its votes (beat's task, and the loop's hook)."""
    report: dict[str, list[int]] = {"promoted": [], "rolled_back": [], "waiting": []}
    for canary in Deployment.objects.select_related("checkpoint", "canary_of__checkpoint").filter(
            canary_state=CanaryState.RUNNING):
        decision = canary_decide(canary=canary)
        if decision is None:
            report["waiting"].append(canary.pk)
        elif decision.decision == PROMOTE:
            canary_promote(canary=canary, reason=decision.reason)
            report["promoted"].append(canary.pk)
        else:
            canary_rollback(canary=canary, reason=decision.reason)
            report["rolled_back"].append(canary.pk)
    return report


def _require_canary(canary: Deployment) -> None:
    if canary.canary_of_id is None:
        raise ApplicationError(f"Deployment {canary.pk} is not a canary.")


def _lock_running(canary: Deployment) -> Deployment:
    _require_canary(canary)
    canary = (Deployment.objects.select_for_update(of=("self",))
              .select_related("checkpoint", "canary_of__checkpoint").get(pk=canary.pk))
    if canary.canary_state != CanaryState.RUNNING:
        raise Conflict(f"Canary {canary.pk} was {canary.get_canary_state_display().lower()} already "
                       f"({canary.canary_reason}).")
    return canary


def _decided(canary: Deployment, state: str, reason: str, tally: CanaryTally) -> None:
    canary.canary_state, canary.canary_reason = state, reason
    canary.canary_tally, canary.canary_decided_at = tally.as_dict(), timezone.now()
    canary.save(update_fields=["canary_state", "canary_reason", "canary_tally", "canary_decided_at"])


def _retire(deployment: Deployment) -> None:
    """Take a deployment out of generation: its launched server is stopped, else it is disabled."""
    if deployment.server_pid is not None and deployment.server_queue:
        services.deployment_stop_server(deployment=deployment)
    else:
        Deployment.objects.filter(pk=deployment.pk).update(enabled=False)
