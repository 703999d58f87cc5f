"""Writes of the runs domain: launch a training run, execute it on the training worker, cancel it,
recover it when its worker died, and deploy the checkpoint it produced.

A run is never trained in a web request. `run_launch` resolves and checks the config, stores the
run QUEUED and enqueues `runs.tasks.run_training` on commit. The task calls `run_execute`, which
claims the run with a conditional UPDATE (so a duplicate delivery never starts it twice), starts
the recipe as a subprocess in its own process group, and watches it: progress from metrics.jsonl,
a heartbeat, cancel requests. On success the checkpoint is registered through the generation app.

A worker that dies mid-run leaves the run RUNNING with a heartbeat that stops moving. The next
delivery of its task (acks_late: the broker gives the message back) or the beat watchdog finds it
stale and restarts it; once RUN_MAX_ATTEMPTS attempts in a row died without saving a newer state,
it marks it failed. A restarted attempt
*resumes*: the recipes save a resumable state every `save_state_every` steps into
`checkpoint.resume/` beside their half-written `checkpoint.tmp/` (training/resume.py), and the
new attempt starts the same recipe on the same launch.yaml and output folder, so the recipe finds
that state (its config fingerprint matches) and continues from its step, keeping metrics.jsonl
one row a step; the recipe records the resume in its folder's resumes.json, which the supervisor
copies to `resumed_from_step` (shown on the run page; run.log has the recipe's own line).
Without a saved state yet it starts from step 0. Restarting is right because a worker dies for
reasons outside the run (preemption, a container restart, the OOM killer taking the worker); the
bound ends a run that kills its worker every time instead of looping on it, and counts only
attempts that made no progress, so a long run on preemptible machines that saves a newer state on
every attempt goes on until it is done.
"""
from __future__ import annotations

import ctypes
import dataclasses
import datetime as dt
import json
import logging
import os
import shlex
import signal
import socket
import subprocess
from pathlib import Path

import psutil
import yaml
from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F, Q
from django.utils import timezone

from annotation_site.audit.services import AuditEvent, audit_record
from annotation_site.batches.models import Batch, BatchState
from annotation_site.batches.services import batch_folder
from annotation_site.errors import ApplicationError, Conflict
from annotation_site.generation import selectors as generation_selectors
from annotation_site.generation.models import Checkpoint, CheckpointKind, Deployment, Engine
from annotation_site.generation.paths import checkpoint_path
from annotation_site.generation.services import checkpoint_create, deployment_create, deployment_update
from annotation_site.runs import artifacts, launchers
from annotation_site.runs.configs import (
    ConfigInvalid,
    check_paths_exist,
    config_yaml,
    is_batch_source,
    launchable,
    resolve_config,
    stored_run_problems,
)
from annotation_site.runs.models import FINISHED_STATUSES, RunStatus, TrainingRun
from annotation_site.runs.recipes import USING_REWARD_MODELS, joined, recipe_values, site_recipe
from annotation_site.runs.signals import run_finished
from serving.processes import MARKER_ENV, LaunchedGroup, launched_group, stop_group

logger = logging.getLogger(__name__)

GUIDELINES = ("helpfulness", "safety")
ERROR_LOG_LINES = 30


# --- Launch ----------------------------------------------------------------------------------------


def run_launch(
    *,
    recipe: str,
    launched_by,
    config_name: str = "",
    overrides: list[str] | None = None,
    name: str = "",
    notes: str = "",
    base_checkpoint: Checkpoint | None = None,
    helpfulness_reward_model: Checkpoint | None = None,
    safety_reward_model: Checkpoint | None = None,
    batches: list[Batch] | None = None,
    guidelines: list[str] | None = None,
    accelerate_config: str = "",
    num_processes: int | None = None,
    compare_with: list[Checkpoint] | None = None,
    judge: Deployment | None = None,
    data: list[dict] | None = None,
    previous_pools: list[TrainingRun] | None = None,
) -> TrainingRun:
    """Check the launch, store the run QUEUED with its resolved config, and enqueue it on commit.

    `data` is a data list the platform builds itself (the weekly loop's mixes: exported folders
    under EXPORT_ROOT with names, guidelines and shares), instead of `batches`; `previous_pools`
    are earlier rejection-sampling runs whose pools this one joins (§3.2.3).

    Raises `ConfigInvalid` (naming the form field) when the config does not load or the choices do
    not fit the recipe, and `Conflict` when the name is taken.
    """
    overrides = list(overrides or [])
    name = (name or "").strip()
    launchers.check_launch_choice(recipe=recipe, accelerate_config=accelerate_config, num_processes=num_processes)
    if name and (Checkpoint.objects.filter(name=name).exists() or TrainingRun.objects.filter(name=name).exists()):
        raise Conflict(f'The name "{name}" is taken by a checkpoint or another run: choose another.', extra={"field": "name"})
    platform_values = _platform_values(
        recipe=recipe,
        base_checkpoint=base_checkpoint,
        helpfulness_reward_model=helpfulness_reward_model,
        safety_reward_model=safety_reward_model,
        batches=list(batches or []),
        guidelines=list(guidelines or []),
        compare_with=list(compare_with or []),
        judge=judge,
        data=list(data or []),
        previous_pools=list(previous_pools or []),
    )
    runs_root = Path(settings.CHECKPOINT_ROOT).resolve() / "runs"
    # Resolved once to check it before anything is stored; `out` is set once the run has its id.
    config = resolve_config(
        recipe=recipe, config_name=config_name, overrides=overrides,
        platform_values={**platform_values, "out": str(runs_root / "new" / "checkpoint")},
    )
    check_paths_exist(config, overrides=overrides)
    with transaction.atomic():
        run = TrainingRun.objects.create(
            name=name, recipe=recipe, config_name=config_name, overrides=overrides, config_text="",
            accelerate_config=accelerate_config, num_processes=num_processes,
            base_checkpoint=base_checkpoint or _checkpoint_at(config.model), notes=notes, launched_by=launched_by,
        )
        paths = artifacts.RunPaths(runs_root / str(run.pk))
        config = dataclasses.replace(config, out=str(paths.out))
        run.config_text = config_yaml(config)
        run.output_dir, run.log_path = str(paths.root), str(paths.log)
        run.save(update_fields=["config_text", "output_dir", "log_path"])
        # A config's own data list is recorded too: the exported batches whose folders it reads.
        run.batches.set(batches or _batches_read(config.data))
        audit_record(event=AuditEvent.RUN_LAUNCH, obj=run, actor=launched_by, recipe=recipe, config_name=config_name, overrides=overrides)
        transaction.on_commit(lambda: run_enqueue(run_id=run.pk))
    return run


def _platform_values(*, recipe, base_checkpoint, helpfulness_reward_model, safety_reward_model, batches, guidelines,
                     compare_with, judge, data, previous_pools) -> dict:
    """The config keys the launch form's choices set: model, reward models, data, against, judge."""
    row = launchable(recipe)
    values: dict = {}
    scores_reward_models = row.scores_reward_models
    if base_checkpoint is not None:
        if scores_reward_models and base_checkpoint.kind != CheckpointKind.REWARD_MODEL:
            raise ConfigInvalid(f'"{base_checkpoint.name}" is a {base_checkpoint.kind} checkpoint; a {row.name.lower()} '
                                "scores reward models.", field="base_checkpoint")
        # A reward model may continue from the last reward model (its scalar head is kept).
        if base_checkpoint.kind == CheckpointKind.REWARD_MODEL and not (scores_reward_models or row.continues_reward_models):
            raise ConfigInvalid(
                f'"{base_checkpoint.name}" is a reward model; every recipe starts from a chat model '
                "(a reward model too: its LM head is replaced by a scalar head).", field="base_checkpoint",
            )
        values["model"] = checkpoint_path(base_checkpoint.path, field="base_checkpoint")
    for guideline, checkpoint in (("helpfulness", helpfulness_reward_model), ("safety", safety_reward_model)):
        field = f"{guideline}_reward_model"
        if checkpoint is None:
            continue
        if guideline not in row.reward_models:
            raise ConfigInvalid(f"Only {joined(USING_REWARD_MODELS)} runs use reward models; leave {field} empty.", field=field)
        if checkpoint.kind != CheckpointKind.REWARD_MODEL:
            raise ConfigInvalid(f'"{checkpoint.name}" is a {checkpoint.kind} checkpoint, not a reward model.', field=field)
        values[field] = checkpoint_path(checkpoint.path, field=field)
    unknown = sorted(set(guidelines) - set(GUIDELINES))
    if unknown:
        raise ConfigInvalid(f"Unknown guideline(s) {', '.join(unknown)}: use {', '.join(GUIDELINES)}.", field="guidelines")
    if guidelines and not batches:
        raise ConfigInvalid("Guidelines filter the chosen batches: choose batches too, or filter in the config.", field="guidelines")
    if batches and data:
        raise ConfigInvalid("Give batches or a data list, not both.", field="batches")
    if batches:
        values["data"] = [_batch_source(batch, guidelines) for batch in batches]
    if data:
        refused = [source for source in data if not is_batch_source(source)]
        if refused:
            raise ConfigInvalid(f"{refused[0]!r} is not an exported folder under EXPORT_ROOT.", field="batches")
        values["data"] = data
    if previous_pools:
        if recipe != "rejection_sampling":  # the recipe with previous_pools (training/rejection_sampling.py)
            raise ConfigInvalid("Only rejection sampling pools earlier answers; leave previous_pools empty.", field="previous_pools")
        pools = [artifacts.pool_path(run) for run in previous_pools]
        missing = [run.pk for run, pool in zip(previous_pools, pools) if pool is None]
        if missing:
            raise ConfigInvalid(f"Run {missing[0]} left no pool.jsonl to pool with.", field="previous_pools")
        values["previous_pools"] = [str(pool) for pool in pools]
    comparing = joined(recipe_values(compares_checkpoints=True))
    if compare_with:
        if not row.compares_checkpoints:
            raise ConfigInvalid(f"Only {comparing} runs compare checkpoints; leave compare_with empty.", field="compare_with")
        wrong = [c.name for c in compare_with if (c.kind == CheckpointKind.REWARD_MODEL) != scores_reward_models]
        if wrong:
            raise ConfigInvalid(f'"{wrong[0]}" is {"not " if scores_reward_models else ""}a reward model; compare '
                                f'{"reward models" if scores_reward_models else "chat checkpoints"}.', field="compare_with")
        values["against"] = [checkpoint_path(checkpoint.path, field="compare_with") for checkpoint in compare_with]
        if base_checkpoint is not None:  # the tables name the checkpoints as the registry does
            values["labels"] = [base_checkpoint.name, *(checkpoint.name for checkpoint in compare_with)]
    if judge is not None:
        if not row.compares_checkpoints or scores_reward_models:
            raise ConfigInvalid(f"Only {joined(recipe_values(compares_checkpoints=True, scores_reward_models=False))} runs "
                                "ask a judge; leave judge empty.", field="judge")
        if judge.engine != Engine.VLLM or not judge.endpoint_url:
            raise ConfigInvalid(f'Deployment {judge.pk} runs on the local engine; a judge is asked over HTTP: pick a vLLM '
                                "deployment with an endpoint URL.", field="judge")
        values["judge_url"], values["judge_model"] = judge.endpoint_url, judge.model_name
    return values


def _batch_source(batch: Batch, guidelines: list[str]) -> dict:
    folder = batch_folder(batch)
    if batch.state != BatchState.EXPORTED or not folder.is_dir():
        raise ConfigInvalid(f"Batch {batch.week} has no finished export to train on yet (it is {batch.state}).", field="batches")
    source: dict = {"path": str(folder.resolve())}
    if guidelines:
        source["guidelines"] = list(guidelines)
    return source


def _batches_read(data: list) -> list[Batch]:
    """The exported batches whose folders a config's `data` list names."""
    from training.data import parse_sources

    paths = {str(Path(source.path).resolve()) for source in parse_sources(data)}
    return [batch for batch in Batch.objects.all() if str(batch_folder(batch).resolve()) in paths]


def _checkpoint_at(path: str) -> Checkpoint | None:
    """The registered checkpoint a config's `model` path points at, if any (it becomes the parent)."""
    candidates = {path, str(Path(settings.BASE_DIR) / path)}
    if Path(path).exists():
        candidates.add(str(Path(path).resolve()))
    return Checkpoint.objects.filter(path__in=candidates).order_by("-created_at").first()


def run_enqueue(*, run_id: int) -> bool:
    """Hand the run to the training queue; a failure leaves it for the watchdog to enqueue later."""
    from annotation_site.runs.tasks import run_training

    try:
        run_training.delay(run_id)
    except Exception:  # noqa: BLE001 - a broker outage must not lose the run or fail the request
        logger.exception("could not enqueue training run %s; the watchdog will enqueue it", run_id)
        return False
    TrainingRun.objects.filter(pk=run_id).update(enqueued_at=timezone.now())
    return True


# --- Execute (on the training worker) --------------------------------------------------------------


def run_execute(*, run_id: int, worker: str) -> str:
    """Run a queued run's recipe to the end; returns what became of it (for the task's result).

    A delivery that finds the run RUNNING with a live heartbeat is a duplicate (e.g. the broker's
    visibility timeout ran out during a long run) and leaves it alone; one that finds it stale
    recovers it first (restart or fail, see the module docstring).
    """
    run = TrainingRun.objects.filter(pk=run_id).first()
    if run is None:
        logger.error("training run %s no longer exists", run_id)
        return "missing"
    now = timezone.now()
    if run.status == RunStatus.RUNNING:
        dead_worker = run.worker if _worker_is_gone(run) else None
        if dead_worker is None and not _is_stale(run, now):
            logger.info("run %s is running on %s; this delivery is a duplicate", run_id, run.worker)
            return "running elsewhere"
        run_recover_stale(run_id=run_id, now=now, dead_worker=dead_worker)
    previous_host, previous_group = run.worker_host, run.process_group
    paths = artifacts.run_paths(run)
    claimed = TrainingRun.objects.filter(pk=run_id, status=RunStatus.QUEUED, cancel_requested=False).update(
        status=RunStatus.RUNNING, attempts=F("attempts") + 1, worker=worker, worker_host=socket.gethostname(),
        process_group=None, started_at=now, heartbeat_at=now, finished_at=None, error="", resumed_from_step=None,
        attempt_started_at_step=paths.saved_step(),
    )
    run.refresh_from_db()
    if not claimed:
        logger.info("run %s is %s; nothing to do", run_id, run.status)
        return run.status
    problems = stored_run_problems(run)
    if problems:
        # Checked at launch too: a row that fails here was not written by run_launch.
        message = "Refused before starting: " + " ".join(problems)
        logger.error("run %s: %s", run_id, message)
        TrainingRun.objects.filter(pk=run_id, worker=worker).update(
            status=RunStatus.FAILED, error=message, finished_at=timezone.now()
        )
        return RunStatus.FAILED
    paths.root.mkdir(parents=True, exist_ok=True)
    if previous_group:
        # The attempt before this one may have left its recipe running when its worker died;
        # stop_group leaves it alone on another host or when the group id was reused.
        stop_group(LaunchedGroup(pgid=previous_group, host=previous_host, marker=_marker(paths)), grace_s=0)
    paths.launch_config.write_text(run.config_text)
    outcome = _supervise(run, paths, worker)
    _announce_if_finished(run_id)
    return outcome


def _announce_if_finished(run_id: int) -> None:
    status = TrainingRun.objects.filter(pk=run_id).values_list("status", flat=True).first()
    if status in FINISHED_STATUSES:
        transaction.on_commit(lambda: run_finished.send(sender=TrainingRun, run_id=run_id, status=status))


def _die_with_worker() -> None:
    """In the recipe's process: get SIGKILL when the worker that started it dies (Linux prctl),
    so a dead worker never leaves an orphan training on the GPU beside its restarted attempt."""
    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def _marker(paths: artifacts.RunPaths) -> str:
    """What marks the recipe's processes as this run's: its launch config, named on its command line
    and set in its environment (which every process it starts inherits)."""
    return str(paths.launch_config)


def _supervise(run: TrainingRun, paths: artifacts.RunPaths, worker: str) -> str:
    try:
        command = launchers.recipe_command(
            recipe=run.recipe, launch_config=paths.launch_config, accelerate_config=run.accelerate_config,
            num_processes=run.num_processes,
        )
    except ConfigInvalid as error:
        TrainingRun.objects.filter(pk=run.pk, worker=worker, status=RunStatus.RUNNING).update(
            status=RunStatus.FAILED, error=error.message, finished_at=timezone.now()
        )
        _append_log(paths, f"=== failed: {error.message}\n")
        return RunStatus.FAILED
    env = {**os.environ, "PYTHONUNBUFFERED": "1", MARKER_ENV: _marker(paths)}
    with paths.log.open("ab") as log:
        log.write(
            f"=== attempt {run.attempts} on {worker} at {timezone.now().isoformat()}\n"
            f"=== {shlex.join(command)}\n".encode()
        )
        log.flush()
        process = subprocess.Popen(
            command, cwd=settings.BASE_DIR, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=env, start_new_session=True, preexec_fn=_die_with_worker,
        )
    group = launched_group(process.pid, marker=_marker(paths))
    mine = TrainingRun.objects.filter(pk=run.pk, worker=worker, status=RunStatus.RUNNING)
    mine.update(process_group=process.pid)
    logger.info("run %s: started %s (process group %s)", run.pk, command, process.pid)
    try:
        outcome = _watch(run, process, group, mine, worker)
    except BaseException:
        # The worker is going down (warm shutdown, a bug here): take the recipe with it; the run's
        # heartbeat stops and the next delivery or the watchdog restarts it.
        _stop_group(group, process)
        raise
    if outcome is not None:
        _append_log(paths, f"=== {outcome}: the recipe's process group was stopped\n")
        return outcome
    returncode = process.returncode
    _stop_group(group, process)  # children the recipe left behind (e.g. a vLLM server) go with it
    if returncode == 0 and paths.out.is_dir():
        return _succeed(run, paths, worker)
    return _fail(run, paths, worker, returncode)


def _watch(run: TrainingRun, process: subprocess.Popen, group: LaunchedGroup, mine, worker: str) -> str | None:
    """Poll the recipe until it exits (None), is cancelled, or the run stops being this worker's."""
    while True:
        try:
            returncode = process.wait(timeout=settings.RUN_POLL_INTERVAL_S)
        except subprocess.TimeoutExpired:
            returncode = None
        try:
            state = TrainingRun.objects.filter(pk=run.pk).values("status", "worker", "cancel_requested").first()
            if state is None or state["status"] != RunStatus.RUNNING or state["worker"] != worker:
                # Cancelled while its worker looked dead, or taken over by another worker: stop here.
                _stop_group(group, process)
                logger.warning("run %s is no longer this worker's (%s); its recipe was stopped", run.pk, state)
                return "taken over"
            if state["cancel_requested"]:
                _stop_group(group, process)
                mine.update(status=RunStatus.CANCELLED, finished_at=timezone.now(), process_group=None)
                return RunStatus.CANCELLED
            step, total = artifacts.progress(run)
            mine.update(
                heartbeat_at=timezone.now(), step=step, total_steps=total,
                progress=min(1.0, step / total) if total else 0.0, **_resumed(run),
            )
        except DatabaseError:
            # A database blip must not kill hours of training; if it lasts past RUN_STALE_AFTER_S the
            # run may be taken over, which the next successful poll notices.
            logger.exception("run %s: could not record progress; the recipe keeps running", run.pk)
        if returncode is not None:
            return None


def _resumed(run: TrainingRun) -> dict:
    """`resumed_from_step` once this attempt's recipe has said it resumed (its resumes.json)."""
    step = artifacts.run_paths(run).resumed_from(run.started_at)
    return {"resumed_from_step": step} if step is not None else {}


def _succeed(run: TrainingRun, paths: artifacts.RunPaths, worker: str) -> str:
    try:
        with transaction.atomic():
            # A policy evaluation trains nothing: its folder holds tables and plots, no checkpoint.
            checkpoint = _register_checkpoint(run, paths) if site_recipe(run.recipe).checkpoint_kind else None
            updated = TrainingRun.objects.filter(pk=run.pk, worker=worker, status=RunStatus.RUNNING).update(
                status=RunStatus.SUCCEEDED, checkpoint=checkpoint, progress=1.0, finished_at=timezone.now(),
                process_group=None, **_resumed(run),
            )
            if not updated:  # cancelled in the last instant: keep the files, register nothing
                transaction.set_rollback(True)
                return "cancelled at the end"
    except ApplicationError as error:
        message = f"The recipe finished but its checkpoint could not be registered: {error.message}"
        TrainingRun.objects.filter(pk=run.pk, worker=worker).update(
            status=RunStatus.FAILED, error=message, finished_at=timezone.now(), process_group=None
        )
        return RunStatus.FAILED
    _append_log(paths, f"=== succeeded: registered checkpoint {checkpoint.name} (id {checkpoint.pk})\n" if checkpoint
                else "=== succeeded\n")
    return RunStatus.SUCCEEDED


def _register_checkpoint(run: TrainingRun, paths: artifacts.RunPaths) -> Checkpoint:
    """Register the run's output through the generation app, named after the run, parent = base."""
    config_file = paths.out / "config.yaml"
    config = yaml.safe_load(config_file.read_text()) if config_file.is_file() else artifacts.run_config(run)
    kind = site_recipe(run.recipe).checkpoint_kind
    notes = f"Trained by run {run.pk} ({run.recipe}{', ' + run.config_name if run.config_name else ''})."
    fields = dict(
        path=str(paths.out), kind=kind, parent=run.base_checkpoint, run=str(run.pk), notes=notes,
        # Only JSON types in the stored copy (YAML dates become strings).
        training_config=json.loads(json.dumps(config or {}, default=str)),
    )
    try:
        with transaction.atomic():
            return checkpoint_create(name=run.display_name, **fields)
    except Conflict:  # a checkpoint took the name after launch: keep both, tell them apart by run
        return checkpoint_create(name=f"{run.display_name}-run-{run.pk}", **fields)


def _fail(run: TrainingRun, paths: artifacts.RunPaths, worker: str, returncode: int) -> str:
    run.refresh_from_db()
    summary = artifacts.error_summary(run)
    message = f"python -m training.{run.recipe} exited with code {returncode}" + (f": {summary}" if summary else "")
    if returncode == 0:
        message += f" without writing {paths.out}"
    tail = artifacts.log_tail(run, lines=ERROR_LOG_LINES)
    TrainingRun.objects.filter(pk=run.pk, worker=worker, status=RunStatus.RUNNING).update(
        status=RunStatus.FAILED, error=f"{message}\n\n{tail}".strip(), finished_at=timezone.now(), process_group=None,
        **_resumed(run),
    )
    _append_log(paths, f"=== failed: {message}\n")
    return RunStatus.FAILED


def _append_log(paths: artifacts.RunPaths, text: str) -> None:
    paths.root.mkdir(parents=True, exist_ok=True)
    with paths.log.open("a") as log:
        log.write(text)


def _stop_group(group: LaunchedGroup, process: subprocess.Popen) -> None:
    """SIGTERM the recipe's process group, SIGKILL what is left after RUN_CANCEL_GRACE_S."""
    stop_group(group, grace_s=settings.RUN_CANCEL_GRACE_S, process=process)


# --- Recovery --------------------------------------------------------------------------------------


def _is_stale(run: TrainingRun, now: dt.datetime) -> bool:
    heartbeat = run.heartbeat_at or run.started_at
    return heartbeat is None or (now - heartbeat).total_seconds() > settings.RUN_STALE_AFTER_S


def _worker_is_gone(run: TrainingRun) -> bool:
    """Whether the worker process recorded on the run ("host:pid:task") is known dead: it ran on
    this host and its pid no longer exists. Then a redelivery need not wait for the heartbeat to
    go stale. (A reused pid only makes us wait for the heartbeat, the safe side.)"""
    host, _, rest = run.worker.partition(":")
    pid = rest.partition(":")[0]
    return host == socket.gethostname() and pid.isdigit() and not psutil.pid_exists(int(pid))


def run_recover_stale(*, run_id: int, now: dt.datetime | None = None, dead_worker: str | None = None) -> str | None:
    """A RUNNING run whose worker stopped beating (or, with `dead_worker`, whose worker is known to
    have died): back to QUEUED for a restart, or FAILED once RUN_MAX_ATTEMPTS attempts in a row
    lost their worker without saving a newer resumable state.
    The update is conditional on that state, so when several callers race only one acts."""
    now = now or timezone.now()
    lost = Q(heartbeat_at__lt=now - dt.timedelta(seconds=settings.RUN_STALE_AFTER_S))
    if dead_worker:
        lost |= Q(worker=dead_worker)
    stale = TrainingRun.objects.filter(lost, pk=run_id, status=RunStatus.RUNNING)
    run = stale.first()
    if run is None:
        return None
    why = f"worker {dead_worker} died" if dead_worker else (
        f"no heartbeat from {run.worker} since {run.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC"
    )
    saved = artifacts.run_paths(run).saved_step()
    # An attempt that saved a newer state moved the run forward: only attempts that did not count.
    progressed = (saved or 0) > (run.attempt_started_at_step or 0)
    stalled = 0 if progressed else run.stalled_attempts + 1
    if stalled >= settings.RUN_MAX_ATTEMPTS:
        message = (
            f"The worker running attempt {run.attempts} stopped ({why}), and the run's last {stalled} "
            f"attempts saved no newer state (RUN_MAX_ATTEMPTS={settings.RUN_MAX_ATTEMPTS}). Read the log, "
            "then launch it again."
        )
        if stale.update(status=RunStatus.FAILED, error=message, finished_at=now, stalled_attempts=stalled):
            _append_log(artifacts.run_paths(run), f"=== failed: {message}\n")
            return RunStatus.FAILED
        return None
    if stale.filter(cancel_requested=True).update(status=RunStatus.CANCELLED, finished_at=now):
        return RunStatus.CANCELLED
    resumes = f"resumes from the state saved at step {saved}" if saved else "starts from step 0 (no state saved yet)"
    if stale.update(status=RunStatus.QUEUED, stalled_attempts=stalled,
                    error=f"Attempt {run.attempts} lost its worker ({why}); the next attempt {resumes}."):  # fmt: skip
        _append_log(artifacts.run_paths(run), f"=== attempt {run.attempts} lost its worker ({why}); the next attempt {resumes}\n")
        return RunStatus.QUEUED
    return None


def runs_recover(*, now: dt.datetime | None = None) -> list[int]:
    """Beat watchdog: recover runs whose worker died, and enqueue runs that never reached the broker.

    Returns the ids of the runs it enqueued.
    """
    now = now or timezone.now()
    stale_before = now - dt.timedelta(seconds=settings.RUN_STALE_AFTER_S)
    enqueued = []
    for run_id in TrainingRun.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=stale_before).values_list("pk", flat=True):
        if run_recover_stale(run_id=run_id, now=now) == RunStatus.QUEUED and run_enqueue(run_id=run_id):
            enqueued.append(run_id)
    never_sent = TrainingRun.objects.filter(status=RunStatus.QUEUED, enqueued_at__isnull=True, created_at__lt=stale_before)
    for run_id in never_sent.values_list("pk", flat=True):
        if run_enqueue(run_id=run_id):
            enqueued.append(run_id)
    return enqueued


# --- Cancel and deploy -----------------------------------------------------------------------------


def run_cancel(*, run: TrainingRun, actor=None) -> TrainingRun:
    """Cancel a run: a queued one at once; a running one by asking its worker, which stops the
    recipe's process group within RUN_POLL_INTERVAL_S (or at once if its worker is dead)."""
    now = timezone.now()
    cancelled = dict(status=RunStatus.CANCELLED, cancel_requested=True, finished_at=now)
    if not TrainingRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(**cancelled):
        run.refresh_from_db()
        running = TrainingRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING)
        # Nobody would act on a request to a dead worker: a stale run is cancelled here and now.
        if not (running.update(**cancelled) if _is_stale(run, now) else running.update(cancel_requested=True)):
            raise Conflict(f"Run {run.pk} is {run.status} already; only queued and running runs can be cancelled.")
    run.refresh_from_db()
    audit_record(event=AuditEvent.RUN_CANCEL, obj=run, actor=actor, status=run.status)
    _announce_if_finished(run.pk)
    return run


def run_deploy(
    *,
    run: TrainingRun,
    engine: str,
    endpoint_url: str = "",
    served_model_name: str = "",
    launch: bool = False,
    port: int | None = None,
    enforce_eager: bool = False,
    tensor_parallel_size: int = 1,
    only_this: bool = False,
) -> Deployment:
    """Deploy a succeeded run's checkpoint through the generation app, so it generates the next
    samples; `only_this` disables every other deployment (else the newest checkpoints share the work)."""
    if run.status != RunStatus.SUCCEEDED or run.checkpoint is None:
        raise ApplicationError(f"Run {run.pk} is {run.status}: only a succeeded run's checkpoint can be deployed.")
    if not site_recipe(run.recipe).deployable:
        raise ApplicationError(
            f"Run {run.pk} trained a {run.checkpoint.get_kind_display().lower()}: it scores answers and cannot generate "
            f"them. Use it in a {joined(USING_REWARD_MODELS, last='or')} run instead."
        )
    with transaction.atomic():
        deployment = deployment_create(
            checkpoint=run.checkpoint, engine=engine, endpoint_url=endpoint_url, served_model_name=served_model_name,
            launch=launch, port=port, enforce_eager=enforce_eager, tensor_parallel_size=tensor_parallel_size,
        )
        if only_this:
            for other in generation_selectors.deployment_list().filter(enabled=True).exclude(pk=deployment.pk):
                deployment_update(deployment=other, data={"enabled": False})
    return deployment
