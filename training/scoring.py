"""Scoring responses with the helpfulness and the safety reward model, in batches.

Both reward models are `AutoModelForSequenceClassification` checkpoints with one output (contract
§3). A (prompt, response) pair is scored on the chat template of the prompt's messages followed by
the response as an assistant message, the same text the reward-model recipe trained on. The
scorer returns both raw scores and the combined linear reward `logit(R_c)` of eq. 3-4
(`training.rewards`); the recipes whiten it over their batch.

    scorer = RewardScorer("runs/rm-helpfulness", "runs/rm-safety")
    scores = scorer.score(prompts, responses, guidelines)   # .helpfulness .safety .reward
    reward = scorer(prompts, responses, guidelines)          # the reward alone, for PPO
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from training.rewards import SAFETY_THRESHOLD, combined_reward

Messages = list[dict[str, str]]
# What PPO and rejection sampling call to score a batch: prompts (chat messages ending with the
# user turn), response texts and each prompt's guideline -> one linear reward per response,
# before whitening. `RewardScorer` is one; a test can pass any function of this shape.
RewardFunction = Callable[[Sequence[Messages], Sequence[str], Sequence[str | None]], torch.Tensor]


@dataclass
class RewardScores:
    """Scores of one batch, all `(batch,)` float32 tensors on the CPU."""

    helpfulness: torch.Tensor  # raw scalar output of the helpfulness reward model
    safety: torch.Tensor  # raw scalar output of the safety reward model
    reward: torch.Tensor  # logit(R_c) of eq. 3-4, before whitening


def reward_model_text(tokenizer, prompt: Messages, response: str) -> str:
    """The text a reward model scores (docs/architecture.md, contract §3)."""
    return tokenizer.apply_chat_template(prompt + [{"role": "assistant", "content": response}], tokenize=False)


class RewardModel:
    """One sequence-classification reward model with its tokenizer, scoring texts in batches."""

    def __init__(self, path: str | Path, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                 max_length: int = 2048):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if not Path(path).is_dir():
            raise FileNotFoundError(f"reward model {path} is not a checkpoint folder")
        self.path = str(path)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if self.tokenizer.chat_template is None:
            raise ValueError(f"reward model {path} has no chat template saved beside it")
        # Keep the end of long dialogues: the response being judged is at the end.
        self.tokenizer.truncation_side = "left"
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForSequenceClassification.from_pretrained(path, dtype=dtype).to(device).eval()
        if self.model.config.num_labels != 1:
            raise ValueError(f"reward model {path} has {self.model.config.num_labels} outputs; a reward model has 1")
        if self.model.config.pad_token_id is None:
            # The classification head reads the last non-pad token, so it must know the pad id.
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.device = torch.device(device)
        self.max_length = max_length

    @torch.no_grad()
    def score_texts(self, texts: Sequence[str], *, batch_size: int) -> torch.Tensor:
        """Raw scores of `texts`, `(len(texts),)`. Texts are batched by length to pad little."""
        lengths = [len(text) for text in texts]
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        scores = torch.empty(len(texts), dtype=torch.float32)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            encoded = self.tokenizer(
                [texts[i] for i in chunk], return_tensors="pt", padding=True, truncation=True,
                max_length=self.max_length, add_special_tokens=False,
            ).to(self.device)
            logits = self.model(**encoded).logits[:, 0]
            scores[chunk] = logits.float().cpu()
        return scores

    def score(self, prompts: Sequence[Messages], responses: Sequence[str], *, batch_size: int) -> torch.Tensor:
        texts = [reward_model_text(self.tokenizer, list(p), r) for p, r in zip(prompts, responses, strict=True)]
        return self.score_texts(texts, batch_size=batch_size)


# Reward models stay loaded in a worker between tasks: loading one costs seconds, a task's scoring
# of a few hundred texts about as much. Keyed by folder; a new checkpoint is a new folder.
_loaded: dict[str, RewardModel] = {}


def cached_reward_model(path: str | Path) -> RewardModel:
    """The reward model at `path`, loaded once per process."""
    model = _loaded.get(str(path))
    if model is None:
        model = _loaded[str(path)] = RewardModel(path)
    return model


class RewardScorer:
    """The helpfulness and safety reward models together, giving the combined reward of eq. 3-4."""

    def __init__(
        self,
        helpfulness_path: str | Path,
        safety_path: str | Path,
        *,
        safety_threshold: float = SAFETY_THRESHOLD,
        batch_size: int = 16,
        max_length: int = 2048,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        if batch_size < 1:
            raise ValueError(f"scoring batch size must be at least 1, got {batch_size}")
        self.helpfulness = RewardModel(helpfulness_path, device=device, dtype=dtype, max_length=max_length)
        self.safety = RewardModel(safety_path, device=device, dtype=dtype, max_length=max_length)
        self.safety_threshold = safety_threshold
        self.batch_size = batch_size

    def score(self, prompts: Sequence[Messages], responses: Sequence[str], guidelines: Sequence[str | None]) -> RewardScores:
        if not (len(prompts) == len(responses) == len(guidelines)):
            raise ValueError(
                f"got {len(prompts)} prompts, {len(responses)} responses and {len(guidelines)} guidelines; "
                "they must be one per response"
            )
        helpfulness = self.helpfulness.score(prompts, responses, batch_size=self.batch_size)
        safety = self.safety.score(prompts, responses, batch_size=self.batch_size)
        reward = combined_reward(helpfulness, safety, list(guidelines), threshold=self.safety_threshold)
        return RewardScores(helpfulness=helpfulness, safety=safety, reward=reward)

    def __call__(self, prompts: Sequence[Messages], responses: Sequence[str], guidelines: Sequence[str | None]) -> torch.Tensor:
        return self.score(prompts, responses, guidelines).reward
