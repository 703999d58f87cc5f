"""The sampling policy: which two (deployment, temperature) variants answer each prompt.

Llama 2 §3.2.1: "for each user prompt, the two responses are sampled from two different model
variants, and varying the temperature hyper-parameter". With two or more deployed checkpoints the
pair comes from two different checkpoints (among the most recent ones, so the data stays on the
current model's distribution); with one, from that checkpoint at two different temperatures.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Sequence

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from serving.types import SamplingParams


@dataclass(frozen=True)
class SamplingPolicy:
    temperatures: tuple[float, ...]
    top_p: float
    max_tokens: int
    latest_checkpoints: int

    @classmethod
    def from_settings(cls) -> "SamplingPolicy":
        temperatures = []
        for raw in settings.GENERATION_TEMPERATURES:
            try:
                value = float(raw)
            except (TypeError, ValueError):
                value = math.nan
            if not math.isfinite(value) or value < 0:
                raise ImproperlyConfigured(
                    f"GENERATION_TEMPERATURES has {raw!r}: give comma-separated numbers >= 0, e.g. 0.7,1.0,1.2"
                )
            temperatures.append(value)
        if len(set(temperatures)) < 2:
            raise ImproperlyConfigured(
                "GENERATION_TEMPERATURES needs at least two different temperatures: the two responses of a "
                "pair are sampled at different temperatures (Llama 2 §3.2.1)"
            )
        if not 0 < settings.GENERATION_TOP_P <= 1:
            raise ImproperlyConfigured(f"GENERATION_TOP_P={settings.GENERATION_TOP_P} must be in (0, 1]")
        return cls(
            temperatures=tuple(sorted(set(temperatures))),
            top_p=settings.GENERATION_TOP_P,
            max_tokens=settings.GENERATION_MAX_TOKENS,
            latest_checkpoints=settings.GENERATION_LATEST_CHECKPOINTS,
        )

    def params(self, temperature: float, *, seed: int | None = None) -> SamplingParams:
        return SamplingParams(temperature=temperature, top_p=self.top_p, max_tokens=self.max_tokens, n=1, seed=seed)

    def choose_pair(self, deployments: Sequence, rng: random.Random) -> tuple[tuple[object, float], tuple[object, float]]:
        """Two (deployment, temperature) variants for one prompt (`choose_variants` with k=2)."""
        first, second = self.choose_variants(deployments, rng, k=2)
        return first, second

    def choose_variants(self, deployments: Sequence, rng: random.Random, *, k: int = 2) -> list[tuple[object, float]]:
        """The (deployment, temperature) variants that answer one prompt: a pair, or, for active
        selection (generation/selection.py), up to `k` distinct candidates.

        `deployments` are usable ones, most recent checkpoint first; one per checkpoint is kept.
        A running canary (generation/canary.py) answers its `canary_share` of prompts, as a pair
        against its baseline whatever `k` is, and no other prompt; with no canary running no extra
        draw is made, so a seeded fill makes the same pairs as before canaries existed. A pair
        comes from two checkpoints when two are deployed; `k` candidates are distinct variants of
        the latest checkpoints and the temperatures (fewer when there are fewer variants: the same
        variant twice could be the same answer, an engine given one seed per request repeats it).
        """
        if not deployments:
            raise ValueError("no deployment to sample from")
        usable = {deployment.pk: deployment for deployment in deployments}
        canaries = [d for d in deployments if d.is_running_canary and d.canary_of_id in usable]
        if canaries:
            draw = rng.random()
            for canary in canaries:
                if draw < canary.canary_share:
                    return self._two_variants(rng.sample([canary, usable[canary.canary_of_id]], 2), rng)
                draw -= canary.canary_share
        # A canary whose baseline is not usable now answers nothing, unless it is all there is.
        regular = [d for d in deployments if not d.is_running_canary] or list(deployments)
        by_checkpoint: dict[int, object] = {}
        for deployment in regular:
            by_checkpoint.setdefault(deployment.checkpoint_id, deployment)
        latest = list(by_checkpoint.values())[: self.latest_checkpoints]
        if k > 2:
            variants = [(deployment, temperature) for deployment in latest for temperature in self.temperatures]
            return rng.sample(variants, min(k, len(variants)))
        return self._two_variants(rng.sample(latest, 2) if len(latest) >= 2 else [latest[0], latest[0]], rng)

    def _two_variants(self, sides: Sequence, rng: random.Random) -> list[tuple[object, float]]:
        temperature_a, temperature_b = rng.sample(self.temperatures, 2)
        return [(sides[0], temperature_a), (sides[1], temperature_b)]
