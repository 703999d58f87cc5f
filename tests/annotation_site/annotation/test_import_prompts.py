"""`manage.py import_prompts`: prompts and dialogues queued as items, same error rules as preferences."""
import json

import pytest
from django.core.management import CommandError, call_command

from annotation_site.annotation.models import Dialogue, Item, ItemStatus
from annotation_site.annotation.signals import items_need_samples

pytestmark = pytest.mark.django_db


def write_lines(tmp_path, lines):
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines))
    return str(path)


def test_prompts_and_dialogues_wait_for_samples_and_are_announced(tmp_path, django_capture_on_commit_callbacks):
    received = []
    items_need_samples.connect(lambda sender, item_ids, **kw: received.extend(item_ids), weak=False, dispatch_uid="t")
    lines = [
        {"prompt": "Write a poem about autumn"},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Tell me a joke"}], "guideline": "safety"},
    ]
    try:
        with django_capture_on_commit_callbacks(execute=True):
            call_command("import_prompts", write_lines(tmp_path, lines))
    finally:
        items_need_samples.disconnect(dispatch_uid="t")
    items = list(Item.objects.order_by("id"))
    assert [(i.status, i.guideline_kind) for i in items] == [("needs_samples", "helpfulness"), ("needs_samples", "safety")]
    assert sorted(received) == [i.pk for i in items]
    assert items[0].dialogue.source_name == "prompts" and len(items[1].dialogue.turns) == 3


def test_demonstration_prompts_are_ready_for_annotators(tmp_path):
    call_command("import_prompts", write_lines(tmp_path, [{"prompt": "Explain photosynthesis"}]), task="demonstration")
    item = Item.objects.get()
    assert (item.task_kind, item.status) == ("demonstration", ItemStatus.READY)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("{nope", "malformed JSON"),
        ({"text": "hi"}, "unknown key(s) text"),
        ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}, "must end with a user turn"),
        ({"prompt": "  "}, "no text"),
        ({"prompt": "x", "guideline": "kindness"}, 'unknown guideline "kindness"'),
    ],
)
def test_a_bad_line_refuses_the_file_and_nothing_is_queued(tmp_path, bad, reason):
    with pytest.raises(CommandError, match="line 2:") as refused:
        call_command("import_prompts", write_lines(tmp_path, [{"prompt": "fine"}, bad]))
    assert reason in str(refused.value)
    assert not Dialogue.objects.exists() and not Item.objects.exists()
