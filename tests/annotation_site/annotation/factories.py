"""Small builders for annotation rows used across the annotation tests."""
from __future__ import annotations

from django.contrib.auth import get_user_model

from annotation_site.accounts.services import user_create
from annotation_site.annotation.models import Dialogue, DialogueSource, Item, ItemStatus, Sample, TaskKind


def make_annotator(username: str = "ann", **kwargs):
    return user_create(username=username, role="annotator", password="pw-123456", **kwargs)


def make_dialogue(*, guideline_kind: str = "helpfulness", turns=None) -> Dialogue:
    return Dialogue.objects.create(
        turns=turns or [{"role": "user", "content": "How do I boil an egg?"}],
        guideline_kind=guideline_kind,
        source=DialogueSource.POOL,
    )


def make_sample(dialogue: Dialogue, text: str, model_name: str = "model-x", **params) -> Sample:
    return Sample.objects.create(
        dialogue=dialogue, text=text, model_name=model_name, sampling_params=params or {"temperature": 0.7}
    )


def make_ready_item(*, guideline_kind: str = "helpfulness", overlap: int = 1, priority: int = 0) -> Item:
    dialogue = make_dialogue(guideline_kind=guideline_kind)
    return Item.objects.create(
        dialogue=dialogue,
        guideline_kind=guideline_kind,
        sample_a=make_sample(dialogue, "Put it in boiling water for 8 minutes.", "model-a", temperature=0.7),
        sample_b=make_sample(dialogue, "Eggs are oval.", "model-b", temperature=1.0),
        status=ItemStatus.READY,
        overlap=overlap,
        open_slots=overlap,
        priority=priority,
    )


def make_demonstration_item(*, guideline_kind: str = "helpfulness") -> Item:
    return Item.objects.create(
        task_kind=TaskKind.DEMONSTRATION,
        dialogue=make_dialogue(guideline_kind=guideline_kind),
        guideline_kind=guideline_kind,
        status=ItemStatus.READY,
    )


def user_model():
    return get_user_model()
