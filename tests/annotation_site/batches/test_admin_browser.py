"""The batch admin in a real browser (Playwright driving Debian's Chromium): close now, live progress, download."""
from __future__ import annotations

import datetime as dt
import os
import shutil
import zipfile
from pathlib import Path

import pytest
from django.utils import timezone

from annotation_site.accounts.services import user_create
from annotation_site.batches import services
from annotation_site.batches.models import Batch, BatchState
from tests.annotation_site.batches.factories import make_comparison, make_mixed_week
from tests.conftest import require

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path(os.environ.get("ANNOTATE_SCREENSHOT_DIR", "/tmp/annotate-screenshots"))
SHOTS.mkdir(parents=True, exist_ok=True)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


@pytest.fixture
def admin_page(live_server, monkeypatch, settings, tmp_path, celery_eager):
    require(shutil.which(CHROMIUM) is not None, f"needs Chromium at {CHROMIUM} (make chromium)")
    from playwright.sync_api import sync_playwright

    settings.EXPORT_ROOT = tmp_path / "exports"
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs a loop here
    # "Close now" enqueues the export; it runs inline (celery_eager), as this test is about the page.
    user_create(username="boss", role="admin", password="pw-123456")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(accept_downloads=True, viewport={"width": 1400, "height": 900})
        page.set_default_timeout(15_000)
        page.goto(f"{live_server.url}/admin/login/?next=/admin/batches/batch/")
        page.fill("#id_username", "boss")
        page.fill("#id_password", "pw-123456")
        page.click("input[type=submit]")
        page.wait_for_url("**/admin/batches/batch/")
        yield page
        browser.close()


def test_an_admin_closes_the_week_and_downloads_the_batch(admin_page, tmp_path):
    make_mixed_week(annotators=2, per_annotator=3)
    admin_page.reload()
    week = services.week_of(timezone.now())
    assert "Waiting for the next batch: 6 comparisons" in admin_page.inner_text("#batch-unbatched")
    assert f"They go into batch {week}" in admin_page.inner_text("#batch-unbatched")
    # A close asks first; declining it closes nothing.
    questions = []
    admin_page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    admin_page.click("#batch-close-now")
    assert "6 waiting comparisons" in questions[0] and not Batch.objects.exists()
    admin_page.once("dialog", lambda dialog: dialog.accept())
    admin_page.click("#batch-close-now")
    admin_page.wait_for_selector("text=with 6 comparisons")
    batch = Batch.objects.get()
    assert batch.state == BatchState.EXPORTED
    # After the early close there is nothing to close now, and the page says where later comparisons go.
    assert admin_page.locator("#batch-close-now").count() == 0
    next_week = services.week_of(timezone.now() + dt.timedelta(days=7))
    assert f"was closed early" in admin_page.inner_text("#batch-unbatched")
    assert f"go into batch {next_week}" in admin_page.inner_text("#batch-unbatched")
    # The download link is on screen at 1,400 px, not in a sideways-scrolling table.
    link = admin_page.locator("a.batch-download")
    box = link.bounding_box()
    assert box["x"] + box["width"] <= 1400 and admin_page.evaluate("document.documentElement.scrollWidth") <= 1400
    admin_page.screenshot(path=str(SHOTS / "batches-1400.png"), full_page=True)
    with admin_page.expect_download() as download:
        link.click()
    saved = tmp_path / "batch.zip"
    download.value.save_as(saved)
    names = zipfile.ZipFile(saved).namelist()
    assert sorted(names) == sorted(f"{batch.week}/{p.name}" for p in Path(batch.export_path).iterdir())

    # The batch's own page: counts as a table, a download link, and no Save button.
    admin_page.click(f"a:text('{batch.week}')")
    admin_page.wait_for_selector("table.batch-counts")
    assert "comparisons" in admin_page.inner_text("table.batch-counts") and "{" not in admin_page.inner_text("table.batch-counts")
    assert admin_page.locator("a.batch-download").count() == 1
    assert admin_page.locator("input[type=submit][name=_save]").count() == 0
    admin_page.screenshot(path=str(SHOTS / "batch-page-1400.png"), full_page=True)


def test_the_progress_bar_follows_a_running_export_and_the_list_shows_it_done(admin_page):
    make_comparison()
    batch, _ = services.batch_close(enqueue_export=False)
    Batch.objects.filter(pk=batch.pk).update(state=BatchState.EXPORTING, export_progress=0.25)
    admin_page.reload()
    bar = admin_page.locator("progress.batch-progress")
    assert float(bar.get_attribute("value")) == 0.25

    Batch.objects.filter(pk=batch.pk).update(export_progress=0.6)  # the worker writes a chunk
    admin_page.wait_for_function("document.querySelector('progress.batch-progress').value >= 0.6")
    assert admin_page.inner_text(".batch-progress-label") == "60%"

    services.batch_export(batch_id=batch.id)  # the export finishes: the list reloads by itself
    admin_page.wait_for_selector("a:text('zip')")
    assert float(admin_page.locator("progress.batch-progress").get_attribute("value")) == 1.0
