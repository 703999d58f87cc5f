"""The training task run for real: the task function itself, in this process, starts the recipe as
a subprocess on the tiny model and an exported batch, follows it, and records what became of it."""
import os
import signal
import socket
import subprocess
import threading
import time

import pytest
from rest_framework.test import APIClient

from annotation_site.generation.models import Checkpoint, CheckpointKind, Deployment
from annotation_site.generation.selectors import deployments_for_generation
from annotation_site.runs import artifacts
from annotation_site.runs.models import RunStatus, TrainingRun
from annotation_site.runs.services import run_recover_stale
from annotation_site.runs.tasks import run_training
from tests.annotation_site.runs.conftest import launch
from training.resume import save_state


def group_is_gone(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.django_db
def test_an_sft_run_trains_registers_its_checkpoint_shows_its_curves_and_deploys(
    client, researcher, base_checkpoint, exported_batch
):
    run = launch(researcher, name="sft-w48", base_checkpoint=base_checkpoint, batches=[exported_batch])

    assert run_training(run.pk) == RunStatus.SUCCEEDED

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.error == "" and run.attempts == 1
    assert run.total_steps == 4 and run.step == 4 and run.progress == 1.0  # 14 of 16 demonstrations, 4 a step
    checkpoint = run.checkpoint
    assert (checkpoint.name, checkpoint.kind, checkpoint.parent, checkpoint.run) == ("sft-w48", CheckpointKind.SFT, base_checkpoint, str(run.pk))
    assert checkpoint.path == str(artifacts.run_paths(run).out) and (artifacts.run_paths(run).out / "config.json").is_file()
    assert checkpoint.training_config["model"] == base_checkpoint.path
    log = artifacts.run_paths(run).log.read_text()
    assert "=== attempt 1" in log and "-m training.sft --config" in log and "=== succeeded" in log

    client.force_login(researcher)
    page = client.get(f"/runs/{run.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    # The recipe's own plots replace the live curves once written, so the loss is drawn once.
    assert f'src="/runs/{run.pk}/plots/loss_curve.png"' in html and f'src="/runs/{run.pk}/curves.png"' not in html
    assert "eval_perplexity" in html and "Deploy sft-w48" in html
    for url in (f"/runs/{run.pk}/curves.png", f"/runs/{run.pk}/plots/loss_curve.png"):
        image = client.get(url)
        content = b"".join(image.streaming_content) if image.streaming else image.content
        assert image.status_code == 200 and image["Content-Type"] == "image/png" and content.startswith(b"\x89PNG")
    assert client.get(f"/runs/{run.pk}/plots/..%2Fconfig.yaml").status_code == 404
    progress = client.get(f"/api/runs/{run.pk}/progress/").json()
    assert progress["status"] == "succeeded" and progress["finished"] and progress["checkpoint"] == checkpoint.pk

    older = Deployment.objects.create(checkpoint=base_checkpoint, engine="local")
    deployed = client.post(f"/runs/{run.pk}/deploy/", {"mode": "local", "only_this": "on"})
    assert deployed.status_code == 302
    deployment = Deployment.objects.get(checkpoint=checkpoint)
    assert deployment.engine == "local" and deployment.enabled
    older.refresh_from_db()
    assert not older.enabled
    assert deployments_for_generation() == [deployment]  # the new checkpoint generates the next samples

    api = APIClient()
    api.force_authenticate(researcher)
    no_url = api.post(f"/api/runs/{run.pk}/deploy/", {"engine": "vllm"}, format="json")
    assert no_url.status_code == 400 and "endpoint URL" in no_url.json()["message"]
    on_vllm = api.post(f"/api/runs/{run.pk}/deploy/", {"engine": "vllm", "endpoint_url": "http://127.0.0.1:8100/v1/"}, format="json")
    assert on_vllm.status_code == 201 and on_vllm.json()["endpoint_url"] == "http://127.0.0.1:8100/v1"


@pytest.mark.django_db
def test_a_reward_model_run_shows_table_8_and_cannot_be_deployed(client, researcher, base_checkpoint, exported_batch):
    run = launch(researcher, recipe="reward_model", base_checkpoint=base_checkpoint, batches=[exported_batch])

    assert run_training(run.pk) == RunStatus.SUCCEEDED

    run.refresh_from_db()
    assert run.checkpoint.kind == CheckpointKind.REWARD_MODEL and run.checkpoint.name == f"reward_model-run-{run.pk}"
    client.force_login(researcher)
    html = client.get(f"/runs/{run.pk}/").content.decode()
    assert "layout of Table 8" in html and "Significantly Better" in html and "Negligibly Better / Unsure" in html
    assert f'/runs/{run.pk}/plots/reward_distribution.png' in html and "Deploy " not in html
    api = APIClient()
    api.force_authenticate(researcher)
    refused = api.post(f"/api/runs/{run.pk}/deploy/", {"engine": "local"}, format="json")
    assert refused.status_code == 400 and "trained a reward model" in refused.json()["message"]
    assert api.get(f"/api/runs/{run.pk}/eval/").json()["splits"]["2026-W48/helpfulness"]["pairs"] == 4


def empty_checkpoint(tmp_path) -> Checkpoint:
    """A registered base checkpoint whose folder holds no model: the recipe fails to load it."""
    (tmp_path / "no-model-here").mkdir()
    (tmp_path / "no-model-here" / "config.json").write_text("{not json")
    return Checkpoint.objects.create(name="no-model-here", path=str(tmp_path / "no-model-here"), kind="base")


@pytest.mark.django_db
def test_a_recipe_that_raises_marks_the_run_failed_with_the_error_and_the_log_tail(researcher, exported_batch, tmp_path):
    run = launch(researcher, base_checkpoint=empty_checkpoint(tmp_path), batches=[exported_batch])

    assert run_training(run.pk) == RunStatus.FAILED

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.checkpoint is None and run.finished_at is not None
    assert run.error.startswith("python -m training.sft exited with code 1: ")
    assert "no-model-here" in run.error.splitlines()[0]  # the exception the recipe raised
    assert "Traceback" in run.error  # and the log's tail below it
    assert not Checkpoint.objects.filter(run=str(run.pk)).exists()


@pytest.mark.django_db(transaction=True)
def test_cancel_stops_the_recipes_process_group(researcher, base_checkpoint, exported_batch, enqueued):
    # Enough steps to still be training when the cancel arrives.
    run = launch(researcher, overrides=["max_steps=100000", "eval_fraction=0"], base_checkpoint=base_checkpoint, batches=[exported_batch])
    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(run_training(run.pk)))
    worker.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.step >= 2:  # training, and its progress is being followed
            break
        time.sleep(0.2)
    assert run.status == RunStatus.RUNNING and run.step >= 2 and run.total_steps == 100000
    group = run.process_group

    api = APIClient()
    api.force_authenticate(researcher)
    assert api.post(f"/api/runs/{run.pk}/cancel/").status_code == 202
    worker.join(timeout=60)

    assert outcome == [RunStatus.CANCELLED]
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and run.checkpoint is None and group_is_gone(group)
    assert api.post(f"/api/runs/{run.pk}/cancel/").status_code == 409


@pytest.mark.django_db
def test_a_redelivered_task_restarts_a_run_whose_worker_died_and_kills_what_it_left(researcher, exported_batch, tmp_path):
    # A model that fails to load ends the restarted attempt quickly; what is tested is the restart.
    run = launch(researcher, base_checkpoint=empty_checkpoint(tmp_path), batches=[exported_batch])
    paths = artifacts.run_paths(run)
    paths.root.mkdir(parents=True)
    save_state(paths.out, 7, lambda folder: None)  # a state of some other config: not resumed
    # What a SIGKILLed worker leaves: the run RUNNING with an old heartbeat, and its recipe's group.
    leftover = subprocess.Popen(["sh", "-c", f"sleep 600; echo {paths.launch_config}"], start_new_session=True)
    two_minutes_ago = run.created_at.replace(year=run.created_at.year - 1)
    TrainingRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, attempts=1, worker="dead-worker:1:task", worker_host=socket.gethostname(),
        process_group=leftover.pid, started_at=two_minutes_ago, heartbeat_at=two_minutes_ago,
    )

    assert run_training(run.pk) == RunStatus.FAILED

    assert leftover.wait(timeout=10) == -signal.SIGKILL
    run.refresh_from_db()
    # Restarted, not written off: attempt 2 ran the recipe again (which then failed on its own).
    assert run.attempts == 2 and run.error.startswith("python -m training.sft exited with code 1")
    log = paths.log.read_text()
    assert "attempt 1 lost its worker (no heartbeat from dead-worker:1:task" in log and "=== attempt 2" in log
    assert "the next attempt resumes from the state saved at step 7" in log
    # The recipe found the state was not its config's and started over, so the run does not say it resumed.
    assert "belongs to another config; starting over from step 0" in log and run.resumed_from_step is None
    # The attempt recorded the state there was when it started, against which its progress is judged.
    assert run.attempt_started_at_step == 7


@pytest.mark.django_db
def test_a_run_whose_worker_died_on_its_last_attempt_is_marked_failed_not_restarted(researcher, base_checkpoint, exported_batch):
    run = launch(researcher, base_checkpoint=base_checkpoint, batches=[exported_batch])
    long_ago = run.created_at.replace(year=run.created_at.year - 1)
    # Attempt 1 died without saving anything, and so did attempt 2: RUN_MAX_ATTEMPTS (2) in a row.
    TrainingRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, attempts=2, stalled_attempts=1, worker="dead-worker:1:task", heartbeat_at=long_ago,
        started_at=long_ago,
    )
    assert run_training(run.pk) == RunStatus.FAILED
    run.refresh_from_db()
    assert "last 2 attempts saved no newer state (RUN_MAX_ATTEMPTS=2)" in run.error and run.attempts == 2
    assert run.stalled_attempts == 2


@pytest.mark.django_db
def test_an_attempt_that_saved_a_newer_state_does_not_count_against_the_bound(researcher, base_checkpoint, exported_batch):
    run = launch(researcher, base_checkpoint=base_checkpoint, batches=[exported_batch])
    paths = artifacts.run_paths(run)
    paths.root.mkdir(parents=True)
    long_ago = run.created_at.replace(year=run.created_at.year - 1)
    # Attempt 2 of 2 started from the state of step 5 and saved step 10 before its machine was preempted.
    TrainingRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, attempts=2, stalled_attempts=1, attempt_started_at_step=5,
        worker="dead-worker:1:task", heartbeat_at=long_ago, started_at=long_ago,
    )
    save_state(paths.out, 10, lambda folder: None)

    assert run_recover_stale(run_id=run.pk) == RunStatus.QUEUED
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and run.stalled_attempts == 0
    assert "the next attempt resumes from the state saved at step 10" in run.error

    # The same attempt without a newer state (it died before saving again) is the second stall: failed.
    TrainingRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, attempts=3, stalled_attempts=1, attempt_started_at_step=10, heartbeat_at=long_ago,
    )
    assert run_recover_stale(run_id=run.pk) == RunStatus.FAILED


@pytest.mark.django_db
def test_a_duplicate_delivery_leaves_a_live_run_alone(researcher, base_checkpoint, exported_batch):
    run = launch(researcher, base_checkpoint=base_checkpoint, batches=[exported_batch])
    TrainingRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, attempts=1, worker="busy:1:task", heartbeat_at=run.created_at)
    assert run_training(run.pk) == "running elsewhere"
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.attempts == 1 and run.worker == "busy:1:task"
