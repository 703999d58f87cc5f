"""Reward models side by side (Tables 7 and 8 from each run's eval.json), and the beat watchdog
that recovers runs whose worker died."""
import datetime as dt
import json

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from annotation_site.runs import artifacts, services
from annotation_site.runs.models import RunStatus, TrainingRun

pytestmark = pytest.mark.django_db


def finished_reward_model_run(name: str, splits: dict) -> TrainingRun:
    """A succeeded reward-model run whose recipe wrote this eval.json (the recipes' own format)."""
    run = TrainingRun.objects.create(name=name, recipe="reward_model", config_text="{}", status=RunStatus.SUCCEEDED)
    paths = artifacts.run_paths(run)
    paths.out.mkdir(parents=True)
    (paths.out / "eval.json").write_text(json.dumps({"splits": splits}))
    return run


def split(accuracy: float, pairs: int, by_rating: dict[str, float]) -> dict:
    return {"accuracy": accuracy, "pairs": pairs, "by_rating": {k: {"accuracy": v, "pairs": 1} for k, v in by_rating.items()}}


@pytest.fixture
def two_reward_models():
    helpful = finished_reward_model_run("rm-helpful", {
        "meta-helpful": split(0.632, 300, {"significantly_better": 0.807, "better": 0.675, "slightly_better": 0.609, "negligibly_better": 0.547}),
        "anthropic-harmless": split(0.5, 100, {"better": 0.5}),
    })
    safety = finished_reward_model_run("rm-safety", {
        "meta-helpful": split(0.6, 100, {"significantly_better": 0.9}),
    })
    return helpful, safety


def test_the_compare_page_lays_reward_models_out_like_tables_7_and_8(client, researcher, two_reward_models):
    helpful, safety = two_reward_models
    client.force_login(researcher)
    page = client.get(f"/runs/compare/?run={helpful.pk}&run={safety.pk}")
    comparison = page.context["comparison"]
    assert comparison.splits == ["anthropic-harmless", "meta-helpful"]
    rows = {row.run.name: row for row in comparison.by_split}
    assert rows["rm-helpful"].cells == [0.5, 0.632] and rows["rm-helpful"].average == pytest.approx((0.632 * 300 + 0.5 * 100) / 400)
    assert rows["rm-safety"].cells == [None, 0.6] and rows["rm-safety"].pairs == 100
    table_8 = {row.run.name: row.cells for row in comparison.by_rating["meta-helpful"]}
    assert table_8 == {"rm-helpful": [0.807, 0.675, 0.609, 0.547], "rm-safety": [0.9, None, None, None]}
    html = page.content.decode()
    for cell in ("80.7", "67.5", "60.9", "54.7", "63.2", "90.0", "Negligibly Better / Unsure"):
        assert cell in html

    assert "Pick at least two" in client.get(f"/runs/compare/?run={helpful.pk}").content.decode()
    api = APIClient()
    api.force_authenticate(researcher)
    data = api.get(f"/api/runs/compare/?run={helpful.pk}&run={safety.pk}").json()
    assert data["by_rating"]["meta-helpful"][0]["cells"] == [0.807, 0.675, 0.609, 0.547]
    queued = TrainingRun.objects.create(recipe="reward_model", config_text="{}")
    refused = api.get(f"/api/runs/compare/?run={helpful.pk}&run={queued.pk}")
    assert refused.status_code == 400 and f"Not succeeded reward-model runs: {queued.pk}" in refused.json()["message"]


def test_the_watchdog_restarts_a_run_without_heartbeat_and_fails_it_after_its_last_attempt(settings, enqueued):
    now = timezone.now()
    silent = now - dt.timedelta(seconds=settings.RUN_STALE_AFTER_S + 1)
    lost = TrainingRun.objects.create(recipe="sft", config_text="{}", status=RunStatus.RUNNING, attempts=1, heartbeat_at=silent, worker="w:1")
    # Its first attempt also died without saving a state: this is the second stalled one in a row.
    spent = TrainingRun.objects.create(recipe="sft", config_text="{}", status=RunStatus.RUNNING, attempts=2, stalled_attempts=1,
                                       heartbeat_at=silent, worker="w:2")
    alive = TrainingRun.objects.create(recipe="sft", config_text="{}", status=RunStatus.RUNNING, attempts=1, heartbeat_at=now, worker="w:3")

    assert services.runs_recover(now=now) == [lost.pk] and enqueued == [lost.pk]

    statuses = dict(TrainingRun.objects.values_list("pk", "status"))
    assert statuses == {lost.pk: RunStatus.QUEUED, spent.pk: RunStatus.FAILED, alive.pk: RunStatus.RUNNING}
    assert "lost its worker (no heartbeat from w:1" in TrainingRun.objects.get(pk=lost.pk).error
    assert services.runs_recover(now=now) == []  # recovered once, not again


def test_cancelling_a_run_whose_worker_died_cancels_it_at_once(researcher, settings):
    silent = timezone.now() - dt.timedelta(seconds=settings.RUN_STALE_AFTER_S + 1)
    run = TrainingRun.objects.create(recipe="sft", config_text="{}", status=RunStatus.RUNNING, attempts=1, heartbeat_at=silent)
    assert services.run_cancel(run=run).status == RunStatus.CANCELLED
    queued = TrainingRun.objects.create(recipe="sft", config_text="{}")
    assert services.run_cancel(run=queued).status == RunStatus.CANCELLED
