"""The leaderboard and a checkpoint page in a real browser (Playwright driving Debian's Chromium)."""
from __future__ import annotations

import os

import pytest

from annotation_site.accounts.services import user_create
from tests.annotation_site.evaluation.test_leaderboard import WEEK_49, checkpoint, vote
from tests.browser.test_annotate_page import page  # noqa: F401 (the Chromium page fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_researcher_filters_the_leaderboard_and_opens_a_checkpoint(page, live_server):
    user_create(username="res", role="researcher", password="pw-123456")
    new, old = checkpoint("ppo-v2"), checkpoint("ppo-v1")
    new.parent = old
    new.save()
    for _ in range(5):
        vote(new, old, rating="significantly_better")
    vote(old, new, rating="slightly_better")
    vote(old, new, guideline="safety", created_at=WEEK_49)
    vote("gpt-4", "llama-2-70b-chat", rating="")

    page.goto(f"{live_server.url}/leaderboard/")
    page.fill("#id_username", "res")
    page.fill("#id_password", "pw-123456")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/leaderboard/")
    standings = page.locator(".board-checkpoints table.standings tbody tr")
    assert standings.count() == 2 and standings.first.locator("th").inner_text() == "ppo-v2"
    assert "gpt-4" in page.locator(".board-named").inner_text()
    if os.environ.get("EVALUATION_SCREENSHOT"):  # the README's picture, written on request only
        page.screenshot(path=os.environ["EVALUATION_SCREENSHOT"], full_page=True)

    page.select_option("#id_guideline", "safety")
    page.fill("#id_week", "2026-W49")
    page.click("button.primary")
    page.wait_for_url("**/leaderboard/?guideline=safety&week=2026-W49")
    assert page.locator(".board-checkpoints table.standings tbody tr").first.locator("th").inner_text() == "ppo-v1"
    assert page.locator(".board-checkpoints h2").inner_text().endswith(" 1 vote")

    page.click(".board-checkpoints a:text('ppo-v2')")
    page.wait_for_url(f"{live_server.url}/checkpoints/{new.pk}/")
    assert "Checkpoint ppo-v2" in page.locator("h1").inner_text()
    assert page.locator(".parents a").inner_text() == "ppo-v1"
    assert "in 7 comparisons" in page.locator(".lineage").inner_text()
    page.goto("about:blank")
