"""An admin in a real browser (Playwright driving Debian's Chromium) reads the quality dashboard,
opens an annotator's page and decides a flagged comparison in the review queue."""
from __future__ import annotations

import pytest

from annotation_site.quality.models import Flag, Review
from tests.annotation_site.batches.factories import make_annotator, make_comparison
from tests.annotation_site.quality.factories import make_admin
from tests.browser.test_annotate_page import page  # noqa: F401 (the Chromium page fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_admin_reads_the_dashboard_and_excludes_a_flagged_comparison(page, live_server, tmp_path):
    make_admin("qadmin")
    rater = make_annotator("rater")
    comparisons = [make_comparison(annotator=rater, rating=rating) for rating in ("better", "significantly_better", "slightly_better")]
    Flag.objects.create(comparison=comparisons[0], reason="too_fast", detail="120 ms on the item")

    page.goto(f"{live_server.url}/accounts/login/?next=/quality/")
    page.fill("#id_username", "qadmin")
    page.fill("#id_password", "pw-123456")
    page.click("button[type=submit]")
    page.wait_for_url("**/quality/")
    assert page.locator('tr[data-annotator="rater"] td').nth(1).inner_text() == "3"
    assert page.locator('figure[data-figure="ratings"] svg').count() == 1
    page.screenshot(path=str(tmp_path / "quality-dashboard.png"), full_page=True)

    page.click('tr[data-annotator="rater"] a')
    page.wait_for_url("**/quality/annotators/*/")
    assert "rater" in page.locator("h1").inner_text()

    page.click("text=Review queue")
    entry = page.locator(f'section[data-comparison="{comparisons[0].pk}"]')
    assert "120 ms on the item" in entry.inner_text()
    entry.locator("select[name=decision]").select_option("exclude")
    entry.locator("input[name=reason]").fill("submitted in 120 ms")
    entry.locator("button[type=submit]").click()
    page.wait_for_selector("text=exclude.")
    assert page.locator(f'section[data-comparison="{comparisons[0].pk}"]').count() == 0
    assert Review.objects.get(comparison=comparisons[0]).decision == "exclude"
