"""Active selection's second half: choosing the pair among an item's K candidates with the current
reward models (generation/selection.py). Runs on the training worker, which has torch and the
reward models' files; the queue filling stashed the candidates on the item's claim."""
from __future__ import annotations

import logging
import random

from django.conf import settings
from django.db import transaction

from annotation_site.generation.models import ClaimState, GenerationClaim
from annotation_site.generation.selection import RANDOM, Scored, candidates_score, choose, pair_scores
from annotation_site.generation.services.filling import candidates_record, store_samples

logger = logging.getLogger(__name__)


def pairs_select(*, item_ids: list[int], rng: random.Random | None = None) -> dict[str, list[int]]:
    """Score the stashed candidates of these items, queue each item's chosen pair, and record the
    policy, the reward models, every candidate's variant and scores, and the choice on the item."""
    rng = rng or random.Random(settings.GENERATION_SEED)
    report: dict[str, list[int]] = {"selected": [], "gone": []}
    claims = (GenerationClaim.objects.filter(item_id__in=item_ids, state=ClaimState.GENERATING).exclude(selection={})
              .select_related("item__dialogue").order_by("item_id"))
    for claim in claims:
        item, stash = claim.item, claim.selection
        texts = [candidate["text"] for candidate in stash["candidates"]]
        try:
            scored = candidates_score(policy=stash["policy"], guideline_kind=item.guideline_kind,
                                      prompt=item.dialogue.turns, texts=texts)
        except (OSError, ValueError) as error:  # a reward model folder gone or unreadable
            logger.warning("reward models could not score item %s: %s", item.pk, error)
            scored = Scored(RANDOM, [], [], note=f"the reward models could not score: {error}")
        first, second = (rng.sample(range(len(texts)), 2) if scored.policy == RANDOM
                         else choose(scored.policy, pair_scores(scored)))
        record = {
            "policy": scored.policy, "asked": stash["policy"], "reward_models": scored.reward_models,
            "candidates": candidates_record(stash["candidates"], scored.scores),
            "chosen": [first, second], **({"note": scored.note} if scored.note else {}),
        }
        with transaction.atomic():
            # The claim may have expired and been stored by a fill meanwhile (a random pair of the candidates).
            if not GenerationClaim.objects.select_for_update().filter(pk=claim.pk).exclude(selection={}).exists():
                report["gone"].append(item.pk)
                continue
            stored = store_samples(item=item, sides=[stash["candidates"][first], stash["candidates"][second]], rng=rng,
                                   selection=record)
        report["selected" if stored else "gone"].append(item.pk)
    return report
