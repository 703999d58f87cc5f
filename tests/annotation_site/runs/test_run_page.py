"""The run page through Django's test client: what the curves section shows."""
import pytest

from annotation_site.runs import artifacts
from annotation_site.runs.models import RunStatus, TrainingRun
from tests.annotation_site.runs.conftest import make_user

pytestmark = pytest.mark.django_db


def test_the_recipes_own_plots_replace_the_live_curves_so_the_loss_is_drawn_once(client):
    client.force_login(make_user("researcher"))
    run = TrainingRun.objects.create(recipe="sft", config_text="", status=RunStatus.SUCCEEDED, attempts=1)
    paths = artifacts.run_paths(run)
    paths.tmp.mkdir(parents=True)
    (paths.tmp / "loss_curve.png").write_bytes(b"\x89PNG\r\n")
    html = client.get(f"/runs/{run.pk}/").content.decode()
    assert "loss_curve.png" in html and 'id="run-curves"' not in html
    assert '<section id="run-plots">' in html


def test_a_run_without_plots_keeps_its_curves_section_hidden_until_the_live_curves_load(client):
    client.force_login(make_user("researcher"))
    run = TrainingRun.objects.create(recipe="sft", config_text="", status=RunStatus.RUNNING, attempts=1)
    html = client.get(f"/runs/{run.pk}/").content.decode()
    assert '<section id="run-plots" hidden>' in html and 'id="run-curves"' in html
    progress = client.get(f"/api/runs/{run.pk}/progress/").json()
    assert (progress["status"], progress["status_label"]) == ("running", "Running")


def test_a_restarted_run_shows_the_step_its_attempt_resumed_from(client):
    client.force_login(make_user("researcher"))
    resumed = TrainingRun.objects.create(recipe="sft", config_text="", status=RunStatus.RUNNING, attempts=2, resumed_from_step=35)
    not_yet = TrainingRun.objects.create(recipe="sft", config_text="", status=RunStatus.RUNNING, attempts=2)
    assert "attempt 2, resumed from step 35" in client.get(f"/runs/{resumed.pk}/").content.decode()
    html = client.get(f"/runs/{not_yet.pk}/").content.decode()
    assert "attempt 2" in html and "resumed from step" not in html
    assert "resumes from the last state its recipe saved" in html  # the help line of a running run
