"""Writes of the annotation domain, one module per sub-domain:

- `prompts`: prompts and dialogues queued as items, samples attached (contract §1 of docs/architecture.md);
- `claims`: an annotator's next item claimed from the queue, expired claims given back;
- `submissions`: comparisons, demonstrations and skips, and amending a comparison;
- `guidelines`: publishing a guideline version.

Every function takes keyword-only arguments and raises `ApplicationError` (or a subclass) with a
message that says what was wrong; views, serializers and commands validate, call one of these and
return. Callers use this package (`services.comparison_submit(...)`): the names are re-exported here.
"""
from annotation_site.annotation.services.claims import (
    CLAIM_ROW,
    EXPIRY_SWEEP_EVERY_S,
    _last_sweep,
    assignment_claim_next,
    assignments_expire,
)
from annotation_site.annotation.services.guidelines import guideline_publish, validate_kind
from annotation_site.annotation.services.prompts import (
    ANNOTATOR_PRIORITY,
    BULK_CHUNK,
    PromptSpec,
    dialogue_continue,
    item_attach_samples,
    prompt_write,
    prompts_queue,
    validate_turns,
)
from annotation_site.annotation.services.submissions import (
    AMENDED_FIELDS,
    SUBMIT_ROW,
    SafetyOutcome,
    assignment_skip,
    comparison_amend,
    comparison_submit,
    demonstration_submit,
    safety_bin_for,
)

__all__ = [
    "AMENDED_FIELDS", "ANNOTATOR_PRIORITY", "BULK_CHUNK", "CLAIM_ROW", "EXPIRY_SWEEP_EVERY_S", "PromptSpec",
    "SUBMIT_ROW", "SafetyOutcome", "_last_sweep", "assignment_claim_next", "assignment_skip", "assignments_expire",
    "comparison_amend", "comparison_submit", "demonstration_submit", "dialogue_continue", "guideline_publish",
    "item_attach_samples", "prompt_write", "prompts_queue", "safety_bin_for", "validate_kind", "validate_turns",
]  # fmt: skip
