"""A run's launch and its cancel each leave one audit log entry naming the researcher and the run."""
import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from rest_framework.test import APIClient

from annotation_site.runs.models import TrainingRun

pytestmark = pytest.mark.django_db


def run_events(run: TrainingRun) -> list[tuple[str, object]]:
    found = LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(TrainingRun), object_pk=str(run.pk))
    return sorted(((e.additional_data or {}).get("event"), e.actor) for e in found)


def test_launching_and_cancelling_a_run_are_recorded_with_the_researcher(researcher, base_checkpoint, exported_batch, enqueued, django_capture_on_commit_callbacks):
    api = APIClient()
    api.force_authenticate(researcher)
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post(
            "/api/runs/", {"recipe": "sft", "config_name": "sft_smollm2_cpu.yaml", "base_checkpoint": base_checkpoint.pk, "batches": ["2026-W48"]},
            format="json",
        )  # fmt: skip
    assert created.status_code == 201, created.json()
    run = TrainingRun.objects.get()
    assert run_events(run) == [("run.launch", researcher)]
    [launch] = LogEntry.objects.filter(additional_data__event="run.launch")
    assert launch.additional_data["recipe"] == "sft" and launch.additional_data["config_name"] == "sft_smollm2_cpu.yaml"

    assert api.post(f"/api/runs/{run.pk}/cancel/").status_code == 202
    assert run_events(run) == [("run.cancel", researcher), ("run.launch", researcher)]
    assert api.post(f"/api/runs/{run.pk}/cancel/").status_code == 409  # already cancelled: nothing more to record
    assert len(run_events(run)) == 2


def test_a_launch_refused_by_its_config_records_nothing(researcher, base_checkpoint, exported_batch, enqueued):
    api = APIClient()
    api.force_authenticate(researcher)
    refused = api.post("/api/runs/", {"recipe": "sft", "base_checkpoint": base_checkpoint.pk, "batches": ["2026-W48"], "overrides": ["no_such_setting=1"]}, format="json")
    assert refused.status_code == 400
    assert not LogEntry.objects.filter(additional_data__event="run.launch").exists()
