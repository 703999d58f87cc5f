"""Signals the annotation app sends so other apps can react without being imported here.

`items_need_samples` is sent (on transaction commit) with `item_ids=[...]` whenever comparison items
are queued in the "needs samples" state: written prompts, continued dialogues, imported prompts.
The generation app connects a receiver that enqueues its fill task; the annotation app never
imports generation.
"""
from django.dispatch import Signal

items_need_samples = Signal()
