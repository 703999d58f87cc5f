"""Model responses are shown as Markdown rendered once, when stored, with raw HTML escaped."""
import pytest

from annotation_site.annotation import services
from annotation_site.annotation.markdown import render_markdown
from annotation_site.annotation.models import Item, ItemStatus, Sample
from tests.annotation_site.annotation.factories import make_annotator, make_dialogue, make_sample


def test_markdown_lists_emphasis_and_code_fences_render():
    html = render_markdown("Steps:\n\n1. **Boil** water\n2. Add `eggs`\n\n```python\nprint('x')\n```")
    assert "<ol>" in html and "<strong>Boil</strong>" in html and "<code>eggs</code>" in html
    assert '<pre><code class="language-python">' in html


def test_raw_html_and_script_links_from_a_model_are_never_passed_on():
    html = render_markdown('<script>alert("x")</script> <img src=x onerror=alert(1)> [click](javascript:alert(1))')
    assert "<script" not in html and "<img" not in html and 'href="javascript' not in html
    assert "&lt;script&gt;" in html


@pytest.mark.django_db
def test_a_sample_stores_its_html_and_the_claim_returns_it():
    dialogue = make_dialogue()
    item = Item.objects.create(
        dialogue=dialogue,
        guideline_kind="helpfulness",
        sample_a=make_sample(dialogue, "**bold** answer"),
        sample_b=make_sample(dialogue, "<script>alert(1)</script>"),
        status=ItemStatus.READY,
    )
    assert Sample.objects.get(pk=item.sample_a_id).text_html == "<p><strong>bold</strong> answer</p>\n"
    claimed = services.assignment_claim_next(annotator=make_annotator())
    assert {claimed.item.sample_a.text_html, claimed.item.sample_b.text_html} == {
        "<p><strong>bold</strong> answer</p>\n", "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>\n"
    }
