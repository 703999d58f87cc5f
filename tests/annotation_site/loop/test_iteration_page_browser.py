"""An iteration's page in a real browser (Playwright driving Debian's Chromium), after a real
iteration on tiny models: its steps, their runs, the gates' numbers and the canary's decision."""
from __future__ import annotations

import os

import pytest

from annotation_site.loop.models import IterationState, StepKind, Trigger
from annotation_site.loop.services.iterations import iteration_start, loops_tick
from tests.annotation_site.generation.test_canary import votes
from tests.annotation_site.loop.conftest import drive
from tests.browser.test_annotate_page import page  # noqa: F401 (the Chromium page fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_researcher_reads_an_iteration_from_its_batch_to_its_promotion(page, live_server, monkeypatch, researcher,
                                                                            deployed, batch, enqueued, make_loop):
    from annotation_site.loop import tasks

    monkeypatch.setattr(tasks.loop_advance, "delay", lambda iteration_id: None)  # the test drives the engine
    loop = make_loop(name="weekly", min_win_rate=0.0, max_unsafe_share_rise=1.0, canary_min_votes=4)
    iteration = drive(iteration_start(definition=loop, trigger=Trigger.MANUAL, started_by=researcher))
    assert iteration.state == IterationState.CANARY, iteration.outcome
    votes(iteration.canary_deployment, deployed, won=3, lost=1)  # annotators' comparisons of its pairs
    loops_tick()
    iteration.refresh_from_db()
    assert iteration.state == IterationState.PROMOTED

    page.goto(f"{live_server.url}/loop/iterations/{iteration.pk}/")
    page.fill("#id_username", researcher.username)
    page.fill("#id_password", "pw-123456")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/loop/iterations/{iteration.pk}/")

    assert page.locator("[data-iteration-state]").inner_text() == "Promoted: the new policy serves"
    assert "won 75.0% of 4 votes" in page.locator("[data-outcome]").inner_text()
    assert page.locator("tr[data-step]").count() == 9
    gate = page.locator(f"tr[data-step={StepKind.POLICY_GATE}]").inner_text()
    assert "win rate" in gate and "wins/ties/losses" in gate
    assert "votes 4 of 4: 3 wins, 1 losses" in page.locator(f"tr[data-step={StepKind.CANARY}]").inner_text()
    assert page.locator("button:text('Cancel the iteration')").count() == 0
    if os.environ.get("LOOP_SCREENSHOT"):  # the README's picture, written on request only
        page.screenshot(path=os.environ["LOOP_SCREENSHOT"], full_page=True)

    sampling = iteration.steps.get(kind=StepKind.REJECTION_SAMPLING).run
    page.click(f"tr[data-step={StepKind.REJECTION_SAMPLING}] a")
    page.wait_for_url(f"{live_server.url}/runs/{sampling.pk}/")
    assert sampling.display_name in page.locator("h1").inner_text()
    page.goto("about:blank")
