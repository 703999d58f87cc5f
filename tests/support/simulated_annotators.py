"""Simulated annotators for tests and benchmarks: they claim and answer through the annotation
services, exactly as the annotate page does."""
from __future__ import annotations

import random


def vote_on_everything_ready(annotators, rng: random.Random, *, prefer=None) -> int:
    """Each annotator claims and answers until nothing is left for them; returns the answers given.

    The side is a seeded coin, except that with `prefer` (a deployment) the sample it wrote is
    chosen whenever the pair has one. Safety items label both responses safe, so no pair falls in
    the bin the paper leaves out (chosen unsafe, other safe)."""
    from annotation_site.annotation.services import assignment_claim_next, comparison_submit

    answered = 0
    for annotator in annotators:
        while (assignment := assignment_claim_next(annotator=annotator)) is not None:
            shown = [assignment.item.sample_a, assignment.item.sample_b][::-1 if assignment.flipped else 1]
            chosen = rng.choice("AB")
            for side, sample in zip("AB", shown):
                if prefer is not None and (sample.sampling_params or {}).get("deployment") == prefer.pk:
                    chosen = side
            safety = assignment.item.guideline_kind == "safety"
            comparison_submit(assignment=assignment, annotator=annotator, chosen=chosen, rating="better",
                              response_a_is_safe=True if safety else None, response_b_is_safe=True if safety else None)
            answered += 1
    return answered
