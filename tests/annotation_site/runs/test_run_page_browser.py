"""The run page in a real browser (Playwright driving Debian's Chromium): its progress bar, curves
and log follow the run live by polling the progress endpoint, and it reloads when the run ends.
The run's worker is outside what is tested here: the test writes what a worker writes."""
from __future__ import annotations

import json

import pytest

from annotation_site.runs import artifacts
from annotation_site.runs.models import RunStatus, TrainingRun
from tests.annotation_site.runs.conftest import make_user
from tests.browser.test_annotate_page import page  # noqa: F401 (the Chromium page fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_run_page_follows_a_running_run_live_and_reloads_when_it_ends(page, live_server):
    make_user("researcher", username="res")
    run = TrainingRun.objects.create(recipe="sft", config_text="max_steps: 10\n", status=RunStatus.RUNNING, attempts=1)
    paths = artifacts.run_paths(run)
    paths.tmp.mkdir(parents=True)
    paths.log.write_text("=== attempt 1\n")

    page.goto(f"{live_server.url}/runs/{run.pk}/")
    page.fill("#id_username", "res")
    page.fill("#id_password", "pw-123456")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/runs/{run.pk}/")
    assert page.locator("#run-progress").evaluate("bar => bar.value") == 0
    assert page.locator("button", has_text="Cancel run").is_visible()
    assert page.locator("h2", has_text="Curves").is_hidden()  # nothing plotted yet: no empty heading
    assert page.locator("[data-run-status]").inner_text() == "Running"

    # What the worker records while the recipe trains: progress in the row, metrics and log on disk.
    (paths.tmp / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 3.0 / s, "learning_rate": 2e-5}) + "\n" for s in range(1, 7)))
    with paths.log.open("a") as log:
        log.write("{'loss': 0.5, 'step': 6}\n")
    TrainingRun.objects.filter(pk=run.pk).update(step=6, total_steps=10, progress=0.6)

    page.wait_for_function("document.querySelector('#run-progress').value === 0.6")
    page.wait_for_function("document.querySelector('#run-log').textContent.includes(\"'step': 6\")")
    page.wait_for_function("(img => !img.hidden && img.complete && img.naturalWidth > 300)(document.querySelector('#run-curves'))")
    assert page.locator(".run-progress-label").inner_text() == "6/10 steps"
    assert page.locator("h2", has_text="Curves").is_visible()
    # The live poll writes the status as the page does ("Running", not "running").
    assert page.locator("[data-run-status]").inner_text() == "Running"

    TrainingRun.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, error="python -m training.sft exited with code 1: boom")
    page.wait_for_selector(".status-failed")  # reloaded: the finished page shows the error, no cancel
    assert "exited with code 1: boom" in page.locator(".run-error").inner_text()
    assert page.locator("button", has_text="Cancel run").count() == 0
    assert page.locator("[data-run-status]").inner_text() == "Failed"
    page.goto("about:blank")  # no poll may reach the server after the test
