"""The annotate page's rough edges, in a real browser: no silently lost answer, any text fits the
layout, honest waiting, and the small things a new annotator trips over."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from annotation_site.accounts.services import user_create
from annotation_site.annotation import services
from annotation_site.annotation.models import Comparison, Item, ItemStatus
from tests.annotation_site.annotation.factories import make_dialogue, make_ready_item, make_sample
from tests.browser.test_annotate_page import CHROMIUM, CHROMIUM_ARGS, expected_chosen
from tests.conftest import require

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Screenshots for a person to look at, outside the repository (ANNOTATE_SCREENSHOT_DIR to change).
SHOTS = Path(os.environ.get("ANNOTATE_SCREENSHOT_DIR", "/tmp/annotate-screenshots"))


@pytest.fixture
def browser(monkeypatch):
    import shutil

    require(shutil.which(CHROMIUM) is not None, f"needs Chromium at {CHROMIUM} (make chromium)")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def logged_in_page(browser, live_server, *, width=1400, height=900, username="ann"):
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{live_server.url}/accounts/login/?next=/annotate/")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw-123456")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/annotate/")
    return page


def annotator(username="ann"):
    return user_create(username=username, role="annotator", password="pw-123456")


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_a_different_answer_from_a_second_tab_is_refused_shown_and_can_replace_the_first(browser, live_server):
    annotator()
    item = make_ready_item(priority=2)
    make_ready_item(priority=1)
    first_tab = logged_in_page(browser, live_server)
    response = first_tab.goto(f"{live_server.url}/annotate/")
    assert "no-store" in response.headers["cache-control"]
    second_tab = first_tab.context.new_page()
    second_tab.goto(f"{live_server.url}/annotate/")  # the same live claim: the same item
    for tab in (first_tab, second_tab):
        tab.wait_for_selector("#task:not([hidden])")

    first_tab.keyboard.press("b")
    first_tab.keyboard.press("2")
    first_tab.keyboard.press("Enter")
    first_tab.wait_for_selector("#notice:not([hidden])")
    assert "Saved." in first_tab.locator("#notice").inner_text()

    second_tab.keyboard.press("a")
    second_tab.keyboard.press("4")
    second_tab.keyboard.press("Enter")
    second_tab.wait_for_selector("#conflict:not([hidden])")
    text = second_tab.locator("#conflict-text").inner_text()
    assert "You already answered this item: Response B, better" in text and "was not saved" in text
    assert second_tab.locator("#notice").is_hidden()  # nothing says "Saved."
    comparison = Comparison.objects.get(item=item)
    assert (comparison.rating, comparison.chosen) == ("better", expected_chosen(comparison, "B"))
    shot(second_tab, "conflict-1400")

    second_tab.locator("#conflict-replace").click()
    second_tab.wait_for_selector("#notice:not([hidden])")
    assert "Changed" in second_tab.locator("#notice").inner_text()
    comparison.refresh_from_db()
    assert (comparison.rating, comparison.chosen) == ("negligibly_better", expected_chosen(comparison, "A"))
    (change,) = comparison.amendments.all()
    assert (change.old_rating, change.new_rating, change.annotator.username) == ("better", "negligibly_better", "ann")


def test_undo_reopens_the_item_just_answered_to_change_it(browser, live_server):
    annotator()
    first = make_ready_item(priority=2)
    second = make_ready_item(priority=1)
    page = logged_in_page(browser, live_server)
    page.wait_for_selector("#task:not([hidden])")
    task_top = page.locator("#task").bounding_box()["y"]
    page.keyboard.press("a")
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    page.wait_for_selector("#undo:not([hidden])")
    # The "Saved." notice floats: the next item's buttons stay where the mouse expects them.
    assert page.locator("#task").bounding_box()["y"] == task_top
    shot(page, "saved-undo-1400")
    page.locator("#undo").click()
    page.wait_for_selector("#amend-banner:not([hidden])")
    assert page.locator("[data-choose=A]").get_attribute("aria-pressed") == "true"
    assert page.locator("[data-rating=significantly_better]").get_attribute("aria-pressed") == "true"
    page.keyboard.press("b")
    page.keyboard.press("3")
    page.keyboard.press("Enter")
    page.wait_for_selector("#amend-banner", state="hidden")
    comparison = Comparison.objects.get(item=first)
    assert (comparison.rating, comparison.chosen) == ("slightly_better", expected_chosen(comparison, "B"))
    assert comparison.amendments.count() == 1
    # Back on the item claimed after the first submit, which is still open.
    page.wait_for_selector("#task:not([hidden])")
    assert second.assignments.get().status == "claimed" and not Comparison.objects.filter(item=second).exists()
    # The notice fades away by itself.
    page.wait_for_selector("#notice", state="hidden")


LONG_URL = "https://example.com/" + "a1b2c3d4" * 60
MARKDOWN_ANSWER = (
    "Here is how:\n\n1. **Boil** the water\n2. Add the *eggs*\n\n"
    "```python\nprint('" + "x" * 400 + "')\n```\n\nSee " + LONG_URL
)
SCRIPT_ANSWER = "<script>window.injected = true</script><img src=x onerror=\"window.injected = true\"> Plain answer."


@pytest.mark.parametrize("width", [1400, 420])
def test_any_response_fits_the_layout_renders_markdown_safely_and_shows_raw_text(browser, live_server, width):
    annotator()
    dialogue = make_dialogue(turns=[{"role": "user", "content": "How do I boil an egg? " + LONG_URL}])
    Item.objects.create(
        dialogue=dialogue,
        guideline_kind="helpfulness",
        sample_a=make_sample(dialogue, MARKDOWN_ANSWER),
        sample_b=make_sample(dialogue, SCRIPT_ANSWER),
        status=ItemStatus.READY,
    )
    page = logged_in_page(browser, live_server, width=width)
    page.wait_for_selector("#task:not([hidden])")
    # Nothing makes the page wider than the window.
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    boxes = [page.locator(f"#response-{label}").bounding_box() for label in "AB"]
    assert abs(boxes[0]["width"] - boxes[1]["width"]) <= 1  # equal width, side by side or stacked
    # The code block scrolls inside its response instead of stretching it.
    code = page.locator(".markdown pre").first
    assert code.evaluate("e => e.scrollWidth > e.clientWidth")
    markdown = page.locator(".response-text.markdown:visible")
    assert markdown.locator("ol li strong").first.inner_text() == "Boil"
    # Raw HTML from the model is shown as text and never runs.
    assert page.evaluate("window.injected === undefined")
    assert page.locator(".response-text script, .response-text img").count() == 0
    assert "<script>" in page.locator(".response-text.markdown:visible").nth(0).inner_text() + page.locator(
        ".response-text.markdown:visible"
    ).nth(1).inner_text()
    shot(page, f"markdown-{width}")
    page.keyboard.press("r")
    assert page.locator(".response-raw:visible").count() == 2
    assert "**Boil**" in page.locator(".response-raw:visible").first.inner_text() + page.locator(
        ".response-raw:visible"
    ).nth(1).inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    shot(page, f"raw-{width}")


def test_waiting_is_honest_and_offers_a_prompt_then_counts_what_is_ready(browser, live_server, settings):
    settings.ANNOTATE_POLL_MS = 300
    annotator()
    page = logged_in_page(browser, live_server)
    page.wait_for_selector("#waiting:not([hidden])")
    assert "nothing is being generated" in page.locator("#waiting-text").inner_text()
    shot(page, "waiting-idle-1400")
    page.locator("#waiting-write").click()
    page.wait_for_selector("#prompt-dialog[open]")
    requests = []
    page.on("request", lambda request: "/api/prompts/" in request.url and requests.append(request.url))
    page.locator("#prompt-text").fill("x" * 20_001)
    assert page.locator("#prompt-count").inner_text() == "20,001 / 20000 characters"
    page.keyboard.press("Control+Enter")
    assert "the limit is 20,000" in page.locator("#prompt-message").inner_text() and requests == []
    page.locator("#prompt-text").fill("What causes the northern lights?")
    assert page.locator("#prompt-count").inner_text().startswith("32 /")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#prompt-dialog", state="hidden")
    written = Item.objects.get(dialogue__author__username="ann")
    assert written.status == ItemStatus.NEEDS_SAMPLES
    try:
        page.wait_for_function("document.querySelector('#waiting-text').textContent.includes('having their responses generated')")
    finally:
        shot(page, "waiting-generating-1400")
    assert page.locator("#waiting-idle").is_hidden()

    make_ready_item(priority=-1)  # one more behind it
    services.item_attach_samples(
        item=written,
        sample_a=make_sample(written.dialogue, "Solar wind."),
        sample_b=make_sample(written.dialogue, "Magic."),
    )
    page.wait_for_selector("#task:not([hidden])")
    page.wait_for_function("document.querySelector('#remaining').textContent.includes('1 more ready')")


def test_the_skip_reason_box_is_shown_only_for_other(browser, live_server):
    annotator()
    item = make_ready_item()
    page = logged_in_page(browser, live_server, width=420)
    page.wait_for_selector("#task:not([hidden])")
    page.keyboard.press("k")
    assert page.locator("#skip-reason").is_hidden()
    page.locator("#skip-reason-choice").select_option("other")
    assert page.locator("#skip-reason").is_visible()
    page.locator("#skip-reason").fill("Written in a language I do not read")
    shot(page, "skip-other-420")
    page.locator("#skip-confirm").click()
    page.wait_for_selector("#waiting:not([hidden])")
    assert item.assignments.get().skip_reason == "Written in a language I do not read"


def test_a_page_that_is_not_for_an_annotator_says_so_plainly(browser, live_server):
    annotator()
    page = logged_in_page(browser, live_server)
    response = page.goto(f"{live_server.url}/runs/")
    assert response.status == 403
    assert "This page is not for your account" in page.locator("h1").inner_text()
    assert "logged in as ann" in page.locator("#forbidden").inner_text()
    page.locator("#forbidden a", has_text="start page").click()
    page.wait_for_url(f"{live_server.url}/annotate/")
