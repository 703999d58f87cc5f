"""`seed_demo`: demo users for the three roles, the two guidelines, and items written for the demo."""
from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from annotation_site.accounts.services import user_create
from annotation_site.annotation import selectors, services
from annotation_site.annotation.demo.guidelines import GUIDELINES
from annotation_site.annotation.demo.items import COMPARISONS, DEMONSTRATIONS
from annotation_site.annotation.models import Dialogue, DialogueSource, Item, ItemStatus, Sample, TaskKind

# Well-known passwords are fine for a demo on localhost and nowhere else (README says so).
DEMO_USERS = [
    ("annotator", "annotator", "annotate-demo"),
    ("annotator2", "annotator", "annotate-demo"),
    ("admin", "admin", "admin-demo"),
    ("researcher", "researcher", "research-demo"),
]
DEMO_WRITERS = [
    ("demo:chat-v1", {"temperature": 0.7, "top_p": 0.9, "max_tokens": 512}),
    ("demo:chat-v2", {"temperature": 1.0, "top_p": 0.9, "max_tokens": 512}),
]


@dataclass(frozen=True)
class DemoSeed:
    users: list[tuple[str, str, str]]
    guidelines_created: int
    comparison_items_created: int
    demonstration_items_created: int


def demo_seed() -> DemoSeed:
    """Idempotent: users are (re)created with their demo passwords; guidelines and items only once."""
    with transaction.atomic():
        for username, role, password in DEMO_USERS:
            user_create(username=username, role=role, password=password)
        guidelines_created = 0
        for kind, (title, text) in GUIDELINES.items():
            if selectors.guideline_current(kind=kind) is None:
                services.guideline_publish(kind=kind, title=title, text=text)
                guidelines_created += 1
        if Dialogue.objects.filter(source=DialogueSource.DEMO).exists():
            return DemoSeed(DEMO_USERS, guidelines_created, 0, 0)
        for index, entry in enumerate(COMPARISONS):
            dialogue = Dialogue.objects.create(turns=entry["turns"], guideline_kind=entry["guideline"], source=DialogueSource.DEMO)
            # The better reply is written by either demo model, so "which model wins" is not a shortcut.
            writers = DEMO_WRITERS if index % 2 == 0 else DEMO_WRITERS[::-1]
            sample_a, sample_b = (
                Sample.objects.create(
                    dialogue=dialogue, text=text, model_name=name, sampling_params={**params, "seed": index}
                )
                for text, (name, params) in zip((entry["a"], entry["b"]), writers)
            )
            overlap = selectors.guideline_current(kind=entry["guideline"]).overlap
            Item.objects.create(
                dialogue=dialogue,
                guideline_kind=entry["guideline"],
                sample_a=sample_a,
                sample_b=sample_b,
                status=ItemStatus.READY,
                overlap=overlap,
                open_slots=overlap,
            )
        for entry in DEMONSTRATIONS:
            services.prompts_queue(
                prompts=[services.PromptSpec(turns=entry["turns"], guideline_kind=entry["guideline"])],
                source=DialogueSource.DEMO,
                task_kind=TaskKind.DEMONSTRATION,
            )
    return DemoSeed(DEMO_USERS, guidelines_created, len(COMPARISONS), len(DEMONSTRATIONS))
