"""Deployments: creating and editing them, their health, and the vLLM servers the platform
launches for them on a serving worker (and stops there)."""
from __future__ import annotations

import logging
import socket
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from annotation_site.errors import ApplicationError, Conflict
from annotation_site.generation import selectors
from annotation_site.generation.engines import engine_for
from annotation_site.generation.models import (
    Checkpoint,
    CheckpointKind,
    Deployment,
    Engine,
    Health,
    ServerStatus,
    TENSOR_PARALLEL_SIZES,
)
from annotation_site.generation.services.checkpoints import _checkpoint_folder
from serving.endpoints import EndpointRefused, check_endpoint_url

logger = logging.getLogger(__name__)


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
