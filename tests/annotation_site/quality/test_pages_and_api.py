"""Who sees the quality figures: admins and researchers read them, admins act on them, annotators
and anonymous users get nothing; the same figures over the API and the command."""
import datetime as dt
import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from annotation_site.accounts.services import user_create
from annotation_site.quality.models import Flag, Review
from tests.annotation_site.batches.factories import make_annotator, make_comparison

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    return {
        role: user_create(username=f"q-{role}", role=role, password="pw-123456")
        for role in ("annotator", "admin", "researcher")
    }


@pytest.fixture
def comparison():
    return make_comparison(annotator=make_annotator("rater"))


PAGES = [("quality:dashboard", {}), ("quality:review", {})]


@pytest.mark.parametrize("name,kwargs", PAGES)
def test_anonymous_users_are_sent_to_the_login_page(client, name, kwargs):
    response = client.get(reverse(name, kwargs=kwargs))
    assert response.status_code == 302 and "/login" in response["Location"]


def test_annotators_get_403_on_every_quality_page_and_endpoint(client, people, comparison):
    client.force_login(people["annotator"])
    urls = [reverse("quality:dashboard"), reverse("quality:review"), reverse("quality:annotator", args=[comparison.annotator_id]),
            reverse("api-quality-annotators"), reverse("api-quality-summary")]  # fmt: skip
    assert [client.get(url).status_code for url in urls] == [403] * len(urls)


def test_researchers_read_the_dashboard_and_api_but_not_the_review_queue(client, people, comparison):
    client.force_login(people["researcher"])
    assert client.get(reverse("quality:dashboard")).status_code == 200
    assert client.get(reverse("quality:annotator", args=[comparison.annotator_id])).status_code == 200
    assert client.get(reverse("quality:review")).status_code == 403
    rows = client.get(reverse("api-quality-annotators")).json()
    assert [row["username"] for row in rows] == ["rater"]
    summary = client.get(reverse("api-quality-summary"), {"guideline": "helpfulness"}).json()
    assert summary["comparisons"] == 1
    response = client.post(reverse("quality:annotator", args=[comparison.annotator_id]),
                           {"since": "2026-01-01", "until": "2026-12-31", "reason": "x", "confirm": "on"})  # fmt: skip
    assert response.status_code == 403


def test_a_bad_query_is_a_400_with_the_field(client, people):
    client.force_login(people["admin"])
    response = client.get(reverse("api-quality-summary"), {"guideline": "nonsense"})
    assert response.status_code == 400 and "guideline" in response.json()["fields"]


def test_the_dashboard_shows_the_figures_and_the_annotator_table(client, people, comparison):
    client.force_login(people["admin"])
    page = client.get(reverse("quality:dashboard")).content.decode()
    assert 'data-annotator="rater"' in page and "Krippendorff" in page and "<svg" in page


def test_an_admin_decides_a_flagged_comparison_in_the_review_queue(client, people, comparison):
    Flag.objects.create(comparison=comparison, reason="too_fast", detail="100 ms on the item")
    client.force_login(people["admin"])
    page = client.get(reverse("quality:review")).content.decode()
    assert f'data-comparison="{comparison.pk}"' in page and comparison.chosen.text in page
    response = client.post(reverse("quality:review"), {"comparison": comparison.pk, "decision": "exclude", "reason": "too fast"})
    assert response.status_code == 302
    review = Review.objects.get(comparison=comparison)
    assert review.decision == "exclude" and review.reviewer == people["admin"]
    assert comparison.quality_exclusion.reason == "review: too fast"
    assert f'data-comparison="{comparison.pk}"' not in client.get(reverse("quality:review")).content.decode()


def test_a_decision_without_a_reason_is_refused(client, people, comparison):
    Flag.objects.create(comparison=comparison, reason="too_fast")
    client.force_login(people["admin"])
    client.post(reverse("quality:review"), {"comparison": comparison.pk, "decision": "exclude", "reason": ""})
    assert not Review.objects.exists()


def test_the_exclusion_form_previews_before_it_excludes(client, people, comparison):
    client.force_login(people["admin"])
    url = reverse("quality:annotator", args=[comparison.annotator_id])
    today = timezone.now().date().isoformat()
    preview = client.post(url, {"since": today, "until": today, "reason": "clicker"})
    assert b'id="exclusion-preview"' in preview.content and not hasattr(comparison, "quality_exclusion")
    client.post(url, {"since": today, "until": today, "reason": "clicker", "confirm": "on"})
    comparison.refresh_from_db()
    assert comparison.quality_exclusion.reason == "clicker"


def test_quality_report_prints_a_table_and_json(comparison):
    out = StringIO()
    call_command("quality_report", stdout=out)
    assert "rater" in out.getvalue() and "Krippendorff" in out.getvalue()
    out = StringIO()
    call_command("quality_report", "--guideline", "helpfulness", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["summary"]["comparisons"] == 1 and data["annotators"][0]["username"] == "rater"
