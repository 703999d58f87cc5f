"""Active selection: which two of a prompt's K candidate answers annotators should compare
(issue 15, "spend labels where they teach the reward model most"; docs/canary-and-selection.md).

Off by default: every pair is two variants drawn at random, as Llama 2 §3.2.1 samples them. With
a policy on (for every guideline or for one), a prompt outside the fixed random share gets K
candidates from the deployed variants, the current reward models score them on a worker that
has them (the "training" queue: the web process and the site's worker never load a model), and
the pair queued is the one the reward models are least sure about:

- uncertainty: the smallest difference of the combined reward (eq. 3-4, `training.scoring`) of
  the guideline's newest helpfulness and safety reward models (the one that exists, alone);
- disagreement: the largest disagreement between the two newest reward models of the item's
  guideline, |sigma(d_new) - sigma(d_old)| where d is a model's score difference of the pair.

The pure choice lives here (the benchmark `bench/active_selection.py` calls it too); scoring the
candidates of stored items is `candidates_score`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import Sequence

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from annotation_site.annotation.models import GuidelineKind

RANDOM, UNCERTAINTY, DISAGREEMENT = "random", "uncertainty", "disagreement"
POLICIES = (RANDOM, UNCERTAINTY, DISAGREEMENT)


@dataclass(frozen=True)
class SelectionSettings:
    policies: dict[str, str]  # guideline kind -> policy
    candidates: int  # K answers sampled per prompt outside the random share
    random_share: float  # share of prompts that stay random pairs whatever the policy

    @classmethod
    def from_settings(cls) -> "SelectionSettings":
        policies = {}
        for kind in GuidelineKind.values:
            name = f"SELECTION_POLICY_{kind.upper()}"
            policy = getattr(settings, name, "") or settings.SELECTION_POLICY
            if policy not in POLICIES:
                variable = name if getattr(settings, name, "") else "SELECTION_POLICY"
                raise ImproperlyConfigured(f"{variable}={policy!r}: use one of {', '.join(POLICIES)}")
            policies[kind] = policy
        if settings.SELECTION_CANDIDATES < 3:
            raise ImproperlyConfigured(
                f"SELECTION_CANDIDATES={settings.SELECTION_CANDIDATES}: selecting a pair needs at least 3 candidates "
                "(2 leave no choice)")
        if not 0 <= settings.SELECTION_RANDOM_SHARE <= 1:
            raise ImproperlyConfigured(f"SELECTION_RANDOM_SHARE={settings.SELECTION_RANDOM_SHARE} must be in [0, 1]")
        return cls(policies=policies, candidates=settings.SELECTION_CANDIDATES,
                   random_share=settings.SELECTION_RANDOM_SHARE)

    def policy_for(self, guideline_kind: str) -> str:
        return self.policies.get(guideline_kind, RANDOM)


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def pair_uncertainty(rewards: Sequence[float]) -> dict[tuple[int, int], float]:
    """|r_i - r_j| for every pair i < j of candidates: small means the reward model cannot tell them apart."""
    return {(i, j): abs(rewards[i] - rewards[j]) for i, j in combinations(range(len(rewards)), 2)}


def pair_disagreement(newer: Sequence[float], older: Sequence[float]) -> dict[tuple[int, int], float]:
    """|sigma(newer_i - newer_j) - sigma(older_i - older_j)| for every pair i < j: how far the two
    reward models' Bradley-Terry probabilities that i beats j are apart (comparable across models
    whose raw scales differ, unlike the raw differences)."""
    return {(i, j): abs(_sigmoid(newer[i] - newer[j]) - _sigmoid(older[i] - older[j]))
            for i, j in combinations(range(len(newer)), 2)}


def choose(policy: str, pair_scores: dict[tuple[int, int], float]) -> tuple[int, int]:
    """The pair to queue: the smallest score for uncertainty, the largest for disagreement; a tie
    goes to the first pair in (i, j) order, so a choice is reproducible."""
    if not pair_scores:
        raise ValueError("no pair of candidates to choose from")
    pairs = sorted(pair_scores)
    if policy == UNCERTAINTY:
        return min(pairs, key=pair_scores.__getitem__)
    if policy == DISAGREEMENT:
        return max(pairs, key=pair_scores.__getitem__)
    raise ValueError(f"{policy!r} chooses no pair by score")


@dataclass(frozen=True)
class Scored:
    """Candidates' scores as the item records them, and the policy that could be applied."""

    policy: str  # what was applied: the asked policy, or the fallback when its reward models are missing
    reward_models: list[str]  # names of the reward models that scored
    scores: list[dict[str, float]]  # per candidate: {"reward": r} or {"newer": s, "older": s}
    note: str = ""  # why the asked policy was not applied, when it was not


def pair_scores(scored: Scored) -> dict[tuple[int, int], float]:
    """The pair scores the policy ranks, from what the item records (so they can be checked later)."""
    if scored.policy == UNCERTAINTY:
        return pair_uncertainty([s["reward"] for s in scored.scores])
    return pair_disagreement([s["newer"] for s in scored.scores], [s["older"] for s in scored.scores])


def candidates_score(*, policy: str, guideline_kind: str, prompt: list[dict], texts: Sequence[str],
                     batch_size: int = 16) -> Scored:
    """Score a prompt's candidate answers with the current reward models (on a worker with torch).

    Disagreement needs two reward models of the guideline and falls back to uncertainty with one;
    uncertainty with no reward model at all falls back to random (the note says so)."""
    from annotation_site.quality.selectors import reward_models_for, scoring_reward_model
    from training.rewards import combined_reward
    from training.scoring import cached_reward_model

    prompts = [prompt] * len(texts)
    if policy == DISAGREEMENT:
        versions = reward_models_for(guideline_kind)[:2]
        if len(versions) == 2:
            newer, older = (cached_reward_model(c.path).score(prompts, texts, batch_size=batch_size) for c in versions)
            return Scored(DISAGREEMENT, [c.name for c in versions],
                          [{"newer": float(n), "older": float(o)} for n, o in zip(newer, older)])
        note = f"disagreement needs two {guideline_kind} reward models, {len(versions)} registered: uncertainty instead"
    else:
        note = ""
    models = {kind: scoring_reward_model(kind) for kind in GuidelineKind.values}
    if models[GuidelineKind.HELPFULNESS] and models[GuidelineKind.SAFETY]:
        helpfulness, safety = (cached_reward_model(models[kind].path).score(prompts, texts, batch_size=batch_size)
                               for kind in (GuidelineKind.HELPFULNESS, GuidelineKind.SAFETY))
        rewards = combined_reward(helpfulness, safety, [guideline_kind] * len(texts))
        names = [models[GuidelineKind.HELPFULNESS].name, models[GuidelineKind.SAFETY].name]
    elif models[guideline_kind]:
        rewards = cached_reward_model(models[guideline_kind].path).score(prompts, texts, batch_size=batch_size)
        names = [models[guideline_kind].name]
    else:
        return Scored(RANDOM, [], [], note=f"no {guideline_kind} reward model is registered: a random pair")
    return Scored(UNCERTAINTY, names, [{"reward": float(r)} for r in rewards], note=note)
