"""Iterations of the loop and the engine that advances them.

`iteration_advance` is the engine: it takes the iteration's row lock with SELECT ... FOR UPDATE
SKIP LOCKED (a second caller at the same moment skips instead of waiting, and the holder does the
work), then walks the steps in order: a finished step's run is read (success: the step decides;
failure or cancel: the iteration stops with the run's error), the next pending step is started,
and it returns as soon as a step has to wait for its run or for annotators' votes. It is called
when a step's run ends (the runs app's `run_finished` signal) and by beat's `loops_tick`, and
calling it again changes nothing, so a lost message or a duplicate is harmless.
"""
from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from annotation_site.batches.models import Batch, BatchState
from annotation_site.errors import ApplicationError, Conflict
from annotation_site.generation.models import CanaryState, CheckpointKind, Deployment
from annotation_site.loop.models import (
    ACTIVE_STATES,
    DONE_STEP_STATES,
    IterationState,
    LoopDefinition,
    LoopIteration,
    LoopStep,
    StepKind,
    StepState,
    Trigger,
)
from annotation_site.loop.services import notify, steps
from annotation_site.runs.models import RunStatus
from annotation_site.runs.services import run_cancel

logger = logging.getLogger(__name__)


def deployed_policy() -> Deployment | None:
    """The deployment serving the current policy: the newest enabled one of a chat checkpoint that
    is not a canary on trial."""
    return (Deployment.objects.filter(enabled=True).exclude(checkpoint__kind=CheckpointKind.REWARD_MODEL)
            .exclude(canary_state=CanaryState.RUNNING).select_related("checkpoint").order_by("-created_at", "-id").first())


def iteration_start(*, definition: LoopDefinition, trigger: str, started_by=None, batch: Batch | None = None) -> LoopIteration:
    """Start an iteration of the definition's current version; its first step starts on commit."""
    version = definition.current_version
    if version is None:
        raise ApplicationError(f'The loop "{definition.name}" has no version yet: save its definition first.')
    if not definition.enabled:
        raise Conflict(f'The loop "{definition.name}" is disabled: enable it to run it.')
    if definition.iterations.filter(state__in=ACTIVE_STATES).exists():
        raise Conflict(f'An iteration of "{definition.name}" is still running: wait for it or cancel it.')
    baseline = deployed_policy()
    with transaction.atomic():
        LoopDefinition.objects.select_for_update().get(pk=definition.pk)
        number = (definition.iterations.aggregate(n=Max("number"))["n"] or 0) + 1
        iteration = LoopIteration.objects.create(
            definition=definition, version=version, number=number, trigger=trigger, batch=batch, started_by=started_by,
            baseline_checkpoint=baseline.checkpoint if baseline else version.chat_checkpoint, baseline_deployment=baseline,
        )
        _create_steps(iteration)
        logger.info("loop %s: iteration %s started (%s)", definition.name, number, trigger)
        transaction.on_commit(lambda: iteration_enqueue(iteration_id=iteration.pk))
    return iteration


def _create_steps(iteration: LoopIteration, *, start: int = 0) -> None:
    for position, (kind, skipped) in enumerate(steps.plan(iteration)):
        if position < start:
            continue
        LoopStep.objects.create(
            iteration=iteration, position=position, kind=kind, state=StepState.SKIPPED if skipped else StepState.PENDING,
            result={"reason": skipped} if skipped else {},
        )


def iteration_enqueue(*, iteration_id: int) -> None:
    from annotation_site.loop.tasks import loop_advance

    try:
        loop_advance.delay(iteration_id)
    except Exception:  # noqa: BLE001 - a broker outage must not fail the request; beat's tick advances it
        logger.exception("could not enqueue loop iteration %s; the next tick advances it", iteration_id)


def iteration_advance(*, iteration_id: int) -> str | None:
    """Advance the iteration as far as it goes now; returns its state (None: someone else holds it)."""
    with transaction.atomic():
        iteration = (LoopIteration.objects.select_for_update(skip_locked=True, of=("self",))
                     .filter(pk=iteration_id, state__in=ACTIVE_STATES).first())
        if iteration is None:
            return None
        for step in iteration.steps.exclude(state__in=DONE_STEP_STATES).select_related("run").order_by("position"):
            step.iteration = iteration
            if not _advance_step(iteration, step):
                break
        if not iteration.is_active and iteration.finished_at is None:
            _finish(iteration)
        iteration.save()
    if not iteration.is_active:
        transaction.on_commit(lambda: notify.iteration_finished(iteration_id=iteration.pk))
    return iteration.state


def _advance_step(iteration: LoopIteration, step: LoopStep) -> bool:
    """Move one step on; True when the engine may go on to the next step."""
    try:
        with transaction.atomic():
            if step.state == StepState.PENDING:
                step.attempts += 1
                step.started_at, step.error = timezone.now(), ""
                step.state = steps.step_start(step)
            elif step.state == StepState.RUNNING and step.kind == StepKind.CANARY:
                step.state = steps.canary_check(step)
            elif step.state == StepState.RUNNING:
                run = step.run
                if run is None or not run.is_finished:
                    return False
                if run.status != RunStatus.SUCCEEDED:
                    _fail(iteration, step, f"Run {run.pk} {run.status}: {run.error or 'no error recorded'}",
                          cancelled=run.status == RunStatus.CANCELLED)
                    return False
                step.state = steps.step_finish(step)
            else:  # a failed or cancelled step waits for a retry
                return False
    except ApplicationError as error:
        _fail(iteration, step, error.message)
        return False
    if step.state in DONE_STEP_STATES:
        step.finished_at = timezone.now()
    step.save()
    return step.state in DONE_STEP_STATES and iteration.is_active


def _fail(iteration: LoopIteration, step: LoopStep, message: str, *, cancelled: bool = False) -> None:
    step.state = StepState.CANCELLED if cancelled else StepState.FAILED
    step.error, step.finished_at = message, timezone.now()
    step.save()
    iteration.state = IterationState.CANCELLED if cancelled else IterationState.FAILED
    iteration.error = f"Step {step.position} ({step.get_kind_display()}) {step.state}: {message}"
    iteration.outcome = iteration.error + ("" if cancelled else " Fix the cause, then retry from this step.")


def _finish(iteration: LoopIteration) -> None:
    iteration.finished_at = timezone.now()
    if not iteration.outcome:
        iteration.outcome = f"Iteration {iteration.number} {iteration.get_state_display().lower()}."
    for step in iteration.steps.filter(state=StepState.PENDING):
        step.state, step.result = StepState.SKIPPED, {"reason": f"The iteration is {iteration.state}."}
        step.save(update_fields=["state", "result"])


def iteration_retry(*, iteration: LoopIteration, actor=None) -> LoopIteration:
    """Run a failed iteration again from its failed step, with the definition's current version
    (so a fixed config is used; the iteration records the version it now runs)."""
    with transaction.atomic():
        iteration = LoopIteration.objects.select_for_update().get(pk=iteration.pk)
        if iteration.state != IterationState.FAILED:
            raise Conflict(f"Iteration {iteration.number} is {iteration.state}; only a failed iteration can be retried.")
        if iteration.definition.iterations.filter(state__in=ACTIVE_STATES).exists():
            raise Conflict("Another iteration of this loop is running: wait for it or cancel it.")
        failed = iteration.steps.filter(state=StepState.FAILED).order_by("position").first()
        iteration.version = iteration.definition.current_version
        iteration.state, iteration.error, iteration.outcome, iteration.finished_at = IterationState.RUNNING, "", "", None
        iteration.save()
        if failed is not None:
            # The steps from the failed one on follow the current version's plan (PPO may be on now).
            kept = {step.position: step for step in iteration.steps.filter(position__gte=failed.position)}
            for position, (kind, skipped) in enumerate(steps.plan(iteration)):
                if position < failed.position:
                    continue
                step = kept.get(position) or LoopStep(iteration=iteration, position=position)
                step.kind, step.error, step.finished_at = kind, "", None
                step.state = StepState.SKIPPED if skipped else StepState.PENDING
                step.result = {"reason": skipped} if skipped else {}
                step.save()
        logger.info("loop %s: iteration %s retried from step %s by %s", iteration.definition.name, iteration.number,
                    failed.position if failed else "-", actor)
        transaction.on_commit(lambda: iteration_enqueue(iteration_id=iteration.pk))
    return iteration


def iteration_cancel(*, iteration: LoopIteration, actor=None) -> LoopIteration:
    """Cancel an iteration: its running step's run is cancelled (the runs app stops the recipe), a
    canary is rolled back, the remaining steps are skipped."""
    with transaction.atomic():
        iteration = LoopIteration.objects.select_for_update().get(pk=iteration.pk)
        if not iteration.is_active:
            raise Conflict(f"Iteration {iteration.number} is {iteration.state} already.")
        who = getattr(actor, "username", None) or "the platform"
        for step in iteration.steps.filter(state=StepState.RUNNING).select_related("run"):
            if step.run is not None and not step.run.is_finished:
                try:
                    run_cancel(run=step.run, actor=actor)
                except Conflict:
                    pass  # it finished in the meantime
            if step.kind == StepKind.CANARY and iteration.canary_deployment is not None:
                from annotation_site.generation.canary import canary_rollback

                try:
                    canary_rollback(canary=iteration.canary_deployment, reason=f"The iteration was cancelled by {who}.",
                                    actor=actor)
                except Conflict:
                    pass  # decided in the meantime
            step.state, step.finished_at, step.error = StepState.CANCELLED, timezone.now(), f"Cancelled by {who}."
            step.save()
        iteration.state = IterationState.CANCELLED
        iteration.outcome = f"Iteration {iteration.number} was cancelled by {who}."
        _finish(iteration)
        iteration.save()
        transaction.on_commit(lambda: notify.iteration_finished(iteration_id=iteration.pk))
    return iteration


def iteration_canary_decide(*, iteration: LoopIteration, decision: str, reason: str, actor) -> LoopIteration:
    """Promote (`decision` "promote") or roll back ("rollback") the iteration's running canary now,
    by hand, with the researcher's reason; the iteration ends exactly as for the votes' decision,
    and its canary step records who decided and why. A canary decided already is a `Conflict`."""
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError("Say why you decide the canary by hand.", extra={"field": "reason"})
    with transaction.atomic():
        iteration = LoopIteration.objects.select_for_update(of=("self",)).select_related("policy_checkpoint").get(pk=iteration.pk)
        step = iteration.steps.filter(kind=StepKind.CANARY, state=StepState.RUNNING).first()
        if iteration.state != IterationState.CANARY or step is None:
            raise Conflict(f"Iteration {iteration.number} is {iteration.get_state_display().lower()}: only a running "
                           "canary can be promoted or rolled back by hand.")
        step.iteration = iteration
        step.state = steps.canary_decide_by_hand(step, decision=decision, reason=reason, actor=actor)
        step.finished_at = timezone.now()
        step.save()
        _finish(iteration)
        iteration.save()
        logger.info("loop %s: iteration %s canary %s by hand by %s", iteration.definition.name, iteration.number,
                    decision, actor)
        transaction.on_commit(lambda: notify.iteration_finished(iteration_id=iteration.pk))
    return iteration


def loops_tick() -> dict:
    """Beat, every minute: start the iterations a batch's export triggers, and advance every active
    iteration (runs that ended without a signal reaching us, canaries waiting for votes)."""
    started = []
    newest = Batch.objects.filter(state=BatchState.EXPORTED).order_by("-week").first()
    if newest is not None:
        for definition in LoopDefinition.objects.filter(enabled=True):
            version = definition.current_version
            if (version is None or version.trigger != Trigger.BATCH_EXPORTED or newest.exported_at is None
                    or newest.exported_at < definition.created_at or definition.iterations.filter(batch=newest).exists()):
                continue
            try:
                started.append(iteration_start(definition=definition, trigger=Trigger.BATCH_EXPORTED, batch=newest).pk)
            except ApplicationError as error:  # e.g. one still running: a later tick starts it
                logger.info("loop %s: batch %s waits: %s", definition.name, newest.week, error.message)
    advanced = [pk for pk in LoopIteration.objects.filter(state__in=ACTIVE_STATES).values_list("pk", flat=True)
                if iteration_advance(iteration_id=pk) is not None]
    return {"started": started, "advanced": advanced}
