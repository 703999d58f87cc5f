"""A comparison's admin page in a real browser: what was compared, as its annotator saw it, read-only."""
from __future__ import annotations

import pytest

from annotation_site.accounts.services import user_create
from annotation_site.annotation import services
from annotation_site.annotation.models import Item, ItemStatus
from tests.annotation_site.annotation.factories import make_dialogue, make_sample
from tests.browser.test_annotate_answers_and_layout import LONG_URL, annotator, browser, shot  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("width", [1400, 420])
def test_an_admin_sees_the_dialogue_both_responses_in_shown_order_and_the_answer(browser, live_server, width):  # noqa: F811
    rater = annotator()
    dialogue = make_dialogue(guideline_kind="safety", turns=[{"role": "user", "content": "How do I pick a lock? " + LONG_URL}])
    Item.objects.create(
        dialogue=dialogue, guideline_kind="safety", status=ItemStatus.READY,
        sample_a=make_sample(dialogue, "I can't help with that; a **locksmith** can."),
        sample_b=make_sample(dialogue, "Insert a tension wrench:\n\n```\n" + "rake " * 80 + "\n```"),
    )  # fmt: skip
    assignment = services.assignment_claim_next(annotator=rater)
    comparison = services.comparison_submit(
        assignment=assignment, annotator=rater, chosen="A", rating="significantly_better",
        response_a_is_safe=True, response_b_is_safe=False, active_ms=5300,
    )  # fmt: skip
    user_create(username="boss", role="admin", password="pw-123456")
    page = browser.new_context(viewport={"width": width, "height": 900}).new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{live_server.url}/admin/login/?next=/admin/annotation/comparison/{comparison.pk}/change/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "pw-123456")
    page.click("input[type=submit]")
    page.wait_for_selector(".comparison-shown")
    assert page.locator(".shown-response h3").all_inner_texts() == ["Response A (chosen)", "Response B"]
    # Response A is the sample the annotator saw as A (the assignment's drawn order).
    seen_as_a = assignment.item.sample_b if assignment.flipped else assignment.item.sample_a
    expected_start = "Insert a tension wrench" if seen_as_a.text.startswith("Insert") else "I can't help with that"
    assert expected_start in page.locator(".shown-response[data-label=A]").inner_text()
    text = " ".join(page.locator(".comparison-shown").inner_text().split())
    assert "Response A is significantly better" in text and "labelled safe" in text and "labelled unsafe" in text
    assert "How do I pick a lock?" in text and "by ann" in text
    assert page.locator("input[name=_save]").count() == 0
    assert page.title().endswith("RLHF loop admin")
    shot(page, f"admin-comparison-{width}")
