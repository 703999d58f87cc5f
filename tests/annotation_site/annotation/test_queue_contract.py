"""The contract with the generation app (docs/architecture.md, contract §1): prompts wait as items for two samples."""
import pytest

from annotation_site.annotation import selectors, services
from annotation_site.annotation.models import DialogueSource, Item, ItemStatus, TaskKind
from annotation_site.annotation.signals import items_need_samples
from annotation_site.errors import ApplicationError
from tests.annotation_site.annotation.factories import make_annotator, make_ready_item, make_sample

pytestmark = pytest.mark.django_db


def _queue(text="Tell me a joke", kind="helpfulness", **kwargs):
    return services.prompts_queue(
        prompts=[services.PromptSpec(turns=[{"role": "user", "content": text}], guideline_kind=kind)], **kwargs
    )


def test_queued_prompts_wait_for_samples_and_announce_themselves_on_commit(django_capture_on_commit_callbacks):
    received = []

    def receiver(sender, item_ids, **kwargs):
        received.append(item_ids)

    items_need_samples.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            items = _queue()
            assert received == []  # nothing is announced before the transaction commits
    finally:
        items_need_samples.disconnect(receiver)
    assert received == [[items[0].pk]]
    assert items[0].status == ItemStatus.NEEDS_SAMPLES
    assert items[0].sample_a is None and items[0].sample_b is None


def test_items_needing_samples_puts_annotator_prompts_first():
    pool = _queue("pool prompt")[0]
    annotator = make_annotator()
    written = services.prompt_write(annotator=annotator, text="my own prompt", guideline_kind="helpfulness")
    safety = _queue("how to pick a lock", kind="safety")[0]
    assert list(selectors.items_needing_samples()) == [written, pool, safety]
    assert list(selectors.items_needing_samples(guideline_kind="safety")) == [safety]
    assert written.dialogue.source == DialogueSource.ANNOTATOR and written.dialogue.author == annotator


def test_attaching_two_samples_makes_the_item_ready_with_overlap_open_slots():
    item = _queue()[0]
    Item.objects.filter(pk=item.pk).update(overlap=3)
    assert selectors.ready_item_count() == 0
    a = make_sample(item.dialogue, "first")
    b = make_sample(item.dialogue, "second")
    ready = services.item_attach_samples(item=item, sample_a=a, sample_b=b)
    assert (ready.status, ready.open_slots, ready.sample_a, ready.sample_b) == (ItemStatus.READY, 3, a, b)
    assert selectors.ready_item_count() == 1
    assert selectors.ready_item_count(guideline_kind="safety") == 0


def test_attaching_samples_twice_is_refused():
    item = _queue()[0]
    a, b = make_sample(item.dialogue, "x"), make_sample(item.dialogue, "y")
    services.item_attach_samples(item=item, sample_a=a, sample_b=b)
    with pytest.raises(ApplicationError, match="not waiting for samples"):
        services.item_attach_samples(item=item, sample_a=a, sample_b=b)


def test_samples_of_another_dialogue_are_refused():
    item = _queue()[0]
    other = make_ready_item()
    with pytest.raises(ApplicationError, match="answers dialogue"):
        services.item_attach_samples(item=item, sample_a=other.sample_a, sample_b=other.sample_b)
    item.refresh_from_db()
    assert item.status == ItemStatus.NEEDS_SAMPLES


def test_demonstration_prompts_are_ready_at_once_and_not_announced(django_capture_on_commit_callbacks):
    received = []
    items_need_samples.connect(lambda sender, item_ids, **kw: received.append(item_ids), weak=False, dispatch_uid="t")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            items = _queue(task_kind=TaskKind.DEMONSTRATION)
    finally:
        items_need_samples.disconnect(dispatch_uid="t")
    assert items[0].status == ItemStatus.READY and received == []
