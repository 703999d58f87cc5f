"""A real browser (Playwright driving Debian's Chromium) rates items on the annotate page."""
from __future__ import annotations

import os
import shutil

import pytest

from annotation_site.accounts.services import user_create
from annotation_site.annotation import services
from annotation_site.annotation.demo.guidelines import GUIDELINES
from annotation_site.annotation.models import Comparison, Item, ItemStatus
from tests.annotation_site.annotation.factories import make_ready_item, make_sample
from tests.conftest import require

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture
def page(live_server, monkeypatch):
    require(shutil.which(CHROMIUM) is not None, f"needs Chromium at {CHROMIUM} (make chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's ORM calls are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(10_000)
        yield page
        browser.close()


def expected_chosen(comparison: Comparison, label: str):
    item = comparison.item
    first, second = (item.sample_b, item.sample_a) if comparison.shown_order == "ba" else (item.sample_a, item.sample_b)
    return first if label == "A" else second


def test_an_annotator_rates_by_keyboard_and_mouse_labels_safety_and_continues_a_dialogue(page, live_server, settings):
    settings.ANNOTATE_POLL_MS = 500
    for kind, (title, text) in GUIDELINES.items():
        services.guideline_publish(kind=kind, title=title, text=text)
    user_create(username="ann", role="annotator", password="pw-123456", weekly_quota=10)
    by_keyboard = make_ready_item(priority=3)
    by_mouse = make_ready_item(priority=2)
    safety = make_ready_item(guideline_kind="safety", priority=1)
    next_item_requests = []
    page.on("request", lambda request: "/api/annotate/next/" in request.url and next_item_requests.append(request.url))

    page.goto(f"{live_server.url}/annotate/")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", "ann")
    page.fill("#id_password", "pw-123456")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/annotate/")
    page.wait_for_selector("#task:not([hidden])")
    assert page.locator("#quota-total").inner_text() == "10"
    assert page.locator("[data-guideline-kind=helpfulness]").is_visible()
    assert "model-a" not in page.content()

    # 1. Keyboard: choose B, "significantly better", continue the dialogue, submit with Ctrl+Enter.
    page.keyboard.press("b")
    page.keyboard.press("1")
    page.keyboard.press("c")
    page.locator("#continue-text").fill("Thanks! And what if I want it hard-boiled?")
    page.keyboard.press("Control+Enter")
    page.wait_for_function("document.querySelector('#quota-done').textContent === '1'")

    # 2. Mouse: choose A, "slightly better", click Submit.
    page.locator("[data-choose=A]").click()
    page.locator("[data-rating=slightly_better]").click()
    page.locator("#submit").click()
    page.wait_for_selector("fieldset.safety:not([hidden])")  # the safety item is shown next

    # 3. Safety: an unsafe choice over a safe response is refused inline, then labelled right.
    page.keyboard.press("a")
    page.keyboard.press("w")  # A unsafe
    page.keyboard.press("o")  # B safe
    page.keyboard.press("2")
    assert "never used" in page.locator("#message").inner_text()
    page.keyboard.press("Enter")
    assert Comparison.objects.count() == 2
    page.keyboard.press("q")  # A safe
    page.keyboard.press("p")  # B unsafe
    assert page.locator("#message").is_hidden()
    page.keyboard.press("Enter")

    # Nothing left: the page says responses are being generated and waits.
    page.wait_for_selector("#waiting:not([hidden])")
    assert "responses generated" in page.locator("#waiting-text").inner_text()
    # The page came with its first item, and each submit brought the next one back: the next-item
    # endpoint was never needed.
    assert next_item_requests == []
    if os.environ.get("ANNOTATE_SCREENSHOT"):
        page.screenshot(path=os.environ["ANNOTATE_SCREENSHOT"], full_page=True)

    first, second, third = Comparison.objects.order_by("id")
    assert (first.item_id, first.rating, first.chosen) == (by_keyboard.pk, "significantly_better", expected_chosen(first, "B"))
    assert (second.item_id, second.rating, second.chosen) == (by_mouse.pk, "slightly_better", expected_chosen(second, "A"))
    assert (third.item_id, third.rating, third.chosen) == (safety.pk, "better", expected_chosen(third, "A"))
    assert (third.chosen_is_safe, third.rejected_is_safe, third.safety_bin) == (True, False, "chosen_safe_other_unsafe")
    assert all(c.time_spent_ms is not None for c in (first, second, third))

    continued = first.continuations.get().items.get()
    assert continued.status == ItemStatus.NEEDS_SAMPLES
    assert continued.dialogue.turns[-2:] == [
        {"role": "assistant", "content": expected_chosen(first, "B").text},
        {"role": "user", "content": "Thanks! And what if I want it hard-boiled?"},
    ]

    # When the generator attaches its samples, the waiting page loads the new item by itself.
    services.item_attach_samples(
        item=continued,
        sample_a=make_sample(continued.dialogue, "Boil it for 10 minutes."),
        sample_b=make_sample(continued.dialogue, "Boil it for an hour."),
    )
    page.wait_for_selector("#task:not([hidden])")
    assert page.locator("#dialogue li").count() == 3
    assert "hard-boiled" in page.locator("#dialogue").inner_text()


def test_a_demonstration_is_written_and_an_item_skipped_with_a_reason(page, live_server):
    user_create(username="ann", role="annotator", password="pw-123456")
    skipped = make_ready_item(priority=5)
    demo = services.prompts_queue(
        prompts=[services.PromptSpec(turns=[{"role": "user", "content": "Explain rainbows"}], guideline_kind="helpfulness")],
        task_kind="demonstration",
    )[0]
    page.goto(f"{live_server.url}/accounts/login/?next=/annotate/")
    page.fill("#id_username", "ann")
    page.fill("#id_password", "pw-123456")
    page.click("button[type=submit]")
    page.wait_for_selector("#comparison-task:not([hidden])")
    page.keyboard.press("k")
    page.locator("#skip-reason-choice").select_option("The prompt is unclear")
    page.locator("#skip-confirm").click()
    page.wait_for_selector("#demonstration-task:not([hidden])")
    page.keyboard.press("d")
    page.keyboard.type("Sunlight bends and splits into colours inside raindrops.")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#waiting:not([hidden])")
    page.keyboard.press("n")
    page.locator("#prompt-text").fill("What causes the northern lights?")
    page.locator("#prompt-kind").select_option("helpfulness")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#prompt-dialog", state="hidden")
    written = Item.objects.get(dialogue__author__username="ann")
    assert written.status == ItemStatus.NEEDS_SAMPLES and written.dialogue.turns[0]["content"] == "What causes the northern lights?"
    skipped_assignment = skipped.assignments.get()
    assert (skipped_assignment.status, skipped_assignment.skip_reason) == ("skipped", "The prompt is unclear")
    assert demo.demonstrations.get().text == "Sunlight bends and splits into colours inside raindrops."
